//! The benchmark's only `unsafe` code: the peak loop compiled for AVX-512 + FMA or
//! AVX2 + FMA, called after a run-time CPU check.
//!
//! ```text
//! fma_block(&mut acc, a, b) -> FLOPs done, with the widest FMA the CPU has
//! ```

/// Independent accumulator chains (enough to cover the FMA latency on two ports).
pub const CHAINS: usize = 24;
/// f32 lanes per chain (one AVX-512 register).
pub const LANES: usize = 16;
const STEPS: usize = 4096;

#[inline(always)]
fn body(acc: &mut [[f32; LANES]; CHAINS], a: f32, b: f32) {
    for _ in 0..STEPS {
        for chain in acc.iter_mut() {
            for v in chain.iter_mut() {
                *v = v.mul_add(a, b);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn body_avx512(acc: &mut [[f32; LANES]; CHAINS], a: f32, b: f32) {
    use std::arch::x86_64::{_mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_storeu_ps};
    // Explicit registers: left to itself the compiler turns the array loop into gathers.
    let (va, vb) = (_mm512_set1_ps(a), _mm512_set1_ps(b));
    let mut r = [_mm512_set1_ps(0.0); CHAINS];
    for (r, c) in r.iter_mut().zip(acc.iter()) {
        // SAFETY: `c` is 16 f32s, exactly one unaligned 512-bit load.
        *r = unsafe { _mm512_loadu_ps(c.as_ptr()) };
    }
    for _ in 0..STEPS {
        for r in r.iter_mut() {
            *r = _mm512_fmadd_ps(*r, va, vb);
        }
    }
    for (r, c) in r.iter().zip(acc.iter_mut()) {
        // SAFETY: `c` is 16 f32s, exactly one unaligned 512-bit store.
        unsafe { _mm512_storeu_ps(c.as_mut_ptr(), *r) };
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn body_avx2(acc: &mut [[f32; LANES]; CHAINS], a: f32, b: f32) {
    body(acc, a, b)
}

/// `STEPS` rounds of `acc = acc·a + b`; returns (FLOPs done, instruction set used).
pub fn fma_block(acc: &mut [[f32; LANES]; CHAINS], a: f32, b: f32) -> (f64, &'static str) {
    let flops = (STEPS * CHAINS * LANES * 2) as f64;
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: body_avx512 only requires AVX-512F and FMA, checked just above.
            unsafe { body_avx512(acc, a, b) };
            return (flops, "AVX-512 FMA");
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: body_avx2 only requires AVX2 and FMA, checked just above.
            unsafe { body_avx2(acc, a, b) };
            return (flops, "AVX2 FMA");
        }
    }
    body(acc, a, b);
    (flops, "scalar")
}
