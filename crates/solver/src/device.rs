//! Which device a solver trains on: an explicit choice (strict), or the solver file's
//! `solver_mode`/`device_id` (Caffe's default GPU, falling back to the CPU with a notice).

use siamese_layers::{Device, probe_gpu};
use siamese_proto::SolverParameter;
use siamese_proto::solver_parameter::SolverMode;

use crate::SolverError;

/// How the solver picks its device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// As the solver file says: `solver_mode: CPU` → the CPU; `solver_mode: GPU` (Caffe's
    /// default when absent) → GPU `device_id` when it can be used, else the CPU with a
    /// [`crate::SolverEvent::Notice`] saying why.
    #[default]
    FromFile,
    /// This device, whatever the file says; an error when it cannot be used.
    Required(Device),
}

/// The device chosen, and the notice to report when the file's GPU could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceDecision {
    pub device: Device,
    pub notice: Option<String>,
}

impl DeviceChoice {
    /// Resolves the choice against the solver settings, probing the GPU when one is wanted.
    pub fn resolve(self, param: &SolverParameter) -> Result<DeviceDecision, SolverError> {
        let decided = |device| DeviceDecision {
            device,
            notice: None,
        };
        match self {
            DeviceChoice::Required(Device::Cpu) => Ok(decided(Device::Cpu)),
            DeviceChoice::Required(Device::Gpu(n)) => {
                probe_gpu(n)?;
                Ok(decided(Device::Gpu(n)))
            }
            DeviceChoice::FromFile => {
                if param.solver_mode() == SolverMode::Cpu {
                    return Ok(decided(Device::Cpu));
                }
                let id = param.device_id();
                let ordinal = usize::try_from(id).map_err(|_| SolverError::Setting {
                    message: format!("device_id {id}: expected a GPU number of at least 0"),
                })?;
                Ok(match probe_gpu(ordinal) {
                    Ok(_) => decided(Device::Gpu(ordinal)),
                    Err(e) => DeviceDecision {
                        device: Device::Cpu,
                        notice: Some(format!(
                            "solver_mode GPU (device_id {id}): {e}; running on the CPU"
                        )),
                    },
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(mode: Option<SolverMode>, device_id: Option<i32>) -> SolverParameter {
        SolverParameter {
            solver_mode: mode.map(|m| m as i32),
            device_id,
            ..Default::default()
        }
    }

    #[test]
    fn cpu_in_the_file_or_asked_for_is_the_cpu_without_a_notice() {
        let cpu = DeviceDecision {
            device: Device::Cpu,
            notice: None,
        };
        let file_cpu = param(Some(SolverMode::Cpu), Some(3));
        assert_eq!(DeviceChoice::FromFile.resolve(&file_cpu).unwrap(), cpu);
        let file_gpu = param(Some(SolverMode::Gpu), None);
        let asked = DeviceChoice::Required(Device::Cpu);
        assert_eq!(asked.resolve(&file_gpu).unwrap(), cpu);
    }

    #[test]
    fn a_negative_device_id_is_a_setting_error() {
        let e = DeviceChoice::FromFile
            .resolve(&param(None, Some(-1)))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "device_id -1: expected a GPU number of at least 0"
        );
    }

    /// Where no GPU can be used (every build without `cuda`, and CI machines without a
    /// driver): the file's GPU falls back with the probe's reason; asking for it fails.
    #[test]
    fn an_unusable_gpu_falls_back_from_the_file_and_fails_when_asked_for() {
        let Err(reason) = probe_gpu(1) else {
            println!("skipped: GPU 1 can be used here, so nothing falls back");
            return;
        };
        let decision = DeviceChoice::FromFile
            .resolve(&param(None, Some(1)))
            .unwrap();
        assert_eq!(decision.device, Device::Cpu);
        assert_eq!(
            decision.notice.unwrap(),
            format!("solver_mode GPU (device_id 1): {reason}; running on the CPU")
        );
        let e = DeviceChoice::Required(Device::Gpu(1))
            .resolve(&param(Some(SolverMode::Cpu), None))
            .unwrap_err();
        assert_eq!(e.to_string(), format!("GPU: {reason}"));
    }
}
