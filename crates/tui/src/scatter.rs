//! The embedding scatter: each terminal cell shows the digit most of its points belong to,
//! in that digit's colour, with a legend underneath.
//!
//! Hand-written rather than ratatui's `Canvas`: Canvas draws braille dots, which cannot say
//! which digit a point is without colour; a digit glyph per cell stays readable in monochrome
//! terminals, over ssh and in text snapshots.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

/// One colour per digit 0–9.
pub const DIGIT_COLORS: [Color; 10] = [
    Color::Red,
    Color::Green,
    Color::Yellow,
    Color::Blue,
    Color::Magenta,
    Color::Cyan,
    Color::LightRed,
    Color::LightGreen,
    Color::LightBlue,
    Color::White,
];

/// A 2-D embedding, `(x, y, digit)` per point, drawn to fill its area (the last row holds
/// the legend).
pub struct EmbeddingScatter<'a> {
    pub points: &'a [(f32, f32, u8)],
}

impl Widget for &EmbeddingScatter<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.width < 2 || area.height < 2 {
            return;
        }
        let plot = Rect {
            height: area.height - 1,
            ..area
        };
        let legend_row = Rect {
            y: area.y + area.height - 1,
            height: 1,
            ..area
        };
        for (row, cells) in rasterize(self.points, plot.width, plot.height)
            .iter()
            .enumerate()
        {
            for (col, digit) in cells.iter().enumerate() {
                if let Some(d) = digit {
                    let cell = &mut buf[(plot.x + col as u16, plot.y + row as u16)];
                    cell.set_char(char::from(b'0' + d))
                        .set_style(Style::new().fg(digit_color(*d)));
                }
            }
        }
        legend().render(legend_row, buf);
    }
}

/// The colour of `digit` (digits above 9 share grey).
pub fn digit_color(digit: u8) -> Color {
    DIGIT_COLORS
        .get(usize::from(digit))
        .copied()
        .unwrap_or(Color::Gray)
}

/// "0 1 2 … 9", each digit in its colour.
pub fn legend() -> Line<'static> {
    let spans = (0..10u8).flat_map(|d| {
        [
            Span::styled(format!("■{d}"), Style::new().fg(digit_color(d))),
            Span::raw(" "),
        ]
    });
    Line::from(spans.collect::<Vec<_>>())
}

/// A `height × width` grid holding, for each cell, the most frequent digit of the points
/// that fall in it (ties go to the smaller digit). Points with non-finite coordinates are
/// left out; the bounds are the points' own, so the picture always fills the area.
pub fn rasterize(points: &[(f32, f32, u8)], width: u16, height: u16) -> Vec<Vec<Option<u8>>> {
    let (w, h) = (usize::from(width), usize::from(height));
    let mut counts = vec![[0u32; 10]; w * h];
    let finite: Vec<_> = points
        .iter()
        .filter(|(x, y, d)| x.is_finite() && y.is_finite() && *d < 10)
        .collect();
    if w > 0 && h > 0 && !finite.is_empty() {
        let (x0, x1) = bounds(finite.iter().map(|p| p.0));
        let (y0, y1) = bounds(finite.iter().map(|p| p.1));
        for (x, y, d) in finite {
            let col = (((x - x0) / (x1 - x0)) * (w - 1) as f32).round() as usize;
            let row = (((y1 - y) / (y1 - y0)) * (h - 1) as f32).round() as usize;
            counts[row.min(h - 1) * w + col.min(w - 1)][usize::from(*d)] += 1;
        }
    }
    counts
        .chunks(w.max(1))
        .take(h)
        .map(|row| {
            row.iter()
                .map(|c| {
                    let best = *c.iter().max()?;
                    (best > 0).then(|| c.iter().position(|n| *n == best).unwrap_or(0) as u8)
                })
                .collect()
        })
        .collect()
}

/// Min and max of `values`, widened to a non-empty range.
fn bounds(values: impl Iterator<Item = f32>) -> (f32, f32) {
    let (lo, hi) = values.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if hi - lo > f32::EPSILON * hi.abs().max(1.0) {
        (lo, hi)
    } else {
        (lo - 1.0, hi + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(grid: &[Vec<Option<u8>>]) -> Vec<String> {
        grid.iter()
            .map(|row| {
                row.iter()
                    .map(|d| d.map_or('.', |d| char::from(b'0' + d)))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn corners_land_in_corners_and_majority_wins() {
        let points = [
            (0.0, 0.0, 1),
            (10.0, 10.0, 7),
            (10.0, 10.0, 2),
            (10.0, 10.0, 7),
            (5.0, 5.0, 3),
        ];
        assert_eq!(
            show(&rasterize(&points, 5, 3)),
            vec!["....7", "..3..", "1...."]
        );
    }

    #[test]
    fn ties_go_to_the_smaller_digit_and_bad_points_are_skipped() {
        let points = [
            (1.0, 1.0, 8),
            (1.0, 1.0, 4),
            (f32::NAN, 0.0, 1),
            (2.0, 2.0, 42),
        ];
        assert_eq!(show(&rasterize(&points, 3, 1)), vec![".4."]);
        assert_eq!(show(&rasterize(&[], 2, 2)), vec!["..", ".."]);
    }
}
