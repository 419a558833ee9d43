//! A helper that keeps dying spends the restart budget: the supervisor declares it
//! unavailable with a typed error instead of restarting forever; `revive` starts
//! over with a fresh budget.
mod common;

use std::time::{Duration, Instant};

use coreml_supervisor::{Error, Event, HelperState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_budget_unavailable() {
    common::watchdog(Duration::from_secs(30), async {
        for h in common::helpers() {
            let before = common::snapshot();
            let mut cfg = common::config(&h);
            cfg.restart.max_restarts = 3;
            let sup = common::start(&h, cfg).await;
            let mut events = sup.subscribe();
            let bad = sup
                .load("diag:echo?shape=4&fault=abort", None)
                .await
                .expect("load");
            let mut crashes = 0;
            let t = Instant::now();
            let unavailable = loop {
                assert!(
                    t.elapsed() < Duration::from_secs(10),
                    "[{}] never unavailable",
                    h.name
                );
                match sup.predict(bad.id, &[("x", &[0u8; 16])]).await {
                    Err(Error::HelperCrashed { .. }) => crashes += 1,
                    Err(Error::HelperUnavailable { reason }) => break reason,
                    other => panic!("[{}] unexpected {other:?}", h.name),
                }
            };
            assert_eq!(
                crashes, 4,
                "[{}] 1 start + 3 restarts crash: {unavailable}",
                h.name
            );
            assert!(matches!(sup.stats().state, HelperState::Unavailable(_)));
            // Every later request fails fast with the same typed error.
            let t = Instant::now();
            assert!(matches!(
                sup.ping().await,
                Err(Error::HelperUnavailable { .. })
            ));
            assert!(t.elapsed() < Duration::from_millis(100));
            let mut saw = false;
            while let Ok(ev) = events.try_recv() {
                saw |= matches!(ev, Event::Unavailable { .. });
            }
            assert!(saw, "[{}] no Unavailable event", h.name);
            // The caller can ask for a fresh helper and budget; registered models come back.
            sup.revive()
                .await
                .unwrap_or_else(|e| panic!("[{}] revive: {e}", h.name));
            let good = sup
                .load("diag:echo?shape=4", None)
                .await
                .expect("load after revive");
            let p = sup
                .predict(good.id, &[("x", &[5u8; 16])])
                .await
                .expect("predict after revive");
            assert_eq!(p.output("y").unwrap().to_vec(), vec![5u8; 16]);
            drop(p);
            assert!(matches!(
                sup.predict(bad.id, &[("x", &[0u8; 16])]).await,
                Err(Error::HelperCrashed { .. })
            ));
            sup.shutdown().await;
            drop(sup);
            common::assert_clean(&before, &h.name).await;
        }
    })
    .await;
}
