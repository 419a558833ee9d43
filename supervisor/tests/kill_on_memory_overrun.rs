//! A helper that allocates until killed: killed over the memory limit, typed MemoryLimit, restart, clean.
mod common;

use std::time::Duration;

use coreml_supervisor::{Error, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_on_memory_overrun() {
    common::watchdog(Duration::from_secs(60), async {
        let stats = common::predict_fault_scenario(
            "alloc",
            |cfg| {
                cfg.memory_limit = Some(256 << 20);
                cfg.memory_poll = Duration::from_millis(20);
            },
            |e| matches!(e, Error::MemoryLimit { stage: Stage::Predict, rss, limit } if rss > limit),
        )
        .await;
        for s in stats {
            assert!(s.rss_high_water > 256 << 20, "high-water mark not kept: {s:?}");
        }
    })
    .await;
}
