//! Convolution on the GPU: the whole batch in one im2col launch and one strided-batched
//! cuBLAS product (weights with stride 0); bias by kernel.

use cudarc::driver::CudaSlice;

use super::{CudaLayer, CudaSupport, Scratch, accumulate_rows, add_bias, ints, launch};
use crate::DeviceError;
use crate::backend::{ConvGeometry, Gemm};
use crate::cuda::{GpuBlob, GpuDevice, GpuGemm};
use crate::layers::Convolution;

/// A convolution's sizes: geometry, batch N, outputs M, column rows K, output positions P.
struct Conv {
    g: ConvGeometry,
    n: usize,
    m: usize,
    k: usize,
    p: usize,
    bias: bool,
}

impl Conv {
    /// The sizes of `layer`'s last reshape.
    fn of(layer: &Convolution) -> Result<Conv, DeviceError> {
        let g = layer.geometry.ok_or_else(|| {
            DeviceError::Failed("a convolution run before its first reshape".to_string())
        })?;
        Ok(Conv {
            g,
            n: layer.batch,
            m: layer.num_output,
            k: g.col_rows(),
            p: g.out_spatial(),
            bias: layer.bias,
        })
    }

    /// The geometry arguments shared by im2col_batch and col2im_batch, after `num`.
    fn geometry_args(&self) -> Result<[i32; 14], DeviceError> {
        let g = &self.g;
        let [oh, ow] = g.output_size().unwrap_or([0, 0]);
        ints([
            self.n,
            g.channels,
            g.height,
            g.width,
            g.kernel[0],
            g.kernel[1],
            g.pad[0],
            g.pad[1],
            g.stride[0],
            g.stride[1],
            g.dilation[0],
            g.dilation[1],
            oh,
            ow,
        ])
    }

    /// `[N]` products `[M×K]·[K×P]` or their adjoints, the weights shared (stride 0).
    fn batched(&self, gemm: Gemm, stride_a: usize, stride_b: usize, stride_c: usize) -> GpuGemm {
        GpuGemm {
            gemm,
            batch: self.n,
            stride_a,
            stride_b,
            stride_c,
        }
    }
}

/// col `[N][K][P]` of the images `[N][C][H][W]`.
fn im2col(
    gpu: &GpuDevice,
    c: &Conv,
    images: &CudaSlice<f32>,
    col: &mut CudaSlice<f32>,
) -> Result<(), DeviceError> {
    let [n, ch, h, w, kh, kw, ph, pw, sh, sw, dh, dw, oh, ow] = c.geometry_args()?;
    launch!(gpu, "im2col_batch", c.n * c.k * c.p; images, &n, &ch, &h, &w, &kh, &kw, &ph, &pw,
        &sh, &sw, &dh, &dw, &oh, &ow, col)
}

/// Overwrites the image gradients `[N][C][H][W]` from the column gradients.
fn col2im(
    gpu: &GpuDevice,
    c: &Conv,
    col: &CudaSlice<f32>,
    images: &mut CudaSlice<f32>,
) -> Result<(), DeviceError> {
    let [n, ch, h, w, kh, kw, ph, pw, sh, sw, dh, dw, oh, ow] = c.geometry_args()?;
    let threads = c.n * c.g.channels * c.g.height * c.g.width;
    launch!(gpu, "col2im_batch", threads; col, &n, &ch, &h, &w, &kh, &kw, &ph, &pw,
        &sh, &sw, &dh, &dw, &oh, &ow, images)
}

impl CudaLayer for Convolution {
    fn cuda_support(&self) -> CudaSupport {
        CudaSupport::Kernels
    }

    fn cuda_forward(
        &self,
        gpu: &GpuDevice,
        scratch: &mut Scratch,
        bottom: &[GpuBlob],
        params: &[GpuBlob],
        top: &mut [GpuBlob],
    ) -> Result<(), DeviceError> {
        let c = Conv::of(self)?;
        if c.n * c.m * c.p == 0 {
            return Ok(());
        }
        let [col] = scratch.floats(gpu, [c.n * c.k * c.p])?;
        im2col(gpu, &c, &bottom[0].data, col)?;
        let product = c.batched(
            Gemm::new(false, false, c.m, c.p, c.k),
            0,
            c.k * c.p,
            c.m * c.p,
        );
        product.run(gpu, &params[0].data, col, &mut top[0].data)?;
        if c.bias {
            add_bias(gpu, &mut top[0].data, &params[1].data, [c.n, c.m, c.p])?;
        }
        Ok(())
    }

    /// Uses the columns forward left in the scratch (the same bottom data): weight gradients
    /// per image summed in image order, bias gradients, then the column and image gradients.
    fn cuda_backward(
        &self,
        gpu: &GpuDevice,
        scratch: &mut Scratch,
        top: &[GpuBlob],
        params: &mut [GpuBlob],
        down: &[bool],
        bottom: &mut [GpuBlob],
    ) -> Result<(), DeviceError> {
        let c = Conv::of(self)?;
        if c.n * c.m * c.p == 0 {
            return Ok(());
        }
        let dy = &top[0].diff;
        let [col, per_image, sums] =
            scratch.floats(gpu, [c.n * c.k * c.p, c.n * c.m * c.k, c.n * c.m])?;
        let weight_grad = c.batched(
            Gemm::new(false, true, c.m, c.k, c.p),
            c.m * c.p,
            c.k * c.p,
            c.m * c.k,
        );
        weight_grad.run(gpu, dy, col, per_image)?;
        accumulate_rows(gpu, per_image, c.n, c.m * c.k, &mut params[0].diff)?;
        if c.bias {
            let [outer, inner] = ints([c.n * c.m, c.p])?;
            launch!(gpu, "sum_inner", c.n * c.m; dy, &outer, &inner, &mut *sums)?;
            accumulate_rows(gpu, sums, c.n, c.m, &mut params[1].diff)?;
        }
        if down[0] {
            let col_grad = c.batched(
                Gemm::new(true, false, c.k, c.p, c.m),
                0,
                c.m * c.p,
                c.k * c.p,
            );
            col_grad.run(gpu, &params[0].data, dy, col)?;
            col2im(gpu, &c, col, &mut bottom[0].diff)?;
        }
        Ok(())
    }
}
