//! Shared memory never has a name: the supervisor creates anonymous regions and
//! passes them to the helper as descriptors. During and after predictions, a
//! helper crash and a restart, neither the app nor the helper maps or holds
//! anything under `/dev/shm`, the helper holds the regions only as descriptors,
//! and every slot is 16 KiB-aligned.
mod common;

use std::time::Duration;

use coreml_supervisor::arena::SLOT_ALIGN;

/// What the helper holds: descriptor targets naming shared memory.
fn helper_fds(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|p| p.to_string_lossy().into_owned())
                .filter(|p| p.contains("memfd:") || p.starts_with("/dev/shm"))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regions_passed_as_descriptors() {
    common::watchdog(Duration::from_secs(60), async {
        for h in common::helpers() {
            let before = common::snapshot();
            let sup = common::start(&h, common::config(&h)).await;
            let m = sup
                .load("diag:add?c=1&shape=300000", None)
                .await
                .expect("load");
            let x = common::f32_bytes(&vec![2.0; 300_000]);
            for round in 0..2 {
                let p = sup.predict(m.id, &[("x", &x)]).await.expect("predict");
                assert!(p.output("y").unwrap().to_f32().iter().all(|v| *v == 3.0));
                let pid = sup.hello().expect("ready").pid;
                let mine = common::mapped_regions(std::process::id());
                let theirs = common::mapped_regions(pid);
                let fds = helper_fds(pid);
                for (who, list) in [
                    ("app maps", &mine),
                    ("helper maps", &theirs),
                    ("helper holds", &fds),
                ] {
                    assert!(
                        list.iter().all(|l| !l.contains("/dev/shm")),
                        "[{}] round {round}: {who} named shared memory: {list:?}",
                        h.name
                    );
                }
                assert!(!mine.is_empty(), "[{}] the app maps no region", h.name);
                assert!(
                    theirs
                        .iter()
                        .any(|l| l.contains("memfd:coreml-bridge-region")),
                    "[{}] the helper maps no passed region: {theirs:?}",
                    h.name
                );
                let stats = sup.stats();
                assert_eq!(stats.shm_bytes % SLOT_ALIGN, 0);
                if round == 0 {
                    // A crash and a restart: the new helper gets the regions again.
                    let crash = sup
                        .load("diag:echo?fault=exit", None)
                        .await
                        .expect("load crash model");
                    let _ = sup.predict(crash.id, &[("x", &[0u8; 16])]).await;
                    sup.unload(crash.id).await.ok();
                }
            }
            sup.shutdown().await;
            drop(sup);
            common::assert_clean(&before, &h.name).await;
            assert!(
                common::mapped_regions(std::process::id()).is_empty(),
                "[{}] a region outlived its supervisor",
                h.name
            );
        }
    })
    .await;
}
