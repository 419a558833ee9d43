//! The model pool under load, against every helper (the Rust test helper and,
//! with `COREML_TEST_HELPERS`, the Swift helper): 16 concurrent callers send a
//! fixed count of predictions each, every input unique (caller, sequence), and
//! every output is checked against its own input, so nothing may be lost,
//! duplicated or mismatched; the helper counts exactly as many predictions.
//! (Back-pressure and queue deadlines: `pool_backpressure.rs`.)
mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use coreml_supervisor::pool::{ModelPool, PoolConfig};

const CALLERS: usize = 16;
const PER_CALLER: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_callers_nothing_lost_duplicated_or_mismatched() {
    common::watchdog(Duration::from_secs(120), async {
        for h in common::helpers() {
            let before = common::snapshot();
            let sup = common::start(&h, common::config(&h)).await;
            for instances in [1, 2, 4] {
                let cfg = PoolConfig {
                    instances,
                    queue: CALLERS,
                };
                let pool = Arc::new(
                    ModelPool::load(&sup, "diag:add?c=3&shape=4", None, cfg)
                        .await
                        .unwrap(),
                );
                let predictions_before = sup.helper_stats().await.unwrap().predictions;
                let callers: Vec<_> = (0..CALLERS)
                    .map(|caller| {
                        let pool = pool.clone();
                        tokio::spawn(async move {
                            let mut seen = Vec::new();
                            for seq in 0..PER_CALLER {
                                let x = [
                                    caller as f32,
                                    seq as f32,
                                    (caller * 1000 + seq) as f32,
                                    -0.5,
                                ];
                                let p = pool
                                    .predict(
                                        &[("x", &common::f32_bytes(&x))],
                                        Duration::from_secs(10),
                                    )
                                    .await;
                                let y = p
                                    .unwrap_or_else(|e| panic!("caller {caller} #{seq}: {e}"))
                                    .output("y")
                                    .unwrap()
                                    .to_f32();
                                let want: Vec<f32> = x.iter().map(|v| v + 3.0).collect();
                                assert_eq!(
                                    y, want,
                                    "caller {caller} #{seq} got another request's output"
                                );
                                seen.push((y[0] as usize - 3, y[1] as usize - 3));
                            }
                            seen
                        })
                    })
                    .collect();
                let mut all = HashSet::new();
                let mut count = 0;
                for c in callers {
                    for pair in c.await.unwrap() {
                        count += 1;
                        assert!(all.insert(pair), "[{}] {pair:?} answered twice", h.name);
                    }
                }
                assert_eq!(
                    (count, all.len()),
                    (CALLERS * PER_CALLER, CALLERS * PER_CALLER),
                    "[{}]",
                    h.name
                );
                let ran = sup.helper_stats().await.unwrap().predictions - predictions_before;
                assert_eq!(
                    ran,
                    (CALLERS * PER_CALLER) as u64,
                    "[{}] pool of {instances}: the helper ran {ran}",
                    h.name
                );
                Arc::try_unwrap(pool)
                    .ok()
                    .expect("callers are done")
                    .unload()
                    .await;
            }
            assert!(
                sup.models().is_empty(),
                "[{}] instances left loaded",
                h.name
            );
            sup.shutdown().await;
            drop(sup);
            common::assert_clean(&before, &h.name).await;
        }
    })
    .await;
}
