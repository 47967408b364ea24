//! `Net` on its placement: building on the CPU or a GPU, the parameter update and its history
//! wherever the net lives, synchronizing, and fetching blobs back to the host.

use siamese_net::NetSpec;

use super::{LearnableParam, Net, Placement};
use crate::{Blob, Device, LayerError};

/// Caffe's plain SGD step with momentum over every learnable param: decay,
/// `history = rate · lr_mult · diff + momentum · history`, `diff = history`, `data -= diff`.
/// A net on a GPU runs it in one kernel per param with the history on the device.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FusedSgd {
    pub rate: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    /// L1 regularization (`sign(w)` decay) instead of L2.
    pub l1: bool,
}

impl Net {
    /// Builds on the CPU exactly as [`Net::new`] (same seed, same initial weights), then moves
    /// the blobs and parameters to `device`.
    pub fn on_device(spec: &NetSpec, seed: u64, device: Device) -> Result<Net, LayerError> {
        match device {
            Device::Cpu => Net::new(spec, seed),
            #[cfg(feature = "cuda")]
            Device::Gpu(ordinal) => super::gpu::gpu_net(spec, seed, ordinal),
            #[cfg(not(feature = "cuda"))]
            Device::Gpu(_) => Err(crate::DeviceError::NotBuilt.into()),
        }
    }

    /// Where the net runs.
    pub fn device(&self) -> Device {
        match &self.placement {
            Placement::Host => Device::Cpu,
            #[cfg(feature = "cuda")]
            Placement::Gpu(state) => Device::Gpu(state.ordinal()),
        }
    }

    /// Waits for queued device work (for timing); returns the first error a device call met
    /// (errors inside `backward`, which returns nothing, are kept and returned here and by
    /// every later call that returns a `Result`). No-op on the CPU.
    pub fn synchronize(&self) -> Result<(), LayerError> {
        match &self.placement {
            Placement::Host => Ok(()),
            #[cfg(feature = "cuda")]
            Placement::Gpu(state) => state.synchronize(),
        }
    }

    /// Replaces the update history the solver keeps with the net: `slots × params` blobs in
    /// Caffe's order (blob `i` has the size of param `i % params`).
    pub fn set_update_history(&mut self, history: Vec<Vec<f32>>) -> Result<(), LayerError> {
        self.check_history(&history)?;
        self.history = history;
        #[cfg(feature = "cuda")]
        if let Placement::Gpu(state) = &mut self.placement {
            state.history_replaced();
        }
        Ok(())
    }

    /// The update history, current (downloaded when a GPU net's fused step keeps it there).
    pub fn update_history(&self) -> Result<Vec<Vec<f32>>, LayerError> {
        match &self.placement {
            Placement::Host => Ok(self.history.clone()),
            #[cfg(feature = "cuda")]
            Placement::Gpu(state) => state.current_history(&self.history),
        }
    }

    /// One update of every learnable param. `fused` is the step when the solver's rule is
    /// plain SGD and nothing more: a GPU net then runs it on the device. Otherwise (and always
    /// on the CPU, so its arithmetic is the solver's own) `host` updates the host params and
    /// history.
    pub fn update_params(
        &mut self,
        fused: Option<FusedSgd>,
        host: impl FnOnce(&mut [LearnableParam], &mut [Vec<f32>]),
    ) -> Result<(), LayerError> {
        #[cfg(feature = "cuda")]
        if let Placement::Gpu(_) = self.placement {
            if let Some(step) = fused.filter(|_| self.history.len() == self.params.len()) {
                return self.gpu_fused_sgd(step);
            }
            self.gpu_history_to_host()?;
            self.params_to_host()?;
        }
        let _ = fused;
        host(&mut self.params, &mut self.history);
        Ok(())
    }

    /// The blob's current values on the host (downloaded on a GPU net); `None` when the net
    /// has no blob of that name.
    pub fn fetch_blob(&mut self, name: &str) -> Result<Option<&Blob>, LayerError> {
        let Some(&s) = self.latest.get(name) else {
            return Ok(None);
        };
        #[cfg(feature = "cuda")]
        if let Placement::Gpu(state) = &self.placement {
            state.download_blob(s, &mut self.blobs[s])?;
        }
        Ok(Some(&self.blobs[s]))
    }

    /// Before the host copies of the params are read or changed: makes them current (data
    /// and diff) and, on a GPU, marks them newer than the device's.
    pub(super) fn params_to_host(&mut self) -> Result<(), LayerError> {
        match &mut self.placement {
            Placement::Host => Ok(()),
            #[cfg(feature = "cuda")]
            Placement::Gpu(state) => state.params_to_host(&mut self.params),
        }
    }

    /// The current values of param `i` when the host copy is stale (a GPU net), else `None`.
    pub(super) fn current_param_data(&self, i: usize) -> Result<Option<Vec<f32>>, LayerError> {
        match (&self.placement, i) {
            (Placement::Host, _) => Ok(None),
            #[cfg(feature = "cuda")]
            (Placement::Gpu(state), i) => state.param_data(i),
        }
    }

    fn check_history(&self, history: &[Vec<f32>]) -> Result<(), LayerError> {
        let n = self.params.len();
        if !history.len().is_multiple_of(n.max(1)) || (n == 0 && !history.is_empty()) {
            return Err(LayerError::config(
                &self.name,
                format!("{} history blobs for {n} learnable params", history.len()),
            ));
        }
        for (i, h) in history.iter().enumerate() {
            let p = &self.params[i % n];
            if h.len() != p.blob.count() {
                return Err(LayerError::config(
                    &self.name,
                    format!(
                        "param \"{}\" has {} values, its history blob {i} {}",
                        p.name,
                        p.blob.count(),
                        h.len()
                    ),
                ));
            }
        }
        Ok(())
    }
}
