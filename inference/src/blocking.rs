//! A blocking facade for applications without an async runtime.
//!
//! ```
//! use std::time::Duration;
//! use coreml_inference::{double::DoubleEngine, BlockingEngine, Deadline, PrepareOptions, Tensor, TensorMap};
//!
//! let engine = BlockingEngine::new(DoubleEngine::new()).unwrap();
//! let dir = tempfile::tempdir().unwrap();
//! let artifact = engine.inner().write_artifact(dir.path()).unwrap();
//! let model = engine.prepare(&artifact, &PrepareOptions::default()).unwrap();
//! let x = TensorMap::new().with("x", Tensor::new(vec![2, 4], vec![1.0f32; 8]).unwrap());
//! let y = engine.infer(&model, x, Deadline::after(Duration::from_secs(1))).unwrap();
//! assert_eq!(y.f32("y").unwrap(), &[3.0; 8]);
//! assert_eq!(engine.capabilities(&model).unwrap().max_batch, 8);
//! engine.unload(&model).unwrap();
//! ```
//!
//! It owns a small runtime (one worker thread) or uses a handle you give it.
//! Calls made from a thread that is inside a Tokio runtime (including its
//! `spawn_blocking` threads) return [`Error::InsideAsyncRuntime`] instead of
//! deadlocking; use the async API there.

use std::future::Future;

use tokio::runtime::{Handle, Runtime};

use crate::artifact::ModelArtifact;
use crate::capability::CapabilityReport;
use crate::engine::{Deadline, InferenceEngine, PreparedModel};
use crate::error::Error;
use crate::options::PrepareOptions;
use crate::tensor_map::TensorMap;

enum Exec {
    Owned(Runtime),
    Shared(Handle),
}

/// Wraps any engine with blocking methods. See the module docs.
pub struct BlockingEngine<E> {
    engine: E,
    exec: Exec,
}

impl<E: InferenceEngine> BlockingEngine<E> {
    /// Wraps `engine` with a runtime of its own.
    pub fn new(engine: E) -> Result<Self, Error> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("coreml-inference-blocking")
            .enable_all()
            .build()
            .map_err(|e| Error::Runtime(e.to_string()))?;
        Ok(Self {
            engine,
            exec: Exec::Owned(rt),
        })
    }

    /// Wraps `engine`, running on an existing runtime (from threads outside it).
    ///
    /// The runtime must be multi-threaded, or have another thread inside its
    /// `Runtime::block_on`: a current-thread runtime's timers are driven only
    /// by that, so engines that sleep or time out would hang.
    pub fn with_handle(engine: E, handle: Handle) -> Self {
        Self {
            engine,
            exec: Exec::Shared(handle),
        }
    }

    /// The wrapped engine.
    pub fn inner(&self) -> &E {
        &self.engine
    }

    /// Unwraps the engine (the owned runtime shuts down).
    pub fn into_inner(self) -> E {
        self.engine
    }

    fn run<T>(&self, fut: impl Future<Output = T>) -> Result<T, Error> {
        if Handle::try_current().is_ok() {
            return Err(Error::InsideAsyncRuntime);
        }
        Ok(match &self.exec {
            Exec::Owned(rt) => rt.block_on(fut),
            Exec::Shared(h) => h.block_on(fut),
        })
    }

    /// Blocking [`InferenceEngine::prepare`].
    pub fn prepare(
        &self,
        artifact: &ModelArtifact,
        options: &PrepareOptions,
    ) -> Result<PreparedModel, Error> {
        Ok(self.run(self.engine.prepare(artifact, options))??)
    }

    /// Blocking [`InferenceEngine::infer`].
    pub fn infer(
        &self,
        model: &PreparedModel,
        inputs: TensorMap,
        deadline: Deadline,
    ) -> Result<TensorMap, Error> {
        Ok(self.run(self.engine.infer(model, inputs, deadline))??)
    }

    /// Blocking [`InferenceEngine::capabilities`].
    pub fn capabilities(&self, model: &PreparedModel) -> Result<CapabilityReport, Error> {
        Ok(self.run(self.engine.capabilities(model))??)
    }

    /// Blocking [`InferenceEngine::unload`].
    pub fn unload(&self, model: &PreparedModel) -> Result<(), Error> {
        Ok(self.run(self.engine.unload(model))??)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::double::DoubleEngine;

    /// Runs `f` on a thread and fails if it takes longer than 30 s.
    fn with_watchdog(f: impl FnOnce() + Send + 'static) {
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            f();
            let _ = tx.send(());
        });
        match rx.recv_timeout(std::time::Duration::from_secs(30)) {
            Ok(()) => t.join().expect("test thread"),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                t.join().expect("test thread panicked")
            }
            Err(e) => panic!("watchdog: test hung ({e})"),
        }
    }

    #[test]
    fn refuses_to_block_inside_a_runtime() {
        with_watchdog(|| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let engine = BlockingEngine::with_handle(DoubleEngine::new(), rt.handle().clone());
            let dir = tempfile::tempdir().unwrap();
            let artifact = engine.inner().write_artifact(dir.path()).unwrap();
            let inside =
                rt.block_on(async { engine.prepare(&artifact, &PrepareOptions::default()) });
            assert_eq!(inside.unwrap_err(), Error::InsideAsyncRuntime);
            // From outside, the shared handle works.
            let model = engine
                .prepare(&artifact, &PrepareOptions::default())
                .unwrap();
            assert_eq!(model.engine, "double");
        });
    }

    #[test]
    fn owned_runtime_serves_several_threads() {
        with_watchdog(|| {
            let engine = std::sync::Arc::new(BlockingEngine::new(DoubleEngine::new()).unwrap());
            let dir = tempfile::tempdir().unwrap();
            let artifact = engine.inner().write_artifact(dir.path()).unwrap();
            let model = engine
                .prepare(&artifact, &PrepareOptions::default())
                .unwrap();
            let threads: Vec<_> = (0..4)
                .map(|i| {
                    let (engine, model) = (engine.clone(), model.clone());
                    std::thread::spawn(move || {
                        let x = TensorMap::new().with(
                            "x",
                            crate::Tensor::new(vec![1, 4], vec![i as f32; 4]).unwrap(),
                        );
                        let d = Deadline::after(std::time::Duration::from_secs(5));
                        engine
                            .infer(&model, x, d)
                            .unwrap()
                            .f32("y")
                            .unwrap()
                            .to_vec()
                    })
                })
                .collect();
            for (i, t) in threads.into_iter().enumerate() {
                assert_eq!(t.join().unwrap(), vec![2.0 * i as f32 + 1.0; 4]);
            }
            assert_eq!(engine.inner().execute_calls(), 4);
        });
    }
}
