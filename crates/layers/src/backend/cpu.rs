//! The CPU backend: matrix products through the workspace's GEMM (the pure-Rust `gemm` crate, or
//! OpenBLAS with the `openblas` feature), the other kernels as loops parallel over planes (rayon).

use std::cell::Cell;

use rayon::prelude::*;

use super::{Backend, ConvGeometry, Gemm, PoolGeometry};

#[cfg(not(feature = "openblas"))]
/// Products with fewer multiply-adds than this run on one thread: splitting them costs more
/// than it saves (ip2's 320 k take a few microseconds, waking a pool thread about as long).
const PARALLEL_GEMM_MACS: u64 = 1 << 21;

thread_local! {
    /// Set while this thread runs one task of a layer's own split (see [`as_task`]).
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` as one task of a layer that splits its work across the rayon pool itself (a
/// convolution runs images per task): the backend's operations inside stay on this thread.
pub fn as_task<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the flag, also when `f` unwinds.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            IN_TASK.with(|t| t.set(self.0));
        }
    }
    let _restore = Restore(IN_TASK.with(|t| t.replace(true)));
    f()
}

/// Whether an operation splits its work across the rayon pool: not inside a layer's task
/// ([`as_task`]), whose caller already split, and not on a one-thread pool (entering it costs
/// a wake-up and gains nothing). The whole training may run inside the pool (the TUI installs
/// one per cell), so being on a pool thread says nothing.
pub(crate) fn splits_across_pool() -> bool {
    !in_task() && rayon::current_num_threads() > 1
}

/// Whether this thread runs inside [`as_task`].
fn in_task() -> bool {
    IN_TASK.with(Cell::get)
}

/// CPU compute. Uses the current rayon pool (the CLI sizes the global one with `--threads`).
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuBackend;

impl CpuBackend {
    pub fn new() -> Self {
        Self
    }
}

fn check_gemm_lengths(g: &Gemm, a: &[f32], b: &[f32], c: &[f32]) {
    assert!(
        a.len() >= g.m * g.k,
        "gemm: lhs has {} < {}",
        a.len(),
        g.m * g.k
    );
    assert!(
        b.len() >= g.k * g.n,
        "gemm: rhs has {} < {}",
        b.len(),
        g.k * g.n
    );
    assert!(
        c.len() >= g.m * g.n,
        "gemm: dst has {} < {}",
        c.len(),
        g.m * g.n
    );
}

/// `c *= beta` for the degenerate `k = 0` product.
fn scale_only(g: &Gemm, c: &mut [f32]) {
    let c = &mut c[..g.m * g.n];
    if g.beta == 0.0 {
        c.fill(0.0);
    } else {
        c.iter_mut().for_each(|v| *v *= g.beta);
    }
}

#[cfg(not(feature = "openblas"))]
/// Column blocks of the products split across the pool (a multiple of the 16 f32 lanes).
const GEMM_BLOCK_COLS: usize = 128;

/// The product, or its columns `cols` only, on this thread.
///
/// # Safety
/// `a`, `b` and `c` hold at least the elements `g` describes (checked by the caller) and no
/// other thread writes `c`'s columns `cols` meanwhile.
#[cfg(not(feature = "openblas"))]
unsafe fn gemm_columns(g: &Gemm, a: *const f32, b: *const f32, c: *mut f32, cols: (usize, usize)) {
    // Row-major strides of op(a) (m × k) and op(b) (k × n) as stored.
    let (lhs_rs, lhs_cs) = if g.trans_a { (1, g.m) } else { (g.k, 1) };
    let (rhs_rs, rhs_cs) = if g.trans_b { (1, g.k) } else { (g.n, 1) };
    let (j0, j1) = cols;
    // SAFETY: the caller's lengths bound every strided access of the m × (j1 − j0) block; the
    // crate's convention is dst = alpha·dst + beta·lhs·rhs (BLAS's alpha and beta swapped),
    // and dst is only read when `read_dst` is set.
    unsafe {
        gemm::gemm(
            g.m,
            j1 - j0,
            g.k,
            c.add(j0),
            1,
            g.n as isize,
            g.beta != 0.0,
            a,
            lhs_cs as isize,
            lhs_rs as isize,
            b.add(j0 * rhs_cs),
            rhs_cs as isize,
            rhs_rs as isize,
            g.beta,
            g.alpha,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// A raw pointer shared by the tasks of one product, each writing its own columns.
#[cfg(not(feature = "openblas"))]
#[derive(Clone, Copy)]
struct SharedDst(*mut f32);
// SAFETY: only used by `gemm_product`, whose tasks write disjoint columns.
#[cfg(not(feature = "openblas"))]
unsafe impl Send for SharedDst {}
#[cfg(not(feature = "openblas"))]
unsafe impl Sync for SharedDst {}

#[cfg(not(feature = "openblas"))]
impl SharedDst {
    /// The pointer (a method, so that closures capture the whole `Sync` wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}

#[cfg(not(feature = "openblas"))]
fn gemm_product(g: Gemm, a: &[f32], b: &[f32], c: &mut [f32]) {
    // The crate copies a column-major left operand into its own panels once the product has
    // more than 8 × 6 columns (its view: ours transposed). Our per-image products already
    // store it panel-like (64 contiguous rows per column), so the copy only costs: without it
    // conv2's forward product runs 15% faster and ip1's input gradient 9% (crates/layers
    // benches, gemm/*). A process-wide setting of the crate, which only this backend uses.
    static NO_LHS_COPY: std::sync::Once = std::sync::Once::new();
    NO_LHS_COPY.call_once(|| gemm::set_lhs_packing_threshold_single_thread(256));
    let whole = (0, g.n);
    // Inside a layer's task the caller already parallelises (a convolution runs images per
    // task): one product on this thread. Otherwise a large product is cut into column blocks,
    // the same blocks on any thread count (the same bits), across the pool when it has more
    // than one thread. The crate's own threading packs the left operand on the calling thread
    // first (when its row count is not a multiple of 16, as for ip1's 500 outputs): a serial
    // step that held the second core idle.
    if g.macs() < PARALLEL_GEMM_MACS || in_task() {
        // SAFETY: lengths checked by the caller; `c` is borrowed exclusively.
        return unsafe { gemm_columns(&g, a.as_ptr(), b.as_ptr(), c.as_mut_ptr(), whole) };
    }
    let dst = SharedDst(c.as_mut_ptr());
    let block = |block: usize| {
        let cols = (
            block * GEMM_BLOCK_COLS,
            g.n.min((block + 1) * GEMM_BLOCK_COLS),
        );
        // SAFETY: lengths checked by the caller; `c` is borrowed exclusively for the whole
        // call and each task writes only its own columns.
        unsafe { gemm_columns(&g, a.as_ptr(), b.as_ptr(), dst.get(), cols) };
    };
    let blocks = 0..g.n.div_ceil(GEMM_BLOCK_COLS);
    if splits_across_pool() {
        blocks.into_par_iter().for_each(block);
    } else {
        blocks.for_each(block);
    }
}

#[cfg(feature = "openblas")]
fn gemm_product(g: Gemm, a: &[f32], b: &[f32], c: &mut [f32]) {
    use cblas_sys::{CBLAS_LAYOUT, CBLAS_TRANSPOSE, cblas_sgemm};
    let trans = |t: bool| {
        if t {
            CBLAS_TRANSPOSE::CblasTrans
        } else {
            CBLAS_TRANSPOSE::CblasNoTrans
        }
    };
    let lda = if g.trans_a { g.m } else { g.k };
    let ldb = if g.trans_b { g.k } else { g.n };
    // SAFETY: lengths checked against m, n, k by the caller; leading dimensions match the
    // row-major layouts those lengths describe.
    unsafe {
        cblas_sgemm(
            CBLAS_LAYOUT::CblasRowMajor,
            trans(g.trans_a),
            trans(g.trans_b),
            g.m as i32,
            g.n as i32,
            g.k as i32,
            g.alpha,
            a.as_ptr(),
            lda.max(1) as i32,
            b.as_ptr(),
            ldb.max(1) as i32,
            g.beta,
            c.as_mut_ptr(),
            g.n.max(1) as i32,
        );
    }
}

/// Runs `f` compiled for AVX2 and FMA when the CPU has them, else as it is. The crate is built
/// for baseline x86-64 (SSE2), so the short row copies and sums of im2col, col2im and pooling
/// would otherwise move 16 bytes at a time, or one float at a time where LLVM gives up. `f`
/// must be an `#[inline(always)]` closure calling `#[inline(always)]` functions for the
/// features to reach its body. (The `gemm` crate detects its own kernels at run time.)
#[inline(always)]
pub(crate) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has the features `avx2` is compiled for (detected just above).
            return unsafe { avx2(f) };
        }
    }
    f()
}

/// Runs `f(index, chunk)` over the `len`-long chunks of `data`: across the pool when
/// [`splits_across_pool`], else on this thread.
///
/// The serial loop is compiled for AVX2 (see [`vectorized`]); `f` should be an
/// `#[inline(always)]` closure so that its body is too.
fn for_each_chunk(data: &mut [f32], len: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    if !splits_across_pool() {
        // A `for` loop, not `for_each`: the latter's `fold` was left out of line, compiled
        // without AVX2.
        vectorized(
            #[inline(always)]
            || {
                for (i, c) in data.chunks_mut(len).enumerate() {
                    f(i, c);
                }
            },
        );
    } else {
        data.par_chunks_mut(len)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    }
}

/// `dst` (rows of `width`) = the `width`-wide rows of `src`, `pitch` apart: one im2col row of
/// an unpadded unit-stride convolution. Rows are short (8 and 24 for LeNet); with the width
/// known at compile time each is a few vector moves instead of a memcpy call.
#[inline(always)]
fn copy_window(dst: &mut [f32], src: &[f32], width: usize, pitch: usize) {
    #[inline(always)]
    fn rows<const W: usize>(dst: &mut [f32], src: &[f32], pitch: usize) {
        for (oh, d) in dst.chunks_exact_mut(W).enumerate() {
            let d: &mut [f32; W] = d.try_into().expect("chunk of W");
            *d = *<&[f32; W]>::try_from(&src[oh * pitch..][..W]).expect("slice of W");
        }
    }
    match width {
        8 => rows::<8>(dst, src, pitch),
        16 => rows::<16>(dst, src, pitch),
        24 => rows::<24>(dst, src, pitch),
        _ => {
            for (oh, d) in dst.chunks_exact_mut(width).enumerate() {
                d.copy_from_slice(&src[oh * pitch..][..width]);
            }
        }
    }
}

/// im2col of one image for unpadded unit-stride geometry with `KW`-wide kernels and `OW`-wide
/// outputs: rows in (channel, ki, kj) order, as [`Backend::im2col`] writes them.
#[inline(always)]
fn im2col_image<const KW: usize, const OW: usize>(
    g: &ConvGeometry,
    image: &[f32],
    col: &mut [f32],
) {
    let (width, plane_len) = (g.width, g.height * g.width);
    let out_h = g.height + 1 - g.kernel[0];
    let mut rows = col.chunks_exact_mut(out_h * OW);
    for c in 0..g.channels {
        let plane = &image[c * plane_len..][..plane_len];
        for ki in 0..g.kernel[0] {
            for kj in 0..KW {
                let Some(row) = rows.next() else { return };
                for (oh, dst) in row.chunks_exact_mut(OW).enumerate() {
                    let src: &[f32; OW] = plane[(oh + ki) * width + kj..][..OW]
                        .try_into()
                        .expect("a row of OW");
                    let dst: &mut [f32; OW] = dst.try_into().expect("a row of OW");
                    *dst = *src;
                }
            }
        }
    }
}

/// The adjoint of [`copy_window`]: adds the `width`-wide rows of `src` into `dst`'s rows,
/// `pitch` apart.
#[inline(always)]
fn add_window(dst: &mut [f32], src: &[f32], width: usize, pitch: usize) {
    #[inline(always)]
    fn rows<const W: usize>(dst: &mut [f32], src: &[f32], pitch: usize) {
        for (oh, s) in src.chunks_exact(W).enumerate() {
            let d: &mut [f32; W] = (&mut dst[oh * pitch..][..W])
                .try_into()
                .expect("slice of W");
            let s: &[f32; W] = s.try_into().expect("chunk of W");
            // Load, add, store as whole arrays: summed in place, LLVM emitted one scalar
            // load-add-store per float.
            let mut sum = *d;
            for (v, s) in sum.iter_mut().zip(s) {
                *v += s;
            }
            *d = sum;
        }
    }
    match width {
        8 => rows::<8>(dst, src, pitch),
        16 => rows::<16>(dst, src, pitch),
        24 => rows::<24>(dst, src, pitch),
        _ => {
            for (oh, s) in src.chunks_exact(width).enumerate() {
                dst[oh * pitch..][..width]
                    .iter_mut()
                    .zip(s)
                    .for_each(|(d, s)| *d += s);
            }
        }
    }
}

/// For unit horizontal stride: the output columns `[lo, hi)` whose input column `ow + dx` lies
/// inside the image.
#[inline(always)]
fn unit_stride_span(g: &ConvGeometry, out_w: usize, dx: isize) -> (usize, usize) {
    let lo = (-dx).clamp(0, out_w as isize) as usize;
    let hi = (g.width as isize - dx).clamp(lo as isize, out_w as isize) as usize;
    (lo, hi)
}

/// Whether the pooling is LeNet's 2×2 windows at stride 2 without padding on even sizes: each
/// pixel in exactly one window, none clipped.
fn is_tiling_2x2(g: &PoolGeometry) -> bool {
    g.kernel == [2, 2]
        && g.stride == [2, 2]
        && g.pad == [0, 0]
        && g.height.is_multiple_of(2)
        && g.width.is_multiple_of(2)
}

/// Max pooling of one plane for [`is_tiling_2x2`] geometry; same comparisons, in the same
/// order, as the general loop (first maximum wins, NaN never does), written with selects
/// instead of branches so that it vectorises.
#[inline(always)]
fn max_pool_2x2(width: usize, plane: &[f32], out: &mut [f32], mask: &mut [u32]) {
    let out_w = width / 2;
    for (oh, (out_row, mask_row)) in out
        .chunks_exact_mut(out_w)
        .zip(mask.chunks_exact_mut(out_w))
        .enumerate()
    {
        let (top, bottom) = plane[2 * oh * width..][..2 * width].split_at(width);
        let (top, bottom) = (&top[..2 * out_w], &bottom[..2 * out_w]);
        let row_base = (2 * oh * width) as u32;
        for (ow, (o, m)) in out_row.iter_mut().zip(mask_row.iter_mut()).enumerate() {
            let w = 2 * ow;
            let base = row_base + w as u32;
            let mut best = -f32::MAX;
            let mut best_idx = u32::MAX;
            for (v, idx) in [
                (top[w], base),
                (top[w + 1], base + 1),
                (bottom[w], base + width as u32),
                (bottom[w + 1], base + width as u32 + 1),
            ] {
                let take = v > best;
                best = if take { v } else { best };
                best_idx = if take { idx } else { best_idx };
            }
            *o = best;
            *m = best_idx;
        }
    }
}

/// Window `[start, end)` of output `o` along one axis, clipped to the image, as Caffe's max
/// pooling computes it; also the unclipped size (for average pooling's divisor).
fn pool_window(
    o: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    size: usize,
) -> (usize, usize, usize) {
    let start = (o * stride) as isize - pad as isize;
    let end_padded = (start + kernel as isize).min((size + pad) as isize);
    let span = (end_padded - start) as usize;
    let end = end_padded.min(size as isize).max(0) as usize;
    (start.max(0) as usize, end, span)
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        if cfg!(feature = "openblas") {
            "cpu-openblas"
        } else {
            "cpu-gemm"
        }
    }

    fn gemm(&self, g: Gemm, a: &[f32], b: &[f32], c: &mut [f32]) {
        check_gemm_lengths(&g, a, b, c);
        if g.m == 0 || g.n == 0 {
            return;
        }
        if g.k == 0 {
            return scale_only(&g, c);
        }
        gemm_product(g, a, b, c);
    }

    fn im2col(&self, g: &ConvGeometry, batch: usize, images: &[f32], col: &mut [f32]) {
        let Some([out_h, out_w]) = g.output_size() else {
            return;
        };
        let spatial = out_h * out_w;
        let row_len = batch * spatial;
        let image_len = g.channels * g.height * g.width;
        let [kh, kw] = g.kernel;
        if row_len == 0 {
            return;
        }
        let plain = g.pad == [0, 0] && g.stride == [1, 1] && g.dilation == [1, 1];
        if plain && batch == 1 && !splits_across_pool() {
            // One image, as a convolution's tasks ask: LeNet's shapes with their widths known
            // at compile time (rows of 8 or 24 are then whole vector moves, not dispatched).
            match (kw, out_w) {
                (5, 8) => {
                    return vectorized(
                        #[inline(always)]
                        || im2col_image::<5, 8>(g, images, col),
                    );
                }
                (5, 24) => {
                    return vectorized(
                        #[inline(always)]
                        || im2col_image::<5, 24>(g, images, col),
                    );
                }
                _ => {}
            }
        }
        if plain && !splits_across_pool() {
            // The common case (LeNet's), on this thread: rows in (channel, ki, kj) order
            // without the per-row index arithmetic of the general loop below.
            let plane_len = g.height * g.width;
            let mut rows = col.chunks_exact_mut(row_len);
            return vectorized(
                #[inline(always)]
                || {
                    for c in 0..g.channels {
                        for ki in 0..kh {
                            for kj in 0..kw {
                                let row = rows.next().expect("col_rows rows");
                                for (n, out) in row.chunks_exact_mut(spatial).enumerate() {
                                    let plane = &images[n * image_len + c * plane_len..];
                                    copy_window(out, &plane[ki * g.width + kj..], out_w, g.width);
                                }
                            }
                        }
                    }
                },
            );
        }
        for_each_chunk(
            &mut col[..g.col_rows() * row_len],
            row_len,
            #[inline(always)]
            |r, row| {
                let (c, ki, kj) = (r / (kh * kw), (r / kw) % kh, r % kw);
                if plain {
                    for (n, out) in row.chunks_exact_mut(spatial).enumerate() {
                        let plane = &images[n * image_len + c * g.height * g.width..];
                        copy_window(out, &plane[ki * g.width + kj..], out_w, g.width);
                    }
                    return;
                }
                let dy = (ki * g.dilation[0]) as isize - g.pad[0] as isize;
                let dx = (kj * g.dilation[1]) as isize - g.pad[1] as isize;
                let (lo, hi) = unit_stride_span(g, out_w, dx);
                for (n, out) in row.chunks_exact_mut(spatial).enumerate() {
                    let plane =
                        &images[n * image_len + c * g.height * g.width..][..g.height * g.width];
                    for (oh, out_row) in out.chunks_exact_mut(out_w).enumerate() {
                        let h = (oh * g.stride[0]) as isize + dy;
                        if h < 0 || h >= g.height as isize {
                            out_row.fill(0.0);
                            continue;
                        }
                        let src = &plane[h as usize * g.width..][..g.width];
                        if g.stride[1] == 1 {
                            // Unit stride: the pixels inside the image, zeros around. Rows are
                            // short (8 for LeNet's conv2): a plain loop beats memcpy/memset calls.
                            let start = (lo as isize + dx) as usize;
                            let (head, rest) = out_row.split_at_mut(lo);
                            let (body, tail) = rest.split_at_mut(hi - lo);
                            head.iter_mut().for_each(|v| *v = 0.0);
                            tail.iter_mut().for_each(|v| *v = 0.0);
                            body.iter_mut()
                                .zip(&src[start..start + hi - lo])
                                .for_each(|(d, s)| *d = *s);
                            continue;
                        }
                        for (ow, v) in out_row.iter_mut().enumerate() {
                            let w = (ow * g.stride[1]) as isize + dx;
                            *v = if w < 0 || w >= g.width as isize {
                                0.0
                            } else {
                                src[w as usize]
                            };
                        }
                    }
                }
            },
        );
    }

    fn col2im(&self, g: &ConvGeometry, batch: usize, col: &[f32], images: &mut [f32]) {
        let plane_len = g.height * g.width;
        let Some([out_h, out_w]) = g.output_size() else {
            images[..batch * g.channels * plane_len].fill(0.0);
            return;
        };
        let spatial = out_h * out_w;
        let row_len = batch * spatial;
        let [kh, kw] = g.kernel;
        if plane_len == 0 {
            return;
        }
        let plain = g.pad == [0, 0] && g.stride == [1, 1] && g.dilation == [1, 1];
        for_each_chunk(
            &mut images[..batch * g.channels * plane_len],
            plane_len,
            #[inline(always)]
            |p, plane| {
                let (n, c) = (p / g.channels, p % g.channels);
                plane.fill(0.0);
                for ki in 0..kh {
                    for kj in 0..kw {
                        let r = (c * kh + ki) * kw + kj;
                        let src = &col[r * row_len + n * spatial..][..spatial];
                        if plain {
                            add_window(&mut plane[ki * g.width + kj..], src, out_w, g.width);
                            continue;
                        }
                        let dy = (ki * g.dilation[0]) as isize - g.pad[0] as isize;
                        let dx = (kj * g.dilation[1]) as isize - g.pad[1] as isize;
                        let (lo, hi) = unit_stride_span(g, out_w, dx);
                        for (oh, src_row) in src.chunks_exact(out_w).enumerate() {
                            let h = (oh * g.stride[0]) as isize + dy;
                            if h < 0 || h >= g.height as isize {
                                continue;
                            }
                            let dst = &mut plane[h as usize * g.width..][..g.width];
                            if g.stride[1] == 1 {
                                let start = (lo as isize + dx) as usize;
                                dst[start..start + hi - lo]
                                    .iter_mut()
                                    .zip(&src_row[lo..hi])
                                    .for_each(|(d, v)| *d += v);
                                continue;
                            }
                            for (ow, v) in src_row.iter().enumerate() {
                                let w = (ow * g.stride[1]) as isize + dx;
                                if w >= 0 && w < g.width as isize {
                                    dst[w as usize] += v;
                                }
                            }
                        }
                    }
                }
            },
        );
    }

    fn max_pool_forward(
        &self,
        g: &PoolGeometry,
        planes: usize,
        input: &[f32],
        output: &mut [f32],
        argmax: &mut [u32],
    ) {
        let Some([out_h, out_w]) = g.output_size() else {
            return;
        };
        let (in_len, out_len) = (g.height * g.width, out_h * out_w);
        if out_len == 0 {
            return;
        }
        let pool = |p: usize, out: &mut [f32], mask: &mut [u32]| {
            let plane = &input[p * in_len..][..in_len];
            if is_tiling_2x2(g) {
                // Rows of 16 or more pixels fill AVX2 vectors; shorter ones run faster as
                // they are.
                if g.width >= 16 {
                    return vectorized(
                        #[inline(always)]
                        || max_pool_2x2(g.width, plane, out, mask),
                    );
                }
                return max_pool_2x2(g.width, plane, out, mask);
            }
            for oh in 0..out_h {
                let (h0, h1, _) = pool_window(oh, g.kernel[0], g.stride[0], g.pad[0], g.height);
                for ow in 0..out_w {
                    let (w0, w1, _) = pool_window(ow, g.kernel[1], g.stride[1], g.pad[1], g.width);
                    let mut best = -f32::MAX;
                    let mut best_idx = u32::MAX;
                    for h in h0..h1 {
                        for w in w0..w1 {
                            let v = plane[h * g.width + w];
                            if v > best {
                                best = v;
                                best_idx = (h * g.width + w) as u32;
                            }
                        }
                    }
                    out[oh * out_w + ow] = best;
                    mask[oh * out_w + ow] = best_idx;
                }
            }
        };
        let (output, argmax) = (
            &mut output[..planes * out_len],
            &mut argmax[..planes * out_len],
        );
        if splits_across_pool() {
            output
                .par_chunks_mut(out_len)
                .zip(argmax.par_chunks_mut(out_len))
                .enumerate()
                .for_each(|(p, (out, mask))| pool(p, out, mask));
        } else {
            for (p, (out, mask)) in output
                .chunks_mut(out_len)
                .zip(argmax.chunks_mut(out_len))
                .enumerate()
            {
                pool(p, out, mask);
            }
        }
    }

    fn max_pool_backward(
        &self,
        g: &PoolGeometry,
        planes: usize,
        output_diff: &[f32],
        argmax: &[u32],
        input_diff: &mut [f32],
    ) {
        let (in_len, out_len) = (g.height * g.width, g.out_spatial());
        if in_len == 0 {
            return;
        }
        let unpool = |p: usize, plane: &mut [f32]| {
            let diffs = &output_diff[p * out_len..][..out_len];
            let mask = &argmax[p * out_len..][..out_len];
            plane.fill(0.0);
            for (&d, &i) in diffs.iter().zip(mask) {
                if i != u32::MAX {
                    plane[i as usize] += d;
                }
            }
        };
        let input_diff = &mut input_diff[..planes * in_len];
        if splits_across_pool() {
            input_diff
                .par_chunks_mut(in_len)
                .enumerate()
                .for_each(|(p, plane)| unpool(p, plane));
        } else {
            for (p, plane) in input_diff.chunks_mut(in_len).enumerate() {
                unpool(p, plane);
            }
        }
    }

    fn ave_pool_forward(&self, g: &PoolGeometry, planes: usize, input: &[f32], output: &mut [f32]) {
        let Some([out_h, out_w]) = g.output_size() else {
            return;
        };
        let (in_len, out_len) = (g.height * g.width, out_h * out_w);
        if out_len == 0 {
            return;
        }
        output[..planes * out_len]
            .par_chunks_mut(out_len)
            .enumerate()
            .for_each(|(p, out)| {
                let plane = &input[p * in_len..][..in_len];
                for oh in 0..out_h {
                    let (h0, h1, sh) =
                        pool_window(oh, g.kernel[0], g.stride[0], g.pad[0], g.height);
                    for ow in 0..out_w {
                        let (w0, w1, sw) =
                            pool_window(ow, g.kernel[1], g.stride[1], g.pad[1], g.width);
                        let mut sum = 0.0;
                        for h in h0..h1 {
                            sum += plane[h * g.width + w0..h * g.width + w1]
                                .iter()
                                .sum::<f32>();
                        }
                        out[oh * out_w + ow] = sum / (sh * sw) as f32;
                    }
                }
            });
    }

    fn ave_pool_backward(
        &self,
        g: &PoolGeometry,
        planes: usize,
        output_diff: &[f32],
        input_diff: &mut [f32],
    ) {
        let Some([out_h, out_w]) = g.output_size() else {
            return;
        };
        let (in_len, out_len) = (g.height * g.width, out_h * out_w);
        if in_len == 0 {
            return;
        }
        input_diff[..planes * in_len]
            .par_chunks_mut(in_len)
            .enumerate()
            .for_each(|(p, plane)| {
                plane.fill(0.0);
                let diffs = &output_diff[p * out_len..][..out_len];
                for oh in 0..out_h {
                    let (h0, h1, sh) =
                        pool_window(oh, g.kernel[0], g.stride[0], g.pad[0], g.height);
                    for ow in 0..out_w {
                        let (w0, w1, sw) =
                            pool_window(ow, g.kernel[1], g.stride[1], g.pad[1], g.width);
                        let share = diffs[oh * out_w + ow] / (sh * sw) as f32;
                        for h in h0..h1 {
                            plane[h * g.width + w0..h * g.width + w1]
                                .iter_mut()
                                .for_each(|v| *v += share);
                        }
                    }
                }
            });
    }

    fn relu_forward(&self, slope: f32, x: &[f32], y: &mut [f32]) {
        for (y, &x) in y.iter_mut().zip(x) {
            // Caffe's form: +0 (not −0) for negative inputs at slope 0.
            *y = x.max(0.0) + slope * x.min(0.0);
        }
    }

    fn relu_backward(&self, slope: f32, x: &[f32], dy: &[f32], dx: &mut [f32]) {
        for ((dx, &dy), &x) in dx.iter_mut().zip(dy).zip(x) {
            *dx = dy * (f32::from(u8::from(x > 0.0)) + slope * f32::from(u8::from(x <= 0.0)));
        }
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, ArrayView2};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn random(len: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
        (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    /// op(a)·op(b) by ndarray, the reference for every transpose combination.
    fn reference(g: Gemm, a: &[f32], b: &[f32], c: &[f32]) -> Array2<f32> {
        let a = if g.trans_a {
            ArrayView2::from_shape((g.k, g.m), a)
                .unwrap()
                .t()
                .to_owned()
        } else {
            ArrayView2::from_shape((g.m, g.k), a).unwrap().to_owned()
        };
        let b = if g.trans_b {
            ArrayView2::from_shape((g.n, g.k), b)
                .unwrap()
                .t()
                .to_owned()
        } else {
            ArrayView2::from_shape((g.k, g.n), b).unwrap().to_owned()
        };
        let c = ArrayView2::from_shape((g.m, g.n), c).unwrap();
        a.dot(&b) * g.alpha + &c * g.beta
    }

    #[test]
    fn gemm_matches_ndarray_with_blas_alpha_beta() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            for &(m, n, k) in &[(3, 4, 5), (1, 7, 2), (70, 90, 65)] {
                for &(alpha, beta) in &[(1.0, 0.0), (0.5, 1.0), (2.0, -0.5)] {
                    let g = Gemm {
                        trans_a: ta,
                        trans_b: tb,
                        m,
                        n,
                        k,
                        alpha,
                        beta,
                    };
                    let a = random(m * k, &mut rng);
                    let b = random(k * n, &mut rng);
                    let mut c = random(m * n, &mut rng);
                    let expect = reference(g, &a, &b, &c);
                    CpuBackend.gemm(g, &a, &b, &mut c);
                    for (got, want) in c.iter().zip(expect.iter()) {
                        assert!((got - want).abs() < 1e-4, "{g:?}: {got} vs {want}");
                    }
                }
            }
        }
    }

    /// ip1's forward product (large enough to be cut into column blocks) and a pooling, on a
    /// pool of `threads`, from inside it (as the TUI runs) and from a layer's task.
    fn ip1_and_pool_on(threads: usize) -> Vec<Vec<f32>> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let (x, w) = (random(64 * 800, &mut rng), random(500 * 800, &mut rng));
        let g = Gemm::new(false, true, 64, 500, 800);
        let geometry = PoolGeometry {
            height: 24,
            width: 24,
            kernel: [2, 2],
            stride: [2, 2],
            pad: [0, 0],
        };
        pool.install(|| {
            let mut top = vec![0.0; 64 * 500];
            CpuBackend.gemm(g, &x, &w, &mut top);
            let mut in_task = vec![0.0; 64 * 500];
            as_task(|| CpuBackend.gemm(g, &x, &w, &mut in_task));
            let (mut pooled, mut mask) = (vec![0.0; 40 * 144], vec![0; 40 * 144]);
            CpuBackend.max_pool_forward(&geometry, 40, &x[..40 * 576], &mut pooled, &mut mask);
            vec![top, in_task, pooled]
        })
    }

    #[test]
    fn same_bits_on_any_thread_count() {
        let one = ip1_and_pool_on(1);
        assert_eq!(one, ip1_and_pool_on(2));
        assert_eq!(one, ip1_and_pool_on(3));
    }

    #[test]
    fn gemm_with_beta_zero_ignores_nan_in_dst() {
        let g = Gemm::new(false, false, 1, 1, 2);
        let mut c = [f32::NAN];
        CpuBackend.gemm(g, &[1.0, 2.0], &[3.0, 4.0], &mut c);
        assert_eq!(c, [11.0]);
    }

    /// col2im is im2col's adjoint: <im2col(x), y> == <x, col2im(y)>.
    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let g = ConvGeometry {
            channels: 2,
            height: 5,
            width: 6,
            kernel: [3, 2],
            stride: [2, 1],
            pad: [1, 2],
            dilation: [1, 2],
        };
        let batch = 3;
        let x = random(batch * 2 * 5 * 6, &mut rng);
        let cols = g.col_rows() * batch * g.out_spatial();
        let y = random(cols, &mut rng);
        let mut col = vec![0.0; cols];
        CpuBackend.im2col(&g, batch, &x, &mut col);
        let mut back = vec![0.0; x.len()];
        CpuBackend.col2im(&g, batch, &y, &mut back);
        let lhs: f64 = col.iter().zip(&y).map(|(a, b)| (a * b) as f64).sum();
        let rhs: f64 = x.iter().zip(&back).map(|(a, b)| (a * b) as f64).sum();
        assert!((lhs - rhs).abs() < 1e-4, "{lhs} vs {rhs}");
    }
}
