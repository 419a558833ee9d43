//! Serving prepared models: [`InferenceEngine`] for the Core ML engine
//! (execute through shared memory or a pool, capabilities from the helper's
//! reports, unload).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use coreml_inference::{
    async_trait, CapabilityError, CapabilityReport, Deadline, InferError, InferenceEngine, ModelArtifact, PrepareError,
    PrepareOptions, PreparedModel, Tensor, TensorMap, UnloadError, Validated,
};
use coreml_supervisor::pool::PoolError;
use coreml_supervisor::ImageBytes;

use crate::coreml::image::{from_pixels, to_pixels};
use crate::coreml::pooled::pool_error;
use crate::health::HealthEvent;
use crate::taxonomy::{tagged, FailureKind};
use crate::telemetry::latency::Stage;

use super::{CoreMlEngine, COREML_ENGINE};

#[async_trait]
impl InferenceEngine for CoreMlEngine {
    fn name(&self) -> &str {
        COREML_ENGINE
    }

    async fn prepare(&self, artifact: &ModelArtifact, options: &PrepareOptions) -> Result<PreparedModel, PrepareError> {
        let budget = options.prepare_budget.unwrap_or(Duration::from_secs(15 * 60));
        tokio::time::timeout(budget, self.prepare_inner(artifact, options, budget))
            .await
            .unwrap_or(Err(PrepareError::DeadlineExceeded { budget }))
    }

    async fn execute(
        &self,
        model: &PreparedModel,
        inputs: Validated,
        deadline: Deadline,
    ) -> Result<TensorMap, InferError> {
        let (domain, sup_id, name, schema, images, pool) = {
            let m = self.models();
            let l = m.get(&model.id).ok_or(InferError::UnknownModel { model: model.id })?;
            (l.domain.clone(), l.sup_id, l.name.clone(), l.schema.clone(), l.images.clone(), l.pool.clone())
        };
        let inputs = inputs.into_inner();
        // Image inputs: the caller's HWC image in the model's pixel format, at the image's own
        // size (a flexible feature's sizes are checked by the supervisor).
        let mut pixels = HashMap::new();
        for s in &schema.inputs {
            if let (Some(image), Some(t)) = (images.get(&s.name), inputs.get(&s.name)) {
                let sized = match t.shape() {
                    &[h, w, _] => image.with_size(w as u64, h as u64),
                    _ => *image,
                };
                let bytes = to_pixels(t, &sized).map_err(|e| InferError::Backend {
                    message: tagged(FailureKind::SchemaMismatch, format!("input `{}`: {e}", s.name)),
                })?;
                pixels.insert(s.name.clone(), (bytes, sized));
            }
        }
        let named: Vec<(&str, &[u8])> = schema
            .inputs
            .iter()
            .filter(|s| !pixels.contains_key(&s.name))
            .filter_map(|s| inputs.get(&s.name).map(|t| (s.name.as_str(), t.as_bytes())))
            .collect();
        let given: Vec<(&str, ImageBytes<'_>)> = pixels
            .iter()
            .map(|(n, (b, i))| {
                let row = (i.width * i.pixel_format.bytes_per_pixel()) as usize;
                (n.as_str(), ImageBytes::new(b, row).sized(i.width, i.height))
            })
            .collect();
        let requests = &domain.requests;
        requests.in_flight.fetch_add(1, Ordering::SeqCst);
        let result = match &pool {
            Some(pool) => pool.predict_images(&named, &given, deadline.remaining()).await,
            None => {
                domain.sup.predict_images(sup_id, &named, &given, deadline.remaining()).await.map_err(PoolError::from)
            }
        };
        requests.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let Some(bytes) = domain.sample_memory() {
            self.health.push(HealthEvent::Memory { bytes, domain: Some(domain.scope()) });
        }
        let (fast, slow) =
            self.running_domains().iter().map(|d| d.sup.reply_lanes()).fold((0, 0), |(f, s), (a, b)| (f + a, s + b));
        self.telemetry.set_helper_replies(fast, slow);
        if let Err(PoolError::Supervisor(e)) = &result {
            if e.killed_helper() {
                let now = requests.epoch.elapsed().as_millis() as u64 + 1;
                requests.last_death_ms.store(now, Ordering::SeqCst);
            }
        }
        let prediction = result.map_err(pool_error)?;
        for (stage, us) in [
            (Stage::MarshalIn, prediction.marshal_in_us),
            (Stage::Predict, prediction.predict_us),
            (Stage::MarshalOut, prediction.marshal_out_us),
        ] {
            self.telemetry.record_stage(&name, COREML_ENGINE, stage, Duration::from_micros(us));
        }
        let mut out = TensorMap::new();
        for spec in &schema.outputs {
            let o = prediction.output(&spec.name).ok_or_else(|| InferError::Backend {
                message: tagged(FailureKind::SchemaMismatch, format!("no output `{}`", spec.name)),
            })?;
            let shape: Vec<usize> = o.shape().iter().map(|&d| d as usize).collect();
            let t = match images.get(&spec.name) {
                Some(image) => from_pixels(&o.to_vec(), image),
                None => Tensor::from_bytes(spec.dtype, shape, &o.to_vec()).map_err(|e| e.to_string()),
            }
            .map_err(|e| InferError::Backend { message: tagged(FailureKind::SchemaMismatch, e) })?;
            out.insert(spec.name.clone(), t);
        }
        Ok(out)
    }

    async fn capabilities(&self, model: &PreparedModel) -> Result<CapabilityReport, CapabilityError> {
        let m = self.models();
        let l = m.get(&model.id).ok_or(CapabilityError::UnknownModel { model: model.id })?;
        let mut r = CapabilityReport::new(COREML_ENGINE, l.device, l.requested, l.actual);
        r.dtypes = l.schema.inputs.iter().map(|s| s.dtype).collect();
        r.max_batch = l.schema.max_batch().max(1);
        r.neural_engine_coverage = l.coverage;
        let snap = self.telemetry.snapshot();
        let p99 = |stage: Stage| {
            snap.model(&l.name)
                .and_then(|s| s.engine(COREML_ENGINE))
                .and_then(|e| e.stages.get(stage.name()))
                .map(|s| Duration::from_micros(s.p99_us))
        };
        r.compile_p99 = p99(Stage::Load);
        r.infer_p99 = p99(Stage::Predict);
        Ok(r)
    }

    async fn unload(&self, model: &PreparedModel) -> Result<(), UnloadError> {
        let l = self.models().remove(&model.id).ok_or(UnloadError::UnknownModel { model: model.id })?;
        let result = match &l.pool {
            Some(pool) => {
                pool.unload().await;
                Ok(())
            }
            None => l.domain.sup.unload(l.sup_id).await.map_err(|e| UnloadError::Backend { message: e.to_string() }),
        };
        self.leave_domain(&l.domain, &l.name).await;
        result
    }
}
