//! Gates against the in-process double with a mechanism broken: the gate
//! that guards it fails. A leak per compile+load fails A, a leak per
//! inference fails D's leak budget, failures trip D's breaker, a hung
//! prediction that answers fails B. (Its own binary, so no other test's
//! allocations move this process's RSS.)
mod common;

use std::time::Duration;

use coreml_bridge::gates::subject::{DoubleFaults, DoubleSubject};
use coreml_bridge::gates::GateConfig;
use coreml_bridge::gates::{gate_a, gate_b, gate_c, gate_d, table, Check, Verdict};

fn check<'a>(checks: &'a [Check], name: &str) -> &'a Check {
    checks.iter().find(|c| c.name.starts_with(name)).unwrap_or_else(|| panic!("no check {name}"))
}

fn failed(c: &Check) -> bool {
    matches!(c.verdict, Verdict::Fail { .. })
}

#[tokio::test(flavor = "current_thread")]
async fn a_broken_mechanism_fails_its_gate() {
    let _w = common::Watchdog::new("a_broken_mechanism_fails_its_gate", Duration::from_secs(120));
    let cfg = GateConfig {
        cycles: 1_000,
        inferences: 200,
        hang_deadline: Duration::from_millis(50),
        soak: Duration::from_millis(1500),
        deadline: Duration::from_secs(1),
    };
    // A healthy double passes what it can measure.
    let healthy = DoubleSubject::default();
    let a = gate_a(&healthy, &cfg).await;
    assert!(
        matches!(check(&a.checks, "supervisor RSS growth").verdict, Verdict::Pass),
        "{}",
        table(std::slice::from_ref(&a))
    );
    assert!(matches!(check(&a.checks, "helper RSS growth").verdict, Verdict::NotMeasurable { .. }));
    assert_eq!(check(&a.checks, "cache hit ratio").verdict, Verdict::Pass);
    assert_eq!(gate_b(&healthy, &cfg).await.verdict(), Verdict::Pass);
    assert!(matches!(gate_c(&healthy).await.verdict(), Verdict::NotMeasurable { .. }));

    // 64 KB kept per compile+load: 640 MB per 10k cycles.
    // (Fewer than MIN_GROWTH_CYCLES would make the growth rows not measurable.)
    let leaky = DoubleSubject::new(DoubleFaults { leak_per_prepare: 64 << 10, ..Default::default() });
    let a = gate_a(&leaky, &cfg).await;
    assert!(failed(check(&a.checks, "supervisor RSS growth")), "{}", table(&[a]));
    // 8 KB kept per inference: 800 KB per 100.
    let leaky = DoubleSubject::new(DoubleFaults {
        leak_per_infer: 8 << 10,
        infer_delay: Duration::from_millis(1),
        ..Default::default()
    });
    let d = gate_d(&leaky, &cfg).await;
    assert!(failed(check(&d.checks, "supervisor RSS slope")), "{}", table(&[d]));
    // Every third inference fails: the breaker trips.
    let flaky = DoubleSubject::new(DoubleFaults {
        fail_every: Some(3),
        infer_delay: Duration::from_millis(1),
        ..Default::default()
    });
    let d = gate_d(&flaky, &cfg).await;
    assert!(failed(check(&d.checks, "breaker never tripped")), "{}", table(std::slice::from_ref(&d)));
    assert!(failed(check(&d.checks, "inferences answered")));
    // A hung prediction that answers: the deadline mechanism is not there.
    let b = gate_b(&DoubleSubject::new(DoubleFaults { hang_answers: true, ..Default::default() }), &cfg).await;
    assert!(failed(check(&b.checks, "slow model ended by deadline")), "{}", table(&[b]));
}
