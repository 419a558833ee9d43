//! When the supervisor gives up on its helper (restart budget spent), Core
//! ML is unavailable for a while: Candle serves every model, nobody's
//! breaker is blamed, the notice says when the next try is, and the engine
//! brings a fresh helper up by itself with backoff; Core ML serves again.

mod common;

use std::time::{Duration, Instant};

use common::helper::{HelperRig, RigOptions};
use coreml_bridge::breaker::BreakerState;
use coreml_bridge::supervisor::HelperState;

const BUDGET: Duration = Duration::from_secs(5);

async fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_ml_comes_back_by_itself_after_an_outage() {
    let _watchdog = common::Watchdog::new("core_ml_comes_back_by_itself_after_an_outage", Duration::from_secs(120));
    let mut o = RigOptions::new("diag:add?c=2", 2.0);
    o.tune = Some(|cfg, opts| {
        cfg.restart.max_restarts = 1;
        opts.revive_after = Duration::from_millis(700);
    });
    let rig = HelperRig::start(o).await;
    for i in 0..3 {
        assert_eq!(rig.infer(i as f32, BUDGET).await, "coreml");
    }
    let sup = rig.engine.supervisor().clone();
    // Two deaths in the window: one restart, then the budget is spent.
    sup.kill_helper();
    wait_for("the restart", Duration::from_secs(20), || sup.stats().generation == 2 && sup.hello().is_some()).await;
    sup.kill_helper();
    wait_for("the supervisor to give up", Duration::from_secs(20), || {
        matches!(sup.stats().state, HelperState::Unavailable(_))
    })
    .await;

    // Candle serves meanwhile, without blaming the model, and the notice says when the next try is.
    let mut notice = None;
    for k in 0..20 {
        assert_eq!(rig.infer(10.0 + k as f32, BUDGET).await, "candle");
        notice = rig.router.unavailable_notice();
        if notice.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let notice = notice.expect("a notice during the outage");
    assert!(notice.contains("restart budget spent") && notice.contains("next try in 700.0ms"), "{notice}");
    assert_eq!(rig.router.breaker_state(&rig.name), Some(BreakerState::Closed));

    // Back by itself.
    let start = Instant::now();
    let mut i = 50.0;
    while rig.infer(i, BUDGET).await != "coreml" {
        assert!(start.elapsed() < Duration::from_secs(30), "Core ML did not come back: {:#?}", rig.events());
        tokio::time::sleep(Duration::from_millis(20)).await;
        i += 1.0;
    }
    for k in 0..10 {
        assert_eq!(rig.infer(100.0 + k as f32, BUDGET).await, "coreml");
    }
    assert_eq!(rig.router.breaker_state(&rig.name), Some(BreakerState::Closed));
    assert!(rig.router.unavailable_notice().is_none());
    let events = rig.events();
    assert!(
        events.iter().any(|e| e.contains("coreml available again") && e.contains("a fresh helper runs")),
        "{events:#?}"
    );
    rig.shutdown().await;
}
