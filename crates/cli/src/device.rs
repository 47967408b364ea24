//! `--device cpu|gpu|gpu:N` of train, test, time and embed: parsing it, and checking that the
//! GPU asked for can be used before anything is built, with a one-line reason when not.

use anyhow::{Result, bail};
use siamese_layers::{Device, probe_gpu};

/// Help text shared by the commands' `--device` flags.
pub const HELP: &str = "Where the net runs: cpu, gpu (= gpu:0) or gpu:N";

/// clap's value parser for `--device`.
pub fn parse(text: &str) -> Result<Device, String> {
    text.parse::<Device>().map_err(|e| e.to_string())
}

/// `device`, after checking that a GPU can be used: the error names the flag and says why not
/// (a build without the `cuda` feature, no driver, no NVRTC or cuBLAS, no GPU N).
pub fn check(device: Device) -> Result<Device> {
    describe(device).map(|_| device)
}

/// What `device` is, for the log: "the CPU" or "GPU 0: NVIDIA H200 (...)"; for a GPU, an error
/// naming `--device` when it cannot be used.
pub fn describe(device: Device) -> Result<String> {
    match device {
        Device::Cpu => Ok("the CPU".to_string()),
        Device::Gpu(n) => match probe_gpu(n) {
            Ok(about) => Ok(format!("GPU {n}: {about}")),
            Err(e) => bail!("--device {device}: {e}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_parse(input: &str, expect: Result<Device, &str>) {
        assert_eq!(parse(input), expect.map_err(str::to_string), "{input}");
    }

    #[test]
    fn parses_cpu_gpu_and_gpu_n() {
        check_parse("cpu", Ok(Device::Cpu));
        check_parse("gpu", Ok(Device::Gpu(0)));
        check_parse("gpu:2", Ok(Device::Gpu(2)));
        let bad = "device \"cuda:0\": expected cpu, gpu or gpu:N (N a GPU ordinal)";
        check_parse("cuda:0", Err(bad));
    }

    #[test]
    fn the_cpu_needs_no_check() {
        assert_eq!(check(Device::Cpu).unwrap(), Device::Cpu);
        assert_eq!(describe(Device::Cpu).unwrap(), "the CPU");
    }

    #[test]
    fn an_unusable_gpu_is_refused_naming_the_flag() {
        let Err(reason) = probe_gpu(3) else {
            println!("skipped: GPU 3 can be used here");
            return;
        };
        let e = check(Device::Gpu(3)).unwrap_err();
        assert_eq!(e.to_string(), format!("--device gpu:3: {reason}"));
    }
}
