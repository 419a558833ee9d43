//! A full snapshot renders as JSON that round-trips, a table that names the
//! serving engine, and Prometheus text that a strict parser accepts with the
//! structure the docs promise.

mod common;

use std::sync::Arc;
use std::time::Duration;

use coreml_bridge::breaker::trip::{FallbackReason, TripReason};
use coreml_bridge::breaker::BreakerState;
use coreml_bridge::clock::ManualClock;
use coreml_bridge::inference::ComputeUnits;
use coreml_bridge::taxonomy::FailureKind;
use coreml_bridge::telemetry::latency::Stage;
use coreml_bridge::telemetry::prometheus::parse;
use coreml_bridge::telemetry::snapshot::{SandboxPart, Snapshot};
use coreml_bridge::telemetry::Telemetry;

fn busy_telemetry() -> Telemetry {
    let clock = ManualClock::new();
    let t = Telemetry::with_clock(Arc::new(clock.clone()));
    for (model, engine) in [("minilm", "coreml"), ("minilm", "candle"), ("cat \"photo\"\nnet", "candle")] {
        for ms in 1..=50u64 {
            for stage in Stage::ALL {
                t.record_stage(model, engine, stage, Duration::from_micros(ms * 100));
            }
            t.record_inference(model, engine, if ms % 10 == 0 { Err(FailureKind::Timeout) } else { Ok(()) });
        }
    }
    t.record_failure("minilm", "coreml", FailureKind::CompileError);
    t.set_compute_units("minilm", "coreml", ComputeUnits::All, Some(ComputeUnits::CpuAndNe));
    t.set_compute_units("minilm", "candle", ComputeUnits::All, Some(ComputeUnits::CpuOnly));
    t.set_ne_coverage("minilm", "coreml", Some(0.8), None);
    t.set_ne_coverage("minilm", "candle", None, Some("Candle runs on the CPU".into()));
    clock.advance(Duration::from_secs(1));
    t.record_fallback(
        "minilm",
        "coreml",
        "candle",
        FallbackReason::PrimaryFailed { kind: FailureKind::HelperCrash, message: "signal 11".into() },
    );
    t.set_breaker(
        "minilm",
        BreakerState::Open,
        Some(TripReason::HelperCrashes { count: 3, within: Duration::from_secs(60) }),
        false,
    );
    t.record_served("minilm", "candle");
    t.record_helper_memory(300 << 20);
    t.set_helper_memory_limit(Some(1 << 30));
    t.record_helper_restart("helper crashed (signal 11)");
    t.set_sandbox(vec![
        SandboxPart { name: "landlock".into(), applied: true, detail: "fully enforced".into() },
        SandboxPart { name: "network".into(), applied: false, detail: "seccomp unavailable".into() },
    ]);
    t.notice("Core ML unavailable on Linux: Candle serves");
    t
}

#[test]
fn prometheus_text_parses_and_has_the_promised_families() {
    let _watchdog =
        common::Watchdog::new("prometheus_text_parses_and_has_the_promised_families", Duration::from_secs(30));
    let snap = busy_telemetry().snapshot();
    let text = snap.prometheus();
    let samples = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));

    // Every stage of every series: three quantiles, a sum and a count.
    let lat: Vec<_> = samples.iter().filter(|s| s.name.starts_with("coreml_bridge_stage_latency_seconds")).collect();
    assert_eq!(lat.len(), 3 * Stage::ALL.len() * 5);
    let p99 = samples
        .iter()
        .find(|s| {
            s.name == "coreml_bridge_stage_latency_seconds"
                && s.label("model") == Some("minilm")
                && s.label("engine") == Some("coreml")
                && s.label("stage") == Some("predict")
                && s.label("quantile") == Some("0.99")
        })
        .expect("p99 of predict");
    assert!((p99.value - 0.005).abs() < 1e-5, "{}", p99.value);
    let count = samples
        .iter()
        .find(|s| {
            s.name == "coreml_bridge_stage_latency_seconds_count"
                && s.label("stage") == Some("compile")
                && s.label("engine") == Some("coreml")
        })
        .unwrap();
    assert_eq!(count.value, 50.0);

    // Awkward label values survive escaping.
    assert!(samples.iter().any(|s| s.label("model") == Some("cat \"photo\"\nnet")));

    let one = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let hits: Vec<_> =
            samples.iter().filter(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(v))).collect();
        assert_eq!(hits.len(), 1, "{name} {labels:?}");
        hits[0].value
    };
    assert_eq!(
        one("coreml_bridge_inferences_total", &[("model", "minilm"), ("engine", "coreml"), ("outcome", "failure")]),
        5.0
    );
    assert_eq!(
        one("coreml_bridge_failures_total", &[("model", "minilm"), ("engine", "coreml"), ("kind", "compile_error")]),
        1.0
    );
    assert_eq!(
        one("coreml_bridge_failures_total", &[("model", "minilm"), ("engine", "coreml"), ("kind", "fallback")]),
        1.0
    );
    assert_eq!(one("coreml_bridge_fallbacks_total", &[("model", "minilm"), ("reason", "primary_failed")]), 1.0);
    assert_eq!(one("coreml_bridge_breaker_state", &[("model", "minilm"), ("state", "open")]), 1.0);
    assert_eq!(one("coreml_bridge_breaker_state", &[("model", "minilm"), ("state", "closed")]), 0.0);
    assert_eq!(one("coreml_bridge_served_info", &[("model", "minilm"), ("engine", "candle")]), 1.0);
    assert_eq!(
        one(
            "coreml_bridge_compute_units_info",
            &[("model", "minilm"), ("engine", "coreml"), ("requested", "all"), ("actual", "cpu_and_ne")]
        ),
        1.0
    );
    assert_eq!(one("coreml_bridge_neural_engine_coverage_ratio", &[("model", "minilm"), ("engine", "coreml")]), 0.8);
    // Unknown coverage is absent, never a guessed number.
    assert!(!samples
        .iter()
        .any(|s| s.name == "coreml_bridge_neural_engine_coverage_ratio" && s.label("engine") == Some("candle")));
    assert_eq!(one("coreml_bridge_helper_memory_high_water_bytes", &[]), f64::from(300u32 << 20));
    assert_eq!(one("coreml_bridge_helper_restarts_total", &[]), 1.0);
    assert_eq!(one("coreml_bridge_sandbox_part_applied", &[("part", "network")]), 0.0);
    assert_eq!(one("coreml_bridge_events_total", &[]), 2.0);
}

#[test]
fn json_round_trips_and_the_table_names_the_engine_that_served() {
    let _watchdog =
        common::Watchdog::new("json_round_trips_and_the_table_names_the_engine_that_served", Duration::from_secs(30));
    let snap = busy_telemetry().snapshot();
    let back: Snapshot = serde_json::from_str(&snap.to_json()).unwrap();
    assert_eq!(back, snap);
    let v: serde_json::Value = serde_json::from_str(&snap.to_json()).unwrap();
    assert_eq!(v["models"][0]["engines"][0]["stages"]["predict"]["count"], 50);
    assert_eq!(v["events"][0]["type"], "fallback");
    assert_eq!(v["events"][0]["reason"]["kind"], "helper_crash");

    let table = snap.table();
    assert!(table.starts_with("note: Core ML unavailable on Linux: Candle serves\n"), "{table}");
    let served: Vec<&str> = table.lines().filter(|l| l.contains("minilm") && l.contains(" yes ")).collect();
    assert_eq!(served.len(), 1, "{table}");
    assert!(served[0].contains("candle") && served[0].contains("open"), "{table}");
    assert!(table.contains("80.0%"), "reported coverage shown: {table}");
    assert!(table.contains("unknown"), "unknown coverage shown as unknown: {table}");
    assert!(table.contains("3 helper crashes within 60.00s"), "{table}");
    assert!(table.contains("memory high-water: 300.0 MiB"), "{table}");
    assert!(table.contains("landlock=on network=off"), "{table}");
}
