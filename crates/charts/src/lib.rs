//! PNG charts of run records, for every front end: an embedding's scatter coloured by digit,
//! curves (a run's losses, or several runs overlaid), and a metric against a parameter.
//!
//! Each chart is drawn into a temporary file beside its target and renamed into place
//! (siamese-files), so a failure leaves no half image.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

/// Why a chart was not written (the message names the file).
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error(transparent)]
    File(#[from] siamese_files::FileError),
    /// plotters failed drawing or encoding the PNG.
    #[error("{}: cannot draw the chart: {message}", path.display())]
    Draw { path: PathBuf, message: String },
    /// Nothing to draw: no finite point at all.
    #[error("{}: no finite values to plot ({what})", path.display())]
    Empty { path: PathBuf, what: String },
}

/// A chart's size and words.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Width and height in pixels.
    pub size: (u32, u32),
    pub title: &'a str,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
}

/// A named line of `(x, y)` points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f32, f32)>,
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

type Root<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type DrawResult = Result<(), Box<dyn std::error::Error + 'static>>;

/// Draws into a temporary PNG beside `out`, then renames it.
fn draw_png(
    out: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&Root<'_>) -> DrawResult,
) -> Result<(), ChartError> {
    register_font();
    let failed = |e: &dyn std::fmt::Display| ChartError::Draw {
        path: out.to_path_buf(),
        message: e.to_string(),
    };
    let file = siamese_files::AtomicFile::new(out)?;
    {
        let root = BitMapBackend::new(file.temp_path(), size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| failed(&e))?;
        draw(&root).map_err(|e| failed(&e))?;
        root.present().map_err(|e| failed(&e))?;
    }
    Ok(file.commit()?)
}

/// Axis range of `values` with a 5 % margin (a unit range around a single value); `None`
/// when no value is finite.
fn padded_range(values: impl Iterator<Item = f32>) -> Option<std::ops::Range<f32>> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return None;
    }
    let pad = if hi > lo { (hi - lo) * 0.05 } else { 0.5 };
    Some((lo - pad)..(hi + pad))
}

/// A scatter of 2-D points coloured by digit (0–9), with a legend.
pub fn scatter_png(
    out: &Path,
    frame: Frame<'_>,
    points: &[([f32; 2], u8)],
) -> Result<(), ChartError> {
    let empty = || ChartError::Empty {
        path: out.to_path_buf(),
        what: "embedding points".into(),
    };
    let xs = padded_range(points.iter().map(|p| p.0[0])).ok_or_else(empty)?;
    let ys = padded_range(points.iter().map(|p| p.0[1])).ok_or_else(empty)?;
    draw_png(out, frame.size, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(frame.title, ("sans-serif", 24))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(xs, ys)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .label_style(("sans-serif", 14))
            .x_desc(frame.x_desc)
            .y_desc(frame.y_desc)
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

/// Lines, one per series, with a legend; the y axis starts at 0 when every value is positive
/// (losses). Colours: the first two blue and red (train, test), then plotters' palette.
pub fn lines_png(out: &Path, frame: Frame<'_>, series: &[Series]) -> Result<(), ChartError> {
    let all = || series.iter().flat_map(|s| s.points.iter());
    let empty = || ChartError::Empty {
        path: out.to_path_buf(),
        what: "curve points".into(),
    };
    let xs = padded_range(all().map(|p| p.0)).ok_or_else(empty)?;
    let ys = padded_range(all().map(|p| p.1)).ok_or_else(empty)?;
    let ys = ys.start.max(0.0)..ys.end;
    draw_png(out, frame.size, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(frame.title, ("sans-serif", 24))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(xs, ys)?;
        chart
            .configure_mesh()
            .label_style(("sans-serif", 14))
            .x_desc(frame.x_desc)
            .y_desc(frame.y_desc)
            .draw()?;
        for (i, s) in series
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.points.is_empty())
        {
            let colour = match i {
                0 => BLUE.to_rgba(),
                1 => RED.to_rgba(),
                i => Palette99::pick(i).to_rgba(),
            };
            let finite = s
                .points
                .iter()
                .copied()
                .filter(|p| p.0.is_finite() && p.1.is_finite());
            chart
                .draw_series(LineSeries::new(finite, colour.stroke_width(2)))?
                .label(s.name.as_str())
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

/// Whether values span a decade or more, all positive: such an axis reads best in log scale.
pub fn spans_a_decade(values: &[f64]) -> bool {
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    lo > 0.0 && hi / lo >= 10.0
}

/// Points of a metric (y) against a parameter (x), the x axis in log scale when `log_x`
/// (drawn at log10 x, labelled with x itself).
pub fn points_png(
    out: &Path,
    frame: Frame<'_>,
    points: &[(f64, f64)],
    log_x: bool,
) -> Result<(), ChartError> {
    let x_of = |x: f64| if log_x { x.log10() as f32 } else { x as f32 };
    let shown: Vec<(f32, f32)> = points
        .iter()
        .filter(|p| p.0.is_finite() && p.1.is_finite() && (!log_x || p.0 > 0.0))
        .map(|&(x, y)| (x_of(x), y as f32))
        .collect();
    let empty = || ChartError::Empty {
        path: out.to_path_buf(),
        what: "metric values".into(),
    };
    let xs = padded_range(shown.iter().map(|p| p.0)).ok_or_else(empty)?;
    let ys = padded_range(shown.iter().map(|p| p.1)).ok_or_else(empty)?;
    let label = move |v: &f32| {
        if log_x {
            format!("{:.3}", 10f64.powf(f64::from(*v)))
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string()
        } else {
            format!("{v}")
        }
    };
    draw_png(out, frame.size, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(frame.title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(xs, ys)?;
        chart
            .configure_mesh()
            .label_style(("sans-serif", 14))
            .x_label_formatter(&label)
            .x_desc(frame.x_desc)
            .y_desc(frame.y_desc)
            .draw()?;
        chart.draw_series(shown.iter().map(|&p| Circle::new(p, 4, BLUE.filled())))?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Width and height of the PNG at `path` (its IHDR chunk).
    fn png_size(path: &Path) -> (u32, u32) {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
        let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
        (be(16), be(20))
    }

    fn frame(size: u32) -> Frame<'static> {
        Frame {
            size: (size, size),
            title: "t",
            x_desc: "x",
            y_desc: "y",
        }
    }

    #[test]
    fn every_chart_is_a_png_of_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let points: Vec<([f32; 2], u8)> = (0..30)
            .map(|i| ([i as f32, (i % 7) as f32], (i % 10) as u8))
            .collect();
        scatter_png(&p.join("s.png"), frame(200), &points).unwrap();
        let series = vec![
            Series {
                name: "a".into(),
                points: vec![(0.0, 1.0), (10.0, 0.5)],
            },
            Series {
                name: "b".into(),
                points: vec![(0.0, 0.8), (10.0, f32::NAN), (20.0, 0.2)],
            },
            Series {
                name: "c".into(),
                points: vec![(5.0, 0.3)],
            },
        ];
        lines_png(&p.join("l.png"), frame(240), &series).unwrap();
        points_png(
            &p.join("m.png"),
            frame(260),
            &[(0.001, 0.2), (0.01, 0.4), (0.1, 0.3)],
            true,
        )
        .unwrap();
        assert_eq!(png_size(&p.join("s.png")), (200, 200));
        assert_eq!(png_size(&p.join("l.png")), (240, 240));
        assert_eq!(png_size(&p.join("m.png")), (260, 260));
    }

    #[test]
    fn nothing_finite_to_draw_is_an_error_and_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("m.png");
        let e = points_png(&out, frame(100), &[(1.0, f64::NAN)], false).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("m.png: no finite values to plot (metric values)"),
            "{e}"
        );
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    }

    #[test]
    fn log_axes_for_values_that_span_a_decade() {
        assert!(spans_a_decade(&[0.001, 0.01]));
        assert!(!spans_a_decade(&[0.5, 1.0, 4.0]));
        assert!(!spans_a_decade(&[0.0, 10.0]));
    }
}
