//! Preparing a model on the Core ML engine: its isolation domain, compile
//! through the cache, load within the prepare deadline, the compute plan, and
//! the extra instances of a pool.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coreml_inference::{
    CacheKey, DeviceClass, IoSchema, ModelArtifact, ModelId, OpCoverage, PrepareError, PrepareOptions, PreparedModel,
    Sha256Digest, SlaEstimate,
};
use coreml_supervisor::schema::Device;

use crate::coreml::compile::InstrumentStage;
use crate::coreml::convert::{prepare_error, spec_from_wire, units_from_wire, units_to_wire};
use crate::coreml::domain::Domain;
use crate::coreml::pooled::load_pool;
use crate::taxonomy::FailureKind;
use crate::telemetry::latency::Stage;

use super::{CoreMlEngine, Loaded, Membership, COREML_ENGINE};

impl CoreMlEngine {
    pub(super) async fn prepare_inner(
        &self,
        artifact: &ModelArtifact,
        options: &PrepareOptions,
        budget: Duration,
    ) -> Result<PreparedModel, PrepareError> {
        let start = Instant::now();
        let source = artifact.path.to_string_lossy().into_owned();
        if !source.starts_with("diag:") && !artifact.format.is_core_ml() {
            return Err(PrepareError::UnsupportedFormat { engine: COREML_ENGINE.into(), format: artifact.format });
        }
        let name = options.model_name.clone().unwrap_or_else(|| source.clone());
        let domain = self.domain_for(&name).await?;
        // Until the model is loaded, it holds its domain only through this
        // guard: a failure, or a caller that stops waiting (the future is
        // dropped), takes it out, and a domain left empty is shut down.
        let mut member = Membership { engine: self, domain: domain.clone(), model: name.clone(), kept: false };
        self.telemetry.set_domain(&name, &domain.name());
        let result = self.prepare_on(&domain, &name, artifact, options, start + budget, start).await;
        match &result {
            Ok(_) => member.kept = true,
            Err(_) => {
                member.kept = true;
                self.leave_domain(&domain, &name).await;
            }
        }
        result
    }

    async fn prepare_on(
        &self,
        domain: &Arc<Domain>,
        name: &str,
        artifact: &ModelArtifact,
        options: &PrepareOptions,
        deadline: Instant,
        start: Instant,
    ) -> Result<PreparedModel, PrepareError> {
        let name = name.to_owned();
        let sup = &domain.sup;
        let budget = deadline.saturating_duration_since(start);
        let bundle = self.bundle_for(sup, &name, artifact, options, deadline).await?;
        // Within what is left of the prepare budget and the domain's load
        // budget: past it the supervisor kills this domain's helper.
        let left = deadline.saturating_duration_since(Instant::now());
        let info = sup
            .load_with_deadline(&bundle, Some(units_to_wire(options.compute_units)), left)
            .instrument_stage(Stage::Load, &name)
            .await
            .map_err(|e| {
                self.telemetry.record_failure(&name, COREML_ENGINE, FailureKind::LoadError);
                prepare_error(e, budget)
            })?;
        self.telemetry.record_stage(&name, COREML_ENGINE, Stage::Load, Duration::from_micros(info.load_us));
        let specs = |v: &[coreml_supervisor::schema::TensorSpec]| {
            v.iter()
                .map(spec_from_wire)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|m| PrepareError::InvalidModel { message: m })
        };
        let schema = IoSchema::new(specs(&info.inputs)?, specs(&info.outputs)?);
        let images =
            info.inputs.iter().chain(&info.outputs).filter_map(|s| s.image.map(|i| (s.name.clone(), i))).collect();
        let actual = units_from_wire(info.compute_units);
        self.telemetry.set_compute_units(&name, COREML_ENGINE, options.compute_units, Some(actual));
        let (coverage, device) = match sup.compute_plan(info.id).await {
            Ok(plan) => {
                self.telemetry.set_ne_coverage(&name, COREML_ENGINE, plan.ne_coverage, plan.unavailable_reason.clone());
                let known: Vec<_> = plan.ops.iter().filter_map(|o| o.preferred).collect();
                let on_ne = known.iter().filter(|d| **d == Device::NeuralEngine).count() as u32;
                let device =
                    match (known.is_empty(), on_ne as usize == known.len(), known.iter().all(|d| *d == Device::Cpu)) {
                        (true, ..) => DeviceClass::Unknown,
                        (false, true, _) => DeviceClass::NeuralEngine,
                        (false, _, true) => DeviceClass::Cpu,
                        _ => DeviceClass::Mixed,
                    };
                (
                    (!known.is_empty()).then_some(OpCoverage { on_neural_engine: on_ne, total: known.len() as u32 }),
                    device,
                )
            }
            Err(e) => {
                self.telemetry.set_ne_coverage(&name, COREML_ENGINE, None, Some(format!("compute plan: {e}")));
                (None, DeviceClass::Unknown)
            }
        };
        let sup_id = info.id;
        let pool = match self.pool {
            Some(cfg) => {
                let units = Some(units_to_wire(options.compute_units));
                Some(Arc::new(load_pool(sup, &bundle, units, info, cfg, deadline, budget).await?))
            }
            None => None,
        };
        let id = ModelId(self.next_id.fetch_add(1, Ordering::SeqCst));
        let digest = Sha256Digest::of_bytes(bundle.as_bytes());
        let loaded = Loaded {
            domain: domain.clone(),
            sup_id,
            name,
            schema: schema.clone(),
            requested: options.compute_units,
            actual,
            coverage,
            device,
            images,
            pool,
        };
        self.models().insert(id, loaded);
        let expected = options.infer_budget.unwrap_or(Duration::from_millis(10));
        Ok(PreparedModel {
            engine: COREML_ENGINE.into(),
            id,
            cache_key: CacheKey::derive(COREML_ENGINE, &digest, options),
            schema,
            sla: SlaEstimate { prepare_time: start.elapsed(), infer_p50: expected, infer_p99: expected * 2 },
        })
    }
}
