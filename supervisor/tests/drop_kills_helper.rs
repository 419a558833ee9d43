//! Dropping the last supervisor handle without `shutdown` kills the helper's whole
//! process group, including a child it forked (Rust test helper: the `fork-sleeper`
//! fault leaves a grandchild that only a group kill ends), and reaps it: no
//! process, zombie, fd or shared-memory segment is left.
mod common;

use std::time::{Duration, Instant};

/// Live (non-zombie) processes of process group `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 2 && f[0] != "Z" && f[2] == pgid.to_string() {
            v.push(pid);
        }
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_kills_helper() {
    common::watchdog(Duration::from_secs(30), async {
        for (i, h) in common::helpers().into_iter().enumerate() {
            let before = common::snapshot();
            let mut cfg = common::config(&h);
            // The grandchild needs fork, which the sandbox denies by default.
            cfg.sandbox.allow_fork = true;
            let sup = common::start(&h, cfg).await;
            let m = sup.load("diag:echo?shape=16", None).await.expect("load");
            let p = sup
                .predict(m.id, &[("x", &[9u8; 64])])
                .await
                .expect("predict");
            assert_eq!(p.output("y").unwrap().to_vec(), vec![9u8; 64]);
            drop(p);
            let pid = sup.stats().pid;
            if i == 0 {
                // The Rust helper forks a grandchild that stays in its group.
                let f = sup
                    .load("diag:echo?shape=16&fault=fork-sleeper", None)
                    .await
                    .expect("load fork-sleeper");
                drop(
                    sup.predict(f.id, &[("x", &[1u8; 64])])
                        .await
                        .expect("predict"),
                );
                let t = Instant::now();
                while group_members(pid).len() < 2 {
                    assert!(t.elapsed() < Duration::from_secs(3), "no grandchild forked");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            assert!(coreml_supervisor::process_alive(pid));
            let clone = sup.clone();
            drop(sup);
            assert!(
                coreml_supervisor::process_alive(pid),
                "a clone still holds the supervisor"
            );
            drop(clone);
            let t = Instant::now();
            while !group_members(pid).is_empty() {
                assert!(
                    t.elapsed() < Duration::from_secs(3),
                    "[{}] helper group {pid} survived the drop: {:?}",
                    h.name,
                    group_members(pid)
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // The group is gone once its members are zombies; the reaper thread then
            // reaps the leader (bounded wait, the same 3 s).
            let t = Instant::now();
            while coreml_supervisor::process_alive(pid) {
                assert!(
                    t.elapsed() < Duration::from_secs(3),
                    "[{}] helper {pid} alive",
                    h.name
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            common::assert_clean(&before, &h.name).await;
        }
    })
    .await;
}
