//! A helper written from docs/protocol.md alone (the Python protocol peer) serves a
//! real supervisor under the default sandbox: handshake, Ping, Compile into the
//! staging directory it was given, Load with the schema it declares, Predict through
//! the descriptor-passed shared memory with correct numbers (dense outputs, and
//! outputs with padded rows inside the slot's room), GetComputePlan, GetStats,
//! Unload and Shutdown, and nothing leaks.
mod common;
mod python;

use std::time::Duration;

use coreml_ipc_schema::DType;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_peer() {
    common::watchdog(Duration::from_secs(90), async {
        let before = common::snapshot();
        let staging = tempfile::tempdir().expect("tempdir");
        let models = tempfile::tempdir().expect("tempdir");
        let sup = python::start(staging.path(), models.path()).await;
        let hello = sup.hello().expect("hello");
        assert_eq!(hello.helper_version, "protocol-peer 1");
        assert_eq!((hello.protocol_major, hello.protocol_minor), (2, 1));
        // The default sandbox is in force in the peer: seen by the kernel, not only reported.
        let report = sup.stats().sandbox.expect("sandbox report");
        assert!(report.network.in_force(), "seccomp: {}", report.network);
        assert!(
            report.memory_limit.in_force(),
            "memory: {}",
            report.memory_limit
        );
        let status = std::fs::read_to_string(format!("/proc/{}/status", hello.pid)).unwrap();
        assert!(status.contains("Seccomp:\t2"), "{status}");
        assert!(status.contains("NoNewPrivs:\t1"), "{status}");
        eprintln!(
            "python peer sandbox: landlock {}, namespaces {}",
            report.landlock, report.namespaces
        );

        sup.ping().await.expect("ping");
        let source = python::toy_model(models.path(), "add.toymodel", "add", &[2, 3], 0);
        let compiled = sup
            .compile(&source.display().to_string(), None)
            .await
            .expect("compile");
        let bundle = std::path::Path::new(&compiled.bundle_path);
        assert!(
            bundle.starts_with(staging.path().canonicalize().unwrap()) && bundle.is_dir(),
            "bundle {bundle:?} is not a directory in the staging directory"
        );

        let model = sup.load(&compiled.bundle_path, None).await.expect("load");
        let names = |specs: &[coreml_ipc_schema::TensorSpec]| {
            specs.iter().map(|s| s.name.clone()).collect::<Vec<_>>()
        };
        assert_eq!(names(&model.inputs), ["a", "b"]);
        assert_eq!(names(&model.outputs), ["sum"]);
        assert!(model
            .inputs
            .iter()
            .all(|s| s.dtype == DType::F32 && s.shape == [2, 3]));

        for round in 0..3 {
            let a: Vec<f32> = (0..6).map(|i| i as f32 * 1.5 + round as f32).collect();
            let b: Vec<f32> = (0..6).map(|i| 100.0 - i as f32 * 0.25).collect();
            let out = sup
                .predict(
                    model.id,
                    &[("a", &common::f32_bytes(&a)), ("b", &common::f32_bytes(&b))],
                )
                .await
                .unwrap_or_else(|e| panic!("predict round {round}: {e}"));
            let sum = out.output("sum").expect("output sum");
            assert_eq!(sum.shape(), [2, 3]);
            let want: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
            assert_eq!(sum.to_vec(), common::f32_bytes(&want), "round {round}");
        }

        let plan = sup.compute_plan(model.id).await.expect("compute plan");
        assert!(plan.ops.is_empty() && plan.ne_coverage.is_none());
        assert!(plan.unavailable_reason.is_some(), "{plan:?}");

        // Rows padded by 3 elements: strides [8, 1] over a [3, 5] output, inside the room.
        let source = python::toy_model(models.path(), "padded.toymodel", "add", &[3, 5], 3);
        let compiled = sup
            .compile(&source.display().to_string(), None)
            .await
            .expect("compile padded");
        let padded = sup
            .load(&compiled.bundle_path, None)
            .await
            .expect("load padded");
        let a: Vec<f32> = (0..15).map(|i| i as f32).collect();
        let b: Vec<f32> = (0..15).map(|i| (i * i) as f32 * 0.5).collect();
        let out = sup
            .predict(
                padded.id,
                &[("a", &common::f32_bytes(&a)), ("b", &common::f32_bytes(&b))],
            )
            .await
            .expect("predict padded");
        let sum = out.output("sum").expect("output sum");
        assert_eq!(
            sum.tensor.strides,
            [8, 1],
            "the peer's padded strides were not kept"
        );
        let want: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        assert_eq!(sum.to_vec(), common::f32_bytes(&want));
        drop(out);
        sup.unload(padded.id).await.expect("unload padded");

        let stats = sup.helper_stats().await.expect("stats");
        assert_eq!(stats.predictions, 4);
        assert_eq!(stats.models_loaded, 1);
        sup.unload(model.id).await.expect("unload");
        assert_eq!(sup.helper_stats().await.expect("stats").models_loaded, 0);
        assert_eq!(
            sup.stats().restarts,
            0,
            "the peer was restarted: {:?}",
            sup.stats()
        );
        sup.shutdown().await;
        drop(sup);
        common::assert_clean(&before, "python peer").await;
    })
    .await;
}
