//! A helper that allocates until stopped, with no soft limit and a 256 MiB hard
//! limit: the kernel kills it in its memory cgroup, the supervisor reports the
//! typed `MemoryLimit` (peak and limit from the cgroup), restarts, clean.
mod common;

use std::time::Duration;

use coreml_supervisor::{Error, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_on_hard_memory_limit() {
    common::watchdog(Duration::from_secs(90), async {
        common::predict_fault_scenario(
            "alloc",
            |cfg| {
                cfg.memory_limit = None;
                cfg.sandbox.memory_max = Some(256 << 20);
            },
            |e| matches!(e, Error::MemoryLimit { stage: Stage::Predict, rss, limit } if *limit == 256 << 20 && *rss <= *limit && *rss > 200 << 20),
        )
        .await;
    })
    .await;
}
