//! `siamese embed`: runs a deploy net (e.g. Caffe's mnist_siamese.prototxt) with trained
//! weights over IDX images or PNG/JPEG files and writes its last output per image as CSV.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use siamese_data::idx::IdxImages;
use siamese_data::images::{ImageSource, read_image_files};
use siamese_layers::embed::{ImageFeatures, cap_input_batch, embed_images};
use siamese_layers::{Device, Net};
use siamese_net::{NetSpec, load_net};
use siamese_proto::Phase;

/// Images per forward pass at most (the Input is reshaped to this, or to what it declares
/// when that is smaller). On the CPU 128 beats 256 on one core (the blobs of a batch stay in
/// cache) and ties on two; smaller batches lose more in per-batch work (docs/performance.md).
const MAX_BATCH: usize = 128;

#[derive(Args)]
pub struct EmbedArgs {
    /// Deploy net definition with an Input layer (e.g. mnist_siamese.prototxt).
    #[arg(long, value_name = "DEPLOY.prototxt")]
    model: PathBuf,
    /// Trained weights (.caffemodel, from Caffe or siamese).
    #[arg(long, value_name = "W.caffemodel")]
    weights: PathBuf,
    /// IDX images file (raw or .gz), a folder of PNG/JPEG images (taken by name), a list file
    /// of image paths (one per line, relative to the list's folder) or one image. Image files
    /// are converted to grey and resized (bilinear) to the net's input size.
    #[arg(long, value_name = "IMAGES")]
    images: PathBuf,
    /// IDX labels file (raw or .gz), for IDX images; without it the label column is empty.
    #[arg(long, value_name = "LABELS-idx1-ubyte[.gz]")]
    labels: Option<PathBuf>,
    /// Embed only the first N images (of a folder or list: in its order).
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Pixel scale: each byte (0-255) is multiplied by it before the net, as the training
    /// Data layer's transform_param scale does (0.00390625 = 1/256 in Caffe's MNIST nets; the
    /// deploy net's Input layer has no scale of its own).
    #[arg(long, default_value_t = 0.00390625)]
    scale: f32,
    /// Output CSV file (written whole or not at all): `index,label,f0,…` for IDX images,
    /// `file,f0,…` for image files.
    #[arg(long, value_name = "feats.csv")]
    out: PathBuf,
    #[arg(long, value_parser = crate::device::parse, default_value = "cpu", value_name = "DEVICE", help = crate::device::HELP)]
    device: Device,
    /// Worker threads for the arithmetic (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run(args: EmbedArgs) -> Result<()> {
    crate::threads::configure(args.threads)?;
    let device = crate::device::check(args.device)?;
    let source = ImageSource::detect(&args.images)?;
    let mut net = load_deploy_net(&args.model, &args.weights, device)?;
    let (images, csv) = match source {
        ImageSource::Idx(path) => {
            let (images, labels) = match &args.labels {
                Some(labels) => {
                    let set = siamese_data::Dataset::load(&path, labels)?;
                    (set.images, Some(set.labels.labels))
                }
                None => (siamese_data::idx::read_images(&path)?, None),
            };
            (images, Rows::Digits(labels))
        }
        ImageSource::Files { mut files, skipped } => {
            if let Some(labels) = &args.labels {
                bail!(
                    "--labels {}: labels go with IDX images, and {} holds image files",
                    labels.display(),
                    args.images.display()
                );
            }
            if skipped > 0 {
                eprintln!(
                    "{}: left out {skipped} files not named .png/.jpg/.jpeg",
                    args.images.display()
                );
            }
            files.truncate(args.limit.unwrap_or(files.len()));
            (
                read_net_images(&net, &args.model, &files)?,
                Rows::Files(files),
            )
        }
    };
    let count = args.limit.unwrap_or(images.count).min(images.count);
    let start = Instant::now();
    // On a pool thread, as `siamese train` runs: each layer's parallel work starts there.
    let features =
        crate::threads::on_pool(|| embed(&mut net, &args.model, &images, count, args.scale))?;
    let seconds = start.elapsed().as_secs_f64();
    let bytes = match csv {
        Rows::Digits(labels) => digits_csv(&features, labels.as_deref()),
        Rows::Files(files) => files_csv(&features, &files),
    };
    siamese_files::write_atomic(&args.out, &bytes)?;
    eprintln!(
        "embedded {count} images ({} values each, blob \"{}\") in {seconds:.3} s: {:.0} images/s -> {}",
        features.dim,
        features.output,
        count as f64 / seconds.max(1e-9),
        args.out.display()
    );
    Ok(())
}

/// What keys the rows of the features CSV.
enum Rows {
    Digits(Option<Vec<u8>>),
    Files(Vec<PathBuf>),
}

/// The deploy net `model` (its Input batch capped) on `device`, with `weights` loaded.
pub fn load_deploy_net(model: &Path, weights: &Path, device: Device) -> Result<Net> {
    let mut param = load_net(model)?;
    cap_input_batch(&mut param, MAX_BATCH);
    let spec = NetSpec::build(&param, Phase::Test, model.parent()).map_err(|e| e.in_file(model))?;
    let mut net =
        Net::on_device(&spec, 0, device).with_context(|| format!("{}", model.display()))?;
    net.load_caffemodel(weights)?;
    Ok(net)
}

/// `files` as grey images of the size the net's Input takes (N×1×H×W).
pub fn read_net_images(net: &Net, model: &Path, files: &[PathBuf]) -> Result<IdxImages> {
    let input = net.input_names().first().map(|s| s.to_string());
    let shape = input
        .as_deref()
        .and_then(|name| net.blob(name))
        .map(|b| b.shape.clone())
        .unwrap_or_default();
    let [_, 1, rows, cols] = shape[..] else {
        bail!(
            "{}: input {:?} has shape {shape:?}; image files are read as grey, expected N×1×H×W",
            model.display(),
            input.unwrap_or_default()
        );
    };
    Ok(read_image_files(files, rows, cols)?)
}

/// The net's last output for the first `count` images, each pixel × `scale`.
pub fn embed(
    net: &mut Net,
    model: &Path,
    images: &IdxImages,
    count: usize,
    scale: f32,
) -> Result<ImageFeatures> {
    let features = embed_images(net, images, count, scale, MAX_BATCH)
        .with_context(|| format!("{}", model.display()))?;
    if features.len() != count {
        bail!(
            "{}: got features for {} of {count} images",
            model.display(),
            features.len()
        );
    }
    Ok(features)
}

/// The digit features CSV (`index,label,f0,f1,...` per image).
fn digits_csv(features: &ImageFeatures, labels: Option<&[u8]>) -> Vec<u8> {
    let rows = (0..features.len()).map(|i| (features.row(i), labels.map(|l| l[i])));
    siamese_report::features_csv(features.dim, rows)
}

/// The file features CSV (`file,f0,f1,...` per image, the path as given or found).
fn files_csv(features: &ImageFeatures, files: &[PathBuf]) -> Vec<u8> {
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let rows = (0..features.len()).map(|i| (names[i].as_str(), features.row(i)));
    siamese_report::file_features_csv(features.dim, rows)
}
