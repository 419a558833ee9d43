//! Serving one request: Core ML first when its breaker admits it, the CPU
//! fallback otherwise or after a failure that leaves time for it; every
//! attempt timed, counted and fed back to the breaker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use coreml_inference::{Deadline, InferError, InferenceEngine, PreparedModel, TensorMap};
use tracing::Instrument;

use crate::breaker::trip::FallbackReason;
use crate::breaker::{Admission, Outcome, Ticket, Transition};
use crate::router::conform::Conformed;
use crate::router::routed::Routed;
use crate::taxonomy::{reached_helper, FailureKind};
use crate::telemetry::events::EventKind;
use crate::telemetry::latency::Stage;
use crate::telemetry::stage_span;

use super::{Router, MIN_FALLBACK_RESERVE};

impl Router {
    /// One attempt on one engine (with the name telemetry gives it), timed and counted.
    pub(super) async fn attempt(
        &self,
        name: &str,
        (engine, label): (&Arc<dyn InferenceEngine>, &str),
        model: &PreparedModel,
        inputs: TensorMap,
        deadline: Deadline,
        self_timed: bool,
    ) -> (Result<TensorMap, InferError>, Duration) {
        let start = Instant::now();
        let span = stage_span(Stage::Predict, name, label);
        let result = engine.infer(model, inputs, deadline).instrument(span).await;
        let took = start.elapsed();
        if !self_timed {
            self.telemetry.record_stage(name, label, Stage::Predict, took);
        }
        let counted = result.as_ref().map(|_| ()).map_err(FailureKind::of_infer_error);
        self.telemetry.record_inference(name, label, counted);
        (result, took)
    }

    /// The primary's attempts at the parts of a conformed request (one per
    /// row when a batch was split), joined into one answer.
    pub(super) async fn attempt_conformed(
        &self,
        name: &str,
        engine: &Arc<dyn InferenceEngine>,
        model: &PreparedModel,
        mut conformed: Conformed,
        deadline: Deadline,
    ) -> (Result<TensorMap, InferError>, Duration) {
        let timed = self.primary_self_timed;
        let parts = std::mem::take(&mut conformed.parts);
        let (mut answers, mut took) = (Vec::with_capacity(parts.len()), Duration::ZERO);
        for part in parts {
            let (result, t) = self.attempt(name, (engine, engine.name()), model, part, deadline, timed).await;
            took += t;
            match result {
                Ok(a) => answers.push(a),
                Err(e) => return (Err(e), took),
            }
        }
        (conformed.join(answers), took)
    }

    pub(super) async fn run_fallback(
        &self,
        r: &Routed,
        inputs: TensorMap,
        deadline: Deadline,
        reason: Option<FallbackReason>,
    ) -> Result<(TensorMap, String), InferError> {
        let (Some(engine), Some(model)) = (&self.fallback, &r.fallback) else {
            let why = reason.map_or_else(|| "no engine".to_owned(), |r| r.to_string());
            let message =
                format!("model `{}`: {why}; {}", r.name, r.fallback_missing.as_deref().unwrap_or("no fallback"));
            self.telemetry.event(Some(&r.name), EventKind::NoFallback { message: message.clone() });
            return Err(InferError::Unavailable { message });
        };
        let label = r.fallback_label.as_str();
        if let Some(reason) = reason {
            self.telemetry.record_fallback(&r.name, &self.primary_label(), label, reason);
        }
        // Images come as Core ML takes them; Candle gets them preprocessed as the model does.
        let inputs = r.images.to_candle(inputs)?;
        let (result, _) = self.attempt(&r.name, (engine, label), model, inputs, deadline, false).await;
        if result.is_ok() {
            self.telemetry.record_served(&r.name, label);
        }
        result.map(|out| (out, label.to_owned()))
    }

    pub(super) async fn route(
        &self,
        r: &Routed,
        inputs: TensorMap,
        deadline: Deadline,
    ) -> Result<(TensorMap, String), InferError> {
        self.drain_health();
        if r.primary.is_preparing() && r.fallback.is_none() {
            // Nothing else can serve it: wait for Core ML, within the deadline.
            r.primary.settled(Some(deadline.instant())).await;
        }
        let primary_model = r.primary_model();
        let (Some(engine), Some(model)) = (self.primary_engine(), primary_model.as_ref()) else {
            // No Core ML side, Core ML still preparing it, or Core ML is out:
            // counted as a fallback (the event was logged once, at prepare,
            // when the outage began, or when the preparation failed).
            let down = primary_model.as_ref().and(self.primary_down_reason());
            let reason = match down {
                Some(message) => Some(FallbackReason::PrimaryUnavailable { message }),
                None if r.primary.is_preparing() => Some(FallbackReason::PrimaryPreparing),
                None => r.primary_missing(),
            };
            if let (Some(reason), Some(_)) = (&reason, &self.fallback) {
                self.telemetry.count_fallback(&r.name, &self.primary_label(), reason);
            }
            let said = if self.fallback.is_none() { reason } else { None };
            return self.run_fallback(r, inputs, deadline, said).await;
        };
        // The request in the package's form (ids narrowed, sequences padded,
        // a batch split into rows): before the breaker, so a request Core ML
        // cannot take blames nobody and goes to the fallback.
        let keep = r.fallback.as_ref().map(|_| inputs.clone());
        let conformed = match Conformed::to(&model.schema, inputs) {
            Ok(c) => c,
            Err(e) => {
                let Some(inputs) = keep else { return Err(InferError::Invalid(e)) };
                let message = format!("the Core ML model cannot take this request: {e}");
                let reason = FallbackReason::PrimaryFailed { kind: FailureKind::SchemaMismatch, message };
                return self.run_fallback(r, inputs, deadline, Some(reason)).await;
            }
        };
        let forced = self.force.current().contains(&r.name);
        let (admission, transitions) = r.breaker().admit(self.clock.now(), forced);
        self.apply_transitions(r, transitions);
        let ticket = match admission {
            // (Without a fallback `keep` is empty: `run_fallback` only says there is none.)
            Admission::Fallback { reason } => {
                return self.run_fallback(r, keep.unwrap_or_default(), deadline, Some(reason)).await;
            }
            // Given back if this future is dropped before the outcome is known.
            Admission::Primary { ticket } => TicketGuard { routed: r, ticket: Some(ticket) },
        };
        let mut ticket = ticket;
        // Leave the fallback time to answer if Core ML fails.
        let reserve = match &r.fallback {
            Some(f) => (f.sla.infer_p99 * 2).max(MIN_FALLBACK_RESERVE).min(deadline.remaining() / 2),
            None => Duration::ZERO,
        };
        let primary_deadline = Deadline::after(deadline.remaining().saturating_sub(reserve));
        let (result, took) = self.attempt_conformed(&r.name, &engine, model, conformed, primary_deadline).await;
        let outcome = match &result {
            Ok(_) => Some(Outcome::success(took)),
            // It never reached the helper (it waited in the queue or for a
            // restart, or Core ML is out): not this model's doing.
            Err(e) if !reached_helper(e) => None,
            Err(e) => Some(Outcome::failure(FailureKind::of_infer_error(e), took)),
        };
        if let Some(outcome) = outcome {
            let transitions = ticket.record(outcome, self.clock.now());
            self.apply_transitions(r, transitions);
        }
        drop(ticket);
        self.drain_health();
        match result {
            Ok(out) => {
                self.telemetry.record_served(&r.name, engine.name());
                Ok((out, engine.name().to_owned()))
            }
            Err(e) => {
                let kind = FailureKind::of_infer_error(&e);
                match keep {
                    Some(inputs) => {
                        let reason = FallbackReason::PrimaryFailed { kind, message: e.to_string() };
                        self.run_fallback(r, inputs, deadline, Some(reason)).await
                    }
                    None => {
                        let message = format!(
                            "model `{}`: Core ML failed ({kind}): {e}; {}",
                            r.name,
                            r.fallback_missing.as_deref().unwrap_or("no fallback")
                        );
                        self.telemetry.event(Some(&r.name), EventKind::NoFallback { message });
                        Err(e)
                    }
                }
            }
        }
    }
}

/// A breaker ticket held while a request is on the primary. Dropped without
/// an outcome (the caller gave up: a `tokio::time::timeout`, a client that
/// disconnected), it is given back, so a half-open breaker never waits for a
/// probe nobody will finish.
struct TicketGuard<'a> {
    routed: &'a Routed,
    ticket: Option<Ticket>,
}

impl TicketGuard<'_> {
    fn record(&mut self, outcome: Outcome, now: Duration) -> Vec<Transition> {
        match self.ticket.take() {
            Some(t) => self.routed.breaker().record(t, outcome, now),
            None => Vec::new(),
        }
    }
}

impl Drop for TicketGuard<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            self.routed.breaker().release(t);
        }
    }
}
