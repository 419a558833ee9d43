//! 8 tasks × 1,000 predictions with faults injected at random: every response is
//! matched to its own request and checked for content, every fault request gets a
//! typed error, every request ends by its deadline, and nothing leaks.
mod common;

use std::time::{Duration, Instant};

use coreml_supervisor::{Error, ModelId};

const TASKS: usize = 8;
const PER_TASK: usize = 1000;
const FAULTS: &[&str] = &[
    "segv",
    "abort",
    "exit",
    "hang",
    "sigstop",
    "garbage",
    "oversize",
    "wrong-id",
    "bad-ref",
    "close-socket",
    "fork-child",
];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_faults() {
    common::watchdog(Duration::from_secs(240), async {
        for (lane, spin) in common::lanes() {
        for h in common::helpers() {
            let before = common::snapshot();
            let mut cfg = common::config(&h);
            cfg.reply_spin = spin;
            cfg.restart.max_restarts = 10_000;
            cfg.max_in_flight = 16;
            let sup = common::start(&h, cfg).await;
            let mut healthy = Vec::new();
            for t in 0..TASKS {
                let m = sup
                    .load(&format!("diag:add?c={}&shape=64", t as f32 + 0.5), None)
                    .await
                    .expect("load add");
                healthy.push(m.id);
            }
            let mut faulty: Vec<(String, ModelId)> = Vec::new();
            for f in FAULTS {
                let m = sup
                    .load(&format!("diag:add?shape=64&fault={f}"), None)
                    .await
                    .expect("load faulty");
                faulty.push((f.to_string(), m.id));
            }
            let mut tasks = Vec::new();
            for (t, &model) in healthy.iter().enumerate() {
                let (sup, faulty) = (sup.clone(), faulty.clone());
                tasks.push(tokio::spawn(async move {
                    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((t as u64 + 1) * 0x1234_5678_9abc));
                    let (mut ok, mut faults) = (0usize, 0usize);
                    for i in 0..PER_TASK {
                        let x: Vec<f32> = (0..64)
                            .map(|k| (t * 1_000_000 + i * 64 + k) as f32)
                            .collect();
                        let bytes = common::f32_bytes(&x);
                        let fault = rng
                            .next()
                            .is_multiple_of(300)
                            .then(|| &faulty[(rng.next() % faulty.len() as u64) as usize]);
                        let (m, budget) = match fault {
                            Some((_, id)) => (*id, Duration::from_millis(400)),
                            None => (model, Duration::from_secs(8)),
                        };
                        let start = Instant::now();
                        let r = sup.predict_with_deadline(m, &[("x", &bytes)], budget).await;
                        let took = start.elapsed();
                        assert!(
                            took <= budget + Duration::from_millis(1500),
                            "task {t} #{i}: {took:?} > {budget:?}"
                        );
                        match (fault, r) {
                            (None, Ok(p)) => {
                                let want: Vec<f32> = x.iter().map(|v| v + t as f32 + 0.5).collect();
                                assert_eq!(
                                    p.output("y").unwrap().to_f32(),
                                    want,
                                    "task {t} #{i}: wrong content"
                                );
                                ok += 1;
                            }
                            (None, Err(e)) => {
                                panic!("task {t} #{i}: healthy request failed: {e:?}")
                            }
                            (Some((f, _)), Err(e)) => {
                                // Its own kill, or its deadline passed while another
                                // fault's restart was under way.
                                assert!(
                                    matches!(
                                        e,
                                        Error::Timeout { .. }
                                            | Error::HelperCrashed { .. }
                                            | Error::ProtocolViolation { .. }
                                    ),
                                    "task {t} #{i} fault {f}: unexpected error {e:?}"
                                );
                                faults += 1;
                            }
                            (Some((f, _)), Ok(_)) => {
                                panic!("task {t} #{i}: fault {f} produced a result")
                            }
                        }
                    }
                    (ok, faults)
                }));
            }
            let (mut ok, mut faults) = (0, 0);
            for t in tasks {
                let (o, f) = t.await.expect("task panicked");
                ok += o;
                faults += f;
            }
            assert_eq!(ok + faults, TASKS * PER_TASK);
            let s = sup.stats();
            eprintln!(
                "[{} via {lane}] {ok} ok, {faults} faults, {} restarts, {} retried, {} fast replies",
                h.name, s.restarts, s.retried, s.fast_replies
            );
            assert!(faults > 0, "no fault was injected");
            assert!(s.restarts as usize >= faults);
            sup.shutdown().await;
            drop(sup);
            common::assert_clean(&before, &h.name).await;
        }
        }
    })
    .await;
}
