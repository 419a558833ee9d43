//! The Core ML engine: [`InferenceEngine`] over the supervisor. Compile →
//! cache install → load → predict through shared memory; the helper's
//! timings, compute plan and health go to the telemetry and the router.
//!
//! ```no_run
//! use std::sync::Arc;
//! use coreml_bridge::coreml::engine::{CoreMlEngine, CoreMlOptions};
//! use coreml_bridge::health::HealthBus;
//! use coreml_bridge::telemetry::Telemetry;
//! use coreml_supervisor::{HelperCommand, SupervisorConfig};
//!
//! # async fn demo() {
//! let telemetry = Arc::new(Telemetry::new());
//! let health = HealthBus::new();
//! let cfg = SupervisorConfig::new(HelperCommand::new("/usr/local/libexec/coreml-helper"));
//! match CoreMlEngine::start(cfg, CoreMlOptions::default(), telemetry, health).await {
//!     Ok(engine) => println!("Core ML helper up: {}", engine.identity()),
//!     Err(reason) => println!("Core ML unavailable: {reason}"),
//! }
//! # }
//! ```
//!
//! A helper that reports no Core ML (`coreml_version: nil`, e.g. the Swift
//! helper on Linux) is refused at start, unless it is a diagnostic helper
//! (`engine: "diagnostic"`), which serves only `diag:` models.
//!
//! Models run in isolation domains ([`CoreMlOptions::domains`], one helper
//! per model by default; see [`crate::coreml::domain_policy`]): each domain
//! is its own supervised helper with its own `SupervisorConfig` (memory
//! limit, restart budget), so a hang, crash, memory kill or protocol
//! violation affects only the models of its domain.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coreml_inference::{DeviceClass, IoSchema, ModelId, OpCoverage, PrepareError};
use coreml_supervisor::pool::{ModelPool, PoolConfig};
use coreml_supervisor::schema::ImageSpec;
use coreml_supervisor::{Supervisor, SupervisorConfig};

use crate::coreml::domain::Domain;
use crate::coreml::domain_policy::{DomainPolicy, SHARED_DOMAIN};
use crate::coreml::model_cache::ModelCache;
use crate::coreml::revive::Backoff;
use crate::health::HealthBus;
use crate::taxonomy::{tagged, FailureKind};
use crate::telemetry::Telemetry;

mod prepare;
mod serve;

/// The engine's name.
pub const COREML_ENGINE: &str = "coreml";

/// Options of the engine besides the supervisor's.
#[derive(Debug, Clone)]
pub struct CoreMlOptions {
    /// Compiled-model cache directory (default: `$COREML_BRIDGE_CACHE/compiled`
    /// or `~/.cache/coreml-bridge/compiled`).
    pub cache_dir: Option<PathBuf>,
    /// Directories holding the models to compile. The helper is sandboxed before
    /// it sees its first request (Landlock on Linux, Seatbelt on macOS), so it can
    /// read a model only under one of these (or in the cache): each is added to
    /// the sandbox's read-only paths.
    pub model_dirs: Vec<PathBuf>,
    /// After the supervisor gives up on its helper (restart budget spent),
    /// the first wait before a fresh helper is tried; doubles after each
    /// failed try (default 1 s).
    pub revive_after: Duration,
    /// The longest wait between tries (default 5 min).
    pub revive_max: Duration,
    /// Which models share a helper (default: one helper per model).
    pub domains: DomainPolicy,
    /// The supervisor configuration of named domains (memory limit, restart
    /// budget, deadlines); other domains use the one given to `start`.
    pub domain_configs: BTreeMap<String, SupervisorConfig>,
    /// Several loaded instances of every model behind a bounded queue
    /// ([`crate::coreml::pooled`]): up to `instances` predictions of a model run
    /// at once, `queue` more wait (within their deadlines), and one more is
    /// turned away at once with `Unavailable` (the router answers it on the CPU).
    /// `None` (the default): one instance, no queue of its own.
    pub pool: Option<PoolConfig>,
}

impl Default for CoreMlOptions {
    fn default() -> Self {
        Self {
            cache_dir: None,
            model_dirs: Vec::new(),
            revive_after: Duration::from_secs(1),
            revive_max: Duration::from_secs(300),
            domains: DomainPolicy::default(),
            domain_configs: BTreeMap::new(),
            pool: None,
        }
    }
}

struct Loaded {
    domain: Arc<Domain>,
    sup_id: coreml_supervisor::ModelId,
    name: String,
    schema: IoSchema,
    requested: coreml_inference::ComputeUnits,
    actual: coreml_inference::ComputeUnits,
    coverage: Option<OpCoverage>,
    device: DeviceClass,
    /// Image features (protocol 2.1), by name: inputs converted to the pixel format, outputs
    /// back to HWC RGB.
    images: HashMap<String, ImageSpec>,
    /// The instances when [`CoreMlOptions::pool`] is set (`sup_id` is the first).
    pool: Option<Arc<ModelPool>>,
}

/// See the module docs.
pub struct CoreMlEngine {
    pub(crate) cache: ModelCache,
    pub(crate) telemetry: Arc<Telemetry>,
    health: Arc<HealthBus>,
    models: Mutex<HashMap<ModelId, Loaded>>,
    next_id: AtomicU64,
    identity: String,
    /// The helper started by `start`; the first domain that needs a helper
    /// with the default configuration takes it.
    first: Arc<Domain>,
    first_taken: AtomicBool,
    domains: Mutex<BTreeMap<String, Arc<Domain>>>,
    starting: tokio::sync::Mutex<()>,
    policy: DomainPolicy,
    base: SupervisorConfig,
    domain_configs: BTreeMap<String, SupervisorConfig>,
    model_dirs: Vec<PathBuf>,
    revival: Backoff,
    pool: Option<PoolConfig>,
}

pub use crate::coreml::domain::MEMORY_SAMPLE_EVERY;

/// A model's place in its domain while it is being prepared: dropped
/// before it is kept (the prepare future was dropped by a caller that
/// stopped waiting), it takes the model out and shuts the domain's helper
/// down if no model is left in it.
struct Membership<'a> {
    engine: &'a CoreMlEngine,
    domain: Arc<Domain>,
    model: String,
    kept: bool,
}

impl Drop for Membership<'_> {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let Some(d) = self.engine.detach(&self.domain, &self.model) else { return };
        tracing::info!(target: "coreml_bridge::coreml", domain = d.name(), model = self.model, "preparation cut off: domain helper shut down");
        // Without a runtime to wait in, dropping the last handle of its
        // supervisor kills the helper's process group.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { d.sup.shutdown().await });
        }
    }
}

/// A configuration with the cache's staging directory and the sandbox's
/// read paths (the cache, the model directories).
fn with_cache(
    mut cfg: SupervisorConfig,
    cache: &ModelCache,
    model_dirs: &[PathBuf],
) -> Result<SupervisorConfig, String> {
    cfg.staging_dir = cache.staging_dir().map_err(|e| format!("staging directory: {e}"))?;
    cfg.sandbox = cfg.sandbox.read_write(cache.root());
    for d in model_dirs {
        cfg.sandbox = cfg.sandbox.read_only(d);
    }
    Ok(cfg)
}

fn default_cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("COREML_BRIDGE_CACHE") {
        return PathBuf::from(d).join("compiled");
    }
    let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
    home.join(".cache/coreml-bridge/compiled")
}

impl CoreMlEngine {
    /// Starts the helper. `Err` says, in one line, why Core ML cannot serve.
    pub async fn start(
        cfg: SupervisorConfig,
        options: CoreMlOptions,
        telemetry: Arc<Telemetry>,
        health: Arc<HealthBus>,
    ) -> Result<Self, String> {
        let cache = ModelCache::open(options.cache_dir.unwrap_or_else(default_cache_dir))
            .map_err(|e| format!("compiled-model cache: {e}"))?;
        let base = with_cache(cfg, &cache, &options.model_dirs)?;
        let memory_limit = base.memory_limit;
        let revival = Backoff::new(options.revive_after, options.revive_max);
        let first_name = match options.domains {
            DomainPolicy::Shared => SHARED_DOMAIN,
            _ => "first",
        };
        let first = Domain::start(first_name, base.clone(), telemetry.clone(), health.clone(), revival.clone())
            .await
            .map_err(|e| format!("the helper did not start: {e}"))?;
        let sup = first.sup.clone();
        let hello = sup.hello().ok_or("the helper went away right after starting")?;
        let diagnostic = hello.engine == "diagnostic";
        if hello.coreml_version.is_none() && !diagnostic {
            sup.shutdown().await;
            return Err(format!(
                "the helper runs on {} {} ({}) where there is no Core ML",
                hello.os, hello.os_build, hello.chip
            ));
        }
        let identity = format!(
            "{} helper {} on {} {} ({}), Core ML {}, pid {}",
            hello.engine,
            hello.helper_version,
            hello.os,
            hello.os_build,
            hello.chip,
            hello.coreml_version.as_deref().unwrap_or("absent"),
            hello.pid
        );
        for key in cache.evict_mismatched(hello.coreml_version.as_deref().unwrap_or("none"), &hello.os_build) {
            tracing::info!(target: "coreml_bridge::coreml", key, "evicted stale compiled model");
        }
        telemetry.set_helper_identity(identity.clone());
        if memory_limit.is_some() {
            telemetry.set_helper_memory_limit(memory_limit);
        }
        tracing::info!(target: "coreml_bridge::coreml", policy = options.domains.describe(), "isolation domains");
        let mut domains = BTreeMap::new();
        let shared = options.domains == DomainPolicy::Shared;
        if shared {
            domains.insert(SHARED_DOMAIN.to_owned(), first.clone());
        }
        Ok(Self {
            cache,
            telemetry,
            health,
            models: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            identity,
            first,
            first_taken: AtomicBool::new(shared),
            domains: Mutex::new(domains),
            starting: tokio::sync::Mutex::new(()),
            policy: options.domains,
            base,
            domain_configs: options.domain_configs,
            model_dirs: options.model_dirs,
            revival,
            pool: options.pool,
        })
    }

    fn domains(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Domain>>> {
        self.domains.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The running domains.
    pub fn running_domains(&self) -> Vec<Arc<Domain>> {
        self.domains().values().cloned().collect()
    }

    /// The domain serving `model`, if it is prepared.
    pub fn domain_of(&self, model: &str) -> Option<Arc<Domain>> {
        self.models().values().find(|l| l.name == model).map(|l| l.domain.clone())
    }

    /// The domain of `model` (its helper started if it is not running yet),
    /// with `model` added to it under the domains' lock, so that a domain
    /// emptied meanwhile is never handed out.
    async fn domain_for(&self, model: &str) -> Result<Arc<Domain>, PrepareError> {
        let name = self.policy.domain_of(model);
        if let Some(d) = self.join_running(&name, model) {
            return Ok(d);
        }
        let _one_at_a_time = self.starting.lock().await;
        if let Some(d) = self.join_running(&name, model) {
            return Ok(d);
        }
        let custom = self.domain_configs.get(&name);
        let domain = if custom.is_none() && !self.first_taken.swap(true, Ordering::SeqCst) {
            self.first.rename(&name);
            self.first.clone()
        } else {
            let unavailable = |m: String| PrepareError::Unavailable {
                message: tagged(FailureKind::Unavailable, format!("domain `{name}`: {m}")),
            };
            let cfg = match custom {
                Some(c) => with_cache(c.clone(), &self.cache, &self.model_dirs).map_err(unavailable)?,
                None => self.base.clone(),
            };
            let d = Domain::start(&name, cfg, self.telemetry.clone(), self.health.clone(), self.revival.clone())
                .await
                .map_err(|e| unavailable(format!("the helper did not start: {e}")))?;
            tracing::info!(target: "coreml_bridge::coreml", domain = name, started_in = ?d.started_in(), "domain helper started");
            d
        };
        let mut map = self.domains();
        domain.add_model(model);
        map.insert(name, domain.clone());
        Ok(domain)
    }

    fn join_running(&self, name: &str, model: &str) -> Option<Arc<Domain>> {
        let map = self.domains();
        let d = map.get(name)?;
        d.add_model(model);
        Some(d.clone())
    }

    /// Takes one handle of `model` out of `domain`; returns the domain,
    /// taken out of the running ones, when no model is left in it (the
    /// caller shuts it down). The shared domain stays.
    fn detach(&self, domain: &Arc<Domain>, model: &str) -> Option<Arc<Domain>> {
        let mut map = self.domains();
        if domain.remove_model(model) > 0 {
            return None;
        }
        let name = domain.name();
        match map.get(&name) {
            Some(d) if Arc::ptr_eq(d, domain) && name != SHARED_DOMAIN => map.remove(&name),
            _ => None,
        }
    }

    /// Takes `model` out of its domain; a domain left without models is shut down.
    async fn leave_domain(&self, domain: &Arc<Domain>, model: &str) {
        if let Some(d) = self.detach(domain, model) {
            tracing::info!(target: "coreml_bridge::coreml", domain = d.name(), "no model left: domain helper shut down");
            d.sup.shutdown().await;
        }
    }

    /// What the helper said it is.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The supervisor of the engine's first helper (stats, events,
    /// `kill_helper` for tests): the first domain's, once a model took it.
    pub fn supervisor(&self) -> &Supervisor {
        &self.first.sup
    }

    /// Stops every helper.
    pub async fn shutdown(&self) {
        let mut all = self.running_domains();
        all.push(self.first.clone());
        for d in all {
            d.sup.shutdown().await;
        }
    }

    fn models(&self) -> std::sync::MutexGuard<'_, HashMap<ModelId, Loaded>> {
        self.models.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
