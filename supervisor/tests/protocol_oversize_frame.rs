//! A helper that sends a length prefix of 0xFFFFFFF0: rejected before allocation, ProtocolViolation, restart.
mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_oversize_frame() {
    common::protocol_violation_scenario("oversize").await;
}
