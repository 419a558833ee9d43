//! A helper whose output ref points outside its slot: ProtocolViolation (not a crash), restart, clean.
mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_bad_tensor_ref() {
    common::protocol_violation_scenario("bad-ref").await;
}
