//! `GpuOp`: what a layer computes on the GPU, as resolved by its last reshape, and the
//! forward/backward launches of each (kernels.cu + cuBLAS); per-layer device `Scratch`.

mod dense;
mod loss;
mod planes;

use cudarc::driver::CudaSlice;

use super::device::OrDevice;
use super::{GpuBlob, GpuDevice, blob::alloc_zeros};
use crate::LayerError;
use crate::backend::{ConvGeometry, PoolGeometry};

/// A layer's GPU computation with the sizes of its last reshape. Layers without one (Dropout,
/// EuclideanLoss) give none and a net with them cannot run on a GPU.
#[derive(Clone, Debug, PartialEq)]
pub enum GpuOp<'a> {
    /// Runs on the host (Data, Input); the net uploads its tops.
    Host,
    Convolution {
        geometry: ConvGeometry,
        batch: usize,
        num_output: usize,
        bias: bool,
    },
    InnerProduct {
        rows: usize,
        inputs: usize,
        num_output: usize,
        bias: bool,
        transpose: bool,
    },
    Pooling {
        geometry: PoolGeometry,
        planes: usize,
        max: bool,
    },
    ReLU {
        slope: f32,
    },
    Slice {
        outer: usize,
        inner: usize,
        axis_len: usize,
        sizes: &'a [usize],
    },
    Split,
    ContrastiveLoss {
        num: usize,
        channels: usize,
        margin: f32,
        legacy: bool,
    },
    Softmax {
        dims: (usize, usize, usize),
    },
    SoftmaxWithLoss {
        dims: (usize, usize, usize),
        ignore_label: Option<i32>,
        /// Caffe's NormalizationMode: 0 FULL, 1 VALID, 2 BATCH_SIZE, 3 NONE.
        normalization: i32,
    },
    Accuracy {
        dims: (usize, usize, usize),
        top_k: usize,
        ignore_label: Option<i32>,
    },
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
    ) -> Result<[&mut CudaSlice<f32>; N], LayerError> {
        for (i, &len) in lens.iter().enumerate() {
            if i == self.floats.len() {
                self.floats.push(alloc_zeros(gpu, len)?);
            } else if self.floats[i].len() < len {
                self.floats[i] = alloc_zeros(gpu, len)?;
            }
        }
        self.floats
            .get_disjoint_mut(std::array::from_fn(|i| i))
            .map_err(|e| LayerError::device(format!("scratch buffers: {e}")))
    }

    /// The argmax buffer of max pooling, grown to `len`.
    fn argmax(&mut self, gpu: &GpuDevice, len: usize) -> Result<&mut CudaSlice<u32>, LayerError> {
        if self.argmax.as_ref().is_none_or(|a| a.len() < len) {
            let fresh = gpu
                .stream()
                .alloc_zeros::<u32>(len.max(1))
                .or_device("allocating the pooling argmax")?;
            self.argmax = Some(fresh);
        }
        self.argmax
            .as_mut()
            .ok_or_else(|| LayerError::device("pooling argmax buffer missing"))
    }
}

impl GpuOp<'_> {
    /// Computes the tops from the bottoms and parameters (the tops have their shapes).
    pub(crate) fn forward(
        &self,
        gpu: &GpuDevice,
        scratch: &mut Scratch,
        bottom: &[GpuBlob],
        params: &[GpuBlob],
        top: &mut [GpuBlob],
    ) -> Result<(), LayerError> {
        match *self {
            GpuOp::Host => Ok(()),
            GpuOp::Convolution { .. } => {
                dense::conv_forward(self, gpu, scratch, bottom, params, top)
            }
            GpuOp::InnerProduct { .. } => dense::ip_forward(self, gpu, bottom, params, top),
            GpuOp::Pooling { .. } => planes::pool_forward(self, gpu, scratch, bottom, top),
            GpuOp::ReLU { slope } => planes::relu_forward(gpu, slope, bottom, top),
            GpuOp::Slice { .. } => planes::slice_forward(self, gpu, bottom, top),
            GpuOp::Split => planes::split_forward(gpu, bottom, top),
            GpuOp::ContrastiveLoss { .. } => {
                loss::contrastive_forward(self, gpu, scratch, bottom, top)
            }
            GpuOp::Softmax { dims } => loss::softmax_forward(gpu, dims, bottom, top),
            GpuOp::SoftmaxWithLoss { .. } => {
                loss::softmax_loss_forward(self, gpu, scratch, bottom, top)
            }
            GpuOp::Accuracy { .. } => loss::accuracy_forward(self, gpu, scratch, bottom, top),
        }
    }

    /// Overwrites the bottom diffs where `down`, accumulates the parameter diffs.
    pub(crate) fn backward(
        &self,
        gpu: &GpuDevice,
        scratch: &mut Scratch,
        top: &[GpuBlob],
        params: &mut [GpuBlob],
        down: &[bool],
        bottom: &mut [GpuBlob],
    ) -> Result<(), LayerError> {
        match *self {
            GpuOp::Host | GpuOp::Accuracy { .. } => Ok(()),
            GpuOp::Convolution { .. } => {
                dense::conv_backward(self, gpu, scratch, top, params, down, bottom)
            }
            GpuOp::InnerProduct { .. } => dense::ip_backward(self, gpu, top, params, down, bottom),
            GpuOp::Pooling { .. } => planes::pool_backward(self, gpu, scratch, top, down, bottom),
            GpuOp::ReLU { slope } => planes::relu_backward(gpu, slope, top, down, bottom),
            GpuOp::Slice { .. } => planes::slice_backward(self, gpu, top, down, bottom),
            GpuOp::Split => planes::split_backward(gpu, top, down, bottom),
            GpuOp::ContrastiveLoss { .. } => {
                loss::contrastive_backward(self, gpu, scratch, top, down, bottom)
            }
            GpuOp::Softmax { dims } => loss::softmax_backward(gpu, dims, top, down, bottom),
            GpuOp::SoftmaxWithLoss { .. } => {
                loss::softmax_loss_backward(self, gpu, scratch, top, down, bottom)
            }
        }
    }
}

/// Sizes as the `int`s kernels take.
pub(crate) fn ints<const N: usize>(sizes: [usize; N]) -> Result<[i32; N], LayerError> {
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
) -> Result<(), LayerError> {
    let [n_] = ints([n])?;
    launch!(gpu, "fill", n; x, &n_, &value)
}

/// `y[i] += x[i]` over `n` floats.
pub(crate) fn add_into(
    gpu: &GpuDevice,
    x: &CudaSlice<f32>,
    y: &mut CudaSlice<f32>,
    n: usize,
) -> Result<(), LayerError> {
    let [n_] = ints([n])?;
    launch!(gpu, "add_into", n; x, y, &n_)
}

/// Copies `n` floats from `src` to `dst` on the device.
pub(crate) fn copy(
    gpu: &GpuDevice,
    src: &CudaSlice<f32>,
    dst: &mut CudaSlice<f32>,
    n: usize,
) -> Result<(), LayerError> {
    if n == 0 {
        return Ok(());
    }
    gpu.stream()
        .memcpy_dtod(&src.slice(..n), &mut dst.slice_mut(..n))
        .or_device("copying on the GPU")
}
