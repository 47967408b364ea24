//! The CUDA kernels (src/cuda/kernels.cu) run on the CPU: g++ compiles the file with an
//! emulation shim, and every kernel is checked against the CPU backend and layers it replaces.
//!
//! Each kernel runs under several launch shapes (one thread per element; grids far smaller
//! than the element count, so the grid-stride loops wrap; threads in reverse order) that must
//! agree bit for bit — a kernel whose threads depended on each other would not. Outputs are
//! then compared with the CPU reference: bit for bit, except where the kernel cannot do the
//! CPU's exact operations (expf/logf against Rust's exp/ln, the contrastive loss's scale·sum,
//! the convolution bias gradient the CPU sums in 8 lanes): there within 1e-5 relative.
//! Inputs have random low mantissa bits, so a kernel summing in another order fails.
//! A last test has NVRTC itself compile the file, where libnvrtc.so.13 is found.
//! Without g++ the tests print "skipped: g++ not found" and pass, unless
//! SIAMESE_REQUIRE_EMULATION=1 (CI) makes that a failure.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use libloading::Library;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use siamese_layers::backend::{ConvGeometry, PoolGeometry};
use siamese_layers::layers::{
    Accuracy, ContrastiveLoss, Convolution, InnerProduct, Slice, Softmax, SoftmaxWithLoss, Split,
};
use siamese_layers::{Backend, Blob, CpuBackend, Layer};
use siamese_net::layer::{
    AccuracyConfig, ContrastiveLossConfig, ConvConfig, InnerProductConfig, SliceConfig,
    SoftmaxConfig, SoftmaxLossConfig,
};
use siamese_proto::loss_parameter::NormalizationMode;
use siamese_proto::{
    AccuracyParameter, ContrastiveLossParameter, ConvolutionParameter, InnerProductParameter,
    LayerParameter, LossParameter, SliceParameter,
};

type In = *const f32;
type Out = *mut f32;

/// The kernels compiled by g++ into a shared library, loaded.
struct Emulator {
    lib: Library,
    /// Holds the library file.
    _dir: tempfile::TempDir,
}

/// The emulator, built once per test process; `None` when g++ is missing (and allowed to be).
fn emulator() -> Option<&'static Emulator> {
    static EMULATOR: OnceLock<Option<Emulator>> = OnceLock::new();
    EMULATOR.get_or_init(build_emulator).as_ref()
}

fn build_emulator() -> Option<Emulator> {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = crate_dir.join("src/cuda/kernels.cu");
    let shim = crate_dir.join("tests/cuda_emulation/shim.h");
    let dir = tempfile::tempdir().expect("temp dir");
    let library = dir.path().join("kernels.so");
    // -ffp-contract=off: no fused multiply-add, as the CPU layers and NVRTC with --fmad=false.
    let output = Command::new("g++")
        .args([
            "-O1",
            "-shared",
            "-fPIC",
            "-ffp-contract=off",
            "-Wall",
            "-Wextra",
        ])
        .args(["-x", "c++", "-include"])
        .arg(&shim)
        .arg(&source)
        .arg("-o")
        .arg(&library)
        .output();
    match output {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var("SIAMESE_REQUIRE_EMULATION").as_deref() != Ok("1"),
                "g++ not found, and SIAMESE_REQUIRE_EMULATION=1 requires the CUDA kernel emulation"
            );
            eprintln!("skipped: g++ not found");
            return None;
        }
        Err(e) => panic!("running g++: {e}"),
        Ok(out) => assert!(
            out.status.success(),
            "g++ could not compile {}:\n{}",
            source.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
    // SAFETY: the library is ours, just built; its initialisers only zero the thread indices.
    let lib = unsafe { Library::new(&library) }.expect("loading the emulated kernels");
    Some(Emulator { lib, _dir: dir })
}

/// A kernel's entry point with the given C signature.
macro_rules! kernel {
    ($emu:expr, $name:ident: fn($($arg:ty),* $(,)?)) => {{
        // SAFETY: the type is the kernel's signature in kernels.cu (the contract).
        let symbol: libloading::Symbol<'_, unsafe extern "C" fn($($arg),*)> = unsafe {
            $emu.lib.get(concat!(stringify!($name), "\0").as_bytes())
        }
        .expect(concat!("kernel ", stringify!($name)));
        *symbol
    }};
}

/// How a kernel is launched: `grid` blocks of `block` threads (`None`: ceil(n / 256) blocks
/// of 256, as the GPU runtime launches), threads run first to last or last to first.
#[derive(Clone, Copy, Debug)]
struct Launch {
    shape: Option<(u32, u32)>,
    reverse: bool,
}

const LAUNCHES: [Launch; 5] = [
    Launch {
        shape: None,
        reverse: false,
    },
    Launch {
        shape: None,
        reverse: true,
    },
    Launch {
        shape: Some((1, 1)),
        reverse: false,
    },
    Launch {
        shape: Some((2, 3)),
        reverse: true,
    },
    Launch {
        shape: Some((3, 32)),
        reverse: false,
    },
];

impl Emulator {
    /// Runs `thread` once per thread of the launch for a kernel that needs `n` threads.
    fn run(&self, launch: Launch, n: usize, mut thread: impl FnMut()) {
        let set_thread = kernel!(self, emu_set_thread: fn(u32, u32, u32, u32));
        let (grid, block) = launch.shape.unwrap_or((n.div_ceil(256).max(1) as u32, 256));
        let total = grid * block;
        for t in 0..total {
            let t = if launch.reverse { total - 1 - t } else { t };
            // SAFETY: sets the shim's thread-local indices.
            unsafe { set_thread(grid, block, t / block, t % block) };
            thread();
        }
    }
}

/// Runs `once` (which launches kernels with the launch it is given and returns their
/// outputs) under every launch in [`LAUNCHES`], checks that all agree bit for bit, and
/// returns the outputs.
fn every_launch(what: &str, mut once: impl FnMut(Launch) -> Vec<Vec<f32>>) -> Vec<Vec<f32>> {
    let first = once(LAUNCHES[0]);
    for launch in &LAUNCHES[1..] {
        let other = once(*launch);
        for (k, (a, b)) in first.iter().zip(&other).enumerate() {
            let same =
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "{what}: output {k} differs under {launch:?}");
        }
    }
    first
}

/// Guard values after each output buffer: a kernel writing past its end is caught.
const GUARD: usize = 16;
const GUARD_VALUE: f32 = -12345.5;

/// An output (or in-place) buffer of `init`'s length followed by [`GUARD`] sentinels.
fn guarded(init: &[f32]) -> Vec<f32> {
    let mut v = init.to_vec();
    v.extend([GUARD_VALUE; GUARD]);
    v
}

/// The buffer without its sentinels, after checking them.
fn unguard(what: &str, mut v: Vec<f32>) -> Vec<f32> {
    let len = v.len() - GUARD;
    assert!(
        v[len..].iter().all(|&g| g == GUARD_VALUE),
        "{what}: written past the end of its output"
    );
    v.truncate(len);
    v
}

/// Asserts `got` equals `want` within 1e-5 relative to `max(|want|, floor)` (floor 0: purely
/// relative; a floor for sums whose terms cancel).
fn assert_close(what: &str, got: &[f32], want: &[f32], floor: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = g.to_bits() == w.to_bits() || (g - w).abs() <= 1e-5 * w.abs().max(floor);
        assert!(ok, "{what}[{i}]: kernel {g:e}, CPU {w:e}");
    }
}

/// Asserts `got` equals `want` bit for bit (the kernel does the CPU's operations in its order).
fn assert_same(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits(),
            "{what}[{i}]: kernel {g:e}, CPU {w:e}"
        );
    }
}

/// Uniform in [-1, 1) with every mantissa bit random (drawn as f64): sums of these round, so
/// a kernel adding in another order than the CPU shows.
fn random(len: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..len)
        .map(|_| rng.random_range(-1.0f64..1.0) as f32)
        .collect()
}

/// Values on a grid of quarters in [-1, 1]: many ties (and zeros).
fn quantized(len: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..len)
        .map(|_| rng.random_range(-4..=4) as f32 / 4.0)
        .collect()
}

fn as_bits(mask: &[u32]) -> Vec<f32> {
    mask.iter().map(|&m| f32::from_bits(m)).collect()
}

fn conv_geometry(
    channels: usize,
    [height, width]: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 2],
    dilation: [usize; 2],
) -> ConvGeometry {
    ConvGeometry {
        channels,
        height,
        width,
        kernel,
        stride,
        pad,
        dilation,
    }
}

/// Padding, stride 2, dilation, non-square kernels and images, and the CPU's plain path.
fn conv_geometries() -> Vec<ConvGeometry> {
    vec![
        conv_geometry(2, [5, 6], [3, 2], [2, 1], [1, 2], [1, 2]),
        conv_geometry(3, [7, 5], [3, 3], [1, 1], [0, 0], [1, 1]),
        conv_geometry(1, [8, 9], [2, 3], [2, 2], [1, 1], [1, 1]),
        conv_geometry(2, [6, 7], [3, 2], [1, 3], [2, 0], [2, 1]),
    ]
}

/// `[rows][batch·spatial]` (CpuBackend's batched column layout) ⇄ `[batch][rows][spatial]`
/// (the kernels'): `to_kernel` picks the direction.
fn reorder_columns(
    col: &[f32],
    rows: usize,
    batch: usize,
    spatial: usize,
    to_kernel: bool,
) -> Vec<f32> {
    let mut out = vec![0.0; col.len()];
    for r in 0..rows {
        for n in 0..batch {
            for p in 0..spatial {
                let cpu = r * batch * spatial + n * spatial + p;
                let gpu = (n * rows + r) * spatial + p;
                if to_kernel {
                    out[gpu] = col[cpu];
                } else {
                    out[cpu] = col[gpu];
                }
            }
        }
    }
    out
}

type ConvKernel = unsafe extern "C" fn(
    In,
    i32,
    i32,
    i32,
    i32,
    i32,
    i32,
    i32,
    i32,
    i32,
    i32,
    i32,
    i32,
    i32,
    i32,
    Out,
);

/// Calls an im2col/col2im kernel with `g`'s geometry.
unsafe fn call_conv(k: ConvKernel, g: &ConvGeometry, batch: usize, src: In, dst: Out) {
    let [out_h, out_w] = g.output_size().expect("kernel fits");
    let i = |v: usize| v as i32;
    // SAFETY: the caller sized src and dst for this geometry.
    unsafe {
        k(
            src,
            i(batch),
            i(g.channels),
            i(g.height),
            i(g.width),
            i(g.kernel[0]),
            i(g.kernel[1]),
            i(g.pad[0]),
            i(g.pad[1]),
            i(g.stride[0]),
            i(g.stride[1]),
            i(g.dilation[0]),
            i(g.dilation[1]),
            i(out_h),
            i(out_w),
            dst,
        )
    }
}

#[test]
fn im2col_and_col2im_match_the_cpu_backend() {
    let Some(emu) = emulator() else { return };
    let im2col = kernel!(emu, im2col_batch: fn(In, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, Out));
    let col2im = kernel!(emu, col2im_batch: fn(In, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, Out));
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let batch = 3;
    for g in conv_geometries() {
        let (rows, spatial) = (g.col_rows(), g.out_spatial());
        let image_len = batch * g.channels * g.height * g.width;
        let col_len = rows * batch * spatial;
        let images = random(image_len, &mut rng);
        let mut cpu_col = vec![0.0; col_len];
        CpuBackend.im2col(&g, batch, &images, &mut cpu_col);
        let got = every_launch(&format!("im2col {g:?}"), |launch| {
            let mut col = guarded(&vec![f32::NAN; col_len]);
            let dst = col.as_mut_ptr();
            // SAFETY: buffers sized for the geometry.
            emu.run(launch, col_len, || unsafe {
                call_conv(im2col, &g, batch, images.as_ptr(), dst)
            });
            vec![unguard("im2col", col)]
        });
        let want = reorder_columns(&cpu_col, rows, batch, spatial, true);
        assert_same(&format!("im2col {g:?}"), &got[0], &want);

        let col = random(col_len, &mut rng);
        let mut cpu_images = vec![0.0; image_len];
        CpuBackend.col2im(
            &g,
            batch,
            &reorder_columns(&col, rows, batch, spatial, false),
            &mut cpu_images,
        );
        let got = every_launch(&format!("col2im {g:?}"), |launch| {
            let mut im = guarded(&vec![f32::NAN; image_len]);
            let dst = im.as_mut_ptr();
            // SAFETY: buffers sized for the geometry.
            emu.run(launch, image_len, || unsafe {
                call_conv(col2im, &g, batch, col.as_ptr(), dst)
            });
            vec![unguard("col2im", im)]
        });
        assert_same(&format!("col2im {g:?}"), &got[0], &cpu_images);
    }
}

fn pool_geometry(
    [height, width]: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 2],
) -> PoolGeometry {
    PoolGeometry {
        height,
        width,
        kernel,
        stride,
        pad,
    }
}

/// LeNet's tiling 2×2 (the CPU's fast path), overlapping windows, padding, partial last
/// windows, non-square everything.
fn pool_geometries() -> Vec<PoolGeometry> {
    vec![
        pool_geometry([8, 6], [2, 2], [2, 2], [0, 0]),
        pool_geometry([7, 6], [3, 2], [2, 2], [1, 0]),
        pool_geometry([5, 9], [3, 3], [1, 2], [1, 1]),
        pool_geometry([6, 5], [2, 3], [3, 1], [1, 2]),
        pool_geometry([7, 7], [3, 3], [2, 2], [0, 0]),
    ]
}

/// The geometry arguments of the pooling kernels, from `height` to `pad_w`.
/// Both average-pooling kernels: one input, the pool geometry, one output of `out_len`.
type AvePoolKernel =
    unsafe extern "C" fn(In, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, Out);

/// Runs an average-pooling kernel under every launch shape; the output, sentinels checked.
fn run_ave_pool(
    emu: &Emulator,
    name: &str,
    kernel: AvePoolKernel,
    input: &[f32],
    planes: usize,
    g: &PoolGeometry,
    out_len: usize,
) -> Vec<f32> {
    let a = pool_args(g);
    let mut got = every_launch(&format!("{name} {g:?}"), |launch| {
        let mut out = guarded(&vec![f32::NAN; out_len]);
        let o = out.as_mut_ptr();
        emu.run(launch, out_len, || unsafe {
            kernel(
                input.as_ptr(),
                planes as i32,
                a[0],
                a[1],
                a[2],
                a[3],
                a[4],
                a[5],
                a[6],
                a[7],
                a[8],
                a[9],
                o,
            )
        });
        vec![unguard(name, out)]
    });
    got.swap_remove(0)
}

fn pool_args(g: &PoolGeometry) -> [i32; 10] {
    let [ph, pw] = g.output_size().expect("kernel fits");
    [
        g.height,
        g.width,
        ph,
        pw,
        g.kernel[0],
        g.kernel[1],
        g.stride[0],
        g.stride[1],
        g.pad[0],
        g.pad[1],
    ]
    .map(|v| v as i32)
}

#[test]
fn max_pooling_matches_the_cpu_backend() {
    let Some(emu) = emulator() else { return };
    let forward = kernel!(emu, max_pool_forward: fn(In, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, Out, *mut u32));
    let backward = kernel!(emu, max_pool_backward: fn(In, *const u32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, Out));
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let planes = 5;
    for g in pool_geometries() {
        let a = pool_args(&g);
        let (in_len, out_len) = (planes * g.height * g.width, planes * g.out_spatial());
        // Quarters: ties everywhere, so "the first maximum" is put to the test.
        let input = quantized(in_len, &mut rng);
        let (mut cpu_out, mut cpu_mask) = (vec![0.0; out_len], vec![0u32; out_len]);
        CpuBackend.max_pool_forward(&g, planes, &input, &mut cpu_out, &mut cpu_mask);
        let got = every_launch(&format!("max_pool_forward {g:?}"), |launch| {
            let mut out = guarded(&vec![f32::NAN; out_len]);
            let mut mask = guarded(&vec![f32::NAN; out_len]);
            let (o, m) = (out.as_mut_ptr(), mask.as_mut_ptr() as *mut u32);
            emu.run(launch, out_len, || unsafe {
                forward(
                    input.as_ptr(),
                    planes as i32,
                    a[0],
                    a[1],
                    a[2],
                    a[3],
                    a[4],
                    a[5],
                    a[6],
                    a[7],
                    a[8],
                    a[9],
                    o,
                    m,
                )
            });
            vec![unguard("max pool out", out), unguard("max pool mask", mask)]
        });
        assert_same(&format!("max_pool_forward {g:?}"), &got[0], &cpu_out);
        assert_same(
            &format!("max_pool_forward mask {g:?}"),
            &got[1],
            &as_bits(&cpu_mask),
        );

        let out_diff = random(out_len, &mut rng);
        let mut cpu_in_diff = vec![0.0; in_len];
        CpuBackend.max_pool_backward(&g, planes, &out_diff, &cpu_mask, &mut cpu_in_diff);
        let got = every_launch(&format!("max_pool_backward {g:?}"), |launch| {
            let mut in_diff = guarded(&vec![f32::NAN; in_len]);
            let d = in_diff.as_mut_ptr();
            emu.run(launch, in_len, || unsafe {
                backward(
                    out_diff.as_ptr(),
                    cpu_mask.as_ptr(),
                    planes as i32,
                    a[0],
                    a[1],
                    a[2],
                    a[3],
                    a[4],
                    a[5],
                    a[6],
                    a[7],
                    a[8],
                    a[9],
                    d,
                )
            });
            vec![unguard("max pool in diff", in_diff)]
        });
        assert_same(&format!("max_pool_backward {g:?}"), &got[0], &cpu_in_diff);
    }
}

#[test]
fn average_pooling_matches_the_cpu_backend() {
    let Some(emu) = emulator() else { return };
    let forward = kernel!(emu, ave_pool_forward: fn(In, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, Out));
    let backward = kernel!(emu, ave_pool_backward: fn(In, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, Out));
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let planes = 5;
    for g in pool_geometries() {
        let (in_len, out_len) = (planes * g.height * g.width, planes * g.out_spatial());
        let input = random(in_len, &mut rng);
        let mut cpu_out = vec![0.0; out_len];
        CpuBackend.ave_pool_forward(&g, planes, &input, &mut cpu_out);
        let got = run_ave_pool(
            emu,
            "ave_pool_forward",
            forward,
            &input,
            planes,
            &g,
            out_len,
        );
        assert_same(&format!("ave_pool_forward {g:?}"), &got, &cpu_out);

        let out_diff = random(out_len, &mut rng);
        let mut cpu_in_diff = vec![0.0; in_len];
        CpuBackend.ave_pool_backward(&g, planes, &out_diff, &mut cpu_in_diff);
        let got = run_ave_pool(
            emu,
            "ave_pool_backward",
            backward,
            &out_diff,
            planes,
            &g,
            in_len,
        );
        assert_same(&format!("ave_pool_backward {g:?}"), &got, &cpu_in_diff);
    }
}

#[test]
fn relu_matches_the_cpu_backend() {
    let Some(emu) = emulator() else { return };
    let forward = kernel!(emu, relu_forward: fn(In, Out, i32, f32));
    let backward = kernel!(emu, relu_backward: fn(In, In, Out, i32, f32));
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let n = 1001;
    // Quarters: exact zeros, where forward and backward pick their branch.
    let x = quantized(n, &mut rng);
    let dy = random(n, &mut rng);
    for slope in [0.0, 0.1] {
        let (mut y, mut dx) = (vec![0.0; n], vec![0.0; n]);
        CpuBackend.relu_forward(slope, &x, &mut y);
        CpuBackend.relu_backward(slope, &x, &dy, &mut dx);
        let got = every_launch("relu", |launch| {
            let (mut ky, mut kdx) = (guarded(&vec![f32::NAN; n]), guarded(&vec![f32::NAN; n]));
            let (py, pdx) = (ky.as_mut_ptr(), kdx.as_mut_ptr());
            emu.run(launch, n, || unsafe {
                forward(x.as_ptr(), py, n as i32, slope)
            });
            emu.run(launch, n, || unsafe {
                backward(x.as_ptr(), dy.as_ptr(), pdx, n as i32, slope)
            });
            vec![unguard("relu y", ky), unguard("relu dx", kdx)]
        });
        assert_same(&format!("relu_forward slope {slope}"), &got[0], &y);
        assert_same(&format!("relu_backward slope {slope}"), &got[1], &dx);
    }
}

fn conv_layer() -> Convolution {
    let p = LayerParameter {
        name: Some("conv".into()),
        convolution_param: Some(ConvolutionParameter {
            num_output: Some(4),
            kernel_size: vec![3],
            stride: vec![2],
            pad: vec![1],
            ..Default::default()
        }),
        ..Default::default()
    };
    Convolution::new("conv", &ConvConfig::parse(&p).expect("conv settings")).expect("conv layer")
}

/// A layer run forward then backward on the CPU with random parameters and top diff.
struct LayerRun {
    /// The parameters' diffs before backward (which adds to them).
    initial_diffs: Vec<Vec<f32>>,
    params: Vec<Blob>,
    top: Blob,
}

fn forward_backward(layer: &mut dyn Layer, bottom: &mut [Blob], rng: &mut ChaCha8Rng) -> LayerRun {
    let shapes = layer.setup(bottom, 1).expect("setup");
    let mut params: Vec<Blob> = shapes
        .iter()
        .map(|s| {
            let mut b = Blob::new(s);
            b.data = random(b.count(), rng);
            b.diff = random(b.count(), rng);
            b
        })
        .collect();
    let initial_diffs = params.iter().map(|p| p.diff.clone()).collect();
    let mut top = [Blob::default()];
    layer.reshape(bottom, &mut top).expect("reshape");
    layer
        .forward(&CpuBackend, bottom, &params, &mut top)
        .expect("forward");
    top[0].diff = random(top[0].count(), rng);
    layer.backward(&CpuBackend, &top, &mut params, &[true], bottom);
    let [top] = top;
    LayerRun {
        initial_diffs,
        params,
        top,
    }
}

#[test]
fn bias_and_sums_match_the_layers() {
    let Some(emu) = emulator() else { return };
    let add_bias = kernel!(emu, add_channel_bias: fn(Out, In, i32, i32, i32));
    let sum_inner = kernel!(emu, sum_inner: fn(In, i32, i32, Out));
    let accumulate = kernel!(emu, accumulate_over_batch: fn(In, i32, i32, Out));
    let mut rng = ChaCha8Rng::seed_from_u64(5);

    // add_channel_bias: top[n][c][s] += bias[c], for convolution (spatial 7) and inner
    // product (spatial 1) shapes.
    for (num, channels, spatial) in [(3, 4, 7), (5, 3, 1)] {
        let len = num * channels * spatial;
        let (top, bias) = (random(len, &mut rng), random(channels, &mut rng));
        let want: Vec<f32> = (0..len)
            .map(|i| top[i] + bias[(i / spatial) % channels])
            .collect();
        let got = every_launch("add_channel_bias", |launch| {
            let mut t = guarded(&top);
            let p = t.as_mut_ptr();
            emu.run(launch, len, || unsafe {
                add_bias(
                    p,
                    bias.as_ptr(),
                    num as i32,
                    channels as i32,
                    spatial as i32,
                )
            });
            vec![unguard("add_channel_bias", t)]
        });
        assert_same("add_channel_bias", &got[0], &want);
    }

    // Convolution's bias gradient = sum_inner over each (image, channel) plane, then
    // accumulate_over_batch. The CPU sums in 8 lanes, so this agrees to rounding only.
    let mut bottom = [Blob::from_data(&[3, 2, 6, 5], random(180, &mut rng))];
    let run = forward_backward(&mut conv_layer(), &mut bottom, &mut rng);
    let top = &run.top;
    let (num, channels) = (top.shape[0], top.shape[1]);
    let spatial = top.count() / (num * channels);
    let dy = &top.diff;
    let got = every_launch("conv bias gradient", |launch| {
        let mut partial = guarded(&vec![f32::NAN; num * channels]);
        let mut bias_diff = guarded(&run.initial_diffs[1]);
        let (pp, pb) = (partial.as_mut_ptr(), bias_diff.as_mut_ptr());
        emu.run(launch, num * channels, || unsafe {
            sum_inner(dy.as_ptr(), (num * channels) as i32, spatial as i32, pp)
        });
        emu.run(launch, channels, || unsafe {
            accumulate(pp, num as i32, channels as i32, pb)
        });
        vec![
            unguard("sum_inner", partial),
            unguard("accumulate_over_batch", bias_diff),
        ]
    });
    let partial_want: Vec<f32> = dy
        .chunks(spatial)
        .map(|row| row.iter().fold(0.0, |s, v| s + v))
        .collect();
    assert_same("sum_inner", &got[0], &partial_want);
    // Terms of magnitude < 1: a floor of 1 covers the cancellation between summation orders.
    assert_close("conv bias gradient", &got[1], &run.params[1].diff, 1.0);

    // InnerProduct's bias gradient adds the rows in order: accumulate_over_batch, bit for bit.
    let p = LayerParameter {
        inner_product_param: Some(InnerProductParameter {
            num_output: Some(3),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut layer = InnerProduct::new("ip", &InnerProductConfig::parse(&p).expect("inner product"));
    let mut bottom = [Blob::from_data(&[5, 7], random(35, &mut rng))];
    let run = forward_backward(&mut layer, &mut bottom, &mut rng);
    let got = every_launch("inner product bias gradient", |launch| {
        let mut bias_diff = guarded(&run.initial_diffs[1]);
        let pb = bias_diff.as_mut_ptr();
        emu.run(launch, 3, || unsafe {
            accumulate(run.top.diff.as_ptr(), 5, 3, pb)
        });
        vec![unguard("accumulate_over_batch", bias_diff)]
    });
    assert_same("inner product bias gradient", &got[0], &run.params[1].diff);
}

fn slice_layer(axis: i32, points: &[u32]) -> Slice {
    let p = LayerParameter {
        slice_param: Some(SliceParameter {
            axis: Some(axis),
            slice_point: points.to_vec(),
            ..Default::default()
        }),
        ..Default::default()
    };
    Slice::new("slice", &SliceConfig::parse(&p))
}

#[test]
fn slice_both_ways_matches_the_slice_layer() {
    let Some(emu) = emulator() else { return };
    let copy = kernel!(emu, slice_copy: fn(In, Out, i32, i32, i32, i32, i32, i32));
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    // The siamese pair split (axis 1), uneven pieces, and a cut along axis 0 (outer = 1).
    for (shape, axis, points) in [
        (vec![4, 2, 3, 3], 1usize, vec![1u32]),
        (vec![3, 5, 2, 3], 1, vec![1, 3]),
        (vec![7, 4], 0, vec![2, 3]),
    ] {
        let mut layer = slice_layer(axis as i32, &points);
        let mut bottom = [Blob::from_data(
            &shape,
            random(shape.iter().product(), &mut rng),
        )];
        let tops_n = points.len() + 1;
        let mut tops = vec![Blob::default(); tops_n];
        layer.setup(&bottom, tops_n).expect("setup");
        layer.reshape(&bottom, &mut tops).expect("reshape");
        layer
            .forward(&CpuBackend, &bottom, &[], &mut tops)
            .expect("forward");
        for t in tops.iter_mut() {
            t.diff = random(t.count(), &mut rng);
        }
        layer.backward(&CpuBackend, &tops, &mut [], &[true], &mut bottom);

        let outer: usize = shape[..axis].iter().product();
        let inner: usize = shape[axis + 1..].iter().product();
        let axis_len = shape[axis];
        let what = format!("slice {shape:?} axis {axis} at {points:?}");
        let got = every_launch(&what, |launch| {
            let mut outputs = Vec::new();
            let mut bottom_diff = guarded(&vec![f32::NAN; bottom[0].count()]);
            let pb = bottom_diff.as_mut_ptr();
            let mut offset = 0;
            for t in &tops {
                let size = t.shape[axis];
                let mut data = guarded(&vec![f32::NAN; t.count()]);
                let pd = data.as_mut_ptr();
                let (o, a, s, off) = (outer as i32, axis_len as i32, size as i32, offset as i32);
                let i = inner as i32;
                emu.run(launch, t.count(), || unsafe {
                    copy(bottom[0].data.as_ptr(), pd, o, a, s, off, i, 1)
                });
                emu.run(launch, t.count(), || unsafe {
                    copy(t.diff.as_ptr(), pb, o, s, a, off, i, 0)
                });
                outputs.push(unguard("slice forward", data));
                offset += size;
            }
            outputs.push(unguard("slice backward", bottom_diff));
            outputs
        });
        for (k, t) in tops.iter().enumerate() {
            assert_same(&format!("{what}: top {k}"), &got[k], &t.data);
        }
        assert_same(
            &format!("{what}: bottom diff"),
            &got[tops_n],
            &bottom[0].diff,
        );
    }
}

#[test]
fn split_backward_and_fill_match() {
    let Some(emu) = emulator() else { return };
    let add_into = kernel!(emu, add_into: fn(In, Out, i32));
    let fill = kernel!(emu, fill: fn(Out, i32, f32));
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut layer = Split;
    let n = 77;
    let mut bottom = [Blob::from_data(&[7, 11], random(n, &mut rng))];
    let mut tops = vec![Blob::default(); 3];
    layer.setup(&bottom, 3).expect("setup");
    layer.reshape(&bottom, &mut tops).expect("reshape");
    layer
        .forward(&CpuBackend, &bottom, &[], &mut tops)
        .expect("forward");
    for t in tops.iter_mut() {
        t.diff = random(n, &mut rng);
    }
    layer.backward(&CpuBackend, &tops, &mut [], &[true], &mut bottom);
    // The GPU runtime copies the first top's diff, then adds the others.
    let got = every_launch("split backward", |launch| {
        let mut diff = guarded(&tops[0].diff);
        let p = diff.as_mut_ptr();
        for t in &tops[1..] {
            emu.run(launch, n, || unsafe {
                add_into(t.diff.as_ptr(), p, n as i32)
            });
        }
        let mut filled = guarded(&vec![f32::NAN; n]);
        let pf = filled.as_mut_ptr();
        emu.run(launch, n, || unsafe { fill(pf, n as i32, -2.5) });
        vec![unguard("add_into", diff), unguard("fill", filled)]
    });
    assert_same("split backward (add_into)", &got[0], &bottom[0].diff);
    assert_same("fill", &got[1], &[-2.5; 77]);
}

#[test]
fn contrastive_loss_matches_the_layer_in_both_modes() {
    let Some(emu) = emulator() else { return };
    let forward = kernel!(emu, contrastive_forward: fn(In, In, In, i32, i32, f32, i32, Out, Out));
    let sum_scaled = kernel!(emu, sum_scaled: fn(In, i32, f32, Out));
    let backward =
        kernel!(emu, contrastive_backward: fn(In, In, In, In, i32, i32, f32, i32, In, f32, Out));
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let (num, dim) = (37, 3);
    for (legacy, margin) in [(false, 1.0f32), (true, 1.0), (false, 2.0), (true, 2.5)] {
        let p = LayerParameter {
            contrastive_loss_param: Some(ContrastiveLossParameter {
                margin: Some(margin),
                legacy_version: Some(legacy),
            }),
            ..Default::default()
        };
        let mut layer = ContrastiveLoss::new("loss", &ContrastiveLossConfig::parse(&p).unwrap());
        let sim: Vec<f32> = (0..num).map(|_| rng.random_range(0..2) as f32).collect();
        let mut bottom = [
            Blob::from_data(&[num, dim], random(num * dim, &mut rng)),
            Blob::from_data(&[num, dim], random(num * dim, &mut rng)),
            Blob::from_data(&[num], sim.clone()),
        ];
        let mut top = [Blob::default()];
        layer.setup(&bottom, 1).expect("setup");
        layer.reshape(&bottom, &mut top).expect("reshape");
        layer
            .forward(&CpuBackend, &bottom, &[], &mut top)
            .expect("forward");
        // The loss weight scales the gradient.
        top[0].diff[0] = 0.7;
        layer.backward(
            &CpuBackend,
            &top,
            &mut [],
            &[true, true, false],
            &mut bottom,
        );

        let what = format!("contrastive legacy {legacy} margin {margin}");
        let (a, b) = (bottom[0].data.as_ptr(), bottom[1].data.as_ptr());
        let top_diff = top[0].diff.as_ptr();
        let got = every_launch(&what, |launch| {
            let mut dist_sq = guarded(&vec![f32::NAN; num]);
            let mut terms = guarded(&vec![f32::NAN; num]);
            let mut loss = guarded(&[f32::NAN]);
            let (pd, pt, pl) = (dist_sq.as_mut_ptr(), terms.as_mut_ptr(), loss.as_mut_ptr());
            let (n, d) = (num as i32, dim as i32);
            emu.run(launch, num, || unsafe {
                forward(a, b, sim.as_ptr(), n, d, margin, legacy.into(), pd, pt)
            });
            emu.run(launch, 1, || unsafe {
                sum_scaled(pt, n, 0.5 / num as f32, pl)
            });
            let mut outputs = vec![unguard("contrastive loss", loss)];
            for sign in [1.0f32, -1.0] {
                let mut diff = guarded(&vec![f32::NAN; num * dim]);
                let pdiff = diff.as_mut_ptr();
                emu.run(launch, num * dim, || unsafe {
                    backward(
                        a,
                        b,
                        sim.as_ptr(),
                        pd,
                        n,
                        d,
                        margin,
                        legacy.into(),
                        top_diff,
                        sign,
                        pdiff,
                    )
                });
                outputs.push(unguard("contrastive diff", diff));
            }
            outputs.push(unguard("dist_sq", dist_sq));
            outputs.push(unguard("loss terms", terms));
            outputs
        });
        // Both branches of the hinge were taken.
        let dissimilar_inside = (0..num)
            .filter(|&p| sim[p] == 0.0 && got[4][p] > 0.0)
            .count();
        let dissimilar_outside = (0..num)
            .filter(|&p| sim[p] == 0.0 && got[4][p] == 0.0)
            .count();
        assert!(
            dissimilar_inside > 0 && dissimilar_outside > 0,
            "{what}: {dissimilar_inside} inside, {dissimilar_outside} outside"
        );
        // scale·sum against the CPU's sum/num/2: equal to rounding.
        assert_close(&format!("{what}: loss"), &got[0], &top[0].data, 0.0);
        assert_same(&format!("{what}: diff a"), &got[1], &bottom[0].diff);
        assert_same(&format!("{what}: diff b"), &got[2], &bottom[1].diff);
    }
}

fn softmax_dims(shape: &[usize]) -> (usize, usize, usize) {
    (shape[0], shape[1], shape[2..].iter().product())
}

#[test]
fn softmax_matches_the_layer() {
    let Some(emu) = emulator() else { return };
    let forward = kernel!(emu, softmax_forward: fn(In, i32, i32, i32, Out));
    let backward = kernel!(emu, softmax_backward: fn(In, In, i32, i32, i32, Out));
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for shape in [vec![4, 5, 3], vec![7, 10], vec![2, 3, 2, 2]] {
        let count = shape.iter().product();
        let mut layer = Softmax::new("prob", &SoftmaxConfig { axis: 1 });
        // Scores up to ±8: the max subtraction matters.
        let scores: Vec<f32> = random(count, &mut rng).iter().map(|v| v * 8.0).collect();
        let mut bottom = [Blob::from_data(&shape, scores)];
        let mut top = [Blob::default()];
        layer.setup(&bottom, 1).expect("setup");
        layer.reshape(&bottom, &mut top).expect("reshape");
        layer
            .forward(&CpuBackend, &bottom, &[], &mut top)
            .expect("forward");
        top[0].diff = random(count, &mut rng);
        layer.backward(&CpuBackend, &top, &mut [], &[true], &mut bottom);

        let (outer, channels, inner) = softmax_dims(&shape);
        let (o, c, i) = (outer as i32, channels as i32, inner as i32);
        let what = format!("softmax {shape:?}");
        let got = every_launch(&what, |launch| {
            let (mut prob, mut dx) = (
                guarded(&vec![f32::NAN; count]),
                guarded(&vec![f32::NAN; count]),
            );
            let (pp, pdx) = (prob.as_mut_ptr(), dx.as_mut_ptr());
            emu.run(launch, outer * inner, || unsafe {
                forward(bottom[0].data.as_ptr(), o, c, i, pp)
            });
            // Backward from the CPU's probabilities: the same inputs as the layer's.
            emu.run(launch, outer * inner, || unsafe {
                backward(top[0].data.as_ptr(), top[0].diff.as_ptr(), o, c, i, pdx)
            });
            vec![unguard("softmax prob", prob), unguard("softmax dx", dx)]
        });
        // expf against Rust's exp: to rounding.
        assert_close(&format!("{what}: prob"), &got[0], &top[0].data, 0.0);
        assert_same(&format!("{what}: dx"), &got[1], &bottom[0].diff);
    }
}

#[test]
fn softmax_loss_matches_the_layer_for_every_normalization() {
    let Some(emu) = emulator() else { return };
    let softmax = kernel!(emu, softmax_forward: fn(In, i32, i32, i32, Out));
    let forward = kernel!(emu, softmax_loss_forward: fn(In, In, i32, i32, i32, i32, i32, Out, Out));
    let normalizer = kernel!(emu, loss_normalizer: fn(In, i32, i32, f32, f32, Out));
    let divide_sum = kernel!(emu, divide_sum: fn(In, i32, In, Out));
    let backward =
        kernel!(emu, softmax_loss_backward: fn(In, In, i32, i32, i32, i32, i32, In, In, Out));
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let modes = [
        NormalizationMode::Full,
        NormalizationMode::Valid,
        NormalizationMode::BatchSize,
        NormalizationMode::None,
    ];
    for (shape, ignore) in [
        (vec![6, 4, 2], Some(2)),
        (vec![9, 5], None),
        (vec![3, 4, 3], Some(0)),
    ] {
        let (outer, channels, inner) = softmax_dims(&shape);
        let count = outer * channels * inner;
        let scores = random(count, &mut rng);
        let labels: Vec<f32> = (0..outer * inner)
            .map(|_| rng.random_range(0..channels) as f32)
            .collect();
        for mode in modes {
            let p = LayerParameter {
                loss_param: Some(LossParameter {
                    normalization: Some(mode as i32),
                    ignore_label: ignore,
                    ..Default::default()
                }),
                ..Default::default()
            };
            let mut layer = SoftmaxWithLoss::new("loss", &SoftmaxLossConfig::parse(&p));
            let mut bottom = [
                Blob::from_data(&shape, scores.clone()),
                Blob::from_data(&[outer, inner], labels.clone()),
            ];
            let mut top = [Blob::default()];
            layer.setup(&bottom, 1).expect("setup");
            layer.reshape(&bottom, &mut top).expect("reshape");
            layer
                .forward(&CpuBackend, &bottom, &[], &mut top)
                .expect("forward");
            top[0].diff[0] = 1.3;
            layer.backward(&CpuBackend, &top, &mut [], &[true, false], &mut bottom);

            let what = format!("softmax loss {shape:?} ignore {ignore:?} {mode:?}");
            let (o, c, i) = (outer as i32, channels as i32, inner as i32);
            let (has_ignore, ignore_label) = (i32::from(ignore.is_some()), ignore.unwrap_or(-1));
            let positions = outer * inner;
            let got = every_launch(&what, |launch| {
                let mut prob = guarded(&vec![f32::NAN; count]);
                let mut losses = guarded(&vec![f32::NAN; positions]);
                let mut valid = guarded(&vec![f32::NAN; positions]);
                let mut norm = guarded(&[f32::NAN]);
                let mut loss = guarded(&[f32::NAN]);
                let mut dx = guarded(&vec![f32::NAN; count]);
                let (pp, pl, pv, pn, ploss, pdx) = (
                    prob.as_mut_ptr(),
                    losses.as_mut_ptr(),
                    valid.as_mut_ptr(),
                    norm.as_mut_ptr(),
                    loss.as_mut_ptr(),
                    dx.as_mut_ptr(),
                );
                let label = labels.as_ptr();
                emu.run(launch, positions, || unsafe {
                    softmax(scores.as_ptr(), o, c, i, pp)
                });
                emu.run(launch, positions, || unsafe {
                    forward(pp, label, o, c, i, has_ignore, ignore_label, pl, pv)
                });
                emu.run(launch, 1, || unsafe {
                    normalizer(
                        pv,
                        positions as i32,
                        mode as i32,
                        positions as f32,
                        outer as f32,
                        pn,
                    )
                });
                emu.run(launch, 1, || unsafe {
                    divide_sum(pl, positions as i32, pn, ploss)
                });
                emu.run(launch, count, || unsafe {
                    backward(
                        pp,
                        label,
                        o,
                        c,
                        i,
                        has_ignore,
                        ignore_label,
                        top[0].diff.as_ptr(),
                        pn,
                        pdx,
                    )
                });
                vec![
                    unguard("loss", loss),
                    unguard("dx", dx),
                    unguard("valid", valid),
                ]
            });
            if ignore.is_some() {
                let ignored = got[2].iter().filter(|&&v| v == 0.0).count();
                assert!(
                    ignored > 0 && ignored < positions,
                    "{what}: {ignored} ignored"
                );
            }
            assert_close(&format!("{what}: loss"), &got[0], &top[0].data, 0.0);
            assert_close(&format!("{what}: dx"), &got[1], &bottom[0].diff, 0.0);
        }
    }
}

#[test]
fn accuracy_matches_the_layer() {
    let Some(emu) = emulator() else { return };
    let forward =
        kernel!(emu, accuracy_forward: fn(In, In, i32, i32, i32, i32, i32, i32, Out, Out));
    let normalizer = kernel!(emu, loss_normalizer: fn(In, i32, i32, f32, f32, Out));
    let divide_sum = kernel!(emu, divide_sum: fn(In, i32, In, Out));
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for (shape, top_k, ignore, all_ignored) in [
        (vec![9, 6], 1, None, false),
        (vec![9, 6], 3, Some(4), false),
        (vec![4, 5, 3], 2, Some(1), false),
        (vec![5, 4], 1, Some(3), true),
    ] {
        let (outer, channels, inner) = softmax_dims(&shape);
        let positions = outer * inner;
        // Quarters: tied scores, where "strictly greater" decides.
        let scores = quantized(outer * channels * inner, &mut rng);
        let labels: Vec<f32> = (0..positions)
            .map(|_| match (all_ignored, ignore) {
                (true, Some(l)) => l as f32,
                _ => rng.random_range(0..channels) as f32,
            })
            .collect();
        let p = LayerParameter {
            accuracy_param: Some(AccuracyParameter {
                top_k: Some(top_k),
                ignore_label: ignore,
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut layer = Accuracy::new("accuracy", &AccuracyConfig::parse(&p));
        let bottom = [
            Blob::from_data(&shape, scores.clone()),
            Blob::from_data(&[positions], labels.clone()),
        ];
        let mut top = [Blob::default()];
        layer.setup(&bottom, 1).expect("setup");
        layer.reshape(&bottom, &mut top).expect("reshape");
        layer
            .forward(&CpuBackend, &bottom, &[], &mut top)
            .expect("forward");

        let what = format!("accuracy {shape:?} top_k {top_k} ignore {ignore:?}");
        let (o, c, i) = (outer as i32, channels as i32, inner as i32);
        let (has_ignore, ignore_label) = (i32::from(ignore.is_some()), ignore.unwrap_or(-1));
        let got = every_launch(&what, |launch| {
            let mut correct = guarded(&vec![f32::NAN; positions]);
            let mut valid = guarded(&vec![f32::NAN; positions]);
            let mut count = guarded(&[f32::NAN]);
            let mut accuracy = guarded(&[f32::NAN]);
            let (pc, pv, pn, pa) = (
                correct.as_mut_ptr(),
                valid.as_mut_ptr(),
                count.as_mut_ptr(),
                accuracy.as_mut_ptr(),
            );
            emu.run(launch, positions, || unsafe {
                forward(
                    scores.as_ptr(),
                    labels.as_ptr(),
                    o,
                    c,
                    i,
                    top_k as i32,
                    has_ignore,
                    ignore_label,
                    pc,
                    pv,
                )
            });
            // The count of valid positions (at least 1): loss_normalizer's VALID mode.
            emu.run(launch, 1, || unsafe {
                normalizer(pv, positions as i32, 1, positions as f32, outer as f32, pn)
            });
            emu.run(launch, 1, || unsafe {
                divide_sum(pc, positions as i32, pn, pa)
            });
            vec![unguard("accuracy", accuracy)]
        });
        assert_same(&what, &got[0], &top[0].data);
        if all_ignored {
            assert_eq!(got[0], [0.0], "{what}");
        }
    }
}

/// SGD as crates/solver/src/update.rs does it (regularize, then the momentum step, then
/// `data -= diff`), for one parameter.
fn sgd_reference(
    data: &mut [f32],
    diff: &mut [f32],
    history: &mut [f32],
    local_rate: f32,
    momentum: f32,
    local_decay: f32,
    l1: bool,
) {
    if local_decay != 0.0 {
        for (g, &w) in diff.iter_mut().zip(data.iter()) {
            let sign = if w > 0.0 {
                1.0
            } else if w < 0.0 {
                -1.0
            } else {
                0.0
            };
            *g += if l1 {
                local_decay * sign
            } else {
                local_decay * w
            };
        }
    }
    for (g, v) in diff.iter_mut().zip(history.iter_mut()) {
        *v = local_rate * *g + momentum * *v;
        *g = *v;
    }
    for (w, d) in data.iter_mut().zip(diff.iter()) {
        *w -= d;
    }
}

#[test]
fn sgd_update_matches_the_solver_order() {
    let Some(emu) = emulator() else { return };
    let sgd = kernel!(emu, sgd_update: fn(Out, Out, Out, i32, f32, f32, f32, i32));
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let n = 1001;
    // Weights on quarters: exact zeros for L1's sign(0) = 0.
    let data = quantized(n, &mut rng);
    let grads = [random(n, &mut rng), random(n, &mut rng)];
    for (local_rate, momentum, local_decay, l1) in [
        (0.02f32, 0.9f32, 0.0005f32, false),
        (0.01, 0.9, 0.01, true),
        (0.01, 0.0, 0.0, false),
    ] {
        // Two steps, so the second starts from a non-zero history.
        let (mut w, mut h) = (data.clone(), vec![0.0; n]);
        let mut diffs = Vec::new();
        for g in &grads {
            let mut d = g.clone();
            sgd_reference(
                &mut w,
                &mut d,
                &mut h,
                local_rate,
                momentum,
                local_decay,
                l1,
            );
            diffs.push(d);
        }
        let what = format!("sgd rate {local_rate} momentum {momentum} decay {local_decay} l1 {l1}");
        let got = every_launch(&what, |launch| {
            let (mut kw, mut kh) = (guarded(&data), guarded(&vec![0.0; n]));
            let (pw, ph) = (kw.as_mut_ptr(), kh.as_mut_ptr());
            let mut outputs = Vec::new();
            for g in &grads {
                let mut kd = guarded(g);
                let pd = kd.as_mut_ptr();
                emu.run(launch, n, || unsafe {
                    sgd(
                        pw,
                        pd,
                        ph,
                        n as i32,
                        local_rate,
                        momentum,
                        local_decay,
                        l1.into(),
                    )
                });
                outputs.push(unguard("sgd diff", kd));
            }
            outputs.push(unguard("sgd data", kw));
            outputs.push(unguard("sgd history", kh));
            outputs
        });
        assert_same(&format!("{what}: diff 1"), &got[0], &diffs[0]);
        assert_same(&format!("{what}: diff 2"), &got[1], &diffs[1]);
        assert_same(&format!("{what}: data"), &got[2], &w);
        assert_same(&format!("{what}: history"), &got[3], &h);
    }
}

/// The kernels' names, as kernels.cu declares them.
fn kernel_names(source: &str) -> Vec<&str> {
    source
        .split("extern \"C\" __global__ void ")
        .skip(1)
        .filter_map(|rest| rest.split('(').next())
        .collect()
}

/// NVRTC (CUDA 13, the version the GPU runtime loads) compiles kernels.cu for sm_90 without a
/// warning and exports every kernel under its plain name. Needs libnvrtc.so.13 (plus its
/// builtins library) on the library path, not a GPU; skipped with a printed reason otherwise.
#[test]
fn nvrtc_compiles_every_kernel() {
    type Status = i32;
    type Program = *mut std::ffi::c_void;
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source =
        std::fs::read_to_string(crate_dir.join("src/cuda/kernels.cu")).expect("kernels.cu");
    // SAFETY: loading NVRTC runs no code of ours; the symbols below are NVRTC's C API.
    let Some(nvrtc) = ["libnvrtc.so.13", "/usr/local/cuda/lib64/libnvrtc.so.13"]
        .iter()
        .find_map(|name| unsafe { Library::new(*name) }.ok())
    else {
        eprintln!("skipped: libnvrtc.so.13 not found (set LD_LIBRARY_PATH to CUDA 13's lib64)");
        return;
    };
    macro_rules! api {
        ($name:ident: fn($($arg:ty),*)) => {{
            // SAFETY: the signature is NVRTC's.
            let f: libloading::Symbol<'_, unsafe extern "C" fn($($arg),*) -> Status> =
                unsafe { nvrtc.get(concat!(stringify!($name), "\0").as_bytes()) }
                    .expect(stringify!($name));
            *f
        }};
    }
    let create = api!(nvrtcCreateProgram: fn(*mut Program, *const i8, *const i8, i32, *const *const i8, *const *const i8));
    let compile = api!(nvrtcCompileProgram: fn(Program, i32, *const *const i8));
    let log_size = api!(nvrtcGetProgramLogSize: fn(Program, *mut usize));
    let get_log = api!(nvrtcGetProgramLog: fn(Program, *mut i8));
    let ptx_size = api!(nvrtcGetPTXSize: fn(Program, *mut usize));
    let get_ptx = api!(nvrtcGetPTX: fn(Program, *mut i8));
    let destroy = api!(nvrtcDestroyProgram: fn(*mut Program));

    let text = std::ffi::CString::new(source.as_str()).expect("no NUL in kernels.cu");
    let options = [c"--gpu-architecture=compute_90", c"--fmad=false"].map(|o| o.as_ptr());
    let mut program: Program = std::ptr::null_mut();
    let read = |size: usize, get: &dyn Fn(*mut i8) -> Status| {
        let mut buffer = vec![0u8; size.max(1)];
        assert_eq!(get(buffer.as_mut_ptr().cast()), 0);
        String::from_utf8_lossy(&buffer[..size.saturating_sub(1)]).into_owned()
    };
    // SAFETY: NVRTC's documented calling sequence; buffers sized by its own size queries.
    let (status, log, ptx) = unsafe {
        let name = c"kernels.cu";
        assert_eq!(
            create(
                &mut program,
                text.as_ptr(),
                name.as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null()
            ),
            0
        );
        let status = compile(program, options.len() as i32, options.as_ptr());
        let mut size = 0;
        assert_eq!(log_size(program, &mut size), 0);
        let log = read(size, &|p| get_log(program, p));
        let ptx = if status == 0 {
            assert_eq!(ptx_size(program, &mut size), 0);
            read(size, &|p| get_ptx(program, p))
        } else {
            String::new()
        };
        destroy(&mut program);
        (status, log, ptx)
    };
    assert!(
        status == 0 && log.trim().is_empty(),
        "NVRTC status {status}:\n{log}"
    );
    let names = kernel_names(&source);
    assert_eq!(names.len(), 25, "kernels in kernels.cu: {names:?}");
    for name in names {
        assert!(
            ptx.contains(&format!(".entry {name}(")),
            "{name} missing from the PTX"
        );
    }
}
