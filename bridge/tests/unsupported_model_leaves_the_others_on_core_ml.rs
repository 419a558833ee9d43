//! A model the helper answers `UNSUPPORTED` for (an image input, say)
//! loses Core ML alone: it is served by Candle with the reason in the event
//! log, and the other models keep being served by Core ML, also models
//! prepared after it.

mod common;

use std::time::Duration;

use common::helper::{HelperRig, RigOptions};

const BUDGET: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_model_leaves_the_others_on_core_ml() {
    let _watchdog =
        common::Watchdog::new("an_unsupported_model_leaves_the_others_on_core_ml", Duration::from_secs(120));
    let rig = HelperRig::start(RigOptions::new("diag:add?c=2", 2.0)).await;
    assert_eq!(rig.infer(0.0, BUDGET).await, "coreml");

    let vision = rig.prepare_other("diag:echo?fault=unsupported&at=load", "vision", 0.0).await;
    assert_eq!(rig.infer_on(&vision, 1.0, BUDGET).await.unwrap(), "candle");
    let events = rig.events();
    assert!(
        events
            .iter()
            .any(|e| e.contains("vision: served by candle instead of coreml") && e.contains("not a multi-array")),
        "the reason is in the event log: {events:#?}"
    );

    // Core ML still serves the model prepared before and one prepared after.
    let later = rig.prepare_other("diag:add?c=5", "later", 5.0).await;
    for i in 0..10 {
        assert_eq!(rig.infer(i as f32, BUDGET).await, "coreml", "request {i} of the first model");
        assert_eq!(rig.infer_on(&later, i as f32, BUDGET).await.unwrap(), "coreml", "request {i} of the later one");
        assert_eq!(rig.infer_on(&vision, i as f32, BUDGET).await.unwrap(), "candle");
    }
    assert_eq!(rig.router.primary_name().as_deref(), Some("coreml"));
    assert!(rig.router.unavailable_notice().is_none(), "{:?}", rig.router.unavailable_notice());
    assert!(!rig.events().iter().any(|e| e.contains("coreml unavailable")), "{:#?}", rig.events());
    rig.shutdown().await;
}
