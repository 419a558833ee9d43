//! The model pool's back-pressure, against every helper: with 2 instances
//! and 2 places in the queue, 16 callers of a slow model get 4 answers and
//! 12 immediate `Overloaded`; a caller whose deadline passes in the queue gets
//! `QueueDeadline` and never reaches the helper; a pool of 5 is refused.
mod common;

use std::sync::Arc;
use std::time::Duration;

use coreml_supervisor::pool::{ModelPool, PoolConfig, PoolError};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_queue_turns_callers_away_and_deadlines_hold_in_the_queue() {
    common::watchdog(Duration::from_secs(60), async {
        for h in common::helpers() {
            let before = common::snapshot();
            let sup = common::start(&h, common::config(&h)).await;
            assert!(matches!(
                ModelPool::load(
                    &sup,
                    "diag:echo?shape=4",
                    None,
                    PoolConfig {
                        instances: 5,
                        queue: 1
                    }
                )
                .await,
                Err(PoolError::BadSize(5))
            ));
            // 2 instances + 2 waiting; the model sleeps 1.5 s, so all 16 arrive while the first are busy.
            let cfg = PoolConfig {
                instances: 2,
                queue: 2,
            };
            let pool = Arc::new(
                ModelPool::load(&sup, "diag:sleep?ms=1500&shape=4", None, cfg)
                    .await
                    .unwrap(),
            );
            let x = common::f32_bytes(&[1.0, 2.0, 3.0, 4.0]);
            let calls: Vec<_> = (0..16)
                .map(|_| {
                    let (pool, x) = (pool.clone(), x.clone());
                    tokio::spawn(async move {
                        pool.predict(&[("x", &x)], Duration::from_secs(10))
                            .await
                            .map(drop)
                    })
                })
                .collect();
            let mut ok = 0;
            let mut overloaded = 0;
            for c in calls {
                match c.await.unwrap() {
                    Ok(()) => ok += 1,
                    Err(PoolError::Overloaded { busy: 2, queue: 2 }) => overloaded += 1,
                    Err(e) => panic!("[{}] {e}", h.name),
                }
            }
            assert_eq!((ok, overloaded), (4, 12), "[{}]", h.name);
            // One caller holds the single instance; one behind it with a short deadline gives up in the queue.
            let one = Arc::new(
                ModelPool::load(
                    &sup,
                    "diag:sleep?ms=1500&shape=4",
                    None,
                    PoolConfig {
                        instances: 1,
                        queue: 4,
                    },
                )
                .await
                .unwrap(),
            );
            let busy = {
                let (one, x) = (one.clone(), x.clone());
                tokio::spawn(async move {
                    one.predict(&[("x", &x)], Duration::from_secs(10))
                        .await
                        .map(drop)
                })
            };
            tokio::time::sleep(Duration::from_millis(200)).await;
            let asked = sup.helper_stats().await.unwrap().requests;
            let late = one.predict(&[("x", &x)], Duration::from_millis(100)).await;
            assert!(
                matches!(late, Err(PoolError::QueueDeadline { .. })),
                "[{}] {late:?}",
                h.name
            );
            assert_eq!(
                sup.helper_stats().await.unwrap().requests,
                asked + 1,
                "[{}] the late caller reached the helper",
                h.name
            );
            busy.await.unwrap().unwrap();
            Arc::try_unwrap(pool).ok().unwrap().unload().await;
            Arc::try_unwrap(one).ok().unwrap().unload().await;
            sup.shutdown().await;
            drop(sup);
            common::assert_clean(&before, &h.name).await;
        }
    })
    .await;
}
