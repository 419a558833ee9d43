//! The soft memory limit does not count the arena: the shared-memory pages a helper
//! touches (inputs it reads, outputs it writes) belong to the app. A helper whose
//! resident set is far over the soft limit only because of arena pages keeps
//! serving; the supervisor's sampled figure stays under the limit.
mod common;

use std::time::Duration;

const SOFT_LIMIT: u64 = 48 << 20;
/// f32 elements of the echo model: 32 MiB in, 32 MiB out.
const ELEMENTS: usize = 8 << 20;

/// `VmRSS` and `RssShmem` of `pid`, in bytes.
fn rss_and_shmem(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmRSS:"), field("RssShmem:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arena_pages_not_charged() {
    common::watchdog(Duration::from_secs(90), async {
        // The Rust helper echoes from slot to slot without a private copy, so its own
        // memory stays small; that is what makes the arena's share measurable.
        let h = common::helpers().remove(0);
        let before = common::snapshot();
        let mut cfg = common::config(&h);
        cfg.memory_limit = Some(SOFT_LIMIT);
        cfg.memory_poll = Duration::from_millis(5);
        cfg.arena.region_size = 64 << 20;
        cfg.deadlines.predict = Duration::from_secs(20);
        let sup = common::start(&h, cfg).await;
        let pid = sup.hello().expect("hello").pid;
        let model = sup
            .load(&format!("diag:echo?shape={ELEMENTS}"), None)
            .await
            .expect("load echo");
        let x = common::f32_bytes(&(0..ELEMENTS).map(|i| i as f32).collect::<Vec<_>>());
        let mut peak = (0, 0);
        for round in 0..3 {
            let out = sup
                .predict(model.id, &[("x", &x)])
                .await
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert!(
                out.output("y").unwrap().to_vec() == x,
                "round {round}: wrong echo"
            );
            drop(out);
            let now = rss_and_shmem(pid);
            if now.0 > peak.0 {
                peak = now;
            }
            // Several samples of the sampler while the pages stay mapped.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (rss, shmem) = peak;
        eprintln!(
            "helper RSS {} MiB, of it arena {} MiB; soft limit {} MiB",
            rss >> 20,
            shmem >> 20,
            SOFT_LIMIT >> 20
        );
        assert!(
            rss > SOFT_LIMIT,
            "the helper's RSS ({} MiB) never went over the soft limit: the test shows nothing",
            rss >> 20
        );
        let stats = sup.stats();
        assert_eq!(stats.restarts, 0, "killed for the app's pages: {stats:?}");
        assert_eq!(sup.hello().expect("hello").pid, pid);
        assert!(
            stats.rss_high_water < SOFT_LIMIT,
            "sampled {} MiB: arena pages were charged",
            stats.rss_high_water >> 20
        );
        sup.shutdown().await;
        drop(sup);
        common::assert_clean(&before, "arena pages").await;
    })
    .await;
}
