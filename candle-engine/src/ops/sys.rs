//! The only `unsafe` code of the CPU kernels: the raw `gemm` call, glibc's `mallopt` and
//! the calls into loops compiled for AVX2/AVX-512F ([`run_wide`]).
//!
//! Everything here is wrapped in a safe function that checks the slice lengths the
//! unsafe call relies on, so callers elsewhere in `ops` stay safe Rust.
//!
//! ```
//! use coreml_candle::ops::sys::sgemm;
//! // [2x3] * [3x1] into [2x1], dst starts at the bias (1.0) and is accumulated into.
//! let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
//! let b = [1.0f32, 1.0, 1.0];
//! let mut c = [1.0f32, 1.0];
//! sgemm(2, 1, 3, &mut c, &a, &b, true, 1);
//! assert_eq!(c, [7.0, 16.0]);
//! ```

/// `dst[m×n] (+)= lhs[m×k] · rhs[k×n]`, all row-major and dense.
///
/// With `accumulate`, the product is added to what `dst` holds (used to write the bias, or
/// bias + residual, into the output before the product lands). `threads > 1` runs gemm on
/// the rayon global pool.
///
/// # Panics
/// If a slice is shorter than its matrix.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    lhs: &[f32],
    rhs: &[f32],
    accumulate: bool,
    threads: usize,
) {
    assert!(dst.len() >= m * n, "sgemm: dst too short");
    assert!(lhs.len() >= m * k, "sgemm: lhs too short");
    assert!(rhs.len() >= k * n, "sgemm: rhs too short");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above guarantee that every element the strides below address
    // (row r, column c at r*cols + c, r < rows, c < cols) lies inside the slice; `dst` is a
    // unique borrow, so it cannot alias `lhs` or `rhs`; the element type is f32, which
    // gemm supports (it panics, never misbehaves, on other types).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            1,
            n as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// A strided view of a matrix for [`sgemm_view`]: element `(r, c)` is at
/// `data[r * rs + c * cs]`.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl MatRef<'_> {
    /// Whether every element of a `rows × cols` matrix lies inside `data`.
    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// `dst[m×n] (+)= lhs[m×k] · rhs[k×n]` on strided views (a transposed operand is a view
/// with swapped strides), single-threaded. `dst` is row-major with row stride `dst_rs`.
///
/// # Panics
/// If an operand's view reaches outside its slice, or `dst_rs < n`.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_view(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_rs: usize,
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        dst_rs >= n && dst.len() > (m - 1) * dst_rs + (n - 1),
        "sgemm_view: dst too short"
    );
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * dst_rs..r * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    assert!(lhs.fits(m, k), "sgemm_view: lhs too short");
    assert!(rhs.fits(k, n), "sgemm_view: rhs too short");
    // SAFETY: `fits` guarantees every lhs/rhs element addressed through the strides lies
    // inside its slice, and the dst assert does the same for dst (row stride dst_rs ≥ n, so
    // rows do not overlap); `dst` is a unique borrow and cannot alias the shared operands.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// A block of columns `[col0, col0 + cols)` of a row-major `rows × pitch` matrix,
/// writable independently of the other blocks made by [`split_columns`].
pub struct ColBlock<'a> {
    ptr: *mut f32,
    rows: usize,
    pitch: usize,
    col0: usize,
    cols: usize,
    _borrow: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: a ColBlock is an exclusive view of its own columns (disjoint from every other
// block of the same split, which holds the only borrow of the matrix), so moving it to
// another thread is like moving a `&mut [f32]`.
unsafe impl Send for ColBlock<'_> {}

/// Split `dst` (`rows × pitch`, row-major) into blocks of columns, `bounds[i]..bounds[i+1]`.
///
/// # Panics
/// If `dst` is shorter than `rows × pitch` or the bounds are not increasing within `pitch`.
pub fn split_columns<'a>(
    dst: &'a mut [f32],
    rows: usize,
    pitch: usize,
    bounds: &[usize],
) -> Vec<ColBlock<'a>> {
    assert!(dst.len() >= rows * pitch, "split_columns: matrix too short");
    assert!(
        bounds.windows(2).all(|w| w[0] <= w[1]),
        "split_columns: bounds"
    );
    assert!(
        bounds.last().is_none_or(|&b| b <= pitch),
        "split_columns: bounds"
    );
    let ptr = dst.as_mut_ptr();
    bounds
        .windows(2)
        .map(|w| ColBlock {
            ptr,
            rows,
            pitch,
            col0: w[0],
            cols: w[1] - w[0],
            _borrow: std::marker::PhantomData,
        })
        .collect()
}

impl ColBlock<'_> {
    /// First column.
    pub fn col0(&self) -> usize {
        self.col0
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row `r` of this block (`cols` values).
    pub fn row_mut(&mut self, r: usize) -> &mut [f32] {
        assert!(r < self.rows, "ColBlock: row out of range");
        // SAFETY: r < rows and col0 + cols <= pitch (checked in split_columns), so the
        // range lies inside the matrix; blocks of one split cover disjoint columns and
        // `&mut self` prevents two live rows of this block.
        unsafe {
            std::slice::from_raw_parts_mut(self.ptr.add(r * self.pitch + self.col0), self.cols)
        }
    }

    /// `block (+)= lhs[rows×k] · rhs[k×cols]`, lhs/rhs row-major with row strides
    /// `lhs_rs`/`rhs_rs` (≥ k / cols), single-threaded.
    pub fn gemm(
        &mut self,
        k: usize,
        lhs: &[f32],
        lhs_rs: usize,
        rhs: &[f32],
        rhs_rs: usize,
        accumulate: bool,
    ) {
        let (m, n) = (self.rows, self.cols);
        if m == 0 || n == 0 || k == 0 {
            return;
        }
        assert!(
            lhs_rs >= k && lhs.len() >= (m - 1) * lhs_rs + k,
            "gemm: lhs too short"
        );
        assert!(
            rhs_rs >= n && rhs.len() >= (k - 1) * rhs_rs + n,
            "gemm: rhs too short"
        );
        // SAFETY: the asserts bound every lhs/rhs element gemm reads; dst elements are
        // rows r < m, columns col0..col0+n of a matrix of pitch `pitch`, inside the
        // borrowed slice (split_columns) and owned by this block alone.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                self.ptr.add(self.col0),
                1,
                self.pitch as isize,
                accumulate,
                lhs.as_ptr(),
                1,
                lhs_rs as isize,
                rhs.as_ptr(),
                1,
                rhs_rs as isize,
                1.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }
}

/// Run `f` compiled for AVX2 when the CPU has it (checked once), else as is.
///
/// The default build targets baseline x86-64 (SSE2), so the compiler vectorises our
/// loops 4 floats wide; inside this call they are 8 wide. `f` and the kernels it calls
/// must be `#[inline(always)]` for the wider code to be generated. FMA is deliberately
/// not enabled: Rust never contracts `a * b + c` on its own, and leaving FMA out keeps the
/// results bit-identical across the two paths.
#[inline(always)]
pub fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static AVX2: OnceLock<bool> = OnceLock::new();
        if *AVX2.get_or_init(|| std::arch::is_x86_feature_detected!("avx2")) {
            // SAFETY: `avx2_call` only requires the CPU to support AVX2, which was just
            // checked at run time (is_x86_feature_detected).
            return unsafe { avx2_call(f) };
        }
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2_call<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// A loop to compile wide: [`run_wide`] compiles `run` for AVX-512F or AVX2 when the CPU
/// has them. Implementations mark `run` `#[inline(always)]` (and everything it calls), so
/// it is always inlined into the `target_feature` function; a closure passed to
/// [`with_avx2`] is only widened if LLVM chooses to inline it, which it stops doing when
/// the caller grows (the depthwise taps and the conv epilogues' GELU ran 4 wide then).
pub trait WideLoop {
    /// What the loop returns.
    type Output;
    /// The loop body; must be `#[inline(always)]`.
    fn run(self) -> Self::Output;
}

/// Which wide instruction sets the CPU has (checked once).
#[cfg(target_arch = "x86_64")]
fn wide_level() -> u8 {
    use std::sync::OnceLock;
    static LEVEL: OnceLock<u8> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        if std::arch::is_x86_feature_detected!("avx512f") {
            2
        } else if std::arch::is_x86_feature_detected!("avx2") {
            1
        } else {
            0
        }
    })
}

/// Run `l` compiled for AVX-512F (16 lanes) or AVX2 (8 lanes) when the CPU has it, else as
/// built (SSE2). FMA stays off in every variant, so they all round identically.
#[inline]
pub fn run_wide<L: WideLoop>(l: L) -> L::Output {
    #[cfg(target_arch = "x86_64")]
    match wide_level() {
        // SAFETY: `avx512_loop` only requires AVX-512F, detected at run time just above.
        2 => return unsafe { avx512_loop(l) },
        // SAFETY: `avx2_loop` only requires AVX2, detected at run time just above.
        1 => return unsafe { avx2_loop(l) },
        _ => {}
    }
    l.run()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn avx512_loop<L: WideLoop>(l: L) -> L::Output {
    l.run()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2_loop<L: WideLoop>(l: L) -> L::Output {
    l.run()
}

/// `acc[i] += w · x[i]` over `acc.len()` values (`x` at least as long), wide.
#[inline]
pub fn axpy(acc: &mut [f32], x: &[f32], w: f32) {
    struct Axpy<'a>(&'a mut [f32], &'a [f32], f32);
    impl WideLoop for Axpy<'_> {
        type Output = ();
        #[inline(always)]
        fn run(self) {
            let Axpy(acc, x, w) = self;
            for (a, v) in acc.iter_mut().zip(x) {
                *a += w * v;
            }
        }
    }
    let x = &x[..acc.len()];
    run_wide(Axpy(acc, x, w))
}

/// Raise glibc's mmap and trim thresholds so that the large, short-lived activation
/// buffers of a forward pass are recycled from the heap instead of being a fresh `mmap`
/// each time (whose page faults cost 15-27 % of a BERT forward, see
/// docs/benchmarks.md). Returns whether glibc accepted both settings.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune_malloc() -> bool {
    // glibc refuses an mmap threshold above HEAP_MAX_SIZE/2 (32 MiB on 64-bit): use that.
    const MMAP_THRESHOLD: libc::c_int = 32 * 1024 * 1024;
    const TRIM_THRESHOLD: libc::c_int = 1 << 30;
    // SAFETY: mallopt only changes allocator parameters; it is thread-safe in glibc (it
    // takes the arena locks) and takes plain integers, so no memory is touched by us.
    let a = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
    // SAFETY: as above.
    let b = unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) };
    a == 1 && b == 1
}

/// Other platforms keep their allocator's defaults.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune_malloc() -> bool {
    false
}
