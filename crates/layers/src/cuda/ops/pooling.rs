//! Pooling (MAX and AVE) on the GPU: one thread per output forward, per input backward;
//! max pooling keeps its argmax in the scratch for backward.

use siamese_net::layer::PoolMethod;

use super::{CudaLayer, CudaSupport, Scratch, ints, launch};
use crate::DeviceError;
use crate::backend::PoolGeometry;
use crate::cuda::{GpuBlob, GpuDevice};
use crate::layers::Pooling;

/// (geometry, planes, max?) of the layer's last reshape.
fn sizes(layer: &Pooling) -> Result<(PoolGeometry, usize, bool), DeviceError> {
    let g = layer.geometry.ok_or_else(|| {
        DeviceError::Failed("a pooling layer run before its first reshape".to_string())
    })?;
    Ok((g, layer.planes, layer.config.method == PoolMethod::Max))
}

/// planes, height, width, pooled_h, pooled_w, kernel_h, kernel_w, stride_h, stride_w, pad_h,
/// pad_w: the geometry arguments of the pooling kernels, in their order.
fn pool_args(g: &PoolGeometry, planes: usize) -> Result<[i32; 11], DeviceError> {
    let [ph, pw] = g.output_size().unwrap_or([0, 0]);
    ints([
        planes,
        g.height,
        g.width,
        ph,
        pw,
        g.kernel[0],
        g.kernel[1],
        g.stride[0],
        g.stride[1],
        g.pad[0],
        g.pad[1],
    ])
}

impl CudaLayer for Pooling {
    fn cuda_support(&self) -> CudaSupport {
        CudaSupport::Kernels
    }

    fn cuda_forward(
        &self,
        gpu: &GpuDevice,
        scratch: &mut Scratch,
        bottom: &[GpuBlob],
        _: &[GpuBlob],
        top: &mut [GpuBlob],
    ) -> Result<(), DeviceError> {
        let (g, planes, max) = sizes(self)?;
        let [p, h, w, ph, pw, kh, kw, sh, sw, padh, padw] = pool_args(&g, planes)?;
        let (input, out) = (&bottom[0].data, &mut top[0].data);
        let outputs = planes * g.out_spatial();
        if max {
            let argmax = scratch.argmax(gpu, outputs)?;
            launch!(gpu, "max_pool_forward", outputs; input, &p, &h, &w, &ph, &pw, &kh, &kw, &sh,
                &sw, &padh, &padw, out, argmax)
        } else {
            launch!(gpu, "ave_pool_forward", outputs; input, &p, &h, &w, &ph, &pw, &kh, &kw, &sh,
                &sw, &padh, &padw, out)
        }
    }

    fn cuda_backward(
        &self,
        gpu: &GpuDevice,
        scratch: &mut Scratch,
        top: &[GpuBlob],
        _: &mut [GpuBlob],
        down: &[bool],
        bottom: &mut [GpuBlob],
    ) -> Result<(), DeviceError> {
        if !down[0] {
            return Ok(());
        }
        let (g, planes, max) = sizes(self)?;
        let [p, h, w, ph, pw, kh, kw, sh, sw, padh, padw] = pool_args(&g, planes)?;
        let (dy, dx) = (&top[0].diff, &mut bottom[0].diff);
        let inputs = planes * g.height * g.width;
        if max {
            let argmax = &*scratch.argmax(gpu, planes * g.out_spatial())?;
            launch!(gpu, "max_pool_backward", inputs; dy, argmax, &p, &h, &w, &ph, &pw, &kh, &kw,
                &sh, &sw, &padh, &padw, dx)
        } else {
            launch!(gpu, "ave_pool_backward", inputs; dy, &p, &h, &w, &ph, &pw, &kh, &kw, &sh,
                &sw, &padh, &padw, dx)
        }
    }
}
