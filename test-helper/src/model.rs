//! Diagnostic models addressed by `diag:<model>?k=v&...` URIs (docs/diagnostics.md).
//!
//! ```text
//! let m = DiagModel::parse("diag:add?c=2&shape=2x3&fault=segv&after=5")?;
//! assert_eq!(m.kind, Kind::Add);
//! ```

use coreml_ipc_schema::{DType, ImageSpec, PixelFormat, TensorRef, TensorSpec};

use crate::sys::Mapping;

/// Which diagnostic model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `y = x`.
    Echo,
    /// `y = x + c` (f32).
    Add,
    /// Sleep `ms`, then `y = x`.
    Sleep,
    /// An image input `x` (`shape=HxW`, `format=`) reduced to `y = scale * pixel + bias[c]`,
    /// f32 `[1, C, H, W]` with colour channels in R, G, B order (what a converted vision
    /// model does with its image input); with `out=image`, `y` is the image itself; with
    /// `out=mean`, `y` is f32 `[1, C]`, the per-channel mean of `scale * pixel + bias[c]`.
    /// `range=H1-H2xW1-W2` or `sizes=HxW,HxW` make the input's size flexible (`shape` is
    /// the default size).
    Image,
}

/// Every fault kind of docs/diagnostics.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Segv,
    Abort,
    Exit,
    Hang,
    Sigstop,
    Alloc,
    Garbage,
    Oversize,
    WrongId,
    BadRef,
    CloseSocket,
    ForkChild,
    ReleaseUnknown,
    Unsupported,
    ForkSleeper,
    EscapeChild,
    BadRefBefore,
    /// After writing the outputs, `ftruncate` the output region to 0 bytes; a
    /// refusal is answered `SHM_FAILED`, success with a normal reply.
    ShrinkRegion,
    /// Reply correctly, then, 40 ms later, keep overwriting the output slot for ~100 ms.
    LateWrite,
}

impl Fault {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "segv" => Fault::Segv,
            "abort" => Fault::Abort,
            "exit" => Fault::Exit,
            "hang" => Fault::Hang,
            "sigstop" => Fault::Sigstop,
            "alloc" => Fault::Alloc,
            "garbage" => Fault::Garbage,
            "oversize" => Fault::Oversize,
            "wrong-id" => Fault::WrongId,
            "bad-ref" => Fault::BadRef,
            "close-socket" => Fault::CloseSocket,
            "fork-child" => Fault::ForkChild,
            "release-unknown" => Fault::ReleaseUnknown,
            "unsupported" => Fault::Unsupported,
            "fork-sleeper" => Fault::ForkSleeper,
            "escape-child" => Fault::EscapeChild,
            "bad-ref-before" => Fault::BadRefBefore,
            "shrink-region" => Fault::ShrinkRegion,
            "late-write" => Fault::LateWrite,
            _ => return None,
        })
    }
}

/// When a fault fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// While answering `Load`.
    Load,
    /// While answering `Predict`.
    Predict,
}

/// A parsed diagnostic model.
#[derive(Debug, Clone)]
pub struct DiagModel {
    pub kind: Kind,
    pub dtype: DType,
    pub shape: Vec<u64>,
    pub c: f32,
    pub ms: u64,
    pub fault: Option<Fault>,
    pub at: At,
    pub after: u64,
    pub once: Option<String>,
    /// The fault fires only while this file exists.
    pub armed: Option<String>,
    /// Milliseconds `Load` takes before it answers.
    pub load_ms: u64,
    /// Keep the inputs referenced this many ms after replying (`InputsReleased` later).
    pub retain: u64,
    /// Successful predictions so far.
    pub successes: u64,
    /// The image kind: the input's size and pixel format.
    pub image: Option<ImageSpec>,
    /// The image kind: `y` is the image (`out=image`) instead of a tensor.
    pub out_image: bool,
    /// The image kind: per-pixel scale.
    pub scale: f32,
    /// The image kind: per-channel bias (one value applies to every channel).
    pub bias: Vec<f32>,
    /// The image kind: `y` is the per-channel mean (`out=mean`).
    pub out_mean: bool,
    /// The image kind: `x`'s spec (flexible sizes included).
    pub x_spec: Option<TensorSpec>,
}

/// `A-B` as `[A, B]`.
fn span(v: &str) -> Option<[u64; 2]> {
    let (a, b) = v.split_once('-')?;
    Some([a.parse().ok()?, b.parse().ok()?])
}

impl DiagModel {
    /// Parses a `diag:` URI; `Err` is a `BAD_REQUEST` message.
    pub fn parse(uri: &str) -> Result<Self, String> {
        let rest = uri
            .strip_prefix("diag:")
            .ok_or_else(|| format!("not a diag: URI: {uri}"))?;
        let (name, query) = rest.split_once('?').unwrap_or((rest, ""));
        let kind = match name {
            "echo" => Kind::Echo,
            "add" => Kind::Add,
            "sleep" => Kind::Sleep,
            "image" => Kind::Image,
            other => return Err(format!("unknown diagnostic model {other:?}")),
        };
        let mut m = DiagModel {
            kind,
            dtype: DType::F32,
            shape: vec![4],
            c: 1.0,
            ms: 100,
            fault: None,
            at: At::Predict,
            after: 0,
            once: None,
            armed: None,
            load_ms: 0,
            retain: 0,
            successes: 0,
            image: None,
            out_image: false,
            scale: 1.0,
            bias: vec![0.0],
            out_mean: false,
            x_spec: None,
        };
        let mut format = PixelFormat::Bgra8;
        let mut range: Option<([u64; 2], [u64; 2])> = None;
        let mut sizes: Vec<(u64, u64)> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = || format!("bad value {v:?} for {k}");
            match k {
                "dtype" => m.dtype = DType::from_name(v).ok_or_else(bad)?,
                "shape" if v.is_empty() => m.shape = vec![],
                "shape" => {
                    m.shape = v
                        .split('x')
                        .map(|d| d.parse().map_err(|_| bad()))
                        .collect::<Result<_, _>>()?
                }
                "c" => m.c = v.parse().map_err(|_| bad())?,
                "ms" => m.ms = v.parse().map_err(|_| bad())?,
                "fault" => m.fault = Some(Fault::parse(v).ok_or_else(bad)?),
                "at" => {
                    m.at = match v {
                        "load" => At::Load,
                        "predict" => At::Predict,
                        _ => return Err(bad()),
                    }
                }
                "after" => m.after = v.parse().map_err(|_| bad())?,
                "once" => m.once = Some(v.to_string()),
                "armed" => m.armed = Some(v.to_string()),
                "load_ms" => m.load_ms = v.parse().map_err(|_| bad())?,
                "retain" => m.retain = v.parse().map_err(|_| bad())?,
                "format" => {
                    format = *PixelFormat::ALL
                        .iter()
                        .find(|f| f.name() == v)
                        .ok_or_else(bad)?
                }
                "scale" => m.scale = v.parse().map_err(|_| bad())?,
                "bias" => {
                    m.bias = v
                        .split(',')
                        .map(|b| b.parse().map_err(|_| bad()))
                        .collect::<Result<_, _>>()?
                }
                "out" => {
                    (m.out_image, m.out_mean) = match v {
                        "image" => (true, false),
                        "tensor" => (false, false),
                        "mean" => (false, true),
                        _ => return Err(bad()),
                    }
                }
                "range" => {
                    let (h, w) = v.split_once('x').ok_or_else(bad)?;
                    range = Some((span(h).ok_or_else(bad)?, span(w).ok_or_else(bad)?));
                }
                "sizes" => {
                    for hw in v.split(',') {
                        let (h, w) = hw.split_once('x').ok_or_else(bad)?;
                        sizes.push((w.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?));
                    }
                }
                other => return Err(format!("unknown key {other:?}")),
            }
        }
        if m.kind == Kind::Add && m.dtype != DType::F32 {
            return Err("the add model takes f32 only".into());
        }
        if m.kind == Kind::Image {
            let [h, w] = m.shape[..] else {
                return Err("the image model's shape is HxW".into());
            };
            let image = ImageSpec {
                width: w,
                height: h,
                pixel_format: format,
            };
            let spec = match range {
                Some((h, w)) => TensorSpec::image_range("x", image, w, h),
                None if !sizes.is_empty() => TensorSpec::image_sizes("x", image, &sizes),
                None => TensorSpec::image("x", image),
            };
            image.check(&spec).map_err(|e| e.to_string())?;
            let flexible = !spec.shape_ranges.is_empty() || !spec.enumerated_shapes.is_empty();
            if flexible && !m.out_mean {
                return Err("a flexible image model's output is out=mean".into());
            }
            if m.bias.len() != 1 && m.bias.len() as u64 != image_channels(format) {
                return Err(format!(
                    "{} bias values for {}",
                    m.bias.len(),
                    format.name()
                ));
            }
            m.dtype = spec.dtype;
            m.shape = spec.shape.clone();
            m.image = Some(image);
            m.x_spec = Some(spec);
        }
        Ok(m)
    }

    /// The schema entry of `x` or `y`.
    pub fn spec(&self, name: &str) -> TensorSpec {
        if let Some(image) = self.image {
            if name == "x" {
                if let Some(spec) = &self.x_spec {
                    return spec.clone();
                }
            }
            if name == "x" || self.out_image {
                return TensorSpec::image(name, image);
            }
            return TensorSpec {
                name: name.into(),
                dtype: DType::F32,
                shape: self.reduced_shape(&image),
                enumerated_shapes: vec![],
                shape_ranges: vec![],
                optional: false,
                image: None,
            };
        }
        TensorSpec {
            name: name.into(),
            dtype: self.dtype,
            shape: self.shape.clone(),
            enumerated_shapes: vec![],
            shape_ranges: vec![],
            optional: false,
            image: None,
        }
    }

    /// Whether the fault fires now at `at` (consumes the `once` marker).
    pub fn fault_fires(&self, at: At) -> Option<Fault> {
        let fault = self.fault?;
        if self.at != at || (at == At::Predict && self.successes < self.after) {
            return None;
        }
        if let Some(path) = &self.armed {
            if !std::path::Path::new(path).exists() {
                return None;
            }
        }
        if let Some(path) = &self.once {
            if std::path::Path::new(path).exists() {
                return None;
            }
            let _ = std::fs::File::create(path);
        }
        Some(fault)
    }

    /// Checks a ref against the schema (dtype, shape) and its region.
    pub fn check_ref(&self, t: &TensorRef, region: &Mapping) -> Result<(), String> {
        if let Some(image) = self.image {
            // `x` (and an image `y`) are pixels; a reduced `y` is f32.
            if t.dtype == DType::F32 && !self.out_image && image.pixel_format.dtype() != DType::F32
            {
                let want = self.reduced_shape(&image);
                if t.shape != want {
                    return Err(format!("y is {:?}, the model makes {want:?}", t.shape));
                }
            } else {
                // `x` may have any size its spec takes.
                let [h, w, _] = t.shape[..] else {
                    return Err(format!(
                        "an image is [height, width, channels], not {:?}",
                        t.shape
                    ));
                };
                let sized = image
                    .sized(&self.spec("x"), w, h)
                    .map_err(|e| e.to_string())?;
                sized.check_ref(t).map_err(|e| e.to_string())?;
            }
            return t.validate(region.len() as u64).map_err(|e| e.to_string());
        }
        if t.dtype != self.dtype || t.shape != self.shape {
            return Err(format!(
                "tensor is {}{:?}, the model wants {}{:?}",
                t.dtype.name(),
                t.shape,
                self.dtype.name(),
                self.shape
            ));
        }
        t.validate(region.len() as u64).map_err(|e| e.to_string())
    }

    /// `[1, C, H, W]` of the reduced output (`[1, C]` for `out=mean`).
    fn reduced_shape(&self, image: &ImageSpec) -> Vec<u64> {
        if self.out_mean {
            return vec![1, image_channels(image.pixel_format)];
        }
        vec![
            1,
            image_channels(image.pixel_format),
            image.height,
            image.width,
        ]
    }

    /// The image kind: `y` from the pixels of `x`, every stride honoured.
    fn run_image(
        &self,
        image: &ImageSpec,
        x: &TensorRef,
        xin: &Mapping,
        y: &TensorRef,
        yout: &Mapping,
    ) {
        let f = image.pixel_format;
        let esz = f.dtype().size();
        let bpp = f.bytes_per_pixel() as usize;
        let mut px = vec![0u8; bpp];
        // The request's size (a flexible input's may differ from the default).
        let (height, width) = (x.shape[0], x.shape[1]);
        let mut sums = vec![0f64; image_channels(f) as usize];
        for r in 0..height {
            for c in 0..width {
                let at = x.offset + (r * x.strides[0] + c * x.strides[1]) * esz;
                xin.read(at as usize, &mut px);
                if self.out_image {
                    let to = y.offset + (r * y.strides[0] + c * y.strides[1]) * esz;
                    yout.write(to as usize, &px);
                    continue;
                }
                for (ch, v) in rgb_of(f, &px).into_iter().enumerate() {
                    let bias = self.bias[ch.min(self.bias.len() - 1)];
                    let out = self.scale * v + bias;
                    if self.out_mean {
                        sums[ch] += out as f64;
                        continue;
                    }
                    let e = ch as u64 * y.strides[1] + r * y.strides[2] + c * y.strides[3];
                    yout.write((y.offset + e * 4) as usize, &out.to_le_bytes());
                }
            }
        }
        if self.out_mean {
            for (ch, sum) in sums.iter().enumerate() {
                let mean = (sum / (height * width).max(1) as f64) as f32;
                let e = ch as u64 * y.strides[1];
                yout.write((y.offset + e * 4) as usize, &mean.to_le_bytes());
            }
        }
    }

    /// Runs the model: reads `x` from `xin`, writes `y` to `yout` (strides honoured).
    pub fn run(&self, x: &TensorRef, xin: &Mapping, y: &TensorRef, yout: &Mapping) {
        if let Some(image) = self.image {
            return self.run_image(&image, x, xin, y, yout);
        }
        let esz = self.dtype.size() as usize;
        let count = x.element_count().unwrap_or(0) as usize;
        if x.is_contiguous() && y.is_contiguous() {
            let n = count * esz;
            if self.kind != Kind::Add {
                xin.copy_to(x.offset as usize, yout, y.offset as usize, n);
                return;
            }
            let mut buf = vec![0u8; n.min(1 << 16)];
            let mut done = 0;
            while done < n {
                let chunk = &mut buf[..(n - done).min(1 << 16)];
                xin.read(x.offset as usize + done, chunk);
                for w in chunk.chunks_exact_mut(4) {
                    let v = f32::from_le_bytes([w[0], w[1], w[2], w[3]]) + self.c;
                    w.copy_from_slice(&v.to_le_bytes());
                }
                yout.write(y.offset as usize + done, chunk);
                done += chunk.len();
            }
            return;
        }
        let mut elem = vec![0u8; esz];
        let mut rm = vec![1u64; self.shape.len()];
        for d in (0..self.shape.len().saturating_sub(1)).rev() {
            rm[d] = rm[d + 1] * self.shape[d + 1].max(1);
        }
        for i in 0..count {
            // Multi-index from the row-major position, then byte offsets per strides.
            let (mut xo, mut yo, mut rest) = (0u64, 0u64, i as u64);
            for (d, stride) in rm.iter().enumerate() {
                let idx = rest / stride;
                rest %= stride;
                xo += idx * x.strides[d];
                yo += idx * y.strides[d];
            }
            xin.read((x.offset + xo * esz as u64) as usize, &mut elem);
            if self.kind == Kind::Add {
                let v = f32::from_le_bytes([elem[0], elem[1], elem[2], elem[3]]) + self.c;
                elem.copy_from_slice(&v.to_le_bytes());
            }
            yout.write((y.offset + yo * esz as u64) as usize, &elem);
        }
    }
}

/// Channels of the reduced output: 3 (R, G, B) for colour formats, 1 for grayscale.
fn image_channels(f: PixelFormat) -> u64 {
    match f {
        PixelFormat::Bgra8 | PixelFormat::Argb8 => 3,
        PixelFormat::Gray8 | PixelFormat::GrayF16 => 1,
    }
}

/// The pixel's channels as floats, colour in R, G, B order (alpha dropped).
fn rgb_of(f: PixelFormat, px: &[u8]) -> Vec<f32> {
    match f {
        PixelFormat::Bgra8 => vec![px[2] as f32, px[1] as f32, px[0] as f32],
        PixelFormat::Argb8 => vec![px[1] as f32, px[2] as f32, px[3] as f32],
        PixelFormat::Gray8 => vec![px[0] as f32],
        PixelFormat::GrayF16 => vec![f16_to_f32(u16::from_le_bytes([px[0], px[1]]))],
    }
}

/// IEEE binary16 to binary32 (exact).
fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = (h >> 10) & 0x1f;
    let frac = (h & 0x3ff) as f32;
    sign * match exp {
        0 => frac * 2f32.powi(-24),
        31 if frac == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        e => (1.0 + frac / 1024.0) * 2f32.powi(e as i32 - 15),
    }
}
