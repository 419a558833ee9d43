//! `report`: the telemetry of the last commands (each command saves its
//! snapshot to `<cache>/telemetry/last-<command>.json`), merged, as a
//! table, JSON or Prometheus text.
//!
//! ```text
//! $ coreml-bridge report
//! models
//!   MODEL               ENGINE  SERVED  BREAKER  INFER  OK  ...
//!   all-minilm-l6-v2    candle  yes     -        1      1   ...
//! ```

use clap::{Args, ValueEnum};
use coreml_bridge::telemetry::events::EventKind;
use coreml_bridge::telemetry::snapshot::Snapshot;

use crate::app::{self, telemetry_dir};
use crate::Global;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Prometheus,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Output format (`--json` is the same as `--format json`).
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// Every saved snapshot merged into one: models of each, helper of the
/// latest, notices once, events in time order.
pub fn merge(mut snaps: Vec<Snapshot>) -> Snapshot {
    snaps.sort_by_key(|s| s.uptime_us);
    let mut out = Snapshot::default();
    for s in snaps {
        for m in s.models {
            out.models.retain(|x| x.model != m.model);
            out.models.push(m);
        }
        if s.helper.identity.is_some() || out.helper.identity.is_none() {
            out.helper = s.helper;
        }
        for n in s.notices {
            if !out.notices.contains(&n) {
                out.notices.push(n);
            }
        }
        out.events_total += s.events_total;
        for e in s.events {
            // The once-only "Core ML unavailable" is said once in the merge, too.
            let repeat = matches!(e.kind, EventKind::PrimaryUnavailable { .. })
                && out.events.iter().any(|x| x.kind == e.kind);
            if !repeat {
                out.events.push(e);
            }
        }
        out.uptime_us = out.uptime_us.max(s.uptime_us);
    }
    out.models.sort_by(|a, b| a.model.cmp(&b.model));
    out
}

pub fn load_saved() -> Result<Snapshot, String> {
    let dir = telemetry_dir();
    let mut snaps = Vec::new();
    for e in std::fs::read_dir(&dir).map_err(|e| {
        format!(
            "no saved telemetry in {} ({e}): run a command first",
            dir.display()
        )
    })? {
        let p = e.map_err(|e| e.to_string())?.path();
        let is_snapshot = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("last-") && n.ends_with(".json"));
        if is_snapshot {
            let advice = "delete it, or run its command again to replace it";
            let text = std::fs::read_to_string(&p).map_err(|e| app::file_error(&p, e, advice))?;
            snaps.push(serde_json::from_str(&text).map_err(|e| {
                app::file_error(&p, format!("not a telemetry snapshot ({e})"), advice)
            })?);
        }
    }
    if snaps.is_empty() {
        return Err(format!(
            "no saved telemetry in {}: run a command first",
            dir.display()
        ));
    }
    Ok(merge(snaps))
}

pub fn run(global: Global, args: ReportArgs) -> Result<(), String> {
    let snap = load_saved()?;
    let format = if global.json {
        Format::Json
    } else {
        args.format
    };
    match format {
        Format::Table => crate::out_part!("{}", snap.table()),
        Format::Json => app::print_json(&serde_json::to_value(&snap).map_err(|e| e.to_string())?),
        Format::Prometheus => crate::out_part!("{}", snap.prometheus()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use coreml_bridge::telemetry::Telemetry;

    #[test]
    fn merging_keeps_every_model_and_says_unavailable_once() {
        let snap = |model: &str| {
            let t = Telemetry::new();
            t.record_inference(model, "candle", Ok(()));
            t.notice("coreml unavailable (x): candle serves every model");
            t.event(
                None,
                EventKind::PrimaryUnavailable {
                    engine: "coreml".into(),
                    message: "x".into(),
                },
            );
            t.snapshot()
        };
        let m = merge(vec![snap("b"), snap("a"), snap("a")]);
        assert_eq!(
            m.models
                .iter()
                .map(|m| m.model.as_str())
                .collect::<Vec<_>>(),
            vec!["a", "b"]
        );
        assert_eq!(m.notices.len(), 1);
        assert_eq!(m.events.len(), 1);
        assert_eq!(m.events_total, 3);
    }
}
