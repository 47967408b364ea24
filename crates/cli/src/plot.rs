//! `siamese plot`: the tutorial's scatter of 2-D features coloured by digit, or the train
//! and test loss curves of a training CSV log, as PNG.

use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::{Context, Result, bail};
use plotters::prelude::*;
use plotters::style::FontStyle;

use siamese_report::metrics::Points;
use siamese_report::metrics::projection::pca_2d;
use siamese_report::metrics::tsne::{TsneOptions, tsne_2d};
use siamese_report::{read_features, read_training_log};

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

/// The colours of Caffe's siamese notebook, digit 0 to 9.
const DIGIT_COLOURS: [RGBColor; 10] = [
    RGBColor(0xff, 0x00, 0x00),
    RGBColor(0xff, 0xff, 0x00),
    RGBColor(0x00, 0xff, 0x00),
    RGBColor(0x00, 0xff, 0xff),
    RGBColor(0x00, 0x00, 0xff),
    RGBColor(0xff, 0x00, 0xff),
    RGBColor(0x99, 0x00, 0x00),
    RGBColor(0x99, 0x99, 0x00),
    RGBColor(0x00, 0x99, 0x00),
    RGBColor(0x00, 0x99, 0x99),
];

/// The font every chart uses: Noto Sans Regular from the `ttf-noto-sans` crate (Apache-2.0),
/// embedded so no system font libraries are needed.
fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, ttf_noto_sans::REGULAR)
            .unwrap_or_else(|_| panic!("the embedded Noto Sans font is a valid TTF"));
    });
}

pub fn run(args: &PlotArgs) -> Result<()> {
    register_font();
    match (&args.features, &args.log) {
        (Some(features), None) => scatter(features, args),
        (None, Some(log)) => loss_curves(log, &args.out, args.size),
        _ => bail!("give either --features or --log"),
    }?;
    println!("wrote {}", args.out.display());
    Ok(())
}

/// Draws into a temporary PNG beside `out` (siamese-files), then renames it, so a failure
/// leaves no half image.
fn draw_png(
    out: &Path,
    size: u32,
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<()>,
) -> Result<()> {
    let file = siamese_files::AtomicFile::new(out)?;
    {
        let root = BitMapBackend::new(file.temp_path(), (size, size)).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()
            .with_context(|| format!("{}: cannot write the PNG", out.display()))?;
    }
    Ok(file.commit()?)
}

/// Axis range of `values` with a 5 % margin (a unit range around a single value).
fn padded_range(values: impl Iterator<Item = f32>) -> std::ops::Range<f32> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return 0.0..1.0;
    }
    let pad = if hi > lo { (hi - lo) * 0.05 } else { 0.5 };
    (lo - pad)..(hi + pad)
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
    let (out, size) = (&args.out, args.size);
    let xs = padded_range(points.iter().map(|p| p.0[0]));
    let ys = padded_range(points.iter().map(|p| p.0[1]));
    draw_png(out, size, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(&title, ("sans-serif", 24))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(xs, ys)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .label_style(("sans-serif", 14))
            .x_desc(x_desc.as_str())
            .y_desc(y_desc.as_str())
            .draw()?;
        for digit in 0u8..10 {
            let colour = DIGIT_COLOURS[digit as usize];
            let series = points
                .iter()
                .filter(|p| p.1 == digit)
                .map(|p| Circle::new((p.0[0], p.0[1]), 2, colour.filled()));
            chart
                .draw_series(series)?
                .label(digit.to_string())
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, colour.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 16))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    })
}

fn loss_curves(log: &Path, out: &Path, size: u32) -> Result<()> {
    let rows = read_training_log(log)?;
    let train: Vec<(f32, f32)> = rows
        .iter()
        .filter_map(|r| Some((r.iter as f32, r.train_loss?)))
        .collect();
    let test: Vec<(f32, f32)> = rows
        .iter()
        .filter_map(|r| Some((r.iter as f32, r.test_loss?)))
        .collect();
    if train.is_empty() && test.is_empty() {
        bail!(
            "{}: no train_loss or test_loss values to plot",
            log.display()
        );
    }
    let xs = padded_range(train.iter().chain(&test).map(|p| p.0));
    let ys = padded_range(train.iter().chain(&test).map(|p| p.1));
    let ys = ys.start.max(0.0)..ys.end;
    draw_png(out, size, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("loss", ("sans-serif", 24))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(xs, ys)?;
        chart
            .configure_mesh()
            .label_style(("sans-serif", 14))
            .x_desc("iteration")
            .y_desc("loss")
            .draw()?;
        for (name, points, colour) in [("train", &train, BLUE), ("test", &test, RED)] {
            if points.is_empty() {
                continue;
            }
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    colour.stroke_width(2),
                ))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 16))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    })
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
