//! The protocol loop: handshake (with handshake faults), then one request at a time
//! on the reader thread; `sleep` models and `hang` faults run on their own threads
//! so other requests keep being served.
//!
//! ```text
//! serve::run(stream); // returns never: exits 0 at end of stream or after Shutdown
//! ```

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coreml_ipc_schema::*;

use crate::mil::{self, MilModel};
use crate::model::{At, DiagModel, Fault, Kind};
use crate::sys::{self, FdReader, Mapping};

type Out = Arc<Mutex<UnixStream>>;

fn send(out: &Out, id: u64, m: Message) {
    let mut s = out.lock().unwrap_or_else(|p| p.into_inner());
    if write_frame(&mut *s, &Envelope::new(id, m)).is_err() {
        std::process::exit(0);
    }
}

fn error(code: ErrorCode, message: impl Into<String>) -> Message {
    Message::Error(ErrorReply {
        code,
        message: message.into(),
    })
}

fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut x = (std::process::id() as u64) << 32
        | std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn hello(major: u16) -> Message {
    Message::Hello(Hello {
        protocol_major: major,
        protocol_minor: PROTOCOL_MINOR,
        helper_version: env!("CARGO_PKG_VERSION").into(),
        os: if cfg!(target_os = "macos") {
            "macOS"
        } else {
            "Linux"
        }
        .into(),
        os_build: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .into(),
        chip: std::env::consts::ARCH.into(),
        coreml_version: None,
        compute_units: ComputeUnits::ALL.to_vec(),
        // COREML_TEST_HELLO_SANDBOXED=1 plays a helper that sandboxed itself (the
        // supervisor's require_sandboxed_hello test).
        sandboxed: std::env::var_os("COREML_TEST_HELLO_SANDBOXED").is_some(),
        sandbox_detail: Some("the supervisor sandboxes this helper before exec".into()),
        engine: "diagnostic".into(),
        pid: std::process::id(),
    })
}

/// Fires a fault that does not produce a normal reply. Returns only for faults whose
/// effect is a modified reply (`wrong-id`, `bad-ref`) or after SIGSTOP is continued.
fn fire(fault: Fault, out: &Out) {
    match fault {
        Fault::Segv => {
            sys::raise(libc::SIGSEGV);
            std::process::abort();
        }
        Fault::Abort => std::process::abort(),
        Fault::Exit => std::process::exit(3),
        Fault::Hang => sleep_forever(),
        Fault::Sigstop => sys::raise(libc::SIGSTOP),
        Fault::Alloc => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 16 << 20]);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Fault::Garbage => {
            let mut frame = 64u32.to_be_bytes().to_vec();
            frame.extend(random_bytes(64));
            let _ = out
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .write_all(&frame);
            sleep_forever();
        }
        Fault::Oversize => {
            let _ = out
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .write_all(&0xFFFF_FFF0u32.to_be_bytes());
            sleep_forever();
        }
        Fault::CloseSocket => {
            sys::shutdown(out.lock().unwrap_or_else(|p| p.into_inner()).as_raw_fd());
            sleep_forever();
        }
        Fault::ForkChild => {
            // Status 5 when the sandbox refused the fork (the test then needs the
            // test-only SandboxConfig::allow_fork), 4 once a child holds the socket.
            if sys::fork_sleeper().is_err() {
                std::process::exit(5);
            }
            std::process::exit(4);
        }
        Fault::EscapeChild => {
            // At load (the predict path passes the model's `ms` itself).
            let _ = sys::fork_escapee(Duration::from_secs(10));
            sleep_forever();
        }
        // A notification for a request that was never issued, then the normal reply.
        Fault::ReleaseUnknown => send(
            out,
            u64::MAX - 1,
            Message::InputsReleased(InputsReleased { model_id: 0 }),
        ),
        Fault::ForkSleeper => {
            let _ = sys::fork_sleeper();
        }
        Fault::WrongId
        | Fault::BadRef
        | Fault::BadRefBefore
        | Fault::Unsupported
        | Fault::ShrinkRegion
        | Fault::LateWrite => {}
    }
}

struct State {
    out: Out,
    regions: HashMap<u32, Arc<Mapping>>,
    models: HashMap<u64, DiagModel>,
    /// `.mlpackage` models (crate::mil).
    mil: HashMap<u64, MilModel>,
    /// The fault query applied to packages loaded by path (`--mil-faults`).
    mil_faults: String,
    stats: Stats,
    /// The protocol minor the supervisor's `Welcome` said it speaks: image
    /// features (2.1) are refused to a 2.0 supervisor, which cannot read them.
    peer_minor: u16,
}

pub fn run(stream: UnixStream, mil_faults: String) -> ! {
    let mut reader = FdReader::new(stream.try_clone().unwrap_or_else(|_| std::process::exit(2)));
    let out: Out = Arc::new(Mutex::new(stream));
    let mut major = PROTOCOL_MAJOR;
    match std::env::var("COREML_DIAG_FAULT").as_deref() {
        Ok("hang-handshake") => sleep_forever(),
        Ok("crash-handshake") => std::process::exit(5),
        Ok("wrong-version") => major = 99,
        // A helper of protocol v1 (regions by name), which cannot work with v2.
        Ok("v1-handshake") => major = 1,
        Ok("garbage-handshake") => fire(Fault::Garbage, &out),
        Ok(other) => eprintln!("coreml-test-helper: unknown COREML_DIAG_FAULT {other:?}, ignored"),
        Err(_) => {}
    }
    send(&out, UNSOLICITED, hello(major));
    let mut st = State {
        out,
        regions: HashMap::new(),
        models: HashMap::new(),
        mil: HashMap::new(),
        mil_faults,
        stats: Stats::default(),
        peer_minor: PROTOCOL_MINOR,
    };
    // A measurement knob (docs/diagnostics.md): spin this long for the next request
    // before sleeping in `read`, so benchmarks can take the helper's wake-up out
    // of the supervisor's figures.
    let spin = std::env::var("COREML_DIAG_SPIN_US")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_micros)
        .unwrap_or(Duration::ZERO);
    loop {
        if !spin.is_zero() {
            let t = std::time::Instant::now();
            while !sys::readable_now(reader.raw_fd()) && t.elapsed() < spin {
                std::hint::spin_loop();
            }
        }
        let body = match read_frame(&mut reader, MAX_FRAME_LEN) {
            Ok(Some(b)) => b,
            Ok(None) => std::process::exit(0),
            Err(e) => {
                eprintln!("coreml-test-helper: bad frame: {e}");
                std::process::exit(1);
            }
        };
        st.stats.requests += 1;
        match Envelope::decode(&body) {
            // The region's descriptor came with the frame's first byte.
            Ok(Envelope {
                request_id,
                message: Message::AttachRegion(a),
            }) => {
                let fd = reader.take_fd();
                st.attach(request_id, a, fd)
            }
            Ok(env) => st.handle(env.request_id, env.message),
            Err(e) => {
                st.stats.errors += 1;
                let code = if matches!(e, DecodeError::UnknownTag { .. }) {
                    ErrorCode::UNKNOWN_MESSAGE
                } else {
                    ErrorCode::BAD_REQUEST
                };
                send(
                    &st.out,
                    e.request_id().unwrap_or(UNSOLICITED),
                    error(code, e.to_string()),
                );
            }
        }
    }
}

impl State {
    fn reply(&mut self, id: u64, m: Message) {
        if matches!(m, Message::Error(_)) {
            self.stats.errors += 1;
        }
        send(&self.out, id, m);
    }

    fn attach(&mut self, id: u64, a: AttachRegion, fd: Option<OwnedFd>) {
        use std::collections::hash_map::Entry;
        let r = match self.regions.entry(a.region) {
            Entry::Occupied(_) => error(
                ErrorCode::BAD_REQUEST,
                format!("region {} is already attached", a.region),
            ),
            Entry::Vacant(slot) => match fd.map(|fd| Mapping::from_fd(fd, a.size as usize)) {
                Some(Ok(map)) => {
                    slot.insert(Arc::new(map));
                    Message::RegionAttached(RegionAttached { region: a.region })
                }
                Some(Err(e)) => error(ErrorCode::SHM_FAILED, format!("region {}: {e}", a.region)),
                None => error(
                    ErrorCode::SHM_FAILED,
                    format!("AttachRegion {} came without a descriptor", a.region),
                ),
            },
        };
        self.reply(id, r);
    }

    fn handle(&mut self, id: u64, m: Message) {
        let r = match m {
            // The supervisor's version: image features need 2.1.
            Message::Welcome(w) => {
                self.peer_minor = w.protocol_minor;
                return;
            }
            Message::Ping(p) => Message::Pong(Pong { nonce: p.nonce }),
            Message::Shutdown(_) => {
                send(&self.out, id, Message::ShutdownAck(ShutdownAck {}));
                std::process::exit(0);
            }
            Message::DetachRegion(d) => match self.regions.remove(&d.region) {
                Some(_) => Message::RegionDetached(RegionDetached { region: d.region }),
                None => error(
                    ErrorCode::BAD_REQUEST,
                    format!("region {} is not attached", d.region),
                ),
            },
            Message::Compile(c) if mil::is_mil_source(&c.source_path) => {
                match mil::compile(&c.source_path, &c.staging_dir, &self.mil_faults) {
                    Ok((bundle_path, compile_us)) => Message::Compiled(Compiled {
                        bundle_path,
                        backend: Backend::MlProgram,
                        compile_us,
                    }),
                    Err((code, m)) => error(code, m),
                }
            }
            Message::Load(l) if mil::is_mil_source(&l.bundle_path) => return self.load_mil(id, l),
            Message::Compile(c) => match DiagModel::parse(&c.source_path) {
                Ok(_) => Message::Compiled(Compiled {
                    bundle_path: c.source_path,
                    backend: Backend::MlProgram,
                    compile_us: 0,
                }),
                Err(e) => error(ErrorCode::BAD_REQUEST, e),
            },
            Message::Load(l) => match DiagModel::parse(&l.bundle_path) {
                Ok(model) if model.image.is_some() && self.peer_minor < 1 => error(
                    ErrorCode::UNSUPPORTED,
                    format!(
                        "input `x` is an image feature (protocol 2.1); the supervisor speaks 2.{}",
                        self.peer_minor
                    ),
                ),
                Ok(model) => {
                    if model.load_ms > 0 {
                        std::thread::sleep(Duration::from_millis(model.load_ms));
                    }
                    let mut reply_id = id;
                    match model.fault_fires(At::Load) {
                        Some(Fault::WrongId) => reply_id = id + 1_000_000,
                        // What Core ML says of a model with a feature the
                        // protocol cannot carry (an image input, say).
                        Some(Fault::Unsupported) => {
                            return self.reply(
                                id,
                                error(
                                    ErrorCode::UNSUPPORTED,
                                    "input `x` is an image, not a multi-array",
                                ),
                            )
                        }
                        Some(f) => fire(f, &self.out),
                        None => {}
                    }
                    let loaded = Loaded {
                        model_id: l.model_id,
                        inputs: vec![model.spec("x")],
                        outputs: vec![model.spec("y")],
                        compute_units: l.compute_units,
                        load_us: 0,
                    };
                    self.models.insert(l.model_id, model);
                    return self.reply(reply_id, Message::Loaded(loaded));
                }
                Err(e) => error(ErrorCode::BAD_REQUEST, e),
            },
            Message::Unload(u) => match self
                .models
                .remove(&u.model_id)
                .map(|_| ())
                .or_else(|| self.mil.remove(&u.model_id).map(|_| ()))
            {
                Some(()) => Message::Unloaded(Unloaded {
                    model_id: u.model_id,
                }),
                None => error(ErrorCode::UNKNOWN_MODEL, format!("model {}", u.model_id)),
            },
            Message::GetComputePlan(g) => Message::ComputePlan(ComputePlan {
                model_id: g.model_id,
                ops: vec![],
                ne_coverage: None,
                unavailable_reason: Some("diagnostic model: no Core ML compute plan".into()),
            }),
            Message::GetStats(_) => {
                self.stats.rss_bytes = sys::rss_bytes();
                self.stats.peak_rss_bytes = self.stats.peak_rss_bytes.max(self.stats.rss_bytes);
                self.stats.models_loaded = (self.models.len() + self.mil.len()) as u64;
                self.stats.regions_attached = self.regions.len() as u64;
                Message::Stats(self.stats)
            }
            Message::Predict(p) if self.mil.contains_key(&p.model_id) => {
                match self.predict_mil(id, p) {
                    Some(m) => m,
                    None => return,
                }
            }
            Message::Predict(p) => match self.predict(id, p) {
                Some(m) => m,
                None => return,
            },
            other => error(
                ErrorCode::BAD_REQUEST,
                format!("{} is not a request", other.tag().name()),
            ),
        };
        self.reply(id, r);
    }

    /// Validates and runs a prediction; `None` when the reply is sent elsewhere
    /// (a sleep thread) or never (a hang).
    fn predict(&mut self, id: u64, p: Predict) -> Option<Message> {
        let Some(model) = self.models.get_mut(&p.model_id) else {
            return Some(error(
                ErrorCode::UNKNOWN_MODEL,
                format!("model {}", p.model_id),
            ));
        };
        let (Some(x), Some(y)) = (
            p.inputs.iter().find(|t| t.name == "x"),
            p.outputs.iter().find(|t| t.name == "y"),
        ) else {
            return Some(error(
                ErrorCode::SCHEMA_MISMATCH,
                "need input x and output y",
            ));
        };
        let (Some(xr), Some(yr)) = (
            self.regions.get(&x.tensor.region),
            self.regions.get(&y.tensor.region),
        ) else {
            return Some(error(
                ErrorCode::SHM_FAILED,
                "tensor names an unattached region",
            ));
        };
        if let Err(e) = model
            .check_ref(&x.tensor, xr)
            .and_then(|_| model.check_ref(&y.tensor, yr))
        {
            return Some(error(ErrorCode::SCHEMA_MISMATCH, e));
        }
        let (xr, yr) = (xr.clone(), yr.clone());
        let mut reply_id = id;
        let mut outputs = vec![y.clone()];
        let mut hostile = None;
        match model.fault_fires(At::Predict) {
            Some(f @ (Fault::ShrinkRegion | Fault::LateWrite)) => hostile = Some(f),
            Some(Fault::WrongId) => reply_id = id + 1_000_000,
            Some(Fault::BadRef) => outputs[0].tensor.offset = yr.len() as u64,
            // One 16 KiB page before the slot it was given (still inside the region
            // when the slot is not the region's first).
            Some(Fault::BadRefBefore) => {
                outputs[0].tensor.offset = outputs[0].tensor.offset.saturating_sub(16 * 1024)
            }
            Some(Fault::Hang) => {
                std::thread::spawn(sleep_forever);
                return None;
            }
            // A child in a session of its own, out of reach of a group kill, that
            // keeps the socket and every mapping for `ms`; the parent goes silent.
            Some(Fault::EscapeChild) => {
                let _ = sys::fork_escapee(Duration::from_millis(model.ms));
                sleep_forever();
            }
            Some(f) => fire(f, &self.out),
            None => {}
        }
        model.successes += 1;
        self.stats.predictions += 1;
        let (m, xt, yt) = (model.clone(), x.tensor.clone(), y.tensor.clone());
        let retained = m.retain > 0;
        let sleeps = m.kind == Kind::Sleep;
        let model_id = p.model_id;
        let retain = (m.retain > 0).then(|| {
            // Remember the input as the engine saw it; at release time it must be unchanged,
            // or the supervisor reused a slot the helper still referenced.
            let mut seen = vec![0u8; xt.len as usize];
            xr.read(xt.offset as usize, &mut seen);
            (
                m.retain,
                seen,
                xt.clone(),
                xr.clone(),
                self.out.clone(),
                model_id,
            )
        });
        let (yr_kept, yt_kept) = (yr.clone(), yt.clone());
        let work = move || {
            let t0 = std::time::Instant::now();
            if m.kind == Kind::Sleep {
                std::thread::sleep(Duration::from_millis(m.ms));
            }
            m.run(&xt, &xr, &yt, &yr);
            Message::Predicted(Predicted {
                model_id,
                outputs,
                inputs_retained: retained,
                marshal_in_us: 0,
                predict_us: t0.elapsed().as_micros() as u64,
                marshal_out_us: 0,
            })
        };
        if sleeps {
            let out = self.out.clone();
            std::thread::spawn(move || send(&out, reply_id, work()));
            return None;
        }
        let r = work();
        match hostile {
            // Outputs written; now try to pull the region from under the supervisor.
            Some(Fault::ShrinkRegion) => {
                if let Err(e) = yr_kept.truncate(0) {
                    return Some(error(
                        ErrorCode::SHM_FAILED,
                        format!("shrink-region: ftruncate refused: {e}"),
                    ));
                }
                self.reply(reply_id, r);
            }
            // A correct reply, then the output slot overwritten behind it.
            Some(Fault::LateWrite) => {
                self.reply(reply_id, r);
                let (yr, yt) = (yr_kept, yt_kept);
                std::thread::spawn(move || {
                    // Late: the supervisor has had time to take its reply.
                    std::thread::sleep(Duration::from_millis(40));
                    for _ in 0..50 {
                        yr.write(yt.offset as usize, &vec![0xA5; yt.len as usize]);
                        std::thread::sleep(Duration::from_millis(2));
                    }
                });
            }
            _ => self.reply(reply_id, r),
        }
        if let Some((ms, seen, xt, xr, out, model_id)) = retain {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(ms));
                let mut now = vec![0u8; seen.len()];
                xr.read(xt.offset as usize, &mut now);
                if now != seen {
                    eprintln!("coreml-test-helper: a retained input slot was overwritten before InputsReleased");
                    std::process::exit(7);
                }
                send(
                    &out,
                    reply_id,
                    Message::InputsReleased(InputsReleased { model_id }),
                );
            });
        }
        None
    }

    /// `Load` of a package (crate::mil), with the diagnostic models' load faults.
    fn load_mil(&mut self, id: u64, l: Load) {
        let model = match MilModel::load(&l.bundle_path, &self.mil_faults) {
            Ok(m) => m,
            Err((code, m)) => return self.reply(id, error(code, m)),
        };
        let t0 = std::time::Instant::now();
        if model.faults.load_ms > 0 {
            std::thread::sleep(Duration::from_millis(model.faults.load_ms));
        }
        let mut reply_id = id;
        match model.faults.fault_fires(At::Load) {
            Some(Fault::WrongId) => reply_id = id + 1_000_000,
            Some(Fault::Unsupported) => {
                return self.reply(
                    id,
                    error(ErrorCode::UNSUPPORTED, "fault=unsupported at load"),
                )
            }
            Some(f) => fire(f, &self.out),
            None => {}
        }
        let loaded = Loaded {
            model_id: l.model_id,
            inputs: model.inputs.clone(),
            outputs: model.outputs.clone(),
            compute_units: l.compute_units,
            load_us: t0.elapsed().as_micros() as u64,
        };
        self.mil.insert(l.model_id, model);
        self.reply(reply_id, Message::Loaded(loaded));
    }

    /// `Predict` of a package: checked on the reader thread, run on its own
    /// thread (other requests keep being served), faults as for diagnostic models.
    fn predict_mil(&mut self, id: u64, p: Predict) -> Option<Message> {
        let model = self.mil.get_mut(&p.model_id)?;
        let work = match model.check(&p.inputs, &p.outputs, &self.regions) {
            Ok(w) => w,
            Err((code, m)) => return Some(error(code, m)),
        };
        let mut reply_id = id;
        let mut bad_ref = false;
        match model.faults.fault_fires(At::Predict) {
            Some(Fault::WrongId) => reply_id = id + 1_000_000,
            Some(Fault::BadRef) => bad_ref = true,
            Some(Fault::Hang) => {
                std::thread::spawn(sleep_forever);
                return None;
            }
            Some(f) => fire(f, &self.out),
            None => {}
        }
        model.faults.successes += 1;
        self.stats.predictions += 1;
        let (out, model_id) = (self.out.clone(), p.model_id);
        let region_len: HashMap<u32, u64> = self
            .regions
            .iter()
            .map(|(k, v)| (*k, v.len() as u64))
            .collect();
        std::thread::spawn(move || {
            let reply = match work.run() {
                Ok((mut outputs, [marshal_in_us, predict_us, marshal_out_us])) => {
                    if bad_ref {
                        if let Some(o) = outputs.first_mut() {
                            o.tensor.offset =
                                region_len.get(&o.tensor.region).copied().unwrap_or(0);
                        }
                    }
                    Message::Predicted(Predicted {
                        model_id,
                        outputs,
                        inputs_retained: false,
                        marshal_in_us,
                        predict_us,
                        marshal_out_us,
                    })
                }
                Err((code, m)) => error(code, m),
            };
            send(&out, reply_id, reply);
        });
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> (State, FdReader) {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        let st = State {
            out: Arc::new(Mutex::new(ours)),
            regions: HashMap::new(),
            models: HashMap::new(),
            mil: HashMap::new(),
            mil_faults: String::new(),
            stats: Stats::default(),
            peer_minor: PROTOCOL_MINOR,
        };
        (st, FdReader::new(theirs))
    }

    fn load(st: &mut State, reader: &mut FdReader, id: u64, uri: &str) -> Message {
        let l = Load {
            model_id: id,
            bundle_path: uri.into(),
            compute_units: ComputeUnits::CpuOnly,
            deadline_us: None,
        };
        st.handle(id, Message::Load(l));
        let body = read_frame(reader, MAX_FRAME_LEN)
            .expect("frame")
            .expect("a reply");
        Envelope::decode(&body).expect("decodes").message
    }

    fn welcome(st: &mut State, minor: u16) {
        let w = Welcome {
            protocol_major: PROTOCOL_MAJOR,
            protocol_minor: minor,
            supervisor_version: "test".into(),
        };
        st.handle(0, Message::Welcome(w));
    }

    #[test]
    fn image_models_are_refused_to_a_supervisor_that_speaks_2_0() {
        let (mut st, mut r) = state();
        welcome(&mut st, 0);
        match load(&mut st, &mut r, 1, "diag:image?shape=4x4") {
            Message::Error(e) => assert_eq!(e.code, ErrorCode::UNSUPPORTED, "{e:?}"),
            other => panic!("a 2.0 supervisor got {other:?}"),
        }
        assert!(matches!(
            load(&mut st, &mut r, 2, "diag:add?shape=4"),
            Message::Loaded(_)
        ));
        welcome(&mut st, 1);
        assert!(matches!(
            load(&mut st, &mut r, 3, "diag:image?shape=4x4"),
            Message::Loaded(_)
        ));
    }
}
