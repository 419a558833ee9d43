//! A helper that answers with a request id never issued: ProtocolViolation, restart, clean.
mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_wrong_request_id() {
    common::protocol_violation_scenario("wrong-id").await;
}
