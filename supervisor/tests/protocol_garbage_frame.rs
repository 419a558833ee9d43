//! A helper that sends a garbage frame: typed ProtocolViolation, restart, clean.
mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_garbage_frame() {
    common::protocol_violation_scenario("garbage").await;
}
