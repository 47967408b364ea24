//! `siamese embed`: runs a deploy net (e.g. Caffe's mnist_siamese.prototxt) with trained
//! weights over IDX images and writes its last output per image as CSV (`index,label,f0,...`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use siamese_layers::embed::{ImageFeatures, cap_input_batch, embed_images};
use siamese_layers::{Device, Net};
use siamese_net::{NetSpec, load_net};
use siamese_proto::Phase;

/// Images per forward pass at most (the Input is reshaped to this, or to what it declares
/// when that is smaller).
const MAX_BATCH: usize = 256;

#[derive(Args)]
pub struct EmbedArgs {
    /// Deploy net definition with an Input layer (e.g. mnist_siamese.prototxt).
    #[arg(long, value_name = "DEPLOY.prototxt")]
    model: PathBuf,
    /// Trained weights (.caffemodel, from Caffe or siamese).
    #[arg(long, value_name = "W.caffemodel")]
    weights: PathBuf,
    /// IDX images file (raw or .gz).
    #[arg(long, value_name = "IMAGES-idx3-ubyte[.gz]")]
    images: PathBuf,
    /// IDX labels file (raw or .gz); without it the label column is empty.
    #[arg(long, value_name = "LABELS-idx1-ubyte[.gz]")]
    labels: Option<PathBuf>,
    /// Embed only the first N images.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Pixel scale, as the training Data layer's transform_param (1/256).
    #[arg(long, default_value_t = 0.00390625)]
    scale: f32,
    /// Output CSV file (written whole or not at all).
    #[arg(long, value_name = "feats.csv")]
    out: PathBuf,
    #[arg(long, value_parser = crate::device::parse, default_value = "cpu", value_name = "DEVICE", help = crate::device::HELP)]
    device: Device,
}

pub fn run(args: EmbedArgs) -> Result<()> {
    let device = crate::device::check(args.device)?;
    let (images, labels) = match &args.labels {
        Some(labels) => {
            let set = siamese_data::Dataset::load(&args.images, labels)?;
            (set.images, Some(set.labels.labels))
        }
        None => (siamese_data::idx::read_images(&args.images)?, None),
    };
    let count = args.limit.unwrap_or(images.count).min(images.count);
    let mut param = load_net(&args.model)?;
    cap_input_batch(&mut param, MAX_BATCH);
    let spec = NetSpec::build(&param, Phase::Test, args.model.parent())?;
    let mut net =
        Net::on_device(&spec, 0, device).with_context(|| format!("{}", args.model.display()))?;
    net.load_caffemodel(&args.weights)?;
    let start = Instant::now();
    let features = embed_images(&mut net, &images, count, args.scale, MAX_BATCH)
        .with_context(|| format!("{}", args.model.display()))?;
    let seconds = start.elapsed().as_secs_f64();
    if features.len() != count {
        bail!(
            "{}: got features for {} of {count} images",
            args.model.display(),
            features.len()
        );
    }
    write_csv(&args.out, &features, labels.as_deref())?;
    eprintln!(
        "embedded {count} images ({} values each, blob \"{}\") in {seconds:.3} s: {:.0} images/s -> {}",
        features.dim,
        features.output,
        count as f64 / seconds.max(1e-9),
        args.out.display()
    );
    Ok(())
}

/// The features CSV (`index,label,f0,f1,...` per image), written atomically.
fn write_csv(path: &Path, features: &ImageFeatures, labels: Option<&[u8]>) -> Result<()> {
    let rows = (0..features.len()).map(|i| (features.row(i), labels.map(|l| l[i])));
    let bytes = siamese_report::features_csv(features.dim, rows);
    Ok(siamese_files::write_atomic(path, &bytes)?)
}
