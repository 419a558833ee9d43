//! Inputs filled in place in shared memory (`input_buffer` + `predict_buffers`):
//! no copy on the supervisor side in either direction, same results as the
//! copying path; a buffer of another model is refused.
mod common;

use std::time::Duration;

use coreml_supervisor::Error;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_copy_inputs() {
    common::watchdog(Duration::from_secs(30), async {
        for h in common::helpers() {
            let before = common::snapshot();
            let sup = common::start(&h, common::config(&h)).await;
            let add = sup
                .load("diag:add?c=0.25&shape=1024", None)
                .await
                .expect("load add");
            let echo = sup
                .load("diag:echo?dtype=u8&shape=7", None)
                .await
                .expect("load echo");
            for round in 0..3u32 {
                let mut buf = sup.input_buffer(add.id, "x").expect("buffer");
                assert_eq!(buf.len(), 4096);
                for (i, c) in buf.as_mut_slice().chunks_exact_mut(4).enumerate() {
                    c.copy_from_slice(&((i as u32 + round) as f32).to_le_bytes());
                }
                let p = sup
                    .predict_buffers(add.id, vec![buf], Duration::from_secs(3))
                    .await
                    .expect("predict");
                let y = p.output("y").unwrap().to_f32();
                assert_eq!(y.len(), 1024);
                assert!(
                    y.iter()
                        .enumerate()
                        .all(|(i, v)| *v == (i as u32 + round) as f32 + 0.25),
                    "[{}] round {round}",
                    h.name
                );
            }
            let wrong = sup.input_buffer(echo.id, "x").expect("buffer");
            let r = sup
                .predict_buffers(add.id, vec![wrong], Duration::from_secs(3))
                .await;
            assert!(matches!(r, Err(Error::BadRequest(_))), "[{}] {r:?}", h.name);
            sup.shutdown().await;
            drop(sup);
            common::assert_clean(&before, &h.name).await;
        }
    })
    .await;
}
