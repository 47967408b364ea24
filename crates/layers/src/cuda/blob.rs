//! `GpuBlob`: a blob's data and diff in device memory, with its shape; buffers only grow, so
//! reshaping to a size seen before allocates nothing.

use cudarc::driver::CudaSlice;

use super::GpuDevice;
use super::device::OrDevice;
use crate::{Blob, DeviceError};

/// Data and diff of one blob on the GPU. Both buffers hold at least `max(count, 1)` floats
/// (CUDA allocations of 0 bytes fail); only the first `count` are the blob.
pub(crate) struct GpuBlob {
    pub shape: Vec<usize>,
    pub data: CudaSlice<f32>,
    pub diff: CudaSlice<f32>,
}

impl GpuBlob {
    /// A zero-filled blob of `shape`.
    pub fn zeros(gpu: &GpuDevice, shape: &[usize]) -> Result<Self, DeviceError> {
        let len = shape.iter().product::<usize>().max(1);
        Ok(Self {
            shape: shape.to_vec(),
            data: alloc_zeros(gpu, len)?,
            diff: alloc_zeros(gpu, len)?,
        })
    }

    pub fn count(&self) -> usize {
        self.shape.iter().product()
    }

    /// Takes `shape`; grows the buffers (zero-filled, contents dropped) when it does not fit.
    pub fn reshape(&mut self, gpu: &GpuDevice, shape: &[usize]) -> Result<(), DeviceError> {
        if self.shape != shape {
            self.shape.clear();
            self.shape.extend_from_slice(shape);
        }
        let count = self.count();
        if count > self.data.len() {
            self.data = alloc_zeros(gpu, count)?;
            self.diff = alloc_zeros(gpu, count)?;
        }
        Ok(())
    }

    /// Takes the host blob's shape and data (and diff when `with_diff`).
    pub fn upload(
        &mut self,
        gpu: &GpuDevice,
        host: &Blob,
        with_diff: bool,
    ) -> Result<(), DeviceError> {
        self.reshape(gpu, &host.shape)?;
        let n = host.count();
        if n == 0 {
            return Ok(());
        }
        let stream = gpu.stream();
        stream
            .memcpy_htod(&host.data[..n], &mut self.data.slice_mut(..n))
            .or_device("copying a blob to the GPU")?;
        if with_diff {
            stream
                .memcpy_htod(&host.diff[..n], &mut self.diff.slice_mut(..n))
                .or_device("copying a blob's diff to the GPU")?;
        }
        Ok(())
    }

    /// Writes the shape and data (and diff when `with_diff`) into the host blob; waits for
    /// the queued work that produces them.
    pub fn download(
        &self,
        gpu: &GpuDevice,
        host: &mut Blob,
        with_diff: bool,
    ) -> Result<(), DeviceError> {
        host.reshape(&self.shape)
            .map_err(|e| DeviceError::Failed(format!("host copy: {e}")))?;
        let n = self.count();
        if n == 0 {
            return Ok(());
        }
        let stream = gpu.stream();
        stream
            .memcpy_dtoh(&self.data.slice(..n), &mut host.data[..n])
            .or_device("copying a blob from the GPU")?;
        if with_diff {
            stream
                .memcpy_dtoh(&self.diff.slice(..n), &mut host.diff[..n])
                .or_device("copying a blob's diff from the GPU")?;
        }
        gpu.synchronize()
    }

    /// The data as a new host Vec (`count` values).
    pub fn data_to_vec(&self, gpu: &GpuDevice) -> Result<Vec<f32>, DeviceError> {
        download_floats(gpu, &self.data, self.count())
    }
}

/// A zero-filled device buffer of at least one float.
pub(crate) fn alloc_zeros(gpu: &GpuDevice, len: usize) -> Result<CudaSlice<f32>, DeviceError> {
    gpu.stream()
        .alloc_zeros::<f32>(len.max(1))
        .or_device(&format!("allocating {len} floats on the GPU"))
}

/// The first `n` floats of `src` as a host Vec.
pub(crate) fn download_floats(
    gpu: &GpuDevice,
    src: &CudaSlice<f32>,
    n: usize,
) -> Result<Vec<f32>, DeviceError> {
    let mut out = vec![0.0; n];
    if n == 0 {
        return Ok(out);
    }
    gpu.stream()
        .memcpy_dtoh(&src.slice(..n), &mut out[..])
        .or_device("copying from the GPU")?;
    gpu.synchronize()?;
    Ok(out)
}

/// Copies `src` into the start of `dst` (which holds at least `src.len()` floats).
pub(crate) fn upload_floats(
    gpu: &GpuDevice,
    src: &[f32],
    dst: &mut CudaSlice<f32>,
) -> Result<(), DeviceError> {
    if src.is_empty() {
        return Ok(());
    }
    gpu.stream()
        .memcpy_htod(src, &mut dst.slice_mut(..src.len()))
        .or_device("copying to the GPU")
}
