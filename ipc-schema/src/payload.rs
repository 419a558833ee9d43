//! Payload maps of every v2 message. Field order here is the canonical wire order;
//! every field is always present (`nil` for an absent optional value). Decoders
//! ignore keys they do not know and read missing optional keys as `nil`, so a
//! newer minor version may append optional fields.

use crate::{Backend, ComputeUnits, DType, Device, ErrorCode, ImageSpec, TensorRef};
use serde::{Deserialize, Serialize};

/// Helper → supervisor, first message on a connection (request id 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol major version the helper speaks.
    pub protocol_major: u16,
    /// Protocol minor version the helper speaks.
    pub protocol_minor: u16,
    /// Helper program version.
    pub helper_version: String,
    /// Operating system name (`macOS`, `Linux`).
    pub os: String,
    /// Operating system build or kernel release.
    pub os_build: String,
    /// Processor name (`Apple M2`, `x86_64`).
    pub chip: String,
    /// Core ML version; `None` where Core ML is absent.
    #[serde(default)]
    pub coreml_version: Option<String>,
    /// Compute units the helper can honour.
    pub compute_units: Vec<ComputeUnits>,
    /// Whether the helper applied its own sandbox before serving.
    pub sandboxed: bool,
    /// What the sandbox covers, or why none was applied.
    #[serde(default)]
    pub sandbox_detail: Option<String>,
    /// Engine the helper hosts (`coreml`, `diagnostic`).
    pub engine: String,
    /// Helper process id.
    pub pid: u32,
}

/// Supervisor → helper: liveness probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// Echoed in [`Pong`].
    pub nonce: u64,
}

/// Helper → supervisor: answer to [`Ping`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    /// The ping's nonce.
    pub nonce: u64,
}

/// Supervisor → helper: finish in-flight work, reply, then exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Shutdown {}

/// Helper → supervisor: the helper exits after sending this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ShutdownAck {}

/// Helper → supervisor: a request failed (request id echoed; 0 if the request
/// could not be identified).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// What went wrong.
    pub code: ErrorCode,
    /// Human-readable detail.
    pub message: String,
}

/// Supervisor → helper (request id 0, not answered), sent once right after a
/// compatible `Hello` and before any request: the supervisor's version. Both
/// sides then speak the smaller of the two minors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// Protocol major version the supervisor speaks (equal to the helper's).
    pub protocol_major: u16,
    /// Protocol minor version the supervisor speaks.
    pub protocol_minor: u16,
    /// Supervisor library version.
    pub supervisor_version: String,
}

/// Supervisor → helper: map a shared-memory region. The region itself is not
/// named: its file descriptor travels with this frame as `SCM_RIGHTS` ancillary
/// data on the frame's first byte (docs/protocol.md, section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachRegion {
    /// Id used by tensor refs.
    pub region: u32,
    /// Region size in bytes (fixed for the region's life; the descriptor's
    /// `fstat` size is at least this).
    pub size: u64,
}

/// Helper → supervisor: the region is mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionAttached {
    /// The region id.
    pub region: u32,
}

/// Supervisor → helper: unmap a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetachRegion {
    /// The region id.
    pub region: u32,
}

/// Helper → supervisor: the region is unmapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionDetached {
    /// The region id.
    pub region: u32,
}

/// Supervisor → helper: compile a model source into a staging directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compile {
    /// `.mlpackage` or `.mlmodel` path (or a `diag:` URI).
    pub source_path: String,
    /// Directory the compiled bundle must be moved into.
    pub staging_dir: String,
    /// Compute units the model will be loaded with.
    pub compute_units: ComputeUnits,
    /// Time budget in microseconds from receipt; `None`: the helper applies no
    /// deadline of its own (the supervisor's still holds).
    #[serde(default)]
    pub deadline_us: Option<u64>,
}

/// Helper → supervisor: the compiled bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compiled {
    /// Path of the `.mlmodelc` inside the staging directory.
    pub bundle_path: String,
    /// Kind of model.
    pub backend: Backend,
    /// Compile time in microseconds.
    pub compile_us: u64,
}

/// Supervisor → helper: load a compiled bundle under a model id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Load {
    /// Id chosen by the supervisor.
    pub model_id: u64,
    /// Path of the compiled bundle (or a `diag:` URI).
    pub bundle_path: String,
    /// Requested compute units.
    pub compute_units: ComputeUnits,
    /// Time budget in microseconds from receipt; `None`: the helper applies no
    /// deadline of its own (the supervisor's still holds).
    #[serde(default)]
    pub deadline_us: Option<u64>,
}

/// One input or output of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    /// Feature name.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Default shape.
    pub shape: Vec<u64>,
    /// Allowed shapes when the model enumerates them; empty otherwise.
    pub enumerated_shapes: Vec<Vec<u64>>,
    /// Per-dimension `[min, max]` when the model gives ranges (`max` = `u64::MAX`
    /// for unbounded); empty otherwise.
    pub shape_ranges: Vec<[u64; 2]>,
    /// Whether the feature may be omitted.
    pub optional: bool,
    /// Since 2.1: the feature is an image in this size and pixel format (`dtype` and `shape`
    /// are then its pixels', `[height, width, channels]`). Written only when present, so a
    /// multi-array spec has the same bytes in 2.0 and 2.1; a 2.0 peer ignores the key and
    /// sees the tensor of pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSpec>,
}

/// Helper → supervisor: the model is loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loaded {
    /// The model id.
    pub model_id: u64,
    /// Inputs, in the model's order.
    pub inputs: Vec<TensorSpec>,
    /// Outputs, in the model's order.
    pub outputs: Vec<TensorSpec>,
    /// Compute units actually configured (may be narrower than requested).
    pub compute_units: ComputeUnits,
    /// Load time in microseconds.
    pub load_us: u64,
}

/// Supervisor → helper: drop a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unload {
    /// The model id.
    pub model_id: u64,
}

/// Helper → supervisor: the model is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unloaded {
    /// The model id.
    pub model_id: u64,
}

/// Supervisor → helper: ask for the per-operation device plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetComputePlan {
    /// The model id.
    pub model_id: u64,
}

/// Device plan of one operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpPlan {
    /// Operator name (`conv`, `linear`, ...).
    pub operator: String,
    /// Preferred device, if Core ML determined one.
    pub preferred: Option<Device>,
    /// Devices that support the op.
    pub supported: Vec<Device>,
    /// Share of the model's work in `[0, 1]`, if known.
    pub cost: Option<f64>,
}

/// Helper → supervisor: the compute plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComputePlan {
    /// The model id.
    pub model_id: u64,
    /// Operations with a determined device, in program order.
    pub ops: Vec<OpPlan>,
    /// Cost-weighted share of work preferred on the Neural Engine, in `[0, 1]`;
    /// `None` when unknown (never guessed).
    pub ne_coverage: Option<f64>,
    /// Why the plan is unknown (`MLComputePlan needs macOS 14.4`), if it is.
    pub unavailable_reason: Option<String>,
}

/// A tensor ref with its feature name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NamedTensor {
    /// Feature name.
    pub name: String,
    /// Where the bytes are.
    pub tensor: TensorRef,
}

/// Supervisor → helper: run one prediction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Predict {
    /// The model id.
    pub model_id: u64,
    /// Inputs, already written into shared memory.
    pub inputs: Vec<NamedTensor>,
    /// Pre-allocated output slots, one per model output.
    pub outputs: Vec<NamedTensor>,
    /// Time budget in microseconds from receipt; the helper cancels past it.
    pub deadline_us: u64,
}

/// Helper → supervisor: outputs are written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Predicted {
    /// The model id.
    pub model_id: u64,
    /// Outputs as written: inside the slots given, possibly with padded strides.
    pub outputs: Vec<NamedTensor>,
    /// `true` if the helper still holds the input slots; an `InputsReleased`
    /// with this request id follows when it lets go. `false`: already released.
    pub inputs_retained: bool,
    /// Time to wrap inputs, in microseconds.
    pub marshal_in_us: u64,
    /// Time inside the engine, in microseconds.
    pub predict_us: u64,
    /// Time to place outputs, in microseconds.
    pub marshal_out_us: u64,
}

/// Helper → supervisor notification (request id = the `Predict`'s): the inputs of
/// that prediction are no longer referenced and their slots may be reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputsReleased {
    /// The model id.
    pub model_id: u64,
}

/// Supervisor → helper: ask for counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GetStats {}

/// Helper → supervisor: counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Resident set size in bytes.
    pub rss_bytes: u64,
    /// Peak resident set size in bytes.
    pub peak_rss_bytes: u64,
    /// Requests received.
    pub requests: u64,
    /// Requests answered with `Error`.
    pub errors: u64,
    /// Predictions completed.
    pub predictions: u64,
    /// Models loaded now.
    pub models_loaded: u64,
    /// Regions attached now.
    pub regions_attached: u64,
}
