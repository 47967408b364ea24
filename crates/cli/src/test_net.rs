//! `siamese test`: the mean of each net output over N test batches, like `caffe test`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use siamese_layers::{Device, Net};
use siamese_net::NetSpec;
use siamese_proto::Phase;
use siamese_report::log_lines::{caffe_float, score_line};

/// Arguments of `siamese test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Net definition (its TEST phase is used).
    #[arg(long)]
    pub model: PathBuf,
    /// Trained weights (.caffemodel).
    #[arg(long)]
    pub weights: PathBuf,
    /// Number of batches to average over.
    #[arg(long, default_value_t = 50)]
    pub iterations: usize,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long, value_parser = crate::device::parse, default_value = "cpu", value_name = "DEVICE", help = crate::device::HELP)]
    pub device: Device,
}

pub fn run(args: &TestArgs) -> Result<()> {
    crate::threads::configure(args.threads)?;
    crate::threads::on_pool(|| test_net(args))
}

fn test_net(args: &TestArgs) -> Result<()> {
    let device = crate::device::check(args.device)?;
    if args.iterations == 0 {
        bail!("--iterations 0: expected at least 1 batch");
    }
    let param = siamese_net::load_net(&args.model)?;
    let spec = NetSpec::build(&param, Phase::Test, args.model.parent())
        .map_err(|e| e.in_file(&args.model))?;
    let mut net = Net::on_device(&spec, 0, device)?;
    net.load_caffemodel(&args.weights)
        .with_context(|| format!("{}: cannot load weights", args.weights.display()))?;
    let means = mean_outputs(&mut net, args.iterations, |batch, name, value| {
        println!("Batch {batch}, {name} = {}", caffe_float(value));
    })?;
    for (name, value, weight) in &means {
        println!("{}", score_line(name, *value, *weight));
    }
    Ok(())
}

/// Runs `iterations` forward passes and returns every output value's mean with its loss
/// weight, calling `each(batch, name, value)` per batch.
pub fn mean_outputs(
    net: &mut Net,
    iterations: usize,
    mut each: impl FnMut(usize, &str, f32),
) -> Result<Vec<(String, f32, f32)>> {
    let mut sums: Vec<(String, f32, f32)> = Vec::new();
    for batch in 0..iterations {
        net.forward()?;
        let values: Vec<(String, f32)> = net
            .outputs()
            .into_iter()
            .flat_map(|(name, blob)| blob.data.iter().map(move |&v| (name.to_string(), v)))
            .collect();
        if batch == 0 {
            let weights = net.output_loss_weights();
            let mut per_value = Vec::new();
            for ((name, blob), w) in net.outputs().into_iter().zip(weights) {
                per_value.extend(blob.data.iter().map(|_| (name.to_string(), 0.0, w)));
            }
            sums = per_value;
        }
        for ((name, value), sum) in values.iter().zip(sums.iter_mut()) {
            each(batch, name, *value);
            sum.1 += value;
        }
    }
    for s in &mut sums {
        s.1 /= iterations as f32;
    }
    Ok(sums)
}
