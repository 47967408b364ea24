//! `siamese plot`: the tutorial's scatter of 2-D features coloured by digit, or the train
//! and test loss curves of a training CSV log, as PNG.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use siamese_charts::{Frame, Series, lines_png, scatter_png};

use siamese_report::metrics::Points;
use siamese_report::metrics::projection::pca_2d;
use siamese_report::metrics::tsne::{TsneOptions, tsne_2d};
use siamese_report::{LogRow, read_features, read_training_log};

/// Arguments of `siamese plot`.
#[derive(Debug, clap::Args)]
pub struct PlotArgs {
    /// Embedding CSV (from `siamese embed`): draws a scatter coloured by digit.
    #[arg(long, conflicts_with = "log", required_unless_present = "log")]
    pub features: Option<PathBuf>,
    /// Training CSV log (from `siamese train --log-csv`): draws the loss curves.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Output PNG.
    #[arg(long)]
    pub out: PathBuf,
    /// Image width and height in pixels.
    #[arg(long, default_value_t = 800)]
    pub size: u32,
    /// With --features: lay a wider embedding out by t-SNE (Barnes-Hut, seeded) instead of
    /// its first two principal components.
    #[arg(long, requires = "features")]
    pub tsne: bool,
    /// Seed of the t-SNE layout (same seed, same picture).
    #[arg(long, default_value_t = 0, requires = "tsne")]
    pub seed: u64,
}

pub fn run(args: &PlotArgs) -> Result<()> {
    match (&args.features, &args.log) {
        (Some(features), None) => scatter(features, args),
        (None, Some(log)) => loss_curves(log, &args.out, args.size),
        _ => bail!("give either --features or --log"),
    }?;
    println!("wrote {}", args.out.display());
    Ok(())
}

/// What a scatter draws: `(x, y)` and digit per point, the title, the two axis names.
type Layout = (Vec<([f32; 2], u8)>, String, [String; 2]);

/// The 2-D points to draw and what they are: the features themselves for a 2-D embedding,
/// else their PCA projection (deterministic) or, with `--tsne`, a seeded t-SNE layout.
fn layout(features: &Path, args: &PlotArgs) -> Result<Layout> {
    let rows = read_features(features)?;
    let points = Points::from_rows(&rows).expect("the reader checks the row widths");
    let axes = |a: &str, b: &str| [a.to_string(), b.to_string()];
    let (xy, title, names) = match points.dim {
        1 => bail!(
            "{}: 1 feature column, a scatter needs at least 2",
            features.display()
        ),
        _ if args.tsne => {
            let options = TsneOptions {
                seed: args.seed,
                ..TsneOptions::default()
            };
            let xy = tsne_2d(&points, options)
                .map_err(|why| anyhow::anyhow!("{}: {why}", features.display()))?;
            let title = format!(
                "siamese embedding (t-SNE of {}-D, seed {})",
                points.dim, args.seed
            );
            (xy, title, axes("t-SNE 1", "t-SNE 2"))
        }
        2 => (
            pca_2d(&points),
            "siamese embedding".to_string(),
            axes("feature 0", "feature 1"),
        ),
        dim => (
            pca_2d(&points),
            format!("siamese embedding (PCA of {dim}-D)"),
            axes("principal component 1", "principal component 2"),
        ),
    };
    Ok((xy.into_iter().zip(points.labels).collect(), title, names))
}

fn scatter(features: &Path, args: &PlotArgs) -> Result<()> {
    let (points, title, [x_desc, y_desc]) = layout(features, args)?;
    let frame = Frame {
        size: (args.size, args.size),
        title: &title,
        x_desc: &x_desc,
        y_desc: &y_desc,
    };
    Ok(scatter_png(&args.out, frame, &points)?)
}

fn loss_curves(log: &Path, out: &Path, size: u32) -> Result<()> {
    let rows = read_training_log(log)?;
    let series = |name: &str, loss: fn(&LogRow) -> Option<f32>| Series {
        name: name.to_string(),
        points: rows
            .iter()
            .filter_map(|r| Some((r.iter as f32, loss(r)?)))
            .collect(),
    };
    let curves = [
        series("train", |r| r.train_loss),
        series("test", |r| r.test_loss),
    ];
    if curves.iter().all(|c| c.points.is_empty()) {
        bail!(
            "{}: no train_loss or test_loss values to plot",
            log.display()
        );
    }
    let frame = Frame {
        size: (size, size),
        title: "loss",
        x_desc: "iteration",
        y_desc: "loss",
    };
    Ok(lines_png(out, frame, &curves)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_size(path: &Path) -> (u32, u32) {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
        let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
        (be(16), be(20))
    }

    #[test]
    fn scatter_and_loss_pngs_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let feats = dir.path().join("f.csv");
        let mut text = String::from("f0,f1,label\n");
        for i in 0..50 {
            text += &format!(
                "{},{},{}\n",
                (i % 10) as f32 + 0.1 * i as f32,
                i as f32 * 0.3,
                i % 10
            );
        }
        std::fs::write(&feats, text).unwrap();
        let out = dir.path().join("scatter.png");
        run(&PlotArgs {
            features: Some(feats),
            log: None,
            out: out.clone(),
            size: 300,
            tsne: false,
            seed: 0,
        })
        .unwrap();
        assert_eq!(png_size(&out), (300, 300));

        let log = dir.path().join("log.csv");
        std::fs::write(&log, "iter,lr,train_loss,test_loss,elapsed_s\n0,0.01,0.5,0.6,0.1\n100,0.01,0.2,,1.0\n200,0.01,0.1,0.15,2.0\n").unwrap();
        let out = dir.path().join("loss.png");
        run(&PlotArgs {
            features: None,
            log: Some(log),
            out: out.clone(),
            size: 200,
            tsne: false,
            seed: 0,
        })
        .unwrap();
        assert_eq!(png_size(&out), (200, 200));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            names.iter().all(|n| !siamese_files::is_temp_name(n)),
            "{names:?}"
        );
    }

    #[test]
    fn one_dimensional_features_are_refused_without_output() {
        let dir = tempfile::tempdir().unwrap();
        let feats = dir.path().join("f.csv");
        std::fs::write(&feats, "f0,label\n1,2\n").unwrap();
        let out = dir.path().join("x.png");
        let e = run(&PlotArgs {
            features: Some(feats),
            log: None,
            out: out.clone(),
            size: 100,
            tsne: false,
            seed: 0,
        })
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("a scatter needs at least 2"),
            "{e:#}"
        );
        assert!(!out.exists());
    }

    /// A 3-D embedding: PCA by default (its title says so), t-SNE on request, the same
    /// layout for the same seed.
    #[test]
    fn wider_embeddings_are_projected() {
        let dir = tempfile::tempdir().unwrap();
        let feats = dir.path().join("f.csv");
        let mut text = String::from("index,label,f0,f1,f2\n");
        for i in 0..60 {
            let d = i % 3;
            text += &format!(
                "{i},{d},{},{},{}\n",
                d * 5,
                (i % 7) as f32 * 0.1,
                d as f32 - 1.0
            );
        }
        std::fs::write(&feats, text).unwrap();
        let args = |tsne: bool, seed: u64| PlotArgs {
            features: Some(feats.clone()),
            log: None,
            out: dir.path().join("s.png"),
            size: 200,
            tsne,
            seed,
        };
        let (_, title, axes) = layout(&feats, &args(false, 0)).unwrap();
        assert_eq!(title, "siamese embedding (PCA of 3-D)");
        assert_eq!(axes[0], "principal component 1");
        let (a, title, _) = layout(&feats, &args(true, 4)).unwrap();
        assert_eq!(title, "siamese embedding (t-SNE of 3-D, seed 4)");
        let (b, _, _) = layout(&feats, &args(true, 4)).unwrap();
        assert_eq!(a, b);
        run(&args(true, 4)).unwrap();
        assert_eq!(png_size(&dir.path().join("s.png")), (200, 200));
    }
}
