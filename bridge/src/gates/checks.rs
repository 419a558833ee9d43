//! The four gates. Each returns a [`GateReport`] whose checks carry what was
//! measured, the budget and a verdict; nothing here panics or asserts.
//!
//! ```
//! use coreml_bridge::gates::{gate_c, subject::DoubleSubject, Verdict};
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let c = gate_c(&DoubleSubject::default()).await;
//! assert!(matches!(c.verdict(), Verdict::NotMeasurable { reason } if reason.contains("no Core ML")));
//! # });
//! ```

use std::time::{Duration, Instant};

use crate::gates::probe::{percentile_us, sample, slope, Sample};
use crate::gates::soak::{soak, RssPoint};
use crate::gates::subject::{GateSubject, Hang};
use crate::gates::{Check, GateConfig, GateReport, Verdict};

const MB: f64 = 1024.0 * 1024.0;
const KB: f64 = 1024.0;

fn report(gate: char, title: &str, checks: Vec<Check>) -> GateReport {
    GateReport { gate, title: title.into(), checks }
}

/// A growth check of fitted RSS samples: slope (bytes per unit) × `per` under `budget` bytes.
fn growth(name: &str, points: &[(f64, f64)], per: f64, budget: f64, budget_text: &str, why_none: &str) -> Check {
    if points.len() < 3 {
        return Check::not_measurable(name, budget_text, format!("{why_none} ({} samples)", points.len()));
    }
    let g = slope(points) * per;
    Check::new(name, format!("{:+.1} KB", g / KB), budget_text, g < budget)
}

/// Fewest compile+load cycles whose RSS slope gate A judges: a shorter run
/// projects allocator noise to 10,000 cycles (20 cycles of a 90 MB model
/// measured +1 GB, 80 cycles −75 MB), so its growth is `NotMeasurable`.
pub const MIN_GROWTH_CYCLES: u64 = 1_000;

/// Gate A: compile+load cycles through the cache.
pub async fn gate_a(s: &dyn GateSubject, cfg: &GateConfig) -> GateReport {
    let title = "compile+load cycles: no growth, cache hits";
    let warm = (cfg.cycles / 10).max(1);
    let every = (cfg.cycles / 100).max(1);
    let (mut hits, mut sup, mut helper) = (0u64, Vec::new(), Vec::new());
    for i in 0..cfg.cycles {
        match s.prepare().await {
            Ok((m, hit)) => {
                hits += u64::from(hit);
                s.unload(m).await;
            }
            Err(e) => {
                return report(
                    'A',
                    title,
                    vec![Check::failed("compile+load cycle", "every cycle", format!("cycle {i}: {e}"))],
                )
            }
        }
        if i >= warm && (i - warm).is_multiple_of(every) {
            sup.extend(sample(std::process::id()).map(|x| (i as f64, x.rss_bytes as f64)));
            helper.extend(s.helper_pid().and_then(sample).map(|x| (i as f64, x.rss_bytes as f64)));
        }
    }
    let ratio = hits as f64 / cfg.cycles.max(1) as f64;
    let budget = "< 1 MB / 10k cycles";
    let none = "too few samples after warm-up or no /proc";
    let (sup_name, helper_name) = ("supervisor RSS growth (fitted, per 10k)", "helper RSS growth (fitted, per 10k)");
    let (sup_growth, helper_growth) = if cfg.cycles < MIN_GROWTH_CYCLES {
        // Too short to tell growth from noise: say so rather than project it.
        let why = format!("{} cycles; at least {MIN_GROWTH_CYCLES} measure growth (the plan: 10,000)", cfg.cycles);
        (Check::not_measurable(sup_name, budget, why.clone()), Check::not_measurable(helper_name, budget, why))
    } else {
        (
            growth(sup_name, &sup, 10_000.0, MB, budget, none),
            growth(helper_name, &helper, 10_000.0, MB, budget, "the helper cannot be sampled"),
        )
    };
    report(
        'A',
        title,
        vec![
            Check::new("cycles", format!("{}", cfg.cycles), "10,000 (plan)", cfg.cycles > 0),
            Check::new("cache hit ratio", format!("{:.1}%", ratio * 100.0), ">= 90%", ratio >= 0.9),
            sup_growth,
            helper_growth,
        ],
    )
}

/// Gate B: schema, deadlines, p99, parity.
pub async fn gate_b(s: &dyn GateSubject, cfg: &GateConfig) -> GateReport {
    let title = "correct, bounded, fast enough, close enough";
    let (m, _) = match s.prepare().await {
        Ok(x) => x,
        Err(e) => return report('B', title, vec![Check::failed("prepare", "prepared", e)]),
    };
    let mut checks = Vec::new();
    checks.push(match s.check_schema(&m) {
        Ok(()) => Check::new("output schema", "as expected".into(), "as expected", true),
        Err(e) => Check::failed("output schema", "as expected", e),
    });
    let (mut lat, mut worst, mut failures) = (Vec::new(), 0.0f32, Vec::new());
    for seq in 0..cfg.inferences {
        let t = Instant::now();
        match s.infer(&m, seq, cfg.deadline).await {
            Ok(linf) => worst = worst.max(linf),
            Err(e) => failures.push(e),
        }
        lat.push(t.elapsed().as_micros() as u64);
    }
    s.unload(m).await;
    let sla = s.sla();
    let p99 = Duration::from_micros(percentile_us(&mut lat, 99.0));
    if let Some(first) = failures.first() {
        checks.push(Check::failed("inferences", "all answered", format!("{} failed, first: {first}", failures.len())));
    }
    checks.push(Check::new(
        "p99 latency",
        format!("{p99:?} over {}", cfg.inferences),
        &format!("<= {sla:?} (SLA)"),
        p99 <= sla,
    ));
    let budget = s.parity_budget();
    checks.push(Check::new(
        "parity (L∞ vs reference)",
        format!("{worst:.2e}"),
        &format!("<= {budget:.0e}"),
        worst <= budget && failures.is_empty(),
    ));
    let margin = Duration::from_millis(500);
    for (kind, name) in
        [(Hang::SlowModel, "slow model ended by deadline"), (Hang::HangFault, "hang fault ended by deadline")]
    {
        let budget = format!("<= {:?} + {margin:?}", cfg.hang_deadline);
        checks.push(match s.hung(kind, cfg.hang_deadline).await {
            Ok(took) => Check::new(name, format!("{took:.0?}"), &budget, took <= cfg.hang_deadline + margin),
            Err(e) => Check::failed(name, &budget, e),
        });
    }
    report('B', title, checks)
}

/// Gate C: Core ML faster than the CPU, on the Neural Engine.
pub async fn gate_c(s: &dyn GateSubject) -> GateReport {
    let title = "Core ML >= 30% faster than CPU, ANE dispatch";
    let (speed, ane) = ("speed-up over CPU", "Neural-Engine dispatch (compute plan)");
    let checks = match s.speedup().await {
        Err(reason) => vec![
            Check::not_measurable(speed, ">= 30%", reason.clone()),
            Check::not_measurable(ane, "> 0% of ops", reason),
        ],
        Ok((coreml, cpu, ne)) => {
            let up = cpu.as_secs_f64() / coreml.as_secs_f64().max(1e-9) - 1.0;
            vec![
                Check::new(speed, format!("{:.0}% ({coreml:?} vs {cpu:?})", up * 100.0), ">= 30%", up >= 0.3),
                Check::new(ane, format!("{:.0}% of ops", ne * 100.0), "> 0% of ops", ne > 0.0),
            ]
        }
    };
    report('C', title, checks)
}

fn pts(v: &[RssPoint], from: u64) -> Vec<(f64, f64)> {
    v.iter().filter(|p| p.inferences >= from).map(|p| (p.inferences as f64, p.rss_bytes as f64)).collect()
}

fn same(name: &str, before: Option<Sample>, after: Option<Sample>, f: fn(&Sample) -> Option<usize>) -> Check {
    match (before.as_ref().and_then(f), after.as_ref().and_then(f)) {
        (Some(b), Some(a)) => Check::new(name, format!("{b} -> {a}"), "no more after", a <= b),
        _ => Check::not_measurable(name, "no more after", "not readable for this process".into()),
    }
}

/// Gate D: the soak, the leak budget and the counts before and after.
pub async fn gate_d(s: &dyn GateSubject, cfg: &GateConfig) -> GateReport {
    let title = "soak: stable, no leaks, breaker closed";
    let r = match soak(s, cfg.soak, cfg.deadline).await {
        Ok(r) => r,
        Err(e) => return report('D', title, vec![Check::failed("soak", "runs", e)]),
    };
    let mut checks = vec![Check::new(
        "inferences answered",
        format!("{} of {} in {:?}", r.inferences - r.failures, r.inferences, cfg.soak),
        "all",
        r.failures == 0 && r.inferences > 0,
    )];
    // The table shows the count and the first transition; the verdict's reason lists
    // the ones kept (the first 10).
    let mut tripped = Check::new(
        "breaker never tripped",
        match r.trips.first() {
            None if r.fallbacks == 0 => "no transition".into(),
            None => format!("{} to the fallback", r.fallbacks),
            Some(first) => {
                let more = if r.trips.len() >= 10 { "+" } else { "" };
                format!("{}{more} transitions, first: {first}; {} to the fallback", r.trips.len(), r.fallbacks)
            }
        },
        "no transition",
        r.trips.is_empty() && r.fallbacks == 0,
    );
    if let Verdict::Fail { reason } = &mut tripped.verdict {
        if !r.trips.is_empty() {
            *reason = format!("{} to the fallback; {}", r.fallbacks, r.trips.join("; "));
        }
    }
    checks.push(tripped);
    let mean = r.window_qps.iter().sum::<f64>() / r.window_qps.len().max(1) as f64;
    let sd = (r.window_qps.iter().map(|q| (q - mean).powi(2)).sum::<f64>() / r.window_qps.len().max(1) as f64).sqrt();
    checks.push(if r.window_qps.len() < 3 {
        Check::not_measurable("QPS stability (CV)", "<= 25%", format!("{} windows", r.window_qps.len()))
    } else {
        Check::new(
            "QPS stability (CV)",
            format!("{:.1}% around {mean:.0}/s", sd / mean * 100.0),
            "<= 25%",
            sd <= 0.25 * mean,
        )
    });
    let per100 = "< 100 KB / 100 inferences";
    for (who, points) in [("supervisor", &r.supervisor), ("helper", &r.helper)] {
        checks.push(growth(&format!("{who} RSS slope"), &pts(points, 0), 100.0, 100.0 * KB, per100, "no samples"));
        let after = pts(points, 10_000);
        checks.push(if r.inferences < 20_000 {
            Check::not_measurable(
                &format!("{who} flat after 10k"),
                "< 1 MB / 10k",
                format!("{} inferences; a longer soak measures it", r.inferences),
            )
        } else {
            growth(&format!("{who} flat after 10k"), &after, 10_000.0, MB, "< 1 MB / 10k", "no samples")
        });
    }
    for (who, b, a) in
        [("supervisor", r.supervisor_before, r.supervisor_after), ("helper", r.helper_before, r.helper_after)]
    {
        checks.push(same(&format!("{who} fds"), b, a, |s| s.fds));
        checks.push(same(&format!("{who} threads"), b, a, |s| s.threads));
        checks.push(same(&format!("{who} shm regions"), b, a, |s| s.shm_regions));
    }
    report('D', title, checks)
}
