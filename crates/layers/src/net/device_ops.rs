//! `Net` on a device: building on the CPU or a GPU, synchronizing, the SGD step and its
//! history on the device, and fetching blobs back to the host.

use siamese_net::NetSpec;

use super::Net;
use crate::{Blob, Device, LayerError};

impl Net {
    /// Builds on the CPU exactly as [`Net::new`] (same seed, same initial weights), then moves
    /// the blobs and parameters to `device`.
    pub fn on_device(spec: &NetSpec, seed: u64, device: Device) -> Result<Net, LayerError> {
        match device {
            Device::Cpu => Net::new(spec, seed),
            #[cfg(feature = "cuda")]
            Device::Gpu(ordinal) => super::gpu::gpu_net(spec, seed, ordinal),
            #[cfg(not(feature = "cuda"))]
            Device::Gpu(_) => Err(LayerError::device(crate::device::NO_CUDA)),
        }
    }

    /// Where the net runs.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Waits for queued device work; returns the first error a device call met (errors inside
    /// `backward`, which returns nothing, are kept and returned here). No-op on the CPU.
    pub fn synchronize(&self) -> Result<(), LayerError> {
        match self.device {
            Device::Cpu => Ok(()),
            Device::Gpu(_) => self.gpu_synchronize(),
        }
    }

    /// Caffe's SGD step on the device for every learnable param (see crates/solver's update):
    /// decay, `history = local_rate * diff + momentum * history`, `diff = history`,
    /// `data -= diff`. History lives on the device (zeros at first). Errors on a CPU net.
    pub fn sgd_update_on_device(
        &mut self,
        rate: f32,
        momentum: f32,
        weight_decay: f32,
        l1: bool,
    ) -> Result<(), LayerError> {
        self.require_gpu("sgd_update_on_device")?;
        self.gpu_sgd_update(rate, momentum, weight_decay, l1)
    }

    /// The device SGD history, one Vec per learnable param in Caffe's order.
    pub fn device_history(&self) -> Result<Vec<Vec<f32>>, LayerError> {
        self.require_gpu("device_history")?;
        self.gpu_history()
    }

    /// Replaces the device SGD history (lengths checked against the params).
    pub fn set_device_history(&mut self, history: &[Vec<f32>]) -> Result<(), LayerError> {
        self.require_gpu("set_device_history")?;
        self.check_history(history)?;
        self.gpu_set_history(history)
    }

    /// The blob's current values on the host (downloaded on a GPU net); `None` when the net
    /// has no blob of that name.
    pub fn fetch_blob(&mut self, name: &str) -> Result<Option<&Blob>, LayerError> {
        let Some(&s) = self.latest.get(name) else {
            return Ok(None);
        };
        if self.device.is_gpu() {
            self.gpu_download_blob(s)?;
        }
        Ok(Some(&self.blobs[s]))
    }

    fn require_gpu(&self, what: &str) -> Result<(), LayerError> {
        match self.device {
            Device::Gpu(_) => Ok(()),
            Device::Cpu => Err(LayerError::device(format!(
                "{what}: net \"{}\" runs on the CPU; build it with Net::on_device(.., Device::Gpu(N))",
                self.name
            ))),
        }
    }

    fn check_history(&self, history: &[Vec<f32>]) -> Result<(), LayerError> {
        if history.len() != self.params.len() {
            return Err(LayerError::device(format!(
                "set_device_history: {} history blobs for {} learnable params",
                history.len(),
                self.params.len()
            )));
        }
        for (h, p) in history.iter().zip(&self.params) {
            if h.len() != p.blob.count() {
                return Err(LayerError::device(format!(
                    "set_device_history: param \"{}\" has {} values, its history {}",
                    p.name,
                    p.blob.count(),
                    h.len()
                )));
            }
        }
        Ok(())
    }
}

/// Without the `cuda` feature no net is ever on a GPU: the device calls are unreachable by
/// construction and answer with the rebuild message rather than panic; the param hooks are
/// no-ops.
#[cfg(not(feature = "cuda"))]
impl Net {
    fn gpu_synchronize(&self) -> Result<(), LayerError> {
        Err(LayerError::device(crate::device::NO_CUDA))
    }

    fn gpu_sgd_update(&mut self, _: f32, _: f32, _: f32, _: bool) -> Result<(), LayerError> {
        Err(LayerError::device(crate::device::NO_CUDA))
    }

    fn gpu_history(&self) -> Result<Vec<Vec<f32>>, LayerError> {
        Err(LayerError::device(crate::device::NO_CUDA))
    }

    fn gpu_set_history(&mut self, _: &[Vec<f32>]) -> Result<(), LayerError> {
        Err(LayerError::device(crate::device::NO_CUDA))
    }

    fn gpu_download_blob(&mut self, _: usize) -> Result<(), LayerError> {
        Err(LayerError::device(crate::device::NO_CUDA))
    }

    pub(super) fn gpu_forward_layer(&mut self, _: usize) -> Result<f32, LayerError> {
        Err(LayerError::device(crate::device::NO_CUDA))
    }

    pub(super) fn gpu_backward_layer(&mut self, _: usize) {}

    pub(super) fn gpu_download_outputs(&mut self) -> Result<(), LayerError> {
        Err(LayerError::device(crate::device::NO_CUDA))
    }

    pub(super) fn gpu_clear_param_diffs(&mut self) {}

    /// Host params are the only params without CUDA.
    pub(super) fn gpu_params_to_host(&mut self) -> Result<(), LayerError> {
        Ok(())
    }

    pub(super) fn gpu_param_data(&self, _: usize) -> Result<Option<Vec<f32>>, LayerError> {
        Ok(None)
    }

    pub(super) fn gpu_record(&mut self, _: Result<(), LayerError>) {}
}
