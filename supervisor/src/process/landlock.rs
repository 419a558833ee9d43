//! The helper's Landlock ruleset, at the highest ABI the kernel offers: read-only
//! system paths (without the right to execute), read-write paths the app gives,
//! execute on the helper's own files only, TCP bind/connect denied, and signals and
//! abstract Unix sockets scoped to the helper (ABI 6+).
//!
//! ```
//! # #[cfg(target_os = "linux")] {
//! use coreml_supervisor::landlock::{elf_interpreter, Paths};
//!
//! let me = std::env::current_exe().unwrap();
//! // A dynamically linked test binary names its loader; the loader must be executable too.
//! let interp = elf_interpreter(&me);
//! let paths = Paths { read_only: vec!["/usr".into()], execute: vec![me], ..Paths::default() };
//! let (fd, applied) = paths.ruleset().unwrap();
//! println!("{applied} {interp:?} {}", fd.is_some());
//! # }
//! ```
//!
//! Landlock also keeps the helper from inspecting processes outside its domain:
//! its `ptrace` hook covers `/proc/<pid>/environ`, `maps`, `mem` and the `fd/`
//! links of the app. `/proc` itself gets only the read-file right (no listing),
//! the helper's own `/proc/<pid>` read and list (added in the child, the only one
//! that can name it). What stays readable of other processes: world-readable
//! files such as `/proc/<pid>/stat`, `status` and `cmdline`.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use landlock::{
    path_beneath_rules, Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr,
    RulesetCreatedAttr, Scope, ABI,
};

use crate::process::sandbox::{Applied, SandboxError};

/// The highest ABI this crate version knows; the kernel may offer less
/// (best effort: rights the kernel lacks are reported, not silently assumed).
const WANTED: ABI = ABI::V10;
/// The ABI that brought signal and abstract-socket scoping.
const SCOPING_ABI: i64 = 6;

/// The paths of one ruleset.
#[derive(Debug, Clone, Default)]
pub struct Paths {
    /// Readable (files and directories), not executable.
    pub read_only: Vec<PathBuf>,
    /// Files beneath readable, directories not listable (`/proc`: Dispatch reads
    /// `/proc/<tid>/stat` of its worker threads, whose entries cannot be named in
    /// advance; the app's `/proc/<pid>/fd` stays unlistable).
    pub read_files: Vec<PathBuf>,
    /// Readable and writable (create, remove, truncate), not executable.
    pub read_write: Vec<PathBuf>,
    /// Files that may be executed (and read): the helper, its launcher, its loader.
    pub execute: Vec<PathBuf>,
}

fn existing(paths: &[PathBuf]) -> Vec<&Path> {
    paths
        .iter()
        .map(PathBuf::as_path)
        .filter(|p| p.exists())
        .collect()
}

impl Paths {
    /// Creates the ruleset (in the parent; the child enforces it with
    /// `landlock_restrict_self`). Paths that do not exist are skipped.
    pub fn ruleset(&self) -> Result<(Option<OwnedFd>, Applied), SandboxError> {
        let kernel = crate::sys::landlock_abi();
        if kernel <= 0 {
            return Ok((None, Applied::Unsupported("kernel has no Landlock".into())));
        }
        let err = |e: landlock::RulesetError| SandboxError::Landlock(e.to_string());
        let all = AccessFs::from_all(WANTED);
        let read = AccessFs::from_read(WANTED) & !AccessFs::Execute;
        let write = all & !AccessFs::Execute;
        let exec = AccessFs::Execute | AccessFs::ReadFile;
        let created = Ruleset::default()
            .set_compatibility(CompatLevel::BestEffort)
            .handle_access(all)
            .map_err(err)?
            .handle_access(AccessNet::from_all(WANTED))
            .map_err(err)?
            .scope(Scope::Signal | Scope::AbstractUnixSocket)
            .map_err(err)?
            .create()
            .map_err(err)?
            .add_rules(path_beneath_rules(existing(&self.read_only), read))
            .map_err(err)?
            .add_rules(path_beneath_rules(
                existing(&self.read_files),
                AccessFs::ReadFile,
            ))
            .map_err(err)?
            .add_rules(path_beneath_rules(existing(&self.read_write), write))
            .map_err(err)?
            .add_rules(path_beneath_rules(existing(&self.execute), exec))
            .map_err(err)?;
        let fd: Option<OwnedFd> = created.into();
        let applied = match fd {
            None => Applied::Unsupported("ruleset not created".into()),
            Some(_) if kernel < SCOPING_ABI => Applied::Partially(format!(
                "kernel Landlock ABI {kernel}: no signal or abstract-socket scoping"
            )),
            Some(_) if kernel < WANTED as i64 => Applied::Partially(format!(
                "kernel Landlock ABI {kernel} of {}: scoping on; pathname Unix sockets are left to seccomp",
                WANTED as i64
            )),
            Some(_) => Applied::Yes,
        };
        Ok((fd, applied))
    }
}

/// The program interpreter (`PT_INTERP`) an ELF executable names, if any: the
/// kernel opens it for execution too, so it needs the execute right.
pub fn elf_interpreter(path: &Path) -> Option<PathBuf> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let mut h = [0u8; 64];
    f.read_exact(&mut h).ok()?;
    // 64-bit little-endian ELF only (the targets this crate supports).
    if &h[..4] != b"\x7fELF" || h[4] != 2 || h[5] != 1 {
        return None;
    }
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as u64;
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
    let (phoff, phentsize, phnum) = (u64_at(&h, 32), u16_at(&h, 54), u16_at(&h, 56));
    if phentsize < 56 {
        return None;
    }
    for i in 0..phnum.min(64) {
        let mut ph = [0u8; 56];
        f.seek(SeekFrom::Start(phoff + i * phentsize)).ok()?;
        f.read_exact(&mut ph).ok()?;
        if u32::from_le_bytes([ph[0], ph[1], ph[2], ph[3]]) == 3 {
            let (off, size) = (u64_at(&ph, 8), u64_at(&ph, 32).min(4096));
            let mut name = vec![0u8; size as usize];
            f.seek(SeekFrom::Start(off)).ok()?;
            f.read_exact(&mut name).ok()?;
            let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            return Some(PathBuf::from(
                String::from_utf8_lossy(&name[..end]).into_owned(),
            ));
        }
    }
    None
}
