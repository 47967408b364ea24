//! The host compute `Backend`: the primitives the layers' CPU code is built from (GEMM, im2col,
//! pooling, ReLU). Device code does not go through it: a layer's CUDA code is its `CudaLayer`.

mod cpu;

use siamese_net::layer::{conv_output_len, pooled_len};

pub use cpu::{CpuBackend, as_task};
pub(crate) use cpu::{splits_across_pool, vectorized};

/// Row-major matrix product arguments: `c = alpha * op(a) * op(b) + beta * c`, where `op(a)` is
/// `m × k`, `op(b)` is `k × n` and `c` is `m × n` (BLAS semantics, `beta = 0` ignores `c`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gemm {
    pub trans_a: bool,
    pub trans_b: bool,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub alpha: f32,
    pub beta: f32,
}

impl Gemm {
    /// `c = op(a) · op(b)` (alpha 1, beta 0).
    pub fn new(trans_a: bool, trans_b: bool, m: usize, n: usize, k: usize) -> Self {
        Self {
            trans_a,
            trans_b,
            m,
            n,
            k,
            alpha: 1.0,
            beta: 0.0,
        }
    }

    /// Same product, accumulated into `c` (beta 1).
    pub fn accumulate(self) -> Self {
        Self { beta: 1.0, ..self }
    }

    /// Multiply-adds of the product (half its FLOPs).
    pub fn macs(&self) -> u64 {
        (self.m * self.n * self.k) as u64
    }
}

/// Geometry of a 2-D convolution over one image of `channels × height × width`; the output
/// size is siamese-net's (Caffe's) [`conv_output_len`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 2],
    pub dilation: [usize; 2],
}

impl ConvGeometry {
    /// Output `[height, width]`, or `None` when the kernel does not fit the padded input.
    pub fn output_size(&self) -> Option<[usize; 2]> {
        let dim = |i: usize, size: usize| {
            conv_output_len(
                size,
                self.kernel[i],
                self.stride[i],
                self.pad[i],
                self.dilation[i],
            )
        };
        Some([dim(0, self.height)?, dim(1, self.width)?])
    }

    /// Rows of the column matrix: `channels · kernel_h · kernel_w`.
    pub fn col_rows(&self) -> usize {
        self.channels * self.kernel[0] * self.kernel[1]
    }

    /// Output positions per image: `out_h · out_w`.
    pub fn out_spatial(&self) -> usize {
        self.output_size().map_or(0, |[h, w]| h * w)
    }
}

/// Geometry of 2-D pooling over planes of `height × width`; the output size is siamese-net's
/// (Caffe's) [`pooled_len`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeometry {
    pub height: usize,
    pub width: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 2],
}

impl PoolGeometry {
    /// Output `[height, width]`, or `None` when the kernel exceeds the padded input.
    pub fn output_size(&self) -> Option<[usize; 2]> {
        let dim =
            |i: usize, size: usize| pooled_len(size, self.kernel[i], self.stride[i], self.pad[i]);
        Some([dim(0, self.height)?, dim(1, self.width)?])
    }

    /// Output positions per plane.
    pub fn out_spatial(&self) -> usize {
        self.output_size().map_or(0, |[h, w]| h * w)
    }
}

/// The primitive operations every layer's CPU arithmetic goes through, chosen per net
/// (`Net::with_backend`). Buffers are host slices in Caffe's layouts; a batch of images is
/// `batch × channels × height × width`, row-major.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Short name for logs: `cpu-gemm`, `cpu-openblas`.
    fn name(&self) -> &'static str;

    /// `c = alpha · op(a) · op(b) + beta · c` (see [`Gemm`]).
    fn gemm(&self, g: Gemm, a: &[f32], b: &[f32], c: &mut [f32]);

    /// Unfolds `batch` images into the column matrix `[channels·kh·kw, batch·out_h·out_w]`:
    /// row `(c, ki, kj)` (Caffe's order), column `(n, oh, ow)`; padding reads as zero.
    fn im2col(&self, g: &ConvGeometry, batch: usize, images: &[f32], col: &mut [f32]);

    /// The adjoint of [`Backend::im2col`]: overwrites `images` with the sums of the column
    /// entries that each pixel was copied to.
    fn col2im(&self, g: &ConvGeometry, batch: usize, col: &[f32], images: &mut [f32]);

    /// Max pooling over `planes` planes; `argmax` receives, per output, the index within its
    /// input plane of the first maximum (Caffe's mask).
    fn max_pool_forward(
        &self,
        g: &PoolGeometry,
        planes: usize,
        input: &[f32],
        output: &mut [f32],
        argmax: &mut [u32],
    );

    /// Routes each output gradient to its argmax; overwrites `input_diff`.
    fn max_pool_backward(
        &self,
        g: &PoolGeometry,
        planes: usize,
        output_diff: &[f32],
        argmax: &[u32],
        input_diff: &mut [f32],
    );

    /// Average pooling; windows count the padding they cover (clipped to `in + pad`), as Caffe.
    fn ave_pool_forward(&self, g: &PoolGeometry, planes: usize, input: &[f32], output: &mut [f32]);

    /// Spreads each output gradient evenly over its window; overwrites `input_diff`.
    fn ave_pool_backward(
        &self,
        g: &PoolGeometry,
        planes: usize,
        output_diff: &[f32],
        input_diff: &mut [f32],
    );

    /// `y = max(x, 0) + slope · min(x, 0)`.
    fn relu_forward(&self, slope: f32, x: &[f32], y: &mut [f32]);

    /// `dx = dy · (x > 0 ? 1 : slope)`.
    fn relu_backward(&self, slope: f32, x: &[f32], dy: &[f32], dx: &mut [f32]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(size: usize, kernel: usize, stride: usize, pad: usize) -> Option<usize> {
        let g = PoolGeometry {
            height: size,
            width: size,
            kernel: [kernel; 2],
            stride: [stride; 2],
            pad: [pad; 2],
        };
        g.output_size().map(|s| s[0])
    }

    #[test]
    fn pooling_output_size_follows_caffe() {
        // LeNet: 24 -> 12, 8 -> 4.
        assert_eq!(pool(24, 2, 2, 0), Some(12));
        assert_eq!(pool(8, 2, 2, 0), Some(4));
        // Rounded up: a partial last window (6 - 3) / 2 = 1.5 -> 2, + 1.
        assert_eq!(pool(6, 3, 2, 0), Some(3));
        assert_eq!(pool(7, 2, 2, 0), Some(4));
        // Clipped: with pad 1, ceil((6 + 2 - 2) / 2) + 1 = 4; window 3 starts at 6 - 1 = 5 < 7
        // so stays 4. With size 5: ceil((5 + 2 - 2)/2) + 1 = 4; (4-1)*2 = 6 >= 5 + 1 -> 3.
        assert_eq!(pool(6, 2, 2, 1), Some(4));
        assert_eq!(pool(5, 2, 2, 1), Some(3));
        assert_eq!(pool(1, 3, 1, 0), None);
    }

    #[test]
    fn conv_output_size_follows_caffe() {
        let g = ConvGeometry {
            channels: 1,
            height: 28,
            width: 28,
            kernel: [5, 5],
            stride: [1, 1],
            pad: [0, 0],
            dilation: [1, 1],
        };
        assert_eq!(g.output_size(), Some([24, 24]));
        let g = ConvGeometry {
            stride: [2, 3],
            pad: [1, 0],
            ..g
        };
        assert_eq!(g.output_size(), Some([13, 8]));
        assert_eq!(g.col_rows(), 25);
    }
}
