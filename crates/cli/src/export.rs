//! `siamese export`: a deploy net and its trained weights as a standard ONNX model (opset 13,
//! input `data` `[N, C, H, W]` with a dynamic N, outputs named after the net's output blobs).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use siamese_layers::Net;
use siamese_layers::embed::cap_input_batch;
use siamese_net::shape::fmt_shape;
use siamese_net::{NetSpec, load_net};
use siamese_proto::Phase;

#[derive(Args)]
pub struct ExportArgs {
    /// Deploy net definition with an Input layer (e.g. mnist_siamese.prototxt, lenet.prototxt).
    #[arg(long, value_name = "DEPLOY.prototxt")]
    model: PathBuf,
    /// Trained weights (.caffemodel, from Caffe or siamese).
    #[arg(long, value_name = "W.caffemodel")]
    weights: PathBuf,
    /// The ONNX model to write (whole or not at all).
    #[arg(long, value_name = "model.onnx")]
    out: PathBuf,
}

pub fn run(args: &ExportArgs) -> Result<()> {
    let start = Instant::now();
    let mut param = load_net(&args.model)?;
    // The batch is dynamic in the model; the net is built for one image to check shapes.
    cap_input_batch(&mut param, 1);
    let spec = NetSpec::build(&param, Phase::Test, args.model.parent())
        .map_err(|e| e.in_file(&args.model))?;
    siamese_onnx::check_supported(&spec).with_context(|| format!("{}", args.model.display()))?;
    let mut net = Net::new(&spec, 0).with_context(|| format!("{}", args.model.display()))?;
    net.load_caffemodel(&args.weights)?;
    let params: Vec<&[f32]> = net
        .learnable_params()
        .iter()
        .map(|p| p.blob.data.as_slice())
        .collect();
    let bytes = siamese_onnx::export_bytes(&spec, &params)
        .with_context(|| format!("{}", args.model.display()))?;
    siamese_files::write_atomic(&args.out, &bytes)?;
    let describe = |ids: &[usize]| -> Vec<String> {
        ids.iter()
            .map(|&b| {
                let blob = &spec.blobs[b];
                let mut shape = fmt_shape(blob.shape.as_deref().unwrap_or_default());
                shape.replace_range(1..shape.find(',').unwrap_or(shape.len() - 1), "N");
                format!("\"{}\" {shape}", blob.name)
            })
            .collect()
    };
    let inputs: Vec<usize> = net
        .input_names()
        .iter()
        .filter_map(|n| spec.blob_id(n))
        .collect();
    eprintln!(
        "exported {} layers (ONNX opset {}; input {}; output {}) in {:.3} s -> {}",
        spec.layers.len(),
        siamese_onnx::OPSET,
        describe(&inputs).join(", "),
        describe(&spec.outputs).join(", "),
        start.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}
