//! `siamese plot`: the tutorial's scatter of 2-D features coloured by digit, or the train
//! and test loss curves of a training CSV log, as PNG.

use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::{Context, Result, bail};
use plotters::prelude::*;
use plotters::style::FontStyle;

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
        (Some(features), None) => scatter(features, &args.out, args.size),
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

fn scatter(features: &Path, out: &Path, size: u32) -> Result<()> {
    let points = read_features(features)?;
    if points[0].0.len() < 2 {
        bail!(
            "{}: {} feature column(s), a scatter needs 2",
            features.display(),
            points[0].0.len()
        );
    }
    let xs = padded_range(points.iter().map(|p| p.0[0]));
    let ys = padded_range(points.iter().map(|p| p.0[1]));
    draw_png(out, size, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("siamese embedding", ("sans-serif", 24))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(xs, ys)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .label_style(("sans-serif", 14))
            .x_desc("feature 0")
            .y_desc("feature 1")
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
        })
        .unwrap_err();
        assert!(format!("{e:#}").contains("a scatter needs 2"), "{e:#}");
        assert!(!out.exists());
    }
}
