//! `siamese time`: average forward, backward and forward-backward time per iteration and a
//! per-layer table with GFLOP/s, like `caffe time`; on a GPU each layer is waited for.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use siamese_layers::{Device, Net};
use siamese_net::NetSpec;
use siamese_proto::Phase;
use siamese_report::log_lines::caffe_float;

/// Arguments of `siamese time`.
#[derive(Debug, clap::Args)]
pub struct TimeArgs {
    /// Net definition (its TRAIN phase is timed, as `caffe time` does).
    #[arg(long)]
    pub model: PathBuf,
    /// Timed iterations (after one untimed warm-up pass).
    #[arg(long, default_value_t = 50)]
    pub iterations: usize,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long, value_parser = crate::device::parse, default_value = "cpu", value_name = "DEVICE", help = crate::device::HELP)]
    pub device: Device,
}

/// Seconds spent over all timed iterations: per layer, and per pass.
struct Timings {
    forward: Vec<f64>,
    backward: Vec<f64>,
    forward_total: f64,
    backward_total: f64,
    total: f64,
}

pub fn run(args: &TimeArgs) -> Result<()> {
    let threads = crate::threads::configure(args.threads)?;
    // On a pool thread, as `siamese train` runs, so the times are the training's.
    crate::threads::on_pool(|| time_net(args, threads))
}

fn time_net(args: &TimeArgs, threads: usize) -> Result<()> {
    if args.iterations == 0 {
        bail!("--iterations 0: expected at least 1");
    }
    let about = crate::device::describe(args.device)?;
    let param = siamese_net::load_net(&args.model)?;
    let spec = NetSpec::build(&param, Phase::Train, args.model.parent())
        .map_err(|e| e.in_file(&args.model))?;
    let mut net = Net::on_device(&spec, 0, args.device)?;
    match args.device {
        Device::Cpu => println!(
            "Testing for {} iterations on {threads} thread(s).",
            args.iterations
        ),
        Device::Gpu(_) => println!(
            "Testing for {} iterations on {about} (each layer waited for).",
            args.iterations
        ),
    }
    let initial = net.forward()?;
    net.backward();
    net.synchronize()?;
    println!("Initial loss: {}", caffe_float(initial));
    let timings = time_layers(&mut net, args.iterations)?;
    print_layer_table(&net, &timings, args.iterations);
    print_totals(&net, &timings, args.iterations);
    Ok(())
}

/// Times `iterations` forward and backward passes, layer by layer (each waited for).
fn time_layers(net: &mut Net, iterations: usize) -> Result<Timings> {
    let n = net.layer_names().len();
    let mut t = Timings {
        forward: vec![0.0; n],
        backward: vec![0.0; n],
        forward_total: 0.0,
        backward_total: 0.0,
        total: 0.0,
    };
    let total = Instant::now();
    for _ in 0..iterations {
        let fwd = Instant::now();
        for (i, slot) in t.forward.iter_mut().enumerate() {
            let s = Instant::now();
            net.forward_layer(i)?;
            net.synchronize()?;
            *slot += s.elapsed().as_secs_f64();
        }
        t.forward_total += fwd.elapsed().as_secs_f64();
        let bwd = Instant::now();
        for i in (0..n).rev() {
            let s = Instant::now();
            net.backward_layer(i);
            net.synchronize()?;
            t.backward[i] += s.elapsed().as_secs_f64();
        }
        t.backward_total += bwd.elapsed().as_secs_f64();
    }
    t.total = total.elapsed().as_secs_f64();
    Ok(t)
}

/// Milliseconds per iteration of `seconds` spent over `iterations`.
fn ms_per_iter(seconds: f64, iterations: usize) -> f64 {
    seconds / iterations as f64 * 1e3
}

/// `Average time per layer:` and one row per layer: forward and backward ms, forward GFLOP/s.
fn print_layer_table(net: &Net, t: &Timings, iterations: usize) {
    let names = net.layer_names();
    let iters = iterations as f64;
    let ms = |s: f64| ms_per_iter(s, iterations);
    let width = names.iter().map(|n| n.len()).max().unwrap_or(5).max(5);
    println!("Average time per layer:");
    println!(
        "{:<width$}  {:>12}  {:>12}  {:>12}",
        "layer", "forward ms", "backward ms", "fwd GFLOP/s"
    );
    for (i, name) in names.iter().enumerate() {
        let flops = net.layer_flops(i) as f64;
        let gflops = if t.forward[i] > 0.0 {
            flops * iters / t.forward[i] / 1e9
        } else {
            0.0
        };
        println!(
            "{name:<width$}  {:>12.4}  {:>12.4}  {:>12.2}",
            ms(t.forward[i]),
            ms(t.backward[i]),
            gflops
        );
    }
}

/// Caffe's closing lines (average passes, total time) and the net's GFLOP/s.
fn print_totals(net: &Net, t: &Timings, iterations: usize) {
    let iters = iterations as f64;
    let ms = |s: f64| ms_per_iter(s, iterations);
    let (fwd, bwd) = (t.forward_total, t.backward_total);
    let flops = crate::net_stats::forward_flops(net);
    println!("Average Forward pass: {:.4} ms.", ms(fwd));
    println!("Average Backward pass: {:.4} ms.", ms(bwd));
    println!("Average Forward-Backward: {:.4} ms.", ms(fwd + bwd));
    println!("Total Time: {:.2} ms.", t.total * 1e3);
    println!(
        "Forward {:.2} GFLOP/s, forward-backward {:.2} GFLOP/s (backward counted as 2x forward FLOPs).",
        flops * iters / fwd.max(1e-12) / 1e9,
        3.0 * flops * iters / (fwd + bwd).max(1e-12) / 1e9
    );
}
