//! What a prediction returns: output tensors copied out of the helper's reach (the
//! default), or, for a helper the app trusts (`SupervisorConfig::zero_copy_outputs`),
//! living in their shared-memory slots; and the helper's timings.
//!
//! ```no_run
//! # async fn demo(sup: coreml_supervisor::Supervisor, model: coreml_supervisor::ModelId) -> Result<(), coreml_supervisor::Error> {
//! let p = sup.predict(model, &[("x", &[0u8; 16])]).await?;
//! for out in &p.outputs {
//!     println!("{} {:?} {:?} contiguous={}", out.name, out.dtype(), out.shape(), out.bytes().is_some());
//! }
//! println!("engine time {} us, attempts {}", p.predict_us, p.attempts);
//! # Ok(()) }
//! ```

use coreml_ipc_schema::{DType, TensorRef};

use crate::shm::arena::Slot;
use crate::supervisor::ModelId;

/// A shared-memory slot for one model input, filled in place by the caller (zero
/// copies on the supervisor side); see `Supervisor::input_buffer`.
#[derive(Debug)]
pub struct InputBuffer {
    pub(crate) model: ModelId,
    pub(crate) name: String,
    pub(crate) slot: Slot,
}

impl InputBuffer {
    /// The input's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Size in bytes (dtype size × the schema's shape).
    pub fn len(&self) -> usize {
        self.slot.len() as usize
    }

    /// Whether the input has no bytes.
    pub fn is_empty(&self) -> bool {
        self.slot.is_empty()
    }

    /// The bytes to fill.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        let len = self.slot.len();
        self.slot.view_mut(len)
    }
}

/// Where an output's bytes are.
#[derive(Debug)]
pub(crate) enum OutputBytes {
    /// Copied out of shared memory once the reply was validated: the helper
    /// cannot change them any more. `tensor.offset` is relative to the copy.
    Owned(Vec<u8>),
    /// The slot itself (zero-copy opt-in), freed when the output drops.
    Shared(Slot),
}

/// One output tensor: its own copy of the bytes (default), or a view into the
/// slot the helper wrote (opt-in), freed when this value drops.
#[derive(Debug)]
pub struct OutputTensor {
    /// Feature name.
    pub name: String,
    /// The helper's ref (validated: inside its slot, schema dtype and shape).
    pub tensor: TensorRef,
    pub(crate) bytes: OutputBytes,
}

impl OutputTensor {
    /// Element type.
    pub fn dtype(&self) -> DType {
        self.tensor.dtype
    }

    /// Shape.
    pub fn shape(&self) -> &[u64] {
        &self.tensor.shape
    }

    /// The bytes without copying, if the layout is contiguous row-major.
    pub fn bytes(&self) -> Option<&[u8]> {
        self.tensor.is_contiguous().then(|| self.raw())
    }

    /// The spanned bytes as laid out by the helper (may include row padding).
    pub fn raw(&self) -> &[u8] {
        match &self.bytes {
            OutputBytes::Owned(v) => v,
            OutputBytes::Shared(slot) => {
                slot.view_at(self.tensor.offset - slot.offset(), self.tensor.len)
            }
        }
    }

    /// Whether the bytes are a view into shared memory the helper can still
    /// write (`SupervisorConfig::zero_copy_outputs`) rather than a private copy.
    pub fn is_shared(&self) -> bool {
        matches!(self.bytes, OutputBytes::Shared(_))
    }

    /// One contiguous row-major copy (strides resolved).
    pub fn to_vec(&self) -> Vec<u8> {
        let t = &self.tensor;
        let esz = t.dtype.size() as usize;
        if let Some(b) = self.bytes() {
            return b.to_vec();
        }
        let raw = self.raw();
        let count = t.element_count().unwrap_or(0) as usize;
        let mut out = Vec::with_capacity(count * esz);
        let mut idx = vec![0u64; t.shape.len()];
        for _ in 0..count {
            let off: u64 = idx.iter().zip(&t.strides).map(|(i, s)| i * s).sum::<u64>() * esz as u64;
            out.extend_from_slice(&raw[off as usize..off as usize + esz]);
            for d in (0..idx.len()).rev() {
                idx[d] += 1;
                if idx[d] < t.shape[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        out
    }

    /// The elements as `f32` (little-endian), for `F32` tensors.
    pub fn to_f32(&self) -> Vec<f32> {
        self.to_vec()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }
}

/// The result of a prediction.
#[derive(Debug)]
pub struct Prediction {
    /// Outputs in the model's order.
    pub outputs: Vec<OutputTensor>,
    /// Helper-reported timings, microseconds.
    pub marshal_in_us: u64,
    /// Time in the engine, microseconds.
    pub predict_us: u64,
    /// Time to place outputs, microseconds.
    pub marshal_out_us: u64,
    /// Helpers tried (2 when retried after a restart).
    pub attempts: u32,
}

impl Prediction {
    /// The output with this name.
    pub fn output(&self, name: &str) -> Option<&OutputTensor> {
        self.outputs.iter().find(|o| o.name == name)
    }
}
