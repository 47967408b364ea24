use siamese_layers::backend::Gemm;
use siamese_layers::{Backend, CpuBackend};
use std::time::Instant;
fn v(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}
fn time(label: &str, reps: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64() * 1e6);
    }
    println!("{label:<40} {best:>9.1} us");
    best
}
fn main() {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(inner)
}
fn inner() {
    if let Ok(v) = std::env::var("LHS_T") {
        gemm::set_lhs_packing_threshold_single_thread(v.parse().unwrap());
    }
    let b = CpuBackend;
    let r = 300;
    // (name, ta, tb, m, n, k, times)
    let cases: &[(&str, bool, bool, usize, usize, usize, usize)] = &[
        ("conv2 fwd per img x8", false, false, 50, 64, 500, 8),
        ("conv2 fwd batched8", false, false, 50, 512, 500, 1),
        ("conv2 dW per img x8 (K=64)", false, true, 50, 500, 64, 8),
        ("conv2 dW batched8 (K=512)", false, true, 50, 500, 512, 1),
        ("conv2 dW^T per img x8 (K=64)", false, true, 500, 50, 64, 8),
        (
            "conv2 dW^T per img x8 (K=64) again",
            false,
            true,
            500,
            50,
            64,
            8,
        ),
        ("conv2 dcol per img x8", true, false, 500, 64, 50, 8),
        ("conv2 dcol batched8", true, false, 500, 512, 50, 1),
        ("conv1 fwd per img x8", false, false, 20, 576, 25, 8),
        ("ip1 fwd block", false, true, 64, 128, 800, 4),
        ("ip1 dW block", true, false, 500, 128, 64, 7),
        ("ip1 dx block", false, false, 64, 128, 500, 7),
        ("conv1 fwd batched8", false, false, 20, 4608, 25, 1),
        ("conv1 dW per img x8", false, true, 20, 25, 576, 8),
        ("conv1 dW^T per img x8", false, true, 25, 20, 576, 8),
        ("conv1 dW batched8", false, true, 20, 25, 4608, 1),
        ("conv1 dW^T batched8", false, true, 25, 20, 4608, 1),
    ];
    use siamese_layers::backend::{ConvGeometry, PoolGeometry};
    for (ch, hw) in [(20usize * 64, 24usize), (50 * 64, 8)] {
        let g = PoolGeometry {
            height: hw,
            width: hw,
            kernel: [2, 2],
            stride: [2, 2],
            pad: [0, 0],
        };
        let x = v(ch * hw * hw);
        let mut out = v(ch * hw * hw / 4);
        let mut mask = vec![0u32; ch * hw * hw / 4];
        let mut back = x.clone();
        time(&format!("maxpool fwd planes {ch} hw {hw}"), 50, || {
            b.max_pool_forward(&g, ch, &x, &mut out, &mut mask)
        });
        time(&format!("maxpool bwd planes {ch} hw {hw}"), 50, || {
            b.max_pool_backward(&g, ch, &out, &mask, &mut back)
        });
    }
    for (ch, hw) in [(20usize, 12usize), (1, 28)] {
        let g = ConvGeometry {
            channels: ch,
            height: hw,
            width: hw,
            kernel: [5, 5],
            stride: [1, 1],
            pad: [0, 0],
            dilation: [1, 1],
        };
        let x = v(ch * hw * hw);
        let mut col = v(g.col_rows() * g.out_spatial());
        let mut back = x.clone();
        time(&format!("im2col x8 c{ch}"), r, || {
            for _ in 0..8 {
                b.im2col(&g, 1, &x, &mut col)
            }
        });
        time(&format!("col2im x8 c{ch}"), r, || {
            for _ in 0..8 {
                b.col2im(&g, 1, &col, &mut back)
            }
        });
    }
    for &(name, ta, tb, m, n, k, times) in cases {
        let g = Gemm::new(ta, tb, m, n, k).accumulate();
        let (a, bb) = (v(m * k), v(k * n));
        let mut c = v(m * n);
        let us = time(name, r, || {
            for _ in 0..times {
                b.gemm(g, &a, &bb, &mut c)
            }
        });
        println!(
            "{:>50.1} GFLOP/s",
            2.0 * (m * n * k * times) as f64 / us / 1e3
        );
    }
}
#[allow(dead_code)]
fn pools() {}
