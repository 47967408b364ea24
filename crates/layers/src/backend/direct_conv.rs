//! Direct convolution for unpadded unit-stride kernels with few inputs per output (LeNet's
//! conv1: one channel, 5×5): sums stay in registers, with no im2col copy and no GEMM of K = 25.

use super::ConvGeometry;
use super::cpu::vectorized;

/// Output positions per vector: the accumulators are `[f32; LANES]` (one AVX2 register).
const LANES: usize = 8;

/// Widest output row handled (in vectors): with more, the accumulators would not fit.
const MAX_CHUNKS: usize = 4;

/// Inputs per output above which im2col + GEMM is faster (conv2's 500 are; conv1's 25 not).
const MAX_COL_ROWS: usize = 64;

/// Whether `g` takes the direct path: unpadded, unit stride and dilation, output rows a
/// multiple of 8 and at most 32 wide, at most 64 inputs per output.
pub(crate) fn fits(g: &ConvGeometry) -> bool {
    let Some([out_h, out_w]) = g.output_size() else {
        return false;
    };
    g.pad == [0, 0]
        && g.stride == [1, 1]
        && g.dilation == [1, 1]
        && out_h > 0
        && out_w.is_multiple_of(LANES)
        && (1..=MAX_CHUNKS).contains(&(out_w / LANES))
        && (1..=MAX_COL_ROWS).contains(&g.col_rows())
}

/// Floats of the lane sums [`accumulate_weight_grad`] keeps for `outputs` outputs.
pub(crate) fn lanes_len(g: &ConvGeometry, outputs: usize) -> usize {
    outputs * g.col_rows() * LANES
}

/// `out [outputs, out_h, out_w] = weights [outputs, channels·kh·kw] ⊛ image + bias`, for
/// [`fits`] geometry. Each output sums its inputs in Caffe's column order (channel, row,
/// column), one fused multiply-add each, from zero, then adds its bias: the same bits on
/// every instruction set (a fused multiply-add rounds once everywhere).
pub(crate) fn forward(
    g: &ConvGeometry,
    weights: &[f32],
    bias: Option<&[f32]>,
    image: &[f32],
    out: &mut [f32],
) {
    let chunks = g.output_size().map_or(0, |[_, w]| w / LANES);
    // Outputs per block: as many accumulators as the registers hold beside the inputs (16
    // registers with AVX2, 32 with AVX-512VL).
    macro_rules! by_chunks {
        ($([$c:literal, $ob:literal]),*) => {
            #[inline(always)]
            || match chunks {
                $($c => forward_chunks::<$c, $ob>(g, weights, bias, image, out),)*
                _ => unreachable!("fits() bounds the chunks"),
            }
        };
    }
    assert!(fits(g));
    if has_wide_registers() {
        // SAFETY: the CPU has AVX-512F and VL (checked just above).
        unsafe { wide(by_chunks!([1, 10], [2, 10], [3, 5], [4, 5])) }
    } else {
        vectorized(by_chunks!([1, 8], [2, 4], [3, 3], [4, 2]))
    }
}

/// `lanes [outputs, channels·kh·kw, 8] +=` one image's weight gradient `dy · imageᵀ`, lane `l`
/// summing the output columns `x ≡ l (mod 8)`; [`add_lane_sums`] folds the lanes.
pub(crate) fn accumulate_weight_grad(
    g: &ConvGeometry,
    outputs: usize,
    dy: &[f32],
    image: &[f32],
    lanes: &mut [f32],
) {
    let chunks = g.output_size().map_or(0, |[_, w]| w / LANES);
    macro_rules! by_chunks {
        ($([$c:literal, $ob:literal]),*) => {
            #[inline(always)]
            || match chunks {
                $($c => weight_grad_chunks::<$c, $ob>(g, outputs, dy, image, lanes),)*
                _ => unreachable!("fits() bounds the chunks"),
            }
        };
    }
    assert!(fits(g));
    if has_wide_registers() {
        // SAFETY: the CPU has AVX-512F and VL (checked just above).
        unsafe { wide(by_chunks!([1, 10], [2, 10], [3, 5], [4, 5])) }
    } else {
        vectorized(by_chunks!([1, 8], [2, 4], [3, 3], [4, 2]))
    }
}

/// Whether the CPU has AVX-512F and VL: 32 vector registers for 8-lane operations.
fn has_wide_registers() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Runs `f` compiled for AVX-512VL: the same 8-lane code with 32 registers.
///
/// # Safety
/// The CPU has AVX-512F and VL ([`has_wide_registers`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
unsafe fn wide<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn wide<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// `grad [outputs, pitch] +=` the sums of `lanes [outputs, k, 8]`, each folded pairwise in a
/// fixed order.
pub(crate) fn add_lane_sums(lanes: &[f32], k: usize, pitch: usize, grad: &mut [f32]) {
    for (lanes, row) in lanes.chunks_exact(k * LANES).zip(grad.chunks_mut(pitch)) {
        for (l, g) in lanes.chunks_exact(LANES).zip(row.iter_mut()) {
            *g += ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
        }
    }
}

type Vector = [f32; LANES];

/// `acc += w · x`, lane by lane, fused.
#[inline(always)]
fn fma(acc: &mut Vector, w: Vector, x: Vector) {
    for ((a, w), x) in acc.iter_mut().zip(w).zip(x) {
        *a = w.mul_add(x, *a);
    }
}

/// [`forward`] for rows of `C` vectors, `OB` outputs at a time (`OB·C` accumulators).
#[inline(always)]
fn forward_chunks<const C: usize, const OB: usize>(
    g: &ConvGeometry,
    weights: &[f32],
    bias: Option<&[f32]>,
    image: &[f32],
    out: &mut [f32],
) {
    let (k, spatial) = (g.col_rows(), g.out_spatial());
    let outputs = weights.len() / k;
    let mut o = 0;
    while o < outputs {
        let ob = if outputs - o >= OB { OB } else { 1 };
        let weights = &weights[o * k..][..ob * k];
        let bias = bias.map(|b| &b[o..][..ob]);
        let out = &mut out[o * spatial..][..ob * spatial];
        if ob == OB {
            forward_block::<C, OB>(g, weights, bias, image, out);
        } else {
            forward_block::<C, 1>(g, weights, bias, image, out);
        }
        o += ob;
    }
}

/// Outputs `OB` of [`forward`]: `weights [OB, k]`, `bias [OB]`, `out [OB, out_h, out_w]`.
#[inline(always)]
fn forward_block<const C: usize, const OB: usize>(
    g: &ConvGeometry,
    weights: &[f32],
    bias: Option<&[f32]>,
    image: &[f32],
    out: &mut [f32],
) {
    let [out_h, out_w] = g.output_size().unwrap_or([0, 0]);
    let (k, spatial, plane) = (g.col_rows(), out_h * out_w, g.height * g.width);
    assert!(weights.len() >= OB * k && image.len() >= g.channels * plane);
    assert!(out.len() >= OB * spatial && out_w == C * LANES && g.kernel[1] + out_w - 1 <= g.width);
    let (weights, image) = (weights.as_ptr(), image.as_ptr());
    for y in 0..out_h {
        let mut acc = [[[0.0f32; LANES]; C]; OB];
        let mut tap = 0;
        for c in 0..g.channels {
            for ki in 0..g.kernel[0] {
                let row = c * plane + (y + ki) * g.width;
                for kj in 0..g.kernel[1] {
                    // SAFETY: rows `y + ki < height` of channel `c < channels` hold the `out_w`
                    // inputs from column `kj` (asserted above: kj + out_w <= width), and
                    // `tap < k` indexes each of the `OB` weight rows.
                    let x: [Vector; C] = std::array::from_fn(|j| unsafe {
                        image
                            .add(row + kj + j * LANES)
                            .cast::<Vector>()
                            .read_unaligned()
                    });
                    for (ob, acc) in acc.iter_mut().enumerate() {
                        // SAFETY: as above.
                        let w = [unsafe { *weights.add(ob * k + tap) }; LANES];
                        for (a, x) in acc.iter_mut().zip(x) {
                            fma(a, w, x);
                        }
                    }
                    tap += 1;
                }
            }
        }
        for (ob, acc) in acc.iter().enumerate() {
            let b = bias.map_or(0.0, |b| b[ob]);
            let dst = &mut out[ob * spatial + y * out_w..][..out_w];
            for (d, a) in dst.chunks_exact_mut(LANES).zip(acc) {
                d.iter_mut().zip(a).for_each(|(d, a)| *d = a + b);
            }
        }
    }
}

/// [`accumulate_weight_grad`] for rows of `C` vectors, `OB` outputs at a time.
#[inline(always)]
fn weight_grad_chunks<const C: usize, const OB: usize>(
    g: &ConvGeometry,
    outputs: usize,
    dy: &[f32],
    image: &[f32],
    lanes: &mut [f32],
) {
    let (k, spatial) = (g.col_rows(), g.out_spatial());
    let mut o = 0;
    while o < outputs {
        let ob = if outputs - o >= OB { OB } else { 1 };
        let (dy, lanes) = (
            &dy[o * spatial..][..ob * spatial],
            &mut lanes[o * k * LANES..][..ob * k * LANES],
        );
        if ob == OB {
            weight_grad_block::<C, OB>(g, dy, image, lanes);
        } else {
            weight_grad_block::<C, 1>(g, dy, image, lanes);
        }
        o += ob;
    }
}

/// Outputs `OB` of [`accumulate_weight_grad`]: `dy [OB, out_h, out_w]`, `lanes [OB, k, 8]`.
/// Each (output, column) sum runs in its own accumulator, so `OB·C` chains are in flight.
#[inline(always)]
fn weight_grad_block<const C: usize, const OB: usize>(
    g: &ConvGeometry,
    dy: &[f32],
    image: &[f32],
    lanes: &mut [f32],
) {
    let [out_h, out_w] = g.output_size().unwrap_or([0, 0]);
    let (k, spatial, plane) = (g.col_rows(), out_h * out_w, g.height * g.width);
    assert!(dy.len() >= OB * spatial && image.len() >= g.channels * plane);
    assert!(
        lanes.len() >= OB * k * LANES && out_w == C * LANES && g.kernel[1] + out_w - 1 <= g.width
    );
    let (dy, image) = (dy.as_ptr(), image.as_ptr());
    let mut tap = 0;
    for c in 0..g.channels {
        for ki in 0..g.kernel[0] {
            for kj in 0..g.kernel[1] {
                let mut acc = [[[0.0f32; LANES]; C]; OB];
                for y in 0..out_h {
                    let row = c * plane + (y + ki) * g.width + kj;
                    // SAFETY: input row `y + ki < height` of channel `c` holds `out_w` values
                    // from column `kj`, and row `y` of each of the `OB` gradient planes holds
                    // `out_w` (asserted above).
                    let x: [Vector; C] = std::array::from_fn(|j| unsafe {
                        image.add(row + j * LANES).cast::<Vector>().read_unaligned()
                    });
                    for (ob, acc) in acc.iter_mut().enumerate() {
                        let d = ob * spatial + y * out_w;
                        for (j, a) in acc.iter_mut().enumerate() {
                            // SAFETY: as above.
                            let d =
                                unsafe { dy.add(d + j * LANES).cast::<Vector>().read_unaligned() };
                            fma(a, d, x[j]);
                        }
                    }
                }
                for (ob, acc) in acc.iter().enumerate() {
                    let sum = &mut lanes[(ob * k + tap) * LANES..][..LANES];
                    let mut total = acc[0];
                    for a in &acc[1..] {
                        total.iter_mut().zip(a).for_each(|(t, a)| *t += a);
                    }
                    sum.iter_mut().zip(total).for_each(|(s, t)| *s += t);
                }
                tap += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradient_check::random_blob;
    use crate::{Backend, CpuBackend, backend::Gemm};

    fn geometry(channels: usize, height: usize, width: usize, kernel: usize) -> ConvGeometry {
        ConvGeometry {
            channels,
            height,
            width,
            kernel: [kernel, kernel],
            stride: [1, 1],
            pad: [0, 0],
            dilation: [1, 1],
        }
    }

    /// im2col + GEMM (+ bias), the path the direct one replaces.
    fn reference_forward(
        g: &ConvGeometry,
        weights: &[f32],
        bias: &[f32],
        image: &[f32],
    ) -> Vec<f32> {
        let (k, spatial, outputs) = (g.col_rows(), g.out_spatial(), bias.len());
        let mut cols = vec![0.0; k * spatial];
        CpuBackend.im2col(g, 1, image, &mut cols);
        let mut out = vec![0.0; outputs * spatial];
        CpuBackend.gemm(
            Gemm::new(false, false, outputs, spatial, k),
            weights,
            &cols,
            &mut out,
        );
        for (row, b) in out.chunks_exact_mut(spatial).zip(bias) {
            row.iter_mut().for_each(|v| *v += b);
        }
        out
    }

    fn reference_weight_grad(
        g: &ConvGeometry,
        outputs: usize,
        dy: &[f32],
        image: &[f32],
    ) -> Vec<f32> {
        let (k, spatial) = (g.col_rows(), g.out_spatial());
        let mut cols = vec![0.0; k * spatial];
        CpuBackend.im2col(g, 1, image, &mut cols);
        let mut grad = vec![0.0; outputs * k];
        CpuBackend.gemm(
            Gemm::new(false, true, outputs, k, spatial),
            dy,
            &cols,
            &mut grad,
        );
        grad
    }

    fn assert_close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "element {i}: {g} against {w}"
            );
        }
    }

    /// Output widths of 1 to 4 vectors, channel counts and output counts that leave partial
    /// blocks: LeNet's conv1 (1 channel, 5×5 on 28×28, 20 outputs) among them.
    const CASES: [(usize, usize, usize, usize, usize); 5] = [
        (1, 28, 28, 5, 20),
        (1, 12, 12, 5, 7),
        (2, 20, 20, 5, 11),
        (3, 10, 26, 3, 4),
        (1, 9, 36, 5, 13),
    ];

    #[test]
    fn forward_matches_im2col_and_gemm() {
        for (seed, &(channels, h, w, kernel, outputs)) in CASES.iter().enumerate() {
            let g = geometry(channels, h, w, kernel);
            assert!(fits(&g), "{g:?}");
            let seed = 10 * seed as u64;
            let image = random_blob(&[channels * h * w], seed).data;
            let weights = random_blob(&[outputs * g.col_rows()], seed + 1).data;
            let bias = random_blob(&[outputs], seed + 2).data;
            let mut out = vec![f32::NAN; outputs * g.out_spatial()];
            forward(&g, &weights, Some(&bias), &image, &mut out);
            assert_close(&out, &reference_forward(&g, &weights, &bias, &image));
        }
    }

    #[test]
    fn weight_grad_matches_im2col_and_gemm() {
        for (seed, &(channels, h, w, kernel, outputs)) in CASES.iter().enumerate() {
            let g = geometry(channels, h, w, kernel);
            let seed = 10 * seed as u64;
            let image = random_blob(&[channels * h * w], seed).data;
            let dy = random_blob(&[outputs * g.out_spatial()], seed + 3).data;
            let k = g.col_rows();
            let mut lanes = vec![0.0; lanes_len(&g, outputs)];
            accumulate_weight_grad(&g, outputs, &dy, &image, &mut lanes);
            let pitch = k + 3;
            let mut grad = vec![0.0; outputs * pitch];
            add_lane_sums(&lanes, k, pitch, &mut grad);
            let grad: Vec<f32> = grad
                .chunks_exact(pitch)
                .flat_map(|r| r[..k].to_vec())
                .collect();
            assert_close(&grad, &reference_weight_grad(&g, outputs, &dy, &image));
        }
    }

    #[test]
    fn block_size_and_instruction_set_leave_the_bits_alone() {
        // The dispatch picks blocks by the CPU's registers; every block size and the plain
        // (unvectorised) code must give the same bits, so results do not depend on the CPU.
        let g = geometry(1, 28, 28, 5);
        let (outputs, k, spatial) = (20, g.col_rows(), g.out_spatial());
        let image = random_blob(&[28 * 28], 5).data;
        let weights = random_blob(&[outputs * k], 6).data;
        let dy = random_blob(&[outputs * spatial], 7).data;
        let run = |f: &dyn Fn(&mut [f32], &mut [f32])| {
            let (mut out, mut lanes) =
                (vec![0.0; outputs * spatial], vec![0.0; outputs * k * LANES]);
            f(&mut out, &mut lanes);
            (out, lanes)
        };
        let dispatched = run(&|out, lanes| {
            forward(&g, &weights, None, &image, out);
            accumulate_weight_grad(&g, outputs, &dy, &image, lanes);
        });
        let plain_by_3 = run(&|out, lanes| {
            forward_chunks::<3, 3>(&g, &weights, None, &image, out);
            weight_grad_chunks::<3, 3>(&g, outputs, &dy, &image, lanes);
        });
        let plain_by_7 = run(&|out, lanes| {
            forward_chunks::<3, 7>(&g, &weights, None, &image, out);
            weight_grad_chunks::<3, 7>(&g, outputs, &dy, &image, lanes);
        });
        assert_eq!(dispatched, plain_by_3);
        assert_eq!(dispatched, plain_by_7);
    }

    #[test]
    fn takes_only_what_it_covers() {
        let mut g = geometry(1, 28, 28, 5);
        assert!(fits(&g));
        g.pad = [1, 1];
        assert!(!fits(&g), "padding");
        let g = geometry(20, 12, 12, 5);
        assert!(!fits(&g), "conv2: 500 inputs per output go to the GEMM");
        assert!(
            !fits(&geometry(1, 11, 11, 3)),
            "9 columns: not whole vectors"
        );
        assert!(
            !fits(&geometry(1, 44, 44, 5)),
            "40 columns: more accumulators than registers"
        );
    }
}
