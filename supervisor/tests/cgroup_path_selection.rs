//! Where the helper's memory cgroup goes, on a fake filesystem root (this machine
//! has no cgroup v2 memory controller, so the v2 path is exercised here): the
//! unified hierarchy first when its children get the memory controller, with
//! `memory.max`, no swap and group OOM kill; the v1 memory controller when v2 lacks
//! it; and a clear reason when neither exists.
#![cfg(target_os = "linux")]

use std::path::Path;

use coreml_supervisor::cgroup::{own_memory_dirs, CgroupVersion, MemoryCgroup};

/// A fake root with this process's cgroup files and two hierarchies: a v2 one
/// mounted at /sys/fs/cgroup/unified and the v1 memory controller at
/// /sys/fs/cgroup/memory (mounted from a sub-root, as in containers).
fn fake_root(v2_controllers: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let p = root.path();
    std::fs::create_dir_all(p.join("proc/self")).unwrap();
    std::fs::write(
        p.join("proc/self/mountinfo"),
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
         32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
         35 31 0:32 /ctr /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
         41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n",
    )
    .unwrap();
    std::fs::write(
        p.join("proc/self/cgroup"),
        "4:memory:/ctr/app\n1:cpu:/\n0::/user.slice/app.scope\n",
    )
    .unwrap();
    let v2 = p.join("sys/fs/cgroup/unified/user.slice/app.scope");
    std::fs::create_dir_all(&v2).unwrap();
    std::fs::write(v2.join("cgroup.controllers"), v2_controllers).unwrap();
    std::fs::write(v2.join("cgroup.subtree_control"), "").unwrap();
    std::fs::create_dir_all(p.join("sys/fs/cgroup/memory/app")).unwrap();
    root
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn v2_first_then_v1_from_mountinfo() {
    let root = fake_root("cpu io memory pids");
    let dirs = own_memory_dirs(root.path());
    assert_eq!(
        dirs,
        [
            (
                CgroupVersion::V2,
                root.path()
                    .join("sys/fs/cgroup/unified/user.slice/app.scope")
            ),
            // The v1 mount's root (/ctr) is stripped from the process's path.
            (
                CgroupVersion::V1,
                root.path().join("sys/fs/cgroup/memory/app")
            ),
        ]
    );
}

#[test]
fn v2_group_with_memory_max_when_children_get_the_controller() {
    let root = fake_root("cpu io memory pids");
    let dirs = own_memory_dirs(root.path());
    let g = MemoryCgroup::create_in(512 << 20, &dirs).expect("v2 group");
    assert_eq!(g.version(), CgroupVersion::V2);
    assert!(g.path().starts_with(&dirs[0].1), "{}", g.path().display());
    // The parent's children were given the memory controller.
    assert_eq!(read(&dirs[0].1.join("cgroup.subtree_control")), "+memory");
    assert_eq!(
        read(&g.path().join("memory.max")),
        (512u64 << 20).to_string()
    );
    assert_eq!(read(&g.path().join("memory.swap.max")), "0");
    assert_eq!(read(&g.path().join("memory.oom.group")), "1");
    assert_eq!(g.procs_file(), g.path().join("cgroup.procs"));
    assert!(g.describe().starts_with("cgroup v2 memory.max=512 MiB"));
    std::fs::remove_dir_all(g.path()).unwrap();
}

#[test]
fn v1_group_when_v2_lacks_the_memory_controller() {
    let root = fake_root("cpu io pids");
    let dirs = own_memory_dirs(root.path());
    let g = MemoryCgroup::create_in(256 << 20, &dirs).expect("v1 group");
    assert_eq!(g.version(), CgroupVersion::V1);
    assert!(g.path().starts_with(&dirs[1].1), "{}", g.path().display());
    assert_eq!(
        read(&g.path().join("memory.limit_in_bytes")),
        (256u64 << 20).to_string()
    );
    // Nothing was created in the v2 hierarchy.
    let v2_children = std::fs::read_dir(&dirs[0].1)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count();
    assert_eq!(v2_children, 0);
    std::fs::remove_dir_all(g.path()).unwrap();
}

#[test]
fn no_hierarchy_gives_a_reason() {
    let root = tempfile::tempdir().unwrap();
    let dirs = own_memory_dirs(root.path());
    assert!(dirs.is_empty());
    let why = MemoryCgroup::create_in(1 << 30, &dirs).unwrap_err();
    assert!(
        why.contains("no cgroup hierarchy with the memory controller"),
        "{why}"
    );
}
