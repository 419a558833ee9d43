//! Isolation domains: a model that keeps missing its deadline (each miss
//! kills its helper) while a healthy model is called over and over. With one
//! helper per model (the default), the healthy model sees no failure at all:
//! every one of its calls is answered by Core ML, its helper is never
//! restarted and its breaker stays closed.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::helper::{HelperRig, RigOptions};
use coreml_bridge::breaker::force_enable::{ForceSet, ForceSource};
use coreml_bridge::breaker::BreakerState;

const HEALTHY_CALLS: usize = 120;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_neighbour_in_another_domain_causes_no_failures() {
    let _watchdog =
        common::Watchdog::new("a_slow_neighbour_in_another_domain_causes_no_failures", Duration::from_secs(180));
    let mut o = RigOptions::new("diag:add?c=2", 2.0);
    // The slow model stays on Core ML (pinned), so it keeps timing out.
    let (source, force) = ForceSource::fixed();
    *force.lock().unwrap() = ForceSet::parse("slow");
    o.force = source;
    let rig = HelperRig::start(o).await;
    let healthy = common::helper::Other { model: rig.model.clone(), name: rig.name.clone(), c: rig.c };
    let slow = rig.prepare_other("diag:sleep?ms=400", "slow", 0.0).await;
    let slow_sup = rig.engine.domain_of("slow").expect("slow has a domain").supervisor().clone();
    let healthy_sup = rig.engine.domain_of(&rig.name).expect("healthy has a domain").supervisor().clone();

    let done = AtomicBool::new(false);
    let neighbour = async {
        let mut i = 0.0;
        while !done.load(Ordering::SeqCst) {
            // 150 ms budget: Core ML gets 75 ms of it, misses, its helper is killed, Candle answers.
            rig.infer_on(&slow, i, Duration::from_millis(150)).await.expect("the slow model falls back");
            i += 1.0;
        }
    };
    let calls = async {
        let start = Instant::now();
        let mut served = Vec::new();
        for i in 0.. {
            served.push(rig.infer_on(&healthy, i as f32, Duration::from_secs(2)).await);
            if i + 1 >= HEALTHY_CALLS && slow_sup.stats().restarts >= 5 {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(90), "the neighbour was not killed 5 times");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        done.store(true, Ordering::SeqCst);
        served
    };
    let ((), served) = tokio::join!(neighbour, calls);

    assert!(served.len() >= HEALTHY_CALLS);
    let failed: Vec<_> = served.iter().enumerate().filter(|(_, s)| s.as_deref() != Ok("coreml")).collect();
    assert!(
        failed.is_empty(),
        "{} of {} healthy calls not answered by Core ML: {failed:?}",
        failed.len(),
        served.len()
    );
    assert!(slow_sup.stats().restarts >= 5, "the neighbour's helper was killed and restarted");
    assert_eq!(healthy_sup.stats().restarts, 0, "the healthy model's helper was never touched");
    assert_eq!(healthy_sup.stats().generation, 1);
    assert_eq!(rig.router.breaker_state(&rig.name), Some(BreakerState::Closed));
    let snap = rig.router.telemetry().snapshot();
    let m = snap.model(&rig.name).unwrap();
    assert!(m.engine("coreml").unwrap().failures.is_empty(), "{:?}", m.engine("coreml"));
    assert_ne!(m.domain, snap.model("slow").unwrap().domain, "two domains");
    assert!(snap.table().contains("domains (one helper each)"), "{}", snap.table());
    rig.shutdown().await;
}
