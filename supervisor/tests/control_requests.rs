//! The control API end to end: compile, load (schema), compute plan, helper stats,
//! ping, unload, the sandbox report in stats, and request errors the helper answers
//! itself (bad URI, unknown model) that do not kill it.
mod common;

use std::time::Duration;

use coreml_supervisor::schema::{Backend, DType, ErrorCode};
use coreml_supervisor::{Error, HelperState, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_requests() {
    common::watchdog(Duration::from_secs(30), async {
        for h in common::helpers() {
            let before = common::snapshot();
            let sup = common::start(&h, common::config(&h)).await;
            let hello = sup.hello().expect("hello");
            assert_eq!(
                hello.protocol_major,
                coreml_supervisor::schema::PROTOCOL_MAJOR
            );
            assert!(hello.pid > 0);

            let c = sup
                .compile("diag:add?c=3&shape=2x3", None)
                .await
                .expect("compile");
            assert_eq!(
                (c.bundle_path.as_str(), c.backend),
                ("diag:add?c=3&shape=2x3", Backend::MlProgram)
            );
            let m = sup.load(&c.bundle_path, None).await.expect("load");
            assert_eq!(
                (
                    m.inputs[0].name.as_str(),
                    m.inputs[0].dtype,
                    m.inputs[0].shape.clone()
                ),
                ("x", DType::F32, vec![2, 3])
            );
            assert_eq!(m.outputs[0].name, "y");
            let x = common::f32_bytes(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
            let p = sup.predict(m.id, &[("x", &x)]).await.expect("predict");
            assert_eq!(
                p.output("y").unwrap().to_f32(),
                vec![3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
            );
            drop(p);

            let plan = sup.compute_plan(m.id).await.expect("compute plan");
            assert!(plan.ne_coverage.is_none() && plan.unavailable_reason.is_some());
            let st = sup.helper_stats().await.expect("stats");
            assert!(
                st.predictions >= 1 && st.models_loaded == 1 && st.regions_attached >= 1,
                "{st:?}"
            );
            assert!(sup.ping().await.expect("ping") < Duration::from_secs(1));

            // Errors the helper answers itself: typed, and the helper lives on.
            let bad = sup.load("diag:nosuchmodel", None).await;
            assert!(
                matches!(
                    bad,
                    Err(Error::Helper {
                        stage: Stage::Load,
                        code: ErrorCode::BAD_REQUEST,
                        ..
                    })
                ),
                "{bad:?}"
            );
            let wrong = sup.predict(m.id, &[("x", &[0u8; 3])]).await;
            assert!(matches!(wrong, Err(Error::BadRequest(_))), "{wrong:?}");
            sup.unload(m.id).await.expect("unload");
            assert!(matches!(
                sup.predict(m.id, &[("x", &x)]).await,
                Err(Error::UnknownModel(_))
            ));

            let s = sup.stats();
            assert_eq!(
                (s.state, s.generation, s.restarts),
                (HelperState::Ready, 1, 0)
            );
            let sandbox = s.sandbox.expect("sandbox report");
            assert!(
                sandbox.no_new_privs.in_force() && sandbox.network.in_force(),
                "{sandbox}"
            );
            sup.shutdown().await;
            assert!(matches!(sup.ping().await, Err(Error::ShuttingDown)));
            drop(sup);
            common::assert_clean(&before, &h.name).await;
        }
    })
    .await;
}
