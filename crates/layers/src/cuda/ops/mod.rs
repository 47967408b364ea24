//! `CudaLayer`: a layer's CUDA code, implemented per layer in `ops/<layer>.rs` beside the
//! shared launch helpers; a layer without CUDA code keeps the defaults, which name it.

mod accuracy;
mod contrastive_loss;
mod convolution;
mod data;
mod dropout;
mod euclidean_loss;
mod inner_product;
mod input;
mod pooling;
mod relu;
mod slice;
mod softmax;
mod split;

use cudarc::driver::CudaSlice;

use super::device::OrDevice;
use super::{GpuBlob, GpuDevice, blob::alloc_zeros};
use crate::{DeviceError, Layer};

/// How a net on a GPU runs a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CudaSupport {
    /// The layer's CUDA code (`cuda_forward`, `cuda_backward`).
    Kernels,
    /// Its CPU code, the tops then uploaded (Data, Input: they read records, not blobs).
    Host,
    /// None: the net refuses the GPU, naming the layer.
    Unsupported,
}

/// A layer's computation on the GPU, at the sizes of its last `reshape` (the CPU layer's
/// fields). Every layer implements it in `cuda/ops/<layer>.rs`; the defaults say the layer has
/// no CUDA code, so a layer type that adds none is refused by name, never run wrongly.
pub(crate) trait CudaLayer: Layer {
    /// Whether a GPU net runs this layer's kernels, its host code, or cannot run it.
    fn cuda_support(&self) -> CudaSupport {
        CudaSupport::Unsupported
    }

    /// Computes the tops (already shaped) from the bottoms and parameters on the device.
    fn cuda_forward(
        &self,
        gpu: &GpuDevice,
        scratch: &mut Scratch,
        bottom: &[GpuBlob],
        params: &[GpuBlob],
        top: &mut [GpuBlob],
    ) -> Result<(), DeviceError> {
        let _ = (gpu, scratch, bottom, params, top);
        Err(DeviceError::Unsupported {
            kind: self.kind().into(),
        })
    }

    /// Overwrites the bottom diffs where `down`, accumulates the parameter diffs.
    fn cuda_backward(
        &self,
        gpu: &GpuDevice,
        scratch: &mut Scratch,
        top: &[GpuBlob],
        params: &mut [GpuBlob],
        down: &[bool],
        bottom: &mut [GpuBlob],
    ) -> Result<(), DeviceError> {
        let _ = (gpu, scratch, top, params, down, bottom);
        Err(DeviceError::Unsupported {
            kind: self.kind().into(),
        })
    }

    /// For layers whose kernels give NaN for a label outside the classes instead of failing:
    /// the classes and ignore label of bottom 1, which the net checks as the CPU layer does.
    fn cuda_labels(&self) -> Option<(usize, Option<i32>)> {
        None
    }
}

/// Device buffers a layer keeps between its forward and backward (columns, argmax, ...).
#[derive(Default)]
pub(crate) struct Scratch {
    floats: Vec<CudaSlice<f32>>,
    argmax: Option<CudaSlice<u32>>,
}

impl Scratch {
    /// The first `N` float buffers, each grown to hold at least `lens[i]` floats.
    fn floats<const N: usize>(
        &mut self,
        gpu: &GpuDevice,
        lens: [usize; N],
    ) -> Result<[&mut CudaSlice<f32>; N], DeviceError> {
        for (i, &len) in lens.iter().enumerate() {
            if i == self.floats.len() {
                self.floats.push(alloc_zeros(gpu, len)?);
            } else if self.floats[i].len() < len {
                self.floats[i] = alloc_zeros(gpu, len)?;
            }
        }
        self.floats
            .get_disjoint_mut(std::array::from_fn(|i| i))
            .map_err(|e| DeviceError::Failed(format!("scratch buffers: {e}")))
    }

    /// The argmax buffer of max pooling, grown to `len`.
    fn argmax(&mut self, gpu: &GpuDevice, len: usize) -> Result<&mut CudaSlice<u32>, DeviceError> {
        if self.argmax.as_ref().is_none_or(|a| a.len() < len) {
            let fresh = gpu
                .stream()
                .alloc_zeros::<u32>(len.max(1))
                .or_device("allocating the pooling argmax")?;
            self.argmax = Some(fresh);
        }
        self.argmax
            .as_mut()
            .ok_or_else(|| DeviceError::Failed("pooling argmax buffer missing".to_string()))
    }
}

/// Sizes as the `int`s kernels take.
pub(crate) fn ints<const N: usize>(sizes: [usize; N]) -> Result<[i32; N], DeviceError> {
    let mut out = [0; N];
    for (o, s) in out.iter_mut().zip(sizes) {
        *o = super::gemm::int(s)?;
    }
    Ok(out)
}

/// Launches kernel `$name` of kernels.cu over `$threads` threads with the given arguments,
/// which must be locals (`&x` read, `&mut y` written) in the kernel's exact parameter order.
macro_rules! launch {
    ($gpu:expr, $name:literal, $threads:expr; $($arg:expr),+ $(,)?) => {{
        let gpu: &$crate::cuda::GpuDevice = $gpu;
        let threads: usize = $threads;
        // Kernels index with `int`: the thread count (the largest index + 1) must fit.
        $crate::cuda::gemm::int(threads)?;
        let mut builder = gpu.stream().launch_builder(gpu.kernel($name)?);
        $( cudarc::driver::PushKernelArg::arg(&mut builder, $arg); )+
        let config = $crate::cuda::device::launch_config(threads);
        // SAFETY: the arguments follow the kernel's signature in kernels.cu (types and order),
        // and every buffer holds the elements the kernel indexes for these sizes.
        let launched = unsafe { builder.launch(config) };
        $crate::cuda::device::OrDevice::or_device(launched, concat!("launching kernel ", $name))
            .map(|_| ())
    }};
}
pub(crate) use launch;

/// Fills `n` floats of `x` with `value`.
pub(crate) fn fill(
    gpu: &GpuDevice,
    x: &mut CudaSlice<f32>,
    n: usize,
    value: f32,
) -> Result<(), DeviceError> {
    let [n_] = ints([n])?;
    launch!(gpu, "fill", n; x, &n_, &value)
}

/// `y[i] += x[i]` over `n` floats.
pub(crate) fn add_into(
    gpu: &GpuDevice,
    x: &CudaSlice<f32>,
    y: &mut CudaSlice<f32>,
    n: usize,
) -> Result<(), DeviceError> {
    let [n_] = ints([n])?;
    launch!(gpu, "add_into", n; x, y, &n_)
}

/// Copies `n` floats from `src` to `dst` on the device.
pub(crate) fn copy(
    gpu: &GpuDevice,
    src: &CudaSlice<f32>,
    dst: &mut CudaSlice<f32>,
    n: usize,
) -> Result<(), DeviceError> {
    if n == 0 {
        return Ok(());
    }
    gpu.stream()
        .memcpy_dtod(&src.slice(..n), &mut dst.slice_mut(..n))
        .or_device("copying on the GPU")
}

/// `top[n][c][s] += bias[c]`.
pub(crate) fn add_bias(
    gpu: &GpuDevice,
    top: &mut CudaSlice<f32>,
    bias: &CudaSlice<f32>,
    sizes: [usize; 3],
) -> Result<(), DeviceError> {
    let [num, channels, spatial] = ints(sizes)?;
    launch!(gpu, "add_channel_bias", sizes.iter().product(); top, bias, &num, &channels, &spatial)
}

/// `out[i] += Σ_n x[n][i]` over `num` rows of `inner`.
pub(crate) fn accumulate_rows(
    gpu: &GpuDevice,
    x: &CudaSlice<f32>,
    num: usize,
    inner: usize,
    out: &mut CudaSlice<f32>,
) -> Result<(), DeviceError> {
    let [num_, inner_] = ints([num, inner])?;
    launch!(gpu, "accumulate_over_batch", inner; x, &num_, &inner_, out)
}
