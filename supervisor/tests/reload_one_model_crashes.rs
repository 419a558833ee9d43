//! Restart reloads model by model: one model that crashes the helper on its
//! reload is marked failed with a typed error naming it, the two others come back
//! and serve, and the failed one is loaded again by an explicit `reload`. Rust
//! test helper only (the `armed` key is not in the Swift helper).
mod common;

use std::time::Duration;

use coreml_supervisor::Error;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_one_model_crashes() {
    common::watchdog(Duration::from_secs(60), async {
        let h = &common::helpers()[0];
        let before = common::snapshot();
        let armed = std::env::temp_dir().join(format!("reload-crash-armed-{}", std::process::id()));
        let _ = std::fs::remove_file(&armed);
        let sup = common::start(h, common::config(h)).await;
        let uri = format!(
            "diag:echo?shape=4&fault=segv&at=load&armed={}",
            armed.display()
        );
        // Loads fine on the first helper: the fault is not armed yet.
        let bad = sup.load(&uri, None).await.expect("load (not armed)");
        let add = sup
            .load("diag:add?c=1&shape=2", None)
            .await
            .expect("load add");
        let echo = sup
            .load("diag:echo?shape=8", None)
            .await
            .expect("load echo");
        std::fs::write(&armed, b"").expect("arm");
        sup.kill_helper();

        // The two healthy models come back (their predictions wait out the restart).
        let p = sup
            .predict(add.id, &[("x", &common::f32_bytes(&[1.0, 2.0]))])
            .await
            .expect("add after restart");
        assert_eq!(p.output("y").unwrap().to_f32(), vec![2.0, 3.0]);
        let e = sup
            .predict(echo.id, &[("x", &[7u8; 32])])
            .await
            .expect("echo after restart");
        assert_eq!(e.output("y").unwrap().to_vec(), vec![7u8; 32]);
        drop((p, e));

        // The crashing one is marked failed, by name, without another restart.
        let gen = sup.stats().generation;
        match sup.predict(bad.id, &[("x", &[1u8; 16])]).await {
            Err(Error::ModelFailed {
                model,
                bundle_path,
                reason,
            }) => {
                assert_eq!(model, bad.id.0);
                assert_eq!(bundle_path, uri);
                assert!(reason.contains("load"), "{reason}");
            }
            other => panic!("predict on the failed model: {other:?}"),
        }
        assert_eq!(
            sup.stats().generation,
            gen,
            "a failed model costs no restart"
        );
        assert_eq!(
            sup.stats().shm_in_use,
            0,
            "slots of a predict that never reached the helper are free at once"
        );
        assert_eq!(sup.models().len(), 3, "it stays registered");

        // Disarmed, an explicit reload brings it back.
        std::fs::remove_file(&armed).expect("disarm");
        sup.reload(bad.id).await.expect("reload");
        let b = sup
            .predict(bad.id, &[("x", &[4u8; 16])])
            .await
            .expect("predict after reload");
        assert_eq!(b.output("y").unwrap().to_vec(), vec![4u8; 16]);
        drop(b);
        sup.shutdown().await;
        drop(sup);
        common::assert_clean(&before, "rust").await;
    })
    .await;
}
