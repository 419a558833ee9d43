//! A helper that sends `InputsReleased` for a request that holds no inputs (here an
//! id never issued) is lying about slot ownership: `ProtocolViolation{Predict}`,
//! kill, restart; the supervisor keeps no record of the stray id.
mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_stray_release() {
    common::protocol_violation_scenario("release-unknown").await;
}
