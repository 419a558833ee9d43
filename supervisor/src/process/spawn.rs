//! Spawning the helper: a process-group leader with a socketpair end as fd 3, the
//! sandbox applied before exec, killed with its whole group on drop, always reaped.
//!
//! ```
//! use coreml_supervisor::{HelperCommand, HelperProcess, SandboxConfig};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let cmd = HelperCommand::new("/bin/sleep").arg("60");
//! let (helper, socket) = HelperProcess::spawn(&cmd, &SandboxConfig::default()).unwrap();
//! println!("pid {} sandbox: {}", helper.pid(), helper.sandbox());
//! helper.kill(); // SIGKILL to the whole group; the reaper thread collects the status
//! assert!(!helper.wait().await.success());
//! drop(socket);
//! # }
//! ```

use std::collections::VecDeque;
use std::ffi::{CString, OsString};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};

use tokio::sync::watch;

use crate::process::command::HelperCommand;
use crate::process::sandbox::{SandboxConfig, SandboxError, SandboxReport, UnsandboxedHelper};
use crate::sys;

#[cfg(target_os = "linux")]
type Cgroup = crate::process::cgroup::MemoryCgroup;
#[cfg(not(target_os = "linux"))]
type Cgroup = ();

/// Bytes of the helper's stderr kept for error messages.
const STDERR_TAIL: usize = 4096;

/// Starting the helper failed.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The socketpair or a descriptor duplication failed.
    #[error("creating the helper socket: {0}")]
    Socket(#[source] std::io::Error),
    /// The sandbox could not be prepared.
    #[error("preparing the sandbox: {0}")]
    Sandbox(#[from] SandboxError),
    /// fork/exec (or the pre-exec sandbox step) failed.
    #[error("starting {program}: {source}")]
    Exec {
        /// The program (or launcher) that was run.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The reaper thread could not be started.
    #[error("starting the reaper thread: {0}")]
    Reaper(#[source] std::io::Error),
    /// The helper's `Hello` says it is not sandboxed and the configuration
    /// requires it ([`SandboxConfig::require_sandboxed_hello`]).
    #[error(transparent)]
    Unsandboxed(#[from] UnsandboxedHelper),
}

/// The program file a path names: as is when it contains a `/`, else the first
/// match in `PATH` (what `execvp` would run).
fn resolve_program(p: &Path) -> PathBuf {
    if p.as_os_str().as_bytes().contains(&b'/') {
        return p.to_path_buf();
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(p))
                .find(|c| c.is_file())
        })
        .unwrap_or_else(|| p.to_path_buf())
}

fn cstring(b: &[u8]) -> std::io::Result<CString> {
    CString::new(b).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))
}

/// The exec the child performs: program, arguments, and the environment reduced
/// to the sandbox's allow-list plus the command's own variables.
fn exec_plan(
    cmd: &HelperCommand,
    sandbox: &SandboxConfig,
    path: &Path,
) -> std::io::Result<sys::ExecPlan> {
    let mut argv = Vec::new();
    for a in cmd
        .argv()
        .iter()
        .map(|p| p.as_os_str().to_owned())
        .chain(sandbox.helper_args())
    {
        argv.push(cstring(a.as_bytes())?);
    }
    let mut env: Vec<(OsString, OsString)> = Vec::new();
    if !cmd.clear_env {
        env.extend(std::env::vars_os().filter(|(k, _)| sandbox.env_allowed(&k.to_string_lossy())));
    }
    for (k, v) in &cmd.env {
        env.retain(|(old, _)| old != k);
        env.push((k.clone(), v.clone()));
    }
    let mut envp = Vec::new();
    for (k, v) in env {
        let mut kv = k.into_vec();
        kv.push(b'=');
        kv.extend(v.into_vec());
        envp.push(cstring(&kv)?);
    }
    Ok(sys::ExecPlan::new(
        cstring(path.as_os_str().as_bytes())?,
        argv,
        envp,
    ))
}

#[derive(Debug, Default)]
struct ReapState {
    reaped: bool,
}

/// Forks `command` from one thread that lives as long as the process. On Linux
/// the helper's parent-death signal fires when the *thread* that forked it exits,
/// not the process; forking from a tokio worker, or from a thread that started
/// the supervisor and then ended, would kill a healthy helper with that thread.
fn spawn_on_keeper(command: Command) -> std::io::Result<Child> {
    type Job = (Command, mpsc::SyncSender<std::io::Result<Child>>);
    static KEEPER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name("coreml-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no spawner thread; helpers are forked by their caller");
        }
        Mutex::new(tx)
    });
    let (reply, answer) = mpsc::sync_channel(1);
    let sent = keeper
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((command, reply));
    match sent {
        Ok(()) => answer
            .recv()
            .unwrap_or_else(|_| Err(std::io::Error::other("the spawner thread is gone"))),
        // No keeper thread: fork here.
        Err(mpsc::SendError((mut command, _))) => command.spawn(),
    }
}

/// A running helper process (group leader). Dropping it kills the group.
#[derive(Debug)]
pub struct HelperProcess {
    pid: u32,
    state: Arc<Mutex<ReapState>>,
    exit: watch::Receiver<Option<ExitStatus>>,
    stderr_tail: Arc<Mutex<VecDeque<u8>>>,
    /// Set when the supervisor gives up on this helper: its stderr reader stops.
    detached: Arc<std::sync::atomic::AtomicBool>,
    sandbox: SandboxReport,
    cgroup: Option<Arc<Cgroup>>,
}

#[cfg(target_os = "linux")]
fn kill_cgroup(g: Option<&Cgroup>) {
    if let Some(g) = g {
        g.kill_all();
    }
}
#[cfg(not(target_os = "linux"))]
fn kill_cgroup(_: Option<&Cgroup>) {}

impl HelperProcess {
    /// Spawns `cmd` with `sandbox` applied; returns the process and the supervisor's
    /// end of the control socket.
    pub fn spawn(
        cmd: &HelperCommand,
        sandbox: &SandboxConfig,
    ) -> Result<(Self, UnixStream), SpawnError> {
        let (ours, theirs) = UnixStream::pair().map_err(SpawnError::Socket)?;
        // Keep the child's end (and the ruleset fd) away from 3, the dup2 target.
        let theirs = sys::dup_above(&OwnedFd::from(theirs), 10).map_err(SpawnError::Socket)?;
        let argv = cmd.argv();
        let first = resolve_program(&argv[0]);
        let exec_err = |source| SpawnError::Exec {
            program: argv[0].display().to_string(),
            source,
        };
        let plan = exec_plan(cmd, sandbox, &first).map_err(exec_err)?;
        let mut execute = vec![first.clone(), cmd.program.clone()];
        #[cfg(target_os = "linux")]
        execute.extend(crate::process::landlock::elf_interpreter(&first));
        let (prepared, report) =
            sandbox.prepare(&cmd.read_only_paths(), &execute, plan.path_address())?;
        let landlock_fd = match prepared.landlock_fd {
            Some(fd) => Some(sys::dup_above(&fd, 10).map_err(SpawnError::Socket)?),
            None => None,
        };
        #[cfg(target_os = "linux")]
        let cgroup: Option<Arc<Cgroup>> = prepared.cgroup.map(Arc::new);
        #[cfg(not(target_os = "linux"))]
        let cgroup: Option<Arc<Cgroup>> = None;
        #[cfg(target_os = "linux")]
        let cgroup_procs = match &cgroup {
            Some(g) => Some(cstring(g.procs_file().as_os_str().as_bytes()).map_err(exec_err)?),
            None => None,
        };
        #[cfg(not(target_os = "linux"))]
        let cgroup_procs = None;

        // std's exec never runs: the hook execs itself (see sys::ExecPlan).
        let mut command = Command::new(&first);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command.process_group(0);
        sys::install_child_setup(
            &mut command,
            sys::ChildSetup {
                ipc_fd: theirs.as_raw_fd(),
                nofile: prepared.nofile,
                no_core: prepared.no_core,
                no_new_privs: prepared.no_new_privs,
                landlock_fd: landlock_fd.as_ref().map(|f| f.as_raw_fd()),
                #[cfg(target_os = "linux")]
                seccomp: prepared.seccomp,
                #[cfg(target_os = "linux")]
                parent_pid: std::process::id() as libc::pid_t,
                cgroup_procs,
                data_limit: prepared.data_limit,
                unshare: prepared.unshare,
                drop_caps: prepared.drop_caps,
                close_fds: prepared.close_fds,
                exec: Some(plan),
            },
        );
        let mut child = spawn_on_keeper(command).map_err(exec_err)?;
        drop(theirs);
        drop(landlock_fd);
        let pid = child.id();
        let stderr = child.stderr.take();
        // `child` is dropped without waiting: the reaper thread below owns reaping.
        drop(child);

        let state = Arc::new(Mutex::new(ReapState::default()));
        let (tx, exit) = watch::channel(None);
        let reaper_state = state.clone();
        let reaper_cgroup = cgroup.clone();
        super::exit::register(pid, cgroup.as_ref());
        let reaper = std::thread::Builder::new()
            .name(format!("coreml-reap-{pid}"))
            .spawn(move || {
                // Wait without reaping, so the group id stays reserved while we kill the rest.
                let _ = sys::wait_exited_nowait(pid);
                let mut st = reaper_state.lock().unwrap_or_else(|p| p.into_inner());
                let _ = sys::kill_group(pid, libc::SIGKILL);
                kill_cgroup(reaper_cgroup.as_deref());
                let status = sys::reap(pid)
                    .map(ExitStatus::from_raw)
                    .unwrap_or_else(|_| ExitStatus::from_raw(0));
                st.reaped = true;
                drop(st);
                // Give up this thread's share of the cgroup before announcing the exit, so
                // whoever drops the last `HelperProcess` handle removes the (now empty) group.
                drop(reaper_cgroup);
                super::exit::reaped(pid);
                let _ = tx.send(Some(status));
            });
        if let Err(e) = reaper {
            let _ = sys::kill_group(pid, libc::SIGKILL);
            let _ = sys::reap(pid);
            super::exit::reaped(pid);
            return Err(SpawnError::Reaper(e));
        }

        let stderr_tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
        let detached = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if let Some(mut err) = stderr {
            let tail = stderr_tail.clone();
            let detached = detached.clone();
            let _ = std::thread::Builder::new().name(format!("coreml-stderr-{pid}")).spawn(move || {
                let mut buf = [0u8; 1024];
                // A process the helper left behind may hold the pipe open for good:
                // once the helper is abandoned, stop reading (the pipe is closed).
                loop {
                    match sys::poll_readable(err.as_fd(), std::time::Duration::from_millis(250)) {
                        Ok(false) if !detached.load(std::sync::atomic::Ordering::Relaxed) => continue,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Ok(true) => {}
                        _ => break,
                    }
                    let Ok(n @ 1..) = err.read(&mut buf) else { break };
                    let chunk = &buf[..n];
                    tracing::debug!(target: "coreml_helper", pid, "{}", String::from_utf8_lossy(chunk).trim_end());
                    let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                    t.extend(chunk);
                    let excess = t.len().saturating_sub(STDERR_TAIL);
                    t.drain(..excess);
                }
            });
        }
        tracing::info!(pid, program = %cmd.program.display(), sandbox = %report, "helper spawned");
        Ok((
            Self {
                pid,
                state,
                exit,
                stderr_tail,
                detached,
                sandbox: report,
                cgroup,
            },
            ours,
        ))
    }

    /// The helper's pid (also its process-group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Which sandbox parts were applied.
    pub fn sandbox(&self) -> &SandboxReport {
        &self.sandbox
    }

    /// Sends SIGKILL to the whole process group (no-op once reaped).
    pub fn kill(&self) {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !st.reaped {
            let _ = sys::kill_group(self.pid, libc::SIGKILL);
            kill_cgroup(self.cgroup.as_deref());
        }
    }

    /// The peak memory of the helper's memory cgroup in bytes (`None` without one).
    pub fn memory_peak(&self) -> Option<u64> {
        #[cfg(target_os = "linux")]
        return self.cgroup.as_ref().and_then(|g| g.peak());
        #[cfg(not(target_os = "linux"))]
        None
    }

    /// `(peak, limit)` of the helper's memory cgroup when the kernel's OOM killer
    /// killed a process in it (the hard limit was hit), else `None`.
    pub fn hard_limit_hit(&self) -> Option<(u64, u64)> {
        #[cfg(target_os = "linux")]
        return self
            .cgroup
            .as_ref()
            .filter(|g| g.oom_kills() > 0)
            .map(|g| (g.peak().unwrap_or(g.limit()), g.limit()));
        #[cfg(not(target_os = "linux"))]
        None
    }

    /// Whether the kernel's OOM killer killed a process of the helper's memory
    /// cgroup (the hard limit was hit).
    pub fn memory_limit_hit(&self) -> bool {
        #[cfg(target_os = "linux")]
        return self.cgroup.as_ref().is_some_and(|g| g.oom_kills() > 0);
        #[cfg(not(target_os = "linux"))]
        false
    }

    /// The exit status, if the helper has exited and been reaped.
    pub fn try_status(&self) -> Option<ExitStatus> {
        *self.exit.borrow()
    }

    /// Waits until the helper has exited and been reaped.
    pub async fn wait(&self) -> ExitStatus {
        let mut rx = self.exit.clone();
        let status = match rx.wait_for(Option::is_some).await {
            Ok(v) => v.expect("checked is_some"),
            // The reaper never drops the sender before sending.
            Err(_) => ExitStatus::from_raw(0),
        };
        status
    }

    /// Stops reading the helper's stderr (within 250 ms) and closes the pipe: for
    /// a helper given up on, whose stderr a process out of reach may hold open.
    pub(crate) fn detach_stderr(&self) {
        self.detached
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The last bytes the helper wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        let t = self.stderr_tail.lock().unwrap_or_else(|p| p.into_inner());
        let (a, b) = t.as_slices();
        let mut v = a.to_vec();
        v.extend_from_slice(b);
        String::from_utf8_lossy(&v).into_owned()
    }
}

impl Drop for HelperProcess {
    /// Kills the group and returns at once: the reaper thread reaps the helper and,
    /// when it holds the last handle, removes the memory cgroup; an app's exit
    /// waits for it ([`super::exit`]).
    fn drop(&mut self) {
        self.kill();
    }
}
