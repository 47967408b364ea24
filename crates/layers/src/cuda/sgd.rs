//! `SgdStep`: Caffe's SGD-with-momentum update of one parameter on the GPU, in the order of
//! crates/solver's update (regularize, history, diff = history, data -= diff).

use cudarc::driver::CudaSlice;

use super::GpuDevice;
use super::ops::{ints, launch};
use crate::DeviceError;

/// The per-parameter rates of one SGD step.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SgdStep {
    pub local_rate: f32,
    pub momentum: f32,
    pub local_decay: f32,
    pub l1: bool,
}

impl SgdStep {
    /// Updates the first `n` values of `data`, `diff` and `history` in place.
    pub fn run(
        &self,
        gpu: &GpuDevice,
        data: &mut CudaSlice<f32>,
        diff: &mut CudaSlice<f32>,
        history: &mut CudaSlice<f32>,
        n: usize,
    ) -> Result<(), DeviceError> {
        if data.len() < n || diff.len() < n || history.len() < n {
            return Err(DeviceError::Failed(format!(
                "SGD step over {n} values: buffer too short"
            )));
        }
        let [n_] = ints([n])?;
        let l1 = i32::from(self.l1);
        launch!(gpu, "sgd_update", n; data, diff, history, &n_, &self.local_rate, &self.momentum,
            &self.local_decay, &l1)
    }
}
