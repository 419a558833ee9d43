//! Shared test helpers: a watchdog so a hang fails fast, seeded random tensors, L∞ distance.
//!
//! ```ignore
//! let x = support::rand_tensor(7, &[1, 3, 8, 8], 1.0);
//! support::watchdog(30, move || assert!(support::max_abs_diff(&x, &x) == 0.0));
//! ```
#![allow(dead_code)]

use candle_core::{Device, Tensor};
use std::sync::mpsc;
use std::time::Duration;

/// Run `f` on a thread; fail if it takes longer than `secs` (or panics).
pub fn watchdog<F: FnOnce() + Send + 'static>(secs: u64, f: F) {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) => handle.join().expect("test thread panicked"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(e) = handle.join() {
                std::panic::resume_unwind(e)
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("watchdog: test exceeded {secs} s"),
    }
}

/// splitmix64: the same generator as scripts/gen_vision_weights.py.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform values in [-scale, scale), deterministic in `seed`.
pub fn rand_vec(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            let u = (splitmix64(&mut s) >> 40) as f32 / (1u64 << 24) as f32;
            (2.0 * u - 1.0) * scale
        })
        .collect()
}

/// A CPU f32 tensor of [`rand_vec`] values.
pub fn rand_tensor(seed: u64, shape: &[usize], scale: f32) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(rand_vec(seed, n, scale), shape, &Device::Cpu).unwrap()
}

/// L∞ distance of two same-shape tensors.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shape mismatch");
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// L∞ norm of a tensor.
pub fn max_abs(a: &Tensor) -> f32 {
    a.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}
