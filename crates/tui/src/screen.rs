//! Draws a `Dashboard`: title, grid table, loss chart, embedding scatter, key hints, and the
//! help and quit popups. Pure rendering (no I/O), so `TestBackend` snapshots test it.

use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Block, Chart, Clear, Dataset, GraphType, Paragraph, Row, Table, TableState, Wrap,
};

use siamese_grid::cell_trainer::CellSummary;
use siamese_grid::ranking::{RankMetric, aggregate};

use crate::dashboard::{CellView, Dashboard, Pane, Popup, Status, TABLE_METRICS};
use crate::scatter::EmbeddingScatter;

/// Below this size the screen only says it is too small.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 16;

/// Colours of overlaid cells in the chart, by cell index.
const CELL_COLORS: [Color; 8] = [
    Color::Cyan,
    Color::Yellow,
    Color::Magenta,
    Color::Green,
    Color::LightRed,
    Color::LightBlue,
    Color::White,
    Color::Red,
];

const HELP: &[(&str, &str)] = &[
    ("↑/↓  j/k", "select a cell"),
    ("g/G", "first / last cell"),
    ("Tab", "switch pane"),
    ("Enter  z", "zoom the pane / back"),
    ("o", "overlay every cell's loss"),
    ("l", "log / linear loss scale"),
    (
        "s",
        "sort by a metric (the experiment's first) / grid order",
    ),
    (
        "a",
        "one row per parameter combination (mean ± std over seeds)",
    ),
    ("c", "compare: every cell ranked, with every metric"),
    ("p", "pause / resume training"),
    ("?", "this help"),
    ("q", "quit (asks; the run stays resumable)"),
    ("Ctrl-C", "stop and quit"),
];

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, dash: &Dashboard) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "terminal too small: {}×{}, need at least {MIN_WIDTH}×{MIN_HEIGHT} (q quits)",
            area.width, area.height
        );
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
        return;
    }
    let [title, body, hints] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_title(frame, title, dash);
    if dash.comparing {
        draw_comparison(frame, body, dash);
    } else if dash.zoom {
        draw_pane(frame, body, dash, dash.focus);
    } else {
        let table_height = (dash.cells.len() as u16 + 3)
            .min(body.height * 2 / 5)
            .max(5);
        let [table, plots] =
            Layout::vertical([Constraint::Length(table_height), Constraint::Fill(1)]).areas(body);
        let [chart, scatter] =
            Layout::horizontal([Constraint::Percentage(55), Constraint::Fill(1)]).areas(plots);
        draw_pane(frame, table, dash, Pane::Grid);
        draw_pane(frame, chart, dash, Pane::Chart);
        draw_pane(frame, scatter, dash, Pane::Scatter);
    }
    let hints_text = if dash.watching {
        "↑↓ select  Tab pane  Enter zoom  o overlay  l log  ? help  q quit (the cells go on)"
    } else {
        "↑↓ select  Tab pane  Enter zoom  o overlay  l log  p pause  ? help  q quit"
    };
    frame.render_widget(Line::from(hints_text).dark_gray(), hints);
    match dash.popup {
        Some(Popup::Help) => draw_help(frame, area),
        Some(Popup::ConfirmQuit) => draw_confirm(frame, area),
        None => {}
    }
}

fn draw_title(frame: &mut Frame, area: Rect, dash: &Dashboard) {
    let c = dash.counts();
    let mut spans = vec![Span::from(format!("siamese-tui · {} · ", dash.title)).bold()];
    if dash.stopping {
        spans.push(
            Span::from("STOPPING: running cells save a snapshot · ")
                .yellow()
                .bold(),
        );
    } else if dash.watching {
        spans.push(Span::from("WATCHING · ").cyan().bold());
    } else if dash.grid_over {
        spans.push(Span::from("GRID OVER: q quits · ").green().bold());
    } else if dash.paused {
        spans.push(Span::from("PAUSED (p resumes) · ").yellow().bold());
    }
    let mut counts = format!(
        "{} cells: {} running, {} done, {} failed, {} waiting",
        dash.cells.len(),
        c.running,
        c.done,
        c.failed,
        c.waiting
    );
    if c.elsewhere > 0 {
        counts.push_str(&format!(", {} with another runner", c.elsewhere));
    }
    if c.pruned > 0 {
        counts.push_str(&format!(", {} pruned", c.pruned));
    }
    spans.push(Span::from(counts));
    let lines = vec![
        Line::from(spans),
        Line::from(dash.note.as_str()).dark_gray(),
    ];
    frame.render_widget(Paragraph::new(lines), area);
}

fn draw_pane(frame: &mut Frame, area: Rect, dash: &Dashboard, pane: Pane) {
    let focused = dash.focus == pane;
    let border = if focused {
        Style::new().cyan()
    } else {
        Style::new().dark_gray()
    };
    let block = |title: String| Block::bordered().border_style(border).title(title);
    match pane {
        Pane::Grid => draw_table(frame, area, dash, block(table_title(dash))),
        Pane::Chart => draw_chart(frame, area, dash, block(chart_title(dash))),
        Pane::Scatter => {
            let view = &dash.views[dash.selected];
            let title = match &view.embedding {
                Some(e) if e.dim > 2 => format!(
                    " embedding @{} · {} · {} ",
                    e.iter,
                    e.projection_note(),
                    short_id(dash, dash.selected)
                ),
                Some(e) => format!(
                    " embedding @{} · {} ",
                    e.iter,
                    short_id(dash, dash.selected)
                ),
                None => format!(" embedding · {} ", short_id(dash, dash.selected)),
            };
            let block = block(title);
            let inner = block.inner(area);
            frame.render_widget(block, area);
            match &view.embedding {
                Some(e) => frame.render_widget(&EmbeddingScatter { points: &e.points }, inner),
                None => {
                    frame.render_widget(Paragraph::new("no test embedding yet").dark_gray(), inner)
                }
            }
        }
    }
}

/// The grid pane's title: the order shown and the best combination so far.
fn table_title(dash: &Dashboard) -> String {
    let order = match (&dash.sort, dash.aggregated) {
        (Some(m), true) => format!("by parameters, sorted by {}", m.label),
        (Some(m), false) => format!("sorted by {}", m.label),
        (None, true) => "by parameters".into(),
        (None, false) => "s sorts, a groups seeds".into(),
    };
    match dash.best() {
        Some((metric, group, agg)) => format!(
            " grid · {order} · best {}: {} {} ",
            metric.label,
            group.describe(),
            agg.text()
        ),
        None => format!(" grid · {order} "),
    }
}

/// The metric columns: the table's three, plus the sort metric when it is another one.
fn metric_columns(dash: &Dashboard) -> Vec<RankMetric> {
    let mut columns: Vec<RankMetric> = TABLE_METRICS
        .iter()
        .map(|k| RankMetric::named(k).expect("table metrics exist"))
        .collect();
    if let Some(sort) = dash.sort
        && !columns.contains(&sort)
        && !matches!(sort.key, "test_loss" | "train_loss")
    {
        columns.push(sort);
    }
    columns
}

fn draw_table(frame: &mut Frame, area: Rect, dash: &Dashboard, block: Block) {
    if dash.aggregated {
        return draw_groups(frame, area, dash, block);
    }
    let keys: Vec<&str> = dash
        .cells
        .first()
        .map(|c| c.values.iter().map(|(k, _)| *k).collect())
        .unwrap_or_default();
    let columns = metric_columns(dash);
    let mut header: Vec<String> = vec!["#".into()];
    header.extend(keys.iter().map(|k| k.to_string()));
    header.extend(["status", "progress", "train", "test"].map(String::from));
    header.extend(columns.iter().map(|m| m.label.to_string()));
    let order = dash.cell_order();
    let rows = order.iter().map(|&index| {
        let (cell, view) = (&dash.cells[index], &dash.views[index]);
        let mut cells: Vec<Span> = vec![Span::from(format!("{:03}", cell.index))];
        cells.extend(cell.values.iter().map(|(_, v)| Span::from(v.clone())));
        cells.push(status_span(view, dash.paused));
        cells.push(Span::from(progress(view)));
        let from_summary =
            |f: fn(&CellSummary) -> f64| view.summary.as_ref().map(f).filter(|l| l.is_finite());
        let train = last(&view.train).or_else(|| from_summary(|s| s.train_loss));
        let test = last(&view.test).or_else(|| from_summary(|s| s.test_loss));
        cells.push(Span::from(train.map_or("–".into(), loss_text)));
        cells.push(Span::from(test.map_or("–".into(), loss_text)));
        for metric in &columns {
            let value = view.summary.as_ref().and_then(|s| metric.value(s));
            cells.push(Span::from(value.map_or("–".into(), |v| format!("{v:.3}"))));
        }
        Row::new(cells)
    });
    let mut widths: Vec<Constraint> = vec![Constraint::Length(3)];
    widths.extend(
        keys.iter()
            .map(|k| Constraint::Length(k.len().max(6) as u16)),
    );
    widths.extend([
        Constraint::Length(8),
        Constraint::Min(26),
        Constraint::Length(9),
        Constraint::Length(9),
    ]);
    widths.extend(
        columns
            .iter()
            .map(|m| Constraint::Length(m.label.len().max(5) as u16)),
    );
    let selected = order.iter().position(|&c| c == dash.selected);
    render_table(
        frame,
        area,
        Table::new(rows, widths).header(Row::new(header).bold()),
        block,
        selected,
    );
}

/// `c`: every cell ranked by the sort metric (else the experiment's), with its parameters and
/// every metric that has a value; unfinished cells last.
fn draw_comparison(frame: &mut Frame, area: Rect, dash: &Dashboard) {
    let metric = dash.sort.unwrap_or(dash.metric);
    let summaries = dash.summaries();
    let metrics: Vec<RankMetric> = std::iter::once(metric)
        .chain(RankMetric::all().into_iter().filter(|m| *m != metric))
        .filter(|m| summaries.values().any(|s| m.value(s).is_some()))
        .collect();
    let keys: Vec<&str> = dash
        .cells
        .first()
        .map(|c| c.values.iter().map(|(k, _)| *k).collect())
        .unwrap_or_default();
    let mut header: Vec<String> = vec!["rank".into(), "#".into()];
    header.extend(keys.iter().map(|k| k.to_string()));
    header.extend(metrics.iter().map(|m| m.label.to_string()));
    let order = dash.ranked_cells();
    let rows = order.iter().enumerate().map(|(rank, &index)| {
        let summary = summaries.get(&index);
        let mut cells: Vec<Span> = vec![
            Span::from(summary.map_or("–".into(), |_| (rank + 1).to_string())),
            Span::from(format!("{index:03}")),
        ];
        cells.extend(
            dash.cells[index]
                .values
                .iter()
                .map(|(_, v)| Span::from(v.clone())),
        );
        for m in &metrics {
            let value = summary.and_then(|s| m.value(s));
            cells.push(Span::from(value.map_or("–".into(), |v| format!("{v:.4}"))));
        }
        Row::new(cells)
    });
    let mut widths: Vec<Constraint> = vec![Constraint::Length(4), Constraint::Length(3)];
    widths.extend(
        keys.iter()
            .map(|k| Constraint::Length(k.len().max(6) as u16)),
    );
    widths.extend(
        metrics
            .iter()
            .map(|m| Constraint::Length(m.label.len().max(6) as u16)),
    );
    let block = Block::bordered().title(format!(
        " compare · ranked by {} · {} of {} finished · c back ",
        metric.label,
        summaries.len(),
        dash.cells.len()
    ));
    let selected = order.iter().position(|&c| c == dash.selected);
    render_table(
        frame,
        area,
        Table::new(rows, widths).header(Row::new(header).bold()),
        block,
        selected,
    );
}

/// `a`: one row per parameter combination, each metric's mean ± std over its seeds.
fn draw_groups(frame: &mut Frame, area: Rect, dash: &Dashboard, block: Block) {
    let groups = dash.group_order();
    let keys: Vec<&str> = groups
        .first()
        .map(|g| g.params.iter().map(|(k, _)| *k).collect())
        .unwrap_or_default();
    let mut metrics = vec![RankMetric::named("test_loss").expect("a metric")];
    metrics.extend(metric_columns(dash));
    let mut header: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    header.push("done".into());
    header.extend(metrics.iter().map(|m| m.label.to_string()));
    let summaries = dash.summaries();
    let rows = groups.iter().map(|g| {
        let mut cells: Vec<Span> = g
            .params
            .iter()
            .map(|(_, v)| Span::from(v.clone()))
            .collect();
        let done = g.cells.iter().filter(|c| summaries.contains_key(c)).count();
        cells.push(Span::from(format!("{done}/{}", g.cells.len())));
        for m in &metrics {
            let text = aggregate(g, &summaries, m).map_or("–".into(), |a| a.text());
            cells.push(Span::from(text));
        }
        Row::new(cells)
    });
    let mut widths: Vec<Constraint> = keys
        .iter()
        .map(|k| Constraint::Length(k.len().max(6) as u16))
        .collect();
    widths.push(Constraint::Length(5));
    widths.extend(metrics.iter().map(|_| Constraint::Length(13)));
    let selected = groups.iter().position(|g| g.cells.contains(&dash.selected));
    render_table(
        frame,
        area,
        Table::new(rows, widths).header(Row::new(header).bold()),
        block,
        selected,
    );
}

fn render_table(
    frame: &mut Frame,
    area: Rect,
    table: Table,
    block: Block,
    selected: Option<usize>,
) {
    let table = table
        .block(block)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("▶");
    let mut state = TableState::new().with_selected(selected);
    frame.render_stateful_widget(table, area, &mut state);
}

fn status_span(view: &CellView, paused: bool) -> Span<'static> {
    match &view.status {
        Status::Queued => Span::from("queued").dark_gray(),
        Status::Running if paused => Span::from("paused").yellow(),
        Status::Running => Span::from("running").cyan(),
        Status::Done => Span::from("done").green(),
        Status::Skipped => Span::from("done*").green(),
        Status::Failed(_) => Span::from("FAILED").red().bold(),
        Status::Stopped => Span::from("stopped").yellow(),
        Status::Elsewhere => Span::from("elsewhere").magenta(),
        Status::Pruned => Span::from("pruned").dark_gray(),
    }
}

/// `███████░░░ 700/1000 0:12`: a ten-step bar, the iteration and the ETA (or wall time).
fn progress(view: &CellView) -> String {
    let frac = if view.total == 0 {
        0.0
    } else {
        f64::from(view.iter.min(view.total)) / f64::from(view.total)
    };
    let filled = (frac * 10.0).round() as usize;
    let bar: String = "█".repeat(filled) + &"░".repeat(10 - filled);
    let time = match (&view.status, view.eta, &view.summary) {
        (Status::Running, Some(eta), _) => format!(" eta {}", clock(eta)),
        (Status::Done | Status::Skipped, _, Some(s)) => format!(
            " in {}",
            clock(Duration::from_secs_f64(s.wall_seconds.max(0.0)))
        ),
        _ => String::new(),
    };
    format!("{bar} {}/{}{time}", view.iter, view.total)
}

/// `1:05` or `1:02:05`.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

fn last(points: &[(f64, f64)]) -> Option<f64> {
    points.last().map(|p| p.1)
}

fn loss_text(loss: f64) -> String {
    if loss != 0.0 && (loss.abs() < 1e-3 || loss.abs() >= 1e4) {
        format!("{loss:.2e}")
    } else {
        format!("{loss:.4}")
    }
}

fn short_id(dash: &Dashboard, index: usize) -> String {
    dash.cells
        .get(index)
        .map_or(String::new(), |c| c.id.clone())
}

fn chart_title(dash: &Dashboard) -> String {
    let scale = if dash.log_scale { "log" } else { "linear" };
    if dash.overlay {
        return format!(" train loss · all cells · {scale} ");
    }
    match &dash.views[dash.selected].status {
        Status::Failed(error) => format!(
            " loss · {scale} · {} · FAILED: {error} ",
            short_id(dash, dash.selected)
        ),
        _ => format!(" loss · {scale} · {} ", short_id(dash, dash.selected)),
    }
}

/// A chart line: legend name, colour, points (iteration, loss on the chart's scale).
type Series = (String, Color, Vec<(f64, f64)>);

/// The lines the chart shows: every cell's training loss (overlay) or the selected cell's
/// training and test losses, on the chart's scale (finite losses only; positive when log).
fn chart_series(dash: &Dashboard) -> Vec<Series> {
    let y = |points: &[(f64, f64)]| -> Vec<(f64, f64)> {
        points
            .iter()
            .filter(|p| p.1.is_finite() && (!dash.log_scale || p.1 > 0.0))
            .map(|&(i, l)| (i, if dash.log_scale { l.log10() } else { l }))
            .collect()
    };
    if dash.overlay {
        dash.cells
            .iter()
            .zip(&dash.views)
            .map(|(c, v)| {
                (
                    format!("{:03}", c.index),
                    CELL_COLORS[c.index % CELL_COLORS.len()],
                    y(&v.train),
                )
            })
            .filter(|(_, _, points)| !points.is_empty())
            .collect()
    } else {
        let view = &dash.views[dash.selected];
        vec![
            ("train".into(), Color::Cyan, y(&view.train)),
            ("test".into(), Color::Yellow, y(&view.test)),
        ]
    }
}

/// The loss axis: the range of every point (widened around a single value); `None`
/// without points.
fn loss_bounds(series: &[Series]) -> Option<(f64, f64)> {
    let all = series.iter().flat_map(|s| s.2.iter());
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
        (lo.min(p.1), hi.max(p.1))
    });
    if lo > hi {
        None
    } else if hi - lo < 1e-9 {
        Some((lo - 0.5, hi + 0.5))
    } else {
        Some((lo, hi))
    }
}

fn draw_chart(frame: &mut Frame, area: Rect, dash: &Dashboard, block: Block) {
    let series = chart_series(dash);
    let Some((lo, hi)) = loss_bounds(&series) else {
        let inner = block.inner(area);
        frame.render_widget(block, area);
        frame.render_widget(Paragraph::new("no losses yet").dark_gray(), inner);
        return;
    };
    let total = dash.views.iter().map(|v| v.total).max().unwrap_or(1).max(1);
    let label = |v: f64| {
        if dash.log_scale {
            loss_text(10f64.powf(v))
        } else {
            loss_text(v)
        }
    };
    let datasets = series
        .iter()
        .map(|(name, color, points)| {
            let graph = if points.len() == 1 {
                GraphType::Scatter
            } else {
                GraphType::Line
            };
            Dataset::default()
                .name(name.clone())
                .marker(Marker::Braille)
                .graph_type(graph)
                .style(Style::new().fg(*color))
                .data(points)
        })
        .collect();
    let chart = Chart::new(datasets)
        .block(block)
        .x_axis(Axis::default().bounds([0.0, f64::from(total)]).labels([
            "0".to_string(),
            (total / 2).to_string(),
            total.to_string(),
        ]))
        .y_axis(Axis::default().bounds([lo, hi]).labels([
            label(lo),
            label((lo + hi) / 2.0),
            label(hi),
        ]))
        .hidden_legend_constraints((Constraint::Percentage(40), Constraint::Percentage(60)));
    frame.render_widget(chart, area);
}

fn popup_area(area: Rect, width: u16, height: u16) -> Rect {
    area.centered(
        Constraint::Length(width.min(area.width)),
        Constraint::Length(height.min(area.height)),
    )
}

fn draw_help(frame: &mut Frame, area: Rect) {
    let mut lines: Vec<Line> = HELP
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::from(format!("{k:<10}")).bold(),
                Span::from(*what),
            ])
        })
        .collect();
    lines.push(Line::from(""));
    lines.push(Line::from("status done* = finished in an earlier run").dark_gray());
    lines.push(
        Line::from("scatter: each character is the digit most points there have").dark_gray(),
    );
    let rect = popup_area(area, 66, lines.len() as u16 + 2);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" keys (? or Esc closes) ").cyan()),
        rect,
    );
}

fn draw_confirm(frame: &mut Frame, area: Rect) {
    let lines = vec![
        Line::from("Stop the grid and quit?"),
        Line::from("Running cells save a snapshot and resume from it on the next run;"),
        Line::from("finished cells are kept."),
        Line::from(""),
        Line::from(vec![
            Span::from("y").bold(),
            Span::from(" stop and quit   "),
            Span::from("n").bold(),
            Span::from(" keep training"),
        ]),
    ];
    let rect = popup_area(area, 70, lines.len() as u16 + 2);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" quit ").yellow()),
        rect,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scatter::digit_color;

    #[test]
    fn clock_and_loss_formats() {
        assert_eq!(clock(Duration::from_secs(65)), "1:05");
        assert_eq!(clock(Duration::from_secs(3725)), "1:02:05");
        assert_eq!(loss_text(0.25), "0.2500");
        assert_eq!(loss_text(0.00012), "1.20e-4");
        assert_ne!(digit_color(1), digit_color(7));
    }
}
