//! `Device`: where a net runs (the CPU or a CUDA GPU by ordinal), parsed from `cpu|gpu[:N]`,
//! and `probe_gpu`, which says whether a GPU can be used here or why not.

use std::fmt;
use std::str::FromStr;

use crate::DeviceError;

/// Where a net's blobs live and its layers run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Device {
    #[default]
    Cpu,
    /// A CUDA GPU by ordinal (as `nvidia-smi` numbers them, after `CUDA_VISIBLE_DEVICES`).
    Gpu(usize),
}

impl Device {
    pub fn is_gpu(self) -> bool {
        matches!(self, Device::Gpu(_))
    }
}

impl FromStr for Device {
    type Err = DeviceError;

    /// `cpu`, `gpu` (= `gpu:0`) or `gpu:N` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let bad = || DeviceError::BadName(s.to_string());
        match lower.as_str() {
            "cpu" => Ok(Device::Cpu),
            "gpu" => Ok(Device::Gpu(0)),
            other => {
                let n = other.strip_prefix("gpu:").ok_or_else(bad)?;
                n.parse().map(Device::Gpu).map_err(|_| bad())
            }
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Gpu(n) => write!(f, "gpu:{n}"),
        }
    }
}

/// Whether GPU `ordinal` can be used: a description of it ("NVIDIA H200 (sm_90, 139 GiB),
/// CUDA driver 13.0") or the reason not (built without CUDA, a missing library, no device N).
pub fn probe_gpu(ordinal: usize) -> Result<String, DeviceError> {
    #[cfg(feature = "cuda")]
    {
        crate::cuda::GpuDevice::get(ordinal).map(|gpu| gpu.describe())
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = ordinal;
        Err(DeviceError::NotBuilt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: Result<Device, &str>) {
        match (input.parse::<Device>(), expect) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{input}"),
            (Err(e), Err(want)) => assert_eq!(e.to_string(), want, "{input}"),
            (got, want) => panic!("{input}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn parses_the_three_forms_and_rejects_others() {
        check("cpu", Ok(Device::Cpu));
        check("CPU", Ok(Device::Cpu));
        check("gpu", Ok(Device::Gpu(0)));
        check("gpu:3", Ok(Device::Gpu(3)));
        check(
            "gpu:x",
            Err("device \"gpu:x\": expected cpu, gpu or gpu:N (N a GPU ordinal)"),
        );
        check(
            "cuda",
            Err("device \"cuda\": expected cpu, gpu or gpu:N (N a GPU ordinal)"),
        );
        check(
            "gpu:-1",
            Err("device \"gpu:-1\": expected cpu, gpu or gpu:N (N a GPU ordinal)"),
        );
    }

    #[test]
    fn display_round_trips() {
        for d in [Device::Cpu, Device::Gpu(0), Device::Gpu(7)] {
            assert_eq!(d.to_string().parse::<Device>().unwrap(), d);
        }
        assert_eq!(Device::Gpu(2).to_string(), "gpu:2");
        assert_eq!(Device::default(), Device::Cpu);
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn probe_without_the_feature_says_how_to_rebuild() {
        let e = probe_gpu(0).unwrap_err().to_string();
        assert_eq!(
            e,
            "this siamese was built without CUDA support; rebuild with `--features cuda`"
        );
    }
}
