//! `GpuDevice`: the CUDA context, stream, cuBLAS handle and compiled kernels of one GPU,
//! created once per ordinal (after checking the CUDA libraries can be loaded) and shared.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaFunction, CudaStream, LaunchConfig};
use cudarc::nvrtc::{CompileOptions, Ptx, compile_ptx_with_opts};

use crate::DeviceError;

/// The kernels of kernels.cu (compiled at run time by NVRTC for the device's architecture).
const KERNELS_SRC: &str = include_str!("kernels.cu");

/// Every kernel of kernels.cu this crate launches.
pub(crate) const KERNEL_NAMES: &[&str] = &[
    "im2col_batch",
    "col2im_batch",
    "add_channel_bias",
    "sum_inner",
    "accumulate_over_batch",
    "max_pool_forward",
    "max_pool_backward",
    "ave_pool_forward",
    "ave_pool_backward",
    "relu_forward",
    "relu_backward",
    "slice_copy",
    "add_into",
    "fill",
    "contrastive_forward",
    "sum_scaled",
    "contrastive_backward",
    "softmax_forward",
    "softmax_backward",
    "softmax_loss_forward",
    "softmax_loss_backward",
    "loss_normalizer",
    "divide_sum",
    "accuracy_forward",
    "sgd_update",
];

/// Threads per block of every launch; grids are capped (kernels use grid-stride loops).
const BLOCK: u32 = 256;
const MAX_BLOCKS: u32 = 65_535;

/// One GPU ready to run nets: shared by every net on that ordinal.
pub(crate) struct GpuDevice {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    /// cuBLAS handles are not to be used by two threads at once.
    blas: Mutex<CudaBlas>,
    kernels: HashMap<&'static str, CudaFunction>,
    description: String,
}

impl std::fmt::Debug for GpuDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

/// Turns any CUDA-side error into `DeviceError::Call` with what was being done.
pub(crate) fn device_err(what: &str) -> impl FnOnce(&dyn std::fmt::Debug) -> DeviceError + '_ {
    // One line, whatever the error's Debug holds (an NVRTC log has several).
    move |e| DeviceError::Call {
        what: what.to_string(),
        detail: format!("{e:?}").replace('\n', " "),
    }
}

/// `Result<T, E: Debug>` → `Result<T, DeviceError>` naming what failed.
pub(crate) trait OrDevice<T> {
    fn or_device(self, what: &str) -> Result<T, DeviceError>;
}

impl<T, E: std::fmt::Debug> OrDevice<T> for Result<T, E> {
    fn or_device(self, what: &str) -> Result<T, DeviceError> {
        self.map_err(|e| device_err(what)(&e))
    }
}

/// Fails naming the first CUDA library (driver, NVRTC, cuBLAS) that cannot be loaded; cudarc
/// panics on the first call into a missing library, so this runs before any.
fn check_libraries() -> Result<(), DeviceError> {
    // SAFETY: these only try to dlopen the library and report whether it loaded.
    let present = unsafe {
        [
            (
                "the CUDA driver (libcuda.so)",
                cudarc::driver::sys::is_culib_present(),
            ),
            (
                "NVRTC (libnvrtc.so.13)",
                cudarc::nvrtc::sys::is_culib_present(),
            ),
            (
                "cuBLAS (libcublas.so.13)",
                cudarc::cublas::sys::is_culib_present(),
            ),
        ]
    };
    match present.iter().find(|(_, ok)| !ok) {
        None => Ok(()),
        Some((lib, _)) => Err(DeviceError::MissingLibrary(lib)),
    }
}

static DEVICES: OnceLock<Mutex<HashMap<usize, Arc<GpuDevice>>>> = OnceLock::new();

impl GpuDevice {
    /// The shared device for `ordinal`, created (libraries checked, kernels compiled) on
    /// first use.
    pub(crate) fn get(ordinal: usize) -> Result<Arc<GpuDevice>, DeviceError> {
        check_libraries()?;
        let table = DEVICES.get_or_init(Default::default);
        let mut table = table.lock().map_err(|_| {
            DeviceError::Failed("the GPU table was poisoned by a panic".to_string())
        })?;
        if let Some(gpu) = table.get(&ordinal) {
            return Ok(gpu.clone());
        }
        let gpu = Arc::new(Self::create(ordinal)?);
        table.insert(ordinal, gpu.clone());
        Ok(gpu)
    }

    fn create(ordinal: usize) -> Result<GpuDevice, DeviceError> {
        let count = CudaContext::device_count().or_device("initializing the CUDA driver")?;
        if ordinal >= count.max(0) as usize {
            return Err(DeviceError::NoSuchGpu { ordinal, count });
        }
        let ctx = CudaContext::new(ordinal).or_device("creating the CUDA context")?;
        // SAFETY: every buffer of this crate lives on the one stream below, so cudarc's
        // cross-stream event tracking is not needed (and costs two events per launch).
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone()).or_device("creating the cuBLAS handle")?;
        let description = describe(&ctx)?;
        let kernels = compile_kernels(&ctx)?;
        Ok(GpuDevice {
            ctx,
            stream,
            blas: Mutex::new(blas),
            kernels,
            description,
        })
    }

    /// "NVIDIA H200 (sm_90, 139 GiB), CUDA driver 13.0".
    pub(crate) fn describe(&self) -> String {
        self.description.clone()
    }

    pub(crate) fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Makes the context current on this thread (cuBLAS calls need it).
    pub(crate) fn bind(&self) -> Result<(), DeviceError> {
        self.ctx
            .bind_to_thread()
            .or_device("binding the CUDA context")
    }

    pub(crate) fn blas(&self) -> Result<MutexGuard<'_, CudaBlas>, DeviceError> {
        self.blas.lock().map_err(|_| {
            DeviceError::Failed("the cuBLAS handle was poisoned by a panic".to_string())
        })
    }

    /// The compiled kernel `name` (one of KERNEL_NAMES).
    pub(crate) fn kernel(&self, name: &str) -> Result<&CudaFunction, DeviceError> {
        self.kernels
            .get(name)
            .ok_or_else(|| DeviceError::Failed(format!("kernel {name} is not in kernels.cu")))
    }

    /// Waits for all queued work.
    pub(crate) fn synchronize(&self) -> Result<(), DeviceError> {
        self.stream
            .synchronize()
            .or_device("synchronizing the stream")
    }
}

/// Blocks of `BLOCK` threads for `n` threads of a grid-stride kernel (at least one block).
pub(crate) fn launch_config(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(BLOCK as usize).clamp(1, MAX_BLOCKS as usize) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn describe(ctx: &Arc<CudaContext>) -> Result<String, DeviceError> {
    let name = ctx.name().or_device("reading the device name")?;
    let (major, minor) = ctx
        .compute_capability()
        .or_device("reading the compute capability")?;
    let mem = ctx.total_mem().or_device("reading the device memory")?;
    let mut version = 0;
    // SAFETY: the driver library is loaded (checked) and initialized (context created).
    let status = unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut version) };
    let driver = match status {
        cudarc::driver::sys::CUresult::CUDA_SUCCESS => {
            format!("{}.{}", version / 1000, (version % 1000) / 10)
        }
        _ => "unknown".to_string(),
    };
    let gib = mem as f64 / f64::from(1u32 << 30);
    Ok(format!(
        "{name} (sm_{major}{minor}, {gib:.0} GiB), CUDA driver {driver}"
    ))
}

/// kernels.cu compiled by NVRTC to PTX for compute capability `major.minor` (needs NVRTC only,
/// no GPU or driver: the caller has checked the library loads).
pub(crate) fn compile_ptx(major: i32, minor: i32) -> Result<Ptx, DeviceError> {
    let opts = CompileOptions {
        // No fused multiply-add: the kernels then round as the CPU code does.
        fmad: Some(false),
        options: vec![format!("--gpu-architecture=compute_{major}{minor}")],
        name: Some("kernels.cu".to_string()),
        ..Default::default()
    };
    compile_ptx_with_opts(KERNELS_SRC, opts).or_device("NVRTC compiling kernels.cu")
}

/// Compiles kernels.cu for the device's architecture (PTX, JIT-compiled by the driver) and
/// loads every kernel.
fn compile_kernels(
    ctx: &Arc<CudaContext>,
) -> Result<HashMap<&'static str, CudaFunction>, DeviceError> {
    let (major, minor) = ctx
        .compute_capability()
        .or_device("reading the compute capability")?;
    let ptx = compile_ptx(major, minor)?;
    let module = ctx
        .load_module(ptx)
        .or_device("loading the kernels.cu module")?;
    KERNEL_NAMES
        .iter()
        .map(|&name| {
            let f = module
                .load_function(name)
                .or_device(&format!("loading kernel {name}"))?;
            Ok((name, f))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// cudarc's NVRTC path with this crate's options, run wherever NVRTC loads (no GPU needed):
    /// every launched kernel is in the PTX under its plain name, and `--fmad=false` reached the
    /// compiler (fewer fused multiply-adds than NVRTC's default; expf/logf keep their own).
    #[test]
    fn nvrtc_compiles_kernels_cu_through_cudarc_for_sm_90() {
        // SAFETY: only tries to dlopen NVRTC.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            return eprintln!(
                "skipped: NVRTC (libnvrtc.so.13) cannot be loaded; add CUDA 13's lib64 to \
                 LD_LIBRARY_PATH"
            );
        }
        let ptx = compile_ptx(9, 0).unwrap().to_src();
        assert!(
            ptx.contains(".target sm_90"),
            "{}",
            &ptx[..ptx.len().min(400)]
        );
        for name in KERNEL_NAMES {
            assert!(
                ptx.contains(&format!(".entry {name}(")),
                "kernel {name} not in the PTX"
            );
        }
        let fused = |ptx: &str| ptx.matches("fma.rn.f32").count();
        let default = CompileOptions {
            options: vec!["--gpu-architecture=compute_90".to_string()],
            ..Default::default()
        };
        let contracted = compile_ptx_with_opts(KERNELS_SRC, default)
            .unwrap()
            .to_src();
        assert!(
            fused(&ptx) < fused(&contracted),
            "--fmad=false: {} fma, default: {}",
            fused(&ptx),
            fused(&contracted)
        );
    }
}
