//! `siamese compare A.png B.png`: the Euclidean distance between two images' embeddings and
//! whether it makes them the same class, at a given threshold or one chosen on a features CSV.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::Args;
use siamese_layers::Device;
use siamese_report::metrics::points::squared_distance;
use siamese_report::metrics::verification::fold_accuracy;
use siamese_report::metrics::{Points, scored_pairs};

/// Folds of the held-out accuracy shown beside a threshold from a features CSV (`siamese
/// eval`'s default).
const FOLDS: usize = 10;

#[derive(Args)]
pub struct CompareArgs {
    /// The two images (PNG or JPEG), converted as `siamese embed --images` does.
    #[arg(value_name = "IMAGE", num_args = 2, required = true)]
    images: Vec<PathBuf>,
    /// Deploy net definition with an Input layer (e.g. mnist_siamese.prototxt).
    #[arg(long, value_name = "DEPLOY.prototxt")]
    model: PathBuf,
    /// Trained weights (.caffemodel, from Caffe or siamese).
    #[arg(long, value_name = "W.caffemodel")]
    weights: PathBuf,
    /// Same class when the distance is at most T.
    #[arg(long, value_name = "T", conflicts_with = "features")]
    threshold: Option<f64>,
    /// Features CSV of labelled held-out digits (`siamese embed --labels`) with the same net
    /// and weights: the threshold is the one `siamese eval` chooses on its balanced pairs.
    #[arg(long, value_name = "feats.csv")]
    features: Option<PathBuf>,
    /// Pixel scale, as `siamese embed --scale` (the training Data layer's 1/256).
    #[arg(long, default_value_t = 0.00390625)]
    scale: f32,
    #[arg(long, value_parser = crate::device::parse, default_value = "cpu", value_name = "DEVICE", help = crate::device::HELP)]
    device: Device,
}

pub fn run(args: &CompareArgs) -> Result<()> {
    let device = crate::device::check(args.device)?;
    let mut net = crate::embed::load_deploy_net(&args.model, &args.weights, device)?;
    let images = crate::embed::read_net_images(&net, &args.model, &args.images)?;
    let features = crate::embed::embed(&mut net, &args.model, &images, 2, args.scale)?;
    let distance = squared_distance(features.row(0), features.row(1)).sqrt();
    println!("distance {distance:.6}");
    let threshold = match (&args.features, args.threshold) {
        (Some(path), _) => {
            let (threshold, why) = held_out_threshold(path, features.dim)?;
            println!("threshold {threshold:.6} ({why})");
            threshold
        }
        (None, Some(t)) => {
            println!("threshold {t:.6} (--threshold)");
            t
        }
        (None, None) => {
            println!(
                "same class: unknown (give --threshold T, or --features feats.csv to choose one)"
            );
            return Ok(());
        }
    };
    let same = if distance <= threshold { "yes" } else { "no" };
    println!("same class: {same}");
    Ok(())
}

/// The threshold `siamese eval` chooses on the balanced pairs of the features CSV at `path`,
/// and a line saying where it came from and how well it holds out.
fn held_out_threshold(path: &Path, dim: usize) -> Result<(f64, String)> {
    let rows = siamese_report::read_features(path)?;
    // The reader checks that every row has the header's columns.
    let points = Points::from_rows(&rows).expect("rows of one width");
    if points.dim != dim {
        bail!(
            "{}: {} feature columns, expected {dim} (the net's output); features and images must come from the same net",
            path.display(),
            points.dim
        );
    }
    let pairs = scored_pairs(&points);
    if !pairs.iter().any(|p| p.same) || pairs.iter().all(|p| p.same) {
        bail!(
            "{}: {} points of {} classes, expected at least two classes with two points or more to choose a threshold",
            path.display(),
            points.len(),
            points.classes().len()
        );
    }
    let folds = fold_accuracy(&pairs, FOLDS);
    let why = format!(
        "chosen on the {} balanced pairs of {}; held-out accuracy {:.4} ± {:.4} over {FOLDS} folds",
        pairs.len(),
        path.display(),
        folds.mean,
        folds.std
    );
    Ok((folds.threshold, why))
}
