//! Gates A–D of the plan as functions returning typed verdicts, runnable
//! from tests and from `coreml-bridge gates`, honest about what this machine
//! can measure: a check that needs Core ML where there is none is
//! [`Verdict::NotMeasurable`] with its reason, never a pass.
//!
//! ```
//! use std::time::Duration;
//! use coreml_bridge::gates::subject::DoubleSubject;
//! use coreml_bridge::gates::{run_all, GateConfig, Verdict};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let cfg = GateConfig { cycles: 200, inferences: 200, soak: Duration::from_millis(300), ..GateConfig::default() };
//! let reports = run_all(&DoubleSubject::default(), &cfg).await;
//! assert_eq!(reports.len(), 4);
//! assert!(matches!(reports[2].verdict(), Verdict::NotMeasurable { .. }), "no Core ML in a double");
//! println!("{}", coreml_bridge::gates::table(&reports));
//! # });
//! ```
//!
//! * **A** ([`gate_a`]): `cycles` compile+load cycles through the cache; RSS
//!   growth of supervisor and helper after warm-up, as a fitted slope
//!   projected to 10,000 cycles, under 1 MB; cache hit ratio at least 90%.
//! * **B** ([`gate_b`]): output schema; a slow model and a hang fault ended
//!   by their deadline; p99 under the model's SLA; parity within budget.
//! * **C** ([`gate_c`]): at least 30% faster than the CPU and Neural-Engine
//!   dispatch in the compute plan; `NotMeasurable` without Core ML.
//! * **D** ([`gate_d`], [`soak`]): a soak of configurable length sampling RSS
//!   of both processes, with the leak budget (under 100 KB per 100
//!   inferences; flat after 10,000), QPS stability, the breaker never
//!   tripping, and descriptors, threads and shared-memory regions the same
//!   before and after.

pub mod checks;
pub mod probe;
pub mod soak;
pub mod subject;

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

pub use checks::{gate_a, gate_b, gate_c, gate_d};
use subject::GateSubject;

/// The verdict of one check or gate.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Measured and within budget.
    Pass,
    /// Measured and over budget, or the mechanism failed.
    Fail {
        /// What went wrong.
        reason: String,
    },
    /// Cannot be measured here (no Core ML, no `/proc`).
    NotMeasurable {
        /// Why.
        reason: String,
    },
}

impl Verdict {
    fn word(&self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail { .. } => "FAIL",
            Verdict::NotMeasurable { .. } => "NOT MEASURABLE",
        }
    }
}

/// One measured check of a gate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// What is checked.
    pub name: String,
    /// What was measured.
    pub measured: String,
    /// The budget.
    pub budget: String,
    /// The verdict.
    #[serde(flatten)]
    pub verdict: Verdict,
}

impl Check {
    /// A check that passes when `ok`.
    pub fn new(name: &str, measured: String, budget: &str, ok: bool) -> Self {
        let verdict =
            if ok { Verdict::Pass } else { Verdict::Fail { reason: format!("{measured} (budget {budget})") } };
        Self { name: name.into(), measured, budget: budget.into(), verdict }
    }

    /// A check that could not run.
    pub fn failed(name: &str, budget: &str, reason: String) -> Self {
        Self { name: name.into(), measured: "-".into(), budget: budget.into(), verdict: Verdict::Fail { reason } }
    }

    /// A check that cannot be measured here.
    pub fn not_measurable(name: &str, budget: &str, reason: String) -> Self {
        Self {
            name: name.into(),
            measured: "-".into(),
            budget: budget.into(),
            verdict: Verdict::NotMeasurable { reason },
        }
    }
}

/// One gate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateReport {
    /// `A` to `D`.
    pub gate: char,
    /// What it guards.
    pub title: String,
    /// Its checks.
    pub checks: Vec<Check>,
}

impl GateReport {
    /// Fail if any check fails; else not measurable if any is; else pass.
    pub fn verdict(&self) -> Verdict {
        if let Some(c) = self.checks.iter().find(|c| matches!(c.verdict, Verdict::Fail { .. })) {
            return c.verdict.clone();
        }
        if let Some(c) = self.checks.iter().find(|c| matches!(c.verdict, Verdict::NotMeasurable { .. })) {
            return c.verdict.clone();
        }
        if self.checks.is_empty() {
            return Verdict::NotMeasurable { reason: "no checks ran".into() };
        }
        Verdict::Pass
    }
}

/// How long and how hard the gates run.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// Gate A: compile+load cycles (the plan: 10,000).
    pub cycles: u64,
    /// Gate B: inferences for the p99 and parity.
    pub inferences: u64,
    /// Gate B: the deadline given to hung predictions.
    pub hang_deadline: Duration,
    /// Gate D: the soak's length (default one hour).
    pub soak: Duration,
    /// Gate D: per-inference deadline.
    pub deadline: Duration,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            cycles: 10_000,
            inferences: 2_000,
            hang_deadline: Duration::from_millis(500),
            soak: Duration::from_secs(3600),
            deadline: Duration::from_secs(2),
        }
    }
}

/// Runs gates A to D in order.
pub async fn run_all(subject: &dyn GateSubject, cfg: &GateConfig) -> Vec<GateReport> {
    vec![gate_a(subject, cfg).await, gate_b(subject, cfg).await, gate_c(subject).await, gate_d(subject, cfg).await]
}

/// One table: a line per check, the gate's verdict on its first line.
pub fn table(reports: &[GateReport]) -> String {
    let mut s = format!("{:<5} {:<15} {:<38} {:<34} {:<22} VERDICT\n", "GATE", "RESULT", "CHECK", "MEASURED", "BUDGET");
    for r in reports {
        for (i, c) in r.checks.iter().enumerate() {
            let (gate, result) = if i == 0 { (format!("{}", r.gate), r.verdict().word()) } else { (String::new(), "") };
            let detail = match &c.verdict {
                Verdict::Pass => String::new(),
                Verdict::Fail { reason } | Verdict::NotMeasurable { reason } => format!(": {reason}"),
            };
            let _ = writeln!(
                s,
                "{gate:<5} {result:<15} {:<38} {:<34} {:<22} {}{detail}",
                c.name,
                c.measured,
                c.budget,
                c.verdict.word()
            );
        }
    }
    s
}
