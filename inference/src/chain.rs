//! [`EngineChain`]: one engine made of several, tried in order at `prepare`:
//! the first that can take the artifact serves the model. The router's
//! fallback is such a chain: the hand-written Candle model when there is
//! one, else the MIL executor on the `.mlpackage` itself.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use coreml_inference::chain::EngineChain;
//! use coreml_inference::double::DoubleEngine;
//! use coreml_inference::{Deadline, InferenceEngine, PrepareOptions, Tensor, TensorMap};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let chain = EngineChain::new("cpu", vec![Arc::new(DoubleEngine::named("mil"))]);
//! let dir = tempfile::tempdir().unwrap();
//! let artifact = DoubleEngine::new().write_artifact(dir.path()).unwrap();
//! let model = chain.prepare(&artifact, &PrepareOptions::default()).await.unwrap();
//! assert_eq!(model.engine, "cpu");
//! assert_eq!(chain.member_of(&model).as_deref(), Some("mil"));
//! let x = TensorMap::new().with("x", Tensor::new(vec![1, 4], vec![0.0f32; 4]).unwrap());
//! let y = chain.infer(&model, x, Deadline::after(Duration::from_secs(1))).await.unwrap();
//! assert_eq!(y.f32("y").unwrap(), &[1.0; 4]);
//! assert_eq!(chain.capabilities(&model).await.unwrap().engine, "mil");
//! # });
//! ```
//!
//! An engine passes a model on when it answers `UnsupportedArchitecture` or
//! `UnsupportedFormat`; any other error ends `prepare` with that error. The
//! chain validates inputs against the serving engine's schema (it is the
//! model's schema), and its handle maps to the serving engine's handle.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;

use crate::artifact::ModelArtifact;
use crate::capability::CapabilityReport;
use crate::engine::{Deadline, InferenceEngine, ModelId, PreparedModel};
use crate::error::{CapabilityError, InferError, PrepareError, UnloadError};
use crate::options::PrepareOptions;
use crate::schema::Validated;
use crate::tensor_map::TensorMap;

/// See the module docs.
pub struct EngineChain {
    name: String,
    engines: Vec<Arc<dyn InferenceEngine>>,
    next_id: AtomicU64,
    /// Chain id -> (member index, the member's handle).
    models: RwLock<HashMap<ModelId, (usize, PreparedModel)>>,
}

impl EngineChain {
    /// A chain named `name` over `engines`, tried in this order.
    pub fn new(name: impl Into<String>, engines: Vec<Arc<dyn InferenceEngine>>) -> Self {
        Self {
            name: name.into(),
            engines,
            next_id: AtomicU64::new(1),
            models: RwLock::new(HashMap::new()),
        }
    }

    fn member(&self, id: ModelId) -> Option<(Arc<dyn InferenceEngine>, PreparedModel)> {
        let models = self
            .models
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        models
            .get(&id)
            .map(|(i, m)| (self.engines[*i].clone(), m.clone()))
    }

    /// The name of the engine that serves `model`.
    pub fn member_of(&self, model: &PreparedModel) -> Option<String> {
        self.member(model.id).map(|(e, _)| e.name().to_owned())
    }
}

#[async_trait]
impl InferenceEngine for EngineChain {
    fn name(&self) -> &str {
        &self.name
    }

    async fn prepare(
        &self,
        artifact: &ModelArtifact,
        options: &PrepareOptions,
    ) -> Result<PreparedModel, PrepareError> {
        let mut first_refusal = None;
        for (i, engine) in self.engines.iter().enumerate() {
            match engine.prepare(artifact, options).await {
                Ok(m) => {
                    let id = ModelId(self.next_id.fetch_add(1, Ordering::SeqCst));
                    let outer = PreparedModel {
                        engine: self.name.clone(),
                        id,
                        ..m.clone()
                    };
                    self.models
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(id, (i, m));
                    return Ok(outer);
                }
                Err(
                    e @ (PrepareError::UnsupportedArchitecture { .. }
                    | PrepareError::UnsupportedFormat { .. }),
                ) => {
                    first_refusal.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        // Nobody takes it: the first engine's reason (the most specific one).
        Err(first_refusal.unwrap_or(PrepareError::UnsupportedFormat {
            engine: self.name.clone(),
            format: artifact.format,
        }))
    }

    async fn execute(
        &self,
        model: &PreparedModel,
        inputs: Validated,
        deadline: Deadline,
    ) -> Result<TensorMap, InferError> {
        let (engine, inner) = self
            .member(model.id)
            .ok_or(InferError::UnknownModel { model: model.id })?;
        engine.execute(&inner, inputs, deadline).await
    }

    async fn capabilities(
        &self,
        model: &PreparedModel,
    ) -> Result<CapabilityReport, CapabilityError> {
        let (engine, inner) = self
            .member(model.id)
            .ok_or(CapabilityError::UnknownModel { model: model.id })?;
        engine.capabilities(&inner).await
    }

    async fn unload(&self, model: &PreparedModel) -> Result<(), UnloadError> {
        let removed = self
            .models
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&model.id);
        let (i, inner) = removed.ok_or(UnloadError::UnknownModel { model: model.id })?;
        self.engines[i].unload(&inner).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::double::DoubleEngine;
    use crate::{ModelFormat, Tensor};

    /// An engine with no implementation of anything.
    struct Refuses;

    #[async_trait]
    impl InferenceEngine for Refuses {
        fn name(&self) -> &str {
            "candle"
        }
        async fn prepare(
            &self,
            _: &ModelArtifact,
            _: &PrepareOptions,
        ) -> Result<PreparedModel, PrepareError> {
            Err(PrepareError::UnsupportedArchitecture {
                engine: "candle".into(),
                architecture: "none".into(),
                known: vec![],
            })
        }
        async fn execute(
            &self,
            m: &PreparedModel,
            _: Validated,
            _: Deadline,
        ) -> Result<TensorMap, InferError> {
            Err(InferError::UnknownModel { model: m.id })
        }
        async fn capabilities(
            &self,
            m: &PreparedModel,
        ) -> Result<CapabilityReport, CapabilityError> {
            Err(CapabilityError::UnknownModel { model: m.id })
        }
        async fn unload(&self, m: &PreparedModel) -> Result<(), UnloadError> {
            Err(UnloadError::UnknownModel { model: m.id })
        }
    }

    fn x(width: usize) -> TensorMap {
        TensorMap::new().with(
            "x",
            Tensor::new(vec![1, width], vec![0.0f32; width]).unwrap(),
        )
    }

    #[tokio::test]
    async fn the_next_engine_takes_what_the_first_has_no_implementation_of() {
        let mil = Arc::new(DoubleEngine::named("mil"));
        let chain = EngineChain::new("cpu", vec![Arc::new(Refuses), mil.clone()]);
        let dir = tempfile::tempdir().unwrap();
        let artifact = DoubleEngine::new().write_artifact(dir.path()).unwrap();
        let model = chain
            .prepare(&artifact, &PrepareOptions::default())
            .await
            .unwrap();
        assert_eq!(chain.member_of(&model).as_deref(), Some("mil"));
        let deadline = || Deadline::after(Duration::from_secs(5));
        chain.infer(&model, x(4), deadline()).await.unwrap();
        assert_eq!(mil.execute_calls(), 1);
        // The serving engine's schema validates: a wrong width never reaches it.
        let e = chain.infer(&model, x(3), deadline()).await.unwrap_err();
        assert!(matches!(e, InferError::Invalid(_)), "{e:?}");
        assert_eq!(mil.execute_calls(), 1);
        chain.unload(&model).await.unwrap();
        assert_eq!(mil.loaded(), 0);
        assert!(matches!(
            chain.unload(&model).await,
            Err(UnloadError::UnknownModel { .. })
        ));
    }

    #[tokio::test]
    async fn when_no_engine_takes_it_the_first_reason_is_returned() {
        let chain = EngineChain::new(
            "cpu",
            vec![Arc::new(Refuses), Arc::new(DoubleEngine::named("mil"))],
        );
        let pkg = ModelArtifact::new(ModelFormat::MlPackage, "m.mlpackage");
        let e = chain
            .prepare(&pkg, &PrepareOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(e, PrepareError::UnsupportedArchitecture { ref engine, .. } if engine == "candle"),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn other_errors_stop_the_chain() {
        let second = Arc::new(DoubleEngine::named("second"));
        let chain = EngineChain::new(
            "cpu",
            vec![Arc::new(DoubleEngine::named("first")), second.clone()],
        );
        let dir = tempfile::tempdir().unwrap();
        let artifact = DoubleEngine::new().write_artifact(dir.path()).unwrap();
        std::fs::write(&artifact.path, b"not safetensors").unwrap();
        let artifact = ModelArtifact::from_path(&artifact.path).unwrap();
        let e = chain
            .prepare(&artifact, &PrepareOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(e, PrepareError::InvalidModel { .. }), "{e:?}");
        assert_eq!(second.loaded(), 0);
    }
}
