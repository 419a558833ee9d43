//! Throughput of the model pool: 16 concurrent callers, requests per second
//! and p99 against the pool size (1, 2, 4), on the `add` diagnostic model
//! (supervisor and protocol overhead only) and on `sleep?ms=2` (2 ms of
//! engine time per prediction, where instances run side by side). Prints the
//! rows of the pool table in docs/benchmarks.md.
//!
//! ```text
//! cargo run --release -p coreml-supervisor --bin pool-bench -- target/release/coreml-test-helper
//! cargo run --release -p coreml-supervisor --bin pool-bench -- "/path/ld.so --library-path /path/lib" /path/coreml-helper
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use coreml_supervisor::pool::{ModelPool, PoolConfig};
use coreml_supervisor::{HelperCommand, Supervisor, SupervisorConfig};

const CALLERS: usize = 16;
const PER_CALLER: usize = 250;

async fn run(sup: &Supervisor, model: &str, instances: usize) -> (f64, Duration) {
    let pool = Arc::new(
        ModelPool::load(
            sup,
            model,
            None,
            PoolConfig {
                instances,
                queue: CALLERS,
            },
        )
        .await
        .expect("pool loads"),
    );
    let x: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let start = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (pool, x) = (pool.clone(), x.clone());
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(PER_CALLER);
                for _ in 0..PER_CALLER {
                    let t = Instant::now();
                    pool.predict(&[("x", &x)], Duration::from_secs(10))
                        .await
                        .expect("prediction");
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("caller"));
    }
    let rps = lat.len() as f64 / start.elapsed().as_secs_f64();
    lat.sort();
    let p99 = lat[((lat.len() as f64 - 1.0) * 0.99).round() as usize];
    Arc::try_unwrap(pool)
        .ok()
        .expect("callers done")
        .unload()
        .await;
    (rps, p99)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (launcher, program) = match args.as_slice() {
        [p] => (String::new(), p.clone()),
        [l, p] => (l.clone(), p.clone()),
        _ => {
            eprintln!("usage: pool-bench [LAUNCHER] HELPER");
            std::process::exit(2)
        }
    };
    let cmd = HelperCommand::from_words(&program, &launcher).expect("a helper program");
    let sup = Supervisor::start(SupervisorConfig::new(cmd))
        .await
        .expect("the helper starts");
    let engine = sup
        .hello()
        .map(|h| format!("{} helper {}", h.engine, h.helper_version))
        .unwrap_or_default();
    println!("| helper | model | pool size | requests/s | p99 (ms) |");
    println!("|---|---|---:|---:|---:|");
    for model in ["diag:add?c=1&shape=4", "diag:sleep?ms=2&shape=4"] {
        for instances in [1, 2, 4] {
            let (rps, p99) = run(&sup, model, instances).await;
            println!(
                "| {engine} | `{model}` | {instances} | {rps:.0} | {:.2} |",
                p99.as_secs_f64() * 1e3
            );
        }
    }
    sup.shutdown().await;
}
