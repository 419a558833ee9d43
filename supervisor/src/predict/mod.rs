//! The predict path: inputs copied once into 16 KiB-aligned slots, outputs written
//! by the helper into slots pre-allocated from the model's schema, every returned
//! ref validated against the slot it was given, outputs copied out of the helper's
//! reach before the caller sees them (unless the app opted into zero-copy views),
//! input slots reused only after the helper releases them. Every access to a slot
//! is preceded by an `fstat` size check of its region, so a truncated region
//! gives a typed error instead of a `SIGBUS`.
//!
//! ```no_run
//! # async fn demo(sup: coreml_supervisor::Supervisor, model: coreml_supervisor::ModelId) -> Result<(), coreml_supervisor::Error> {
//! use std::time::Duration;
//! let x = vec![0u8; 16];
//! let p = sup.predict_with_deadline(model, &[("x", &x)], Duration::from_millis(200)).await?;
//! let y = p.output("y").unwrap();
//! let view: &[u8] = y.bytes().expect("contiguous"); // the private copy (or the slot, opt-in)
//! let owned: Vec<u8> = y.to_vec();                    // one more copy, strides resolved
//! assert_eq!(view, &owned[..]);
//! # Ok(()) }
//! ```

//! Owns: input copy-in, output slot allocation and validation of every tensor
//! ref the helper returns, and the [`Prediction`](output::Prediction) handed to
//! the caller. It must not decide restarts or retries: errors go back to the
//! request machinery in [`crate::supervisor`].

pub(crate) mod image;
pub(crate) mod output;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coreml_ipc_schema::{DType, Message, NamedTensor, Predict, Predicted, TensorRef};

use crate::connection::Connection;
use crate::error::{DeathCause, Error, Stage};
use crate::predict::image::ImageBytes;
use crate::predict::output::{InputBuffer, OutputBytes, OutputTensor, Prediction};
use crate::shm::arena::{AllocError, Slot};
use crate::supervisor::requests::Attempt;
use crate::supervisor::{ModelId, ModelInfo, Supervisor};

/// Where a prediction's inputs come from.
enum Inputs<'a> {
    /// Caller's bytes, copied once into fresh slots; images with their row stride.
    Bytes(&'a [(&'a str, &'a [u8])], &'a [(&'a str, ImageBytes<'a>)]),
    /// Slots the caller filled in place.
    Buffers(Vec<InputBuffer>),
}

fn bytes_of(spec_dtype: DType, shape: &[u64]) -> Option<u64> {
    shape
        .iter()
        .try_fold(spec_dtype.size(), |acc, &d| acc.checked_mul(d))
}

impl Supervisor {
    /// Runs a prediction with the default predict deadline.
    pub async fn predict(
        &self,
        model: ModelId,
        inputs: &[(&str, &[u8])],
    ) -> Result<Prediction, Error> {
        self.predict_with_deadline(model, inputs, self.inner.cfg.deadlines.predict)
            .await
    }

    /// Runs a prediction that ends, with a result or a typed error, within `budget`.
    pub async fn predict_with_deadline(
        &self,
        model: ModelId,
        inputs: &[(&str, &[u8])],
        budget: Duration,
    ) -> Result<Prediction, Error> {
        let r = self
            .predict_inner(model, Inputs::Bytes(inputs, &[]), budget)
            .await;
        self.inner.count(&r);
        r
    }

    /// Runs a prediction with image inputs given with their row stride (any image input may
    /// also be passed densely among `inputs`). Each image is checked against its feature's
    /// size and pixel format ([`Error::Image`]) and copied row by row into a slot whose rows
    /// are padded for a pixel buffer.
    pub async fn predict_images(
        &self,
        model: ModelId,
        inputs: &[(&str, &[u8])],
        images: &[(&str, ImageBytes<'_>)],
        budget: Duration,
    ) -> Result<Prediction, Error> {
        let r = self
            .predict_inner(model, Inputs::Bytes(inputs, images), budget)
            .await;
        self.inner.count(&r);
        r
    }

    /// A shared-memory buffer for input `name` of `model`, sized from its schema.
    /// Fill it in place (no copy on the supervisor side) and pass it to
    /// [`Supervisor::predict_buffers`].
    pub fn input_buffer(&self, model: ModelId, name: &str) -> Result<InputBuffer, Error> {
        let info = self.model_info(model)?;
        let spec = info
            .inputs
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| Error::BadRequest(format!("the model has no input {name:?}")))?;
        let len = bytes_of(spec.dtype, &spec.shape)
            .ok_or_else(|| Error::BadRequest("shape overflows".into()))?;
        let slot = self.inner.arena.alloc(len)?;
        Ok(InputBuffer {
            model,
            name: name.into(),
            slot,
        })
    }

    /// Runs a prediction on inputs already written into [`InputBuffer`]s.
    pub async fn predict_buffers(
        &self,
        model: ModelId,
        inputs: Vec<InputBuffer>,
        budget: Duration,
    ) -> Result<Prediction, Error> {
        let r = self
            .predict_inner(model, Inputs::Buffers(inputs), budget)
            .await;
        self.inner.count(&r);
        r
    }

    fn model_info(&self, model: ModelId) -> Result<ModelInfo, Error> {
        let models = self.inner.models.lock().unwrap_or_else(|p| p.into_inner());
        models
            .get(&model)
            .cloned()
            .ok_or(Error::UnknownModel(model.0))
    }

    async fn predict_inner(
        &self,
        model: ModelId,
        inputs: Inputs<'_>,
        budget: Duration,
    ) -> Result<Prediction, Error> {
        let inner = &self.inner;
        let deadline = Instant::now() + budget;
        let info = self.model_info(model)?;
        let _permit = inner.permit(deadline, budget).await?;

        // Inputs: one copy each into a fresh slot (or the caller's filled buffers).
        // Outputs: slots from the schema.
        let mut slots = Vec::with_capacity(info.inputs.len() + info.outputs.len());
        let mut in_refs = Vec::with_capacity(info.inputs.len());
        let no_bytes: &[(&str, &[u8])] = &[];
        let no_images: &[(&str, ImageBytes<'_>)] = &[];
        let (bytes, images, mut buffers) = match inputs {
            Inputs::Bytes(b, i) => (b, i, Vec::new()),
            Inputs::Buffers(v) => (no_bytes, no_images, v),
        };
        let given = bytes
            .iter()
            .map(|(n, _)| *n)
            .chain(images.iter().map(|(n, _)| *n))
            .chain(buffers.iter().map(|b| b.name.as_str()));
        for n in given {
            if !info.inputs.iter().any(|s| s.name == n) {
                return Err(Error::BadRequest(format!("the model has no input {n:?}")));
            }
        }
        for spec in &info.inputs {
            let want = bytes_of(spec.dtype, &spec.shape)
                .ok_or_else(|| Error::BadRequest("shape overflows".into()))?;
            let image = image::image_of(spec)?;
            let as_image = match (image, images.iter().find(|(n, _)| *n == spec.name)) {
                (Some(_), Some((_, b))) => Some(*b),
                (None, Some(_)) => {
                    return Err(Error::BadRequest(format!(
                        "input {:?} is not an image",
                        spec.name
                    )))
                }
                // Dense image bytes: rows of exactly one row of pixels.
                (Some(img), None) => bytes.iter().find(|(n, _)| *n == spec.name).map(|(_, d)| {
                    ImageBytes::new(d, (img.width * img.pixel_format.bytes_per_pixel()) as usize)
                }),
                (None, None) => None,
            };
            if let (Some(img), Some(b)) = (image, as_image) {
                let img = image::request_image(spec, &img, &b)?;
                let (slot, t) = image::place_input(&inner.arena, spec, &img, b)?;
                in_refs.push(NamedTensor {
                    name: spec.name.clone(),
                    tensor: t,
                });
                slots.push(slot);
                continue;
            }
            let slot = if let Some(i) = buffers.iter().position(|b| b.name == spec.name) {
                let b = buffers.swap_remove(i);
                if b.model != model || b.slot.len() != want {
                    return Err(Error::BadRequest(format!(
                        "buffer {:?} was made for another model",
                        spec.name
                    )));
                }
                b.slot
            } else if let Some((_, data)) = bytes.iter().find(|(n, _)| *n == spec.name) {
                if data.len() as u64 != want {
                    return Err(Error::BadRequest(format!(
                        "input {:?} has {} bytes; {}{:?} needs {want}",
                        spec.name,
                        data.len(),
                        spec.dtype.name(),
                        spec.shape
                    )));
                }
                let slot = inner.arena.alloc(want)?;
                slot.intact().map_err(AllocError::from)?;
                slot.write(data);
                slot
            } else if spec.optional {
                continue;
            } else {
                return Err(Error::BadRequest(format!("missing input {:?}", spec.name)));
            };
            let t = TensorRef::contiguous(
                spec.dtype,
                spec.shape.clone(),
                slot.region_id(),
                slot.offset(),
            );
            in_refs.push(NamedTensor {
                name: spec.name.clone(),
                tensor: t,
            });
            slots.push(slot);
        }
        let n_in = slots.len();
        let mut out_refs = Vec::with_capacity(info.outputs.len());
        for spec in &info.outputs {
            if let Some(img) = image::image_of(spec)? {
                let (slot, t) = image::output_slot(&inner.arena, spec, &img)?;
                out_refs.push(NamedTensor {
                    name: spec.name.clone(),
                    tensor: t,
                });
                slots.push(slot);
                continue;
            }
            let len = bytes_of(spec.dtype, &spec.shape)
                .ok_or_else(|| Error::BadRequest("shape overflows".into()))?;
            let slot = inner.arena.alloc(len)?;
            let t = TensorRef::contiguous(
                spec.dtype,
                spec.shape.clone(),
                slot.region_id(),
                slot.offset(),
            );
            out_refs.push(NamedTensor {
                name: spec.name.clone(),
                tensor: t,
            });
            slots.push(slot);
        }

        let mut attempts = 0;
        let mut guard = SlotGuard { slots, conn: None };
        loop {
            attempts += 1;
            // A retry after a death nobody could be blamed for runs alone.
            let _lane = inner.lane(attempts > 1, deadline, budget).await?;
            let conn = inner.ready_conn(deadline, budget).await?;
            let prepared = async {
                inner.ensure_attached(&conn, deadline).await?;
                inner.model_ready(&conn, &info, deadline, budget).await
            };
            let mut outcome = prepared.await;
            let id = inner.next_id();
            if outcome.is_ok() {
                // From here the slots are this helper's to reference (until then
                // they stay with the helper of an earlier attempt, if any).
                guard.conn = Some(conn.clone());
                let left = deadline.saturating_duration_since(Instant::now());
                // The helper gets a little less than the caller's budget, so it can
                // answer TIMEOUT itself before the supervisor has to kill it.
                let margin = (left / 10).min(Duration::from_millis(50));
                let msg = Message::Predict(Predict {
                    model_id: model.0,
                    inputs: in_refs.clone(),
                    outputs: out_refs.clone(),
                    deadline_us: (left - margin).as_micros() as u64,
                });
                let (reply, back) = conn
                    .call(
                        id,
                        Stage::Predict,
                        msg,
                        deadline,
                        guard.take(),
                        inner.predict_spin(model.0),
                    )
                    .await;
                guard.slots = back;
                outcome = match reply {
                    Ok(Message::Predicted(p)) => {
                        let helper_us = p
                            .marshal_in_us
                            .saturating_add(p.predict_us)
                            .saturating_add(p.marshal_out_us);
                        inner.observe_helper_time(model.0, helper_us);
                        return finish(
                            &conn,
                            id,
                            &info,
                            p,
                            guard.take(),
                            n_in,
                            &out_refs,
                            attempts,
                            inner.cfg.zero_copy_outputs,
                        );
                    }
                    Ok(Message::Error(e)) => {
                        // The helper has released the inputs of a failed request.
                        drop(guard.take());
                        return Err(Error::Helper {
                            stage: Stage::Predict,
                            code: e.code,
                            message: e.message,
                        });
                    }
                    // The guard keeps the slots with the (now killed) helper.
                    Ok(other) => return Err(inner.wrong_reply(&conn, Stage::Predict, &other)),
                    Err(n) => Err(Attempt::Died(n)),
                };
            }
            match outcome {
                Ok(()) => unreachable!("a successful attempt returns"),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Died(n))
                    if n.culprit || attempts > 1 || n.cause == DeathCause::Shutdown =>
                {
                    return Err(n.cause.to_error(Stage::Predict));
                }
                Err(Attempt::Died(_)) => {
                    // Not ours: retry once on the restarted helper, with the same slots
                    // (the dead helper is reaped before a new one is offered).
                    inner.counters.retried.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// A request's slots while it is not inside a `call`: when the request ends early
/// or its caller drops the future, they stay with the helper that last saw them
/// until it is reaped (or answered), instead of returning to the arena at once.
struct SlotGuard {
    slots: Vec<Slot>,
    conn: Option<Arc<Connection>>,
}

impl SlotGuard {
    fn take(&mut self) -> Vec<Slot> {
        std::mem::take(&mut self.slots)
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let slots = self.take();
        match &self.conn {
            Some(c) if !slots.is_empty() => c.quarantine(slots),
            _ => drop(slots),
        }
    }
}

/// Validates the reply's refs and hands out the outputs.
#[allow(clippy::too_many_arguments)]
fn finish(
    conn: &Connection,
    id: u64,
    info: &ModelInfo,
    p: Predicted,
    mut slots: Vec<Slot>,
    n_in: usize,
    given: &[NamedTensor],
    attempts: u32,
    zero_copy: bool,
) -> Result<Prediction, Error> {
    let violation = |detail: String, slots: Vec<Slot>| {
        conn.die(DeathCause::ProtocolViolation {
            request_id: Some(id),
            detail: detail.clone(),
        });
        conn.quarantine(slots);
        Err(Error::ProtocolViolation {
            stage: Stage::Predict,
            detail,
        })
    };
    if p.model_id != info.id.0 {
        return violation(
            format!(
                "Predicted for model {} instead of {}",
                p.model_id, info.id.0
            ),
            slots,
        );
    }
    if p.outputs.len() != given.len() {
        return violation(
            format!(
                "{} outputs for {} output slots",
                p.outputs.len(),
                given.len()
            ),
            slots,
        );
    }
    for (i, g) in given.iter().enumerate() {
        let Some(r) = p.outputs.iter().find(|o| o.name == g.name) else {
            return violation(format!("output {:?} missing", g.name), slots);
        };
        let slot = &slots[n_in + i];
        let t = &r.tensor;
        let problem = if t.dtype != g.tensor.dtype || t.shape != g.tensor.shape {
            Some(format!(
                "output {:?} is {}{:?}, the schema says {}{:?}",
                g.name,
                t.dtype.name(),
                t.shape,
                g.tensor.dtype.name(),
                g.tensor.shape
            ))
        } else if let Err(e) = t.validate(slot.offset() + slot.capacity()) {
            Some(format!("output {:?}: {e}", g.name))
        } else if let Some(Err(e)) = info.outputs[i]
            .image
            .as_ref()
            .map(|img| image::check_output(img, t))
        {
            Some(format!("image output {:?}: {e}", g.name))
        } else if !slot.contains(t.region, t.offset, t.len) {
            Some(format!(
                "output {:?} at region {} bytes {}+{} is outside its slot",
                g.name, t.region, t.offset, t.len
            ))
        } else if let Err(e) = slot.intact() {
            // Reading it would fault: the helper shrank the region.
            Some(format!("output {:?}: {e}", g.name))
        } else {
            None
        };
        if let Some(d) = problem {
            return violation(d, slots);
        }
    }
    let out_slots = slots.split_off(n_in);
    if p.inputs_retained {
        conn.retain_inputs(id, slots);
    } else {
        drop(slots);
    }
    let outputs = given
        .iter()
        .zip(out_slots)
        .map(|(g, slot)| {
            let mut tensor = p
                .outputs
                .iter()
                .find(|o| o.name == g.name)
                .expect("checked")
                .tensor
                .clone();
            let bytes = if zero_copy {
                OutputBytes::Shared(slot)
            } else {
                // Out of the helper's reach before the caller sees it; the slot
                // goes back to the arena.
                let copy = slot
                    .view_at(tensor.offset - slot.offset(), tensor.len)
                    .to_vec();
                tensor.offset = 0;
                OutputBytes::Owned(copy)
            };
            OutputTensor {
                name: g.name.clone(),
                tensor,
                bytes,
            }
        })
        .collect();
    Ok(Prediction {
        outputs,
        marshal_in_us: p.marshal_in_us,
        predict_us: p.predict_us,
        marshal_out_us: p.marshal_out_us,
        attempts,
    })
}
