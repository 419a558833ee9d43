//! The Candle side of the benchmark: a worker process that loads cases and times them on
//! request (same line protocol as scripts/bench_pytorch.py).
//!
//! ```text
//! $ candle-bench --worker
//! load fastvit_t8:fast      -> ok
//! run fastvit_t8:fast 3     -> times 34.1 33.9 34.5
//! ```

use candle_core::{Device, Module, Result};
use coreml_candle::models::fastvit::FastVit;
use coreml_candle::models::resnet::ResNet50;
use coreml_candle::models::vision_assets::{
    load_var_builder, seeded_input, weights_path, VisionModel, INPUT_SEED,
};
use coreml_candle::ops::conv_layer::Kernels;
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::time::Instant;

type Forward = Box<dyn Fn() -> Result<()>>;

/// Kernel switches named by a case suffix.
fn kernels(variant: &str) -> Option<Kernels> {
    let none = Kernels::CANDLE;
    Some(match variant {
        "candle" => none,
        "dw" => Kernels {
            depthwise: true,
            ..none
        },
        "dw+gemm" => Kernels {
            depthwise: true,
            dense: true,
            ..none
        },
        "gemm" => Kernels {
            dense: true,
            ..none
        },
        "fast" => Kernels::FAST,
        _ => return None,
    })
}

fn build(case: &str) -> Result<Forward> {
    let dev = Device::Cpu;
    let (model, variant) = case.split_once(':').unwrap_or((case, "fast"));
    let x = seeded_input(INPUT_SEED, &[1, 3, 224, 224])?;
    match (model, variant) {
        ("resnet50", "stock") => {
            let vb = load_var_builder(&weights_path(VisionModel::ResNet50)?, &dev)?;
            let m = candle_transformers::models::resnet::resnet50(1000, vb)?;
            Ok(Box::new(move || m.forward(&x).map(|_| ())))
        }
        ("fastvit_t8", "stock") => {
            let vb = load_var_builder(&weights_path(VisionModel::FastVitT8)?, &dev)?;
            let cfg = candle_transformers::models::fastvit::Config::t8();
            let m = candle_transformers::models::fastvit::fastvit(&cfg, 1000, vb)?;
            Ok(Box::new(move || m.forward(&x).map(|_| ())))
        }
        ("resnet50", v) => {
            let k = kernels(v).ok_or_else(|| candle_core::Error::Msg(format!("variant {v}")))?;
            let m = ResNet50::from_safetensors(&weights_path(VisionModel::ResNet50)?, k, &dev)?;
            Ok(Box::new(move || m.forward(&x).map(|_| ())))
        }
        ("fastvit_t8", v) => {
            let k = kernels(v).ok_or_else(|| candle_core::Error::Msg(format!("variant {v}")))?;
            let m = FastVit::t8_from_safetensors(&weights_path(VisionModel::FastVitT8)?, k, &dev)?;
            Ok(Box::new(move || m.forward(&x).map(|_| ())))
        }
        _ => super::external::build(model, variant),
    }
}

/// Serve the line protocol on stdin/stdout until `quit` or end of input.
pub fn serve(threads: Option<usize>) -> std::io::Result<()> {
    if let Some(n) = threads {
        coreml_candle::ops::runtime::init_cpu_runtime(Some(n));
    }
    let mut cases: HashMap<String, Forward> = HashMap::new();
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words.as_slice() {
            ["quit"] => break,
            ["load", case] => match build(case).and_then(|f| {
                f()?;
                f()?;
                Ok(f)
            }) {
                Ok(f) => {
                    cases.insert(case.to_string(), f);
                    "ok".to_string()
                }
                Err(e) => format!("err {}", e.to_string().lines().next().unwrap_or("")),
            },
            ["run", case, n] => match (cases.get(*case), n.parse::<usize>()) {
                (Some(f), Ok(n)) => {
                    let mut times = Vec::with_capacity(n);
                    let mut failed = None;
                    for _ in 0..n {
                        let t0 = Instant::now();
                        if let Err(e) = f() {
                            failed = Some(e);
                            break;
                        }
                        times.push(t0.elapsed().as_secs_f64() * 1e3);
                    }
                    match failed {
                        Some(e) => format!("err {e}"),
                        None => {
                            let t: Vec<String> = times.iter().map(|t| format!("{t:.4}")).collect();
                            format!("times {}", t.join(" "))
                        }
                    }
                }
                _ => format!("err unknown case {case} or bad count {n}"),
            },
            ["info"] => format!(
                "ok threads {} runtime {:?}",
                candle_core::utils::get_num_threads(),
                coreml_candle::ops::runtime::cpu_runtime()
            ),
            _ => format!("err bad command {line:?}"),
        };
        writeln!(out, "{reply}")?;
        out.flush()?;
    }
    Ok(())
}
