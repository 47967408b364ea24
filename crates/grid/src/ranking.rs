//! Which metric ranks a grid's cells (the experiment's `metric`), and the rows of cells that
//! differ only by seed, with each metric's mean and standard deviation over them.

use std::collections::BTreeMap;

use siamese_report::metrics::{Direction, RANKED_METRICS};

use crate::cell_trainer::CellSummary;
use crate::cells::Cell;

/// A metric to sort, compare and prune cells by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RankMetric {
    pub key: &'static str,
    /// Short column label (`MAP@R`).
    pub label: &'static str,
    pub direction: Direction,
}

/// The grid's default metric: MAP@R, the retrieval score "A Metric Learning Reality Check"
/// recommends.
pub const DEFAULT_METRIC: &str = "map_at_r";

const LOSSES: [RankMetric; 2] = [
    RankMetric {
        key: "test_loss",
        label: "test",
        direction: Direction::LowerIsBetter,
    },
    RankMetric {
        key: "train_loss",
        label: "train",
        direction: Direction::LowerIsBetter,
    },
];

impl RankMetric {
    /// Every metric a grid can rank by: the losses, then the embedding metrics.
    pub fn all() -> Vec<RankMetric> {
        LOSSES
            .into_iter()
            .chain(RANKED_METRICS.iter().map(|m| RankMetric {
                key: m.key,
                label: m.label,
                direction: m.direction,
            }))
            .collect()
    }

    /// The metric called `key`.
    pub fn named(key: &str) -> Option<RankMetric> {
        RankMetric::all().into_iter().find(|m| m.key == key)
    }

    /// The cell's value (`None` when not finite, or not measured: k-NN in an open-set grid).
    pub fn value(&self, summary: &CellSummary) -> Option<f64> {
        let v = match self.key {
            "test_loss" => Some(summary.test_loss),
            "train_loss" => Some(summary.train_loss),
            key => summary.metrics.get(key),
        };
        v.filter(|v| v.is_finite())
    }

    /// Whether `a` is strictly better than `b`.
    pub fn better(&self, a: f64, b: f64) -> bool {
        match self.direction {
            Direction::HigherIsBetter => a > b,
            Direction::LowerIsBetter => a < b,
        }
    }

    /// `a` before `b` when better (ties and missing values keep their order, missing last).
    pub fn order(&self, a: Option<f64>, b: Option<f64>) -> std::cmp::Ordering {
        use std::cmp::Ordering::*;
        match (a, b) {
            (Some(a), Some(b)) if self.better(a, b) => Less,
            (Some(a), Some(b)) if self.better(b, a) => Greater,
            (Some(_), None) => Less,
            (None, Some(_)) => Greater,
            _ => Equal,
        }
    }
}

/// Cells that share every parameter but the seed (the repeats of one combination).
#[derive(Clone, Debug, PartialEq)]
pub struct ParamGroup {
    /// `(axis, value)` without `seed`, in the cells' order.
    pub params: Vec<(&'static str, String)>,
    /// Cell indices, in grid order.
    pub cells: Vec<usize>,
}

impl ParamGroup {
    /// `margin=2 base_lr=0.01` (or `all cells` for a grid with no axis but the seed).
    pub fn describe(&self) -> String {
        if self.params.is_empty() {
            return "all cells".into();
        }
        let parts: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        parts.join(" ")
    }
}

/// The parameter combinations of `cells`, in order of their first cell.
pub fn group_by_params(cells: &[Cell]) -> Vec<ParamGroup> {
    let mut groups: Vec<ParamGroup> = Vec::new();
    for cell in cells {
        let params: Vec<(&'static str, String)> = cell
            .values
            .iter()
            .filter(|(k, _)| *k != "seed")
            .cloned()
            .collect();
        match groups.iter_mut().find(|g| g.params == params) {
            Some(g) => g.cells.push(cell.index),
            None => groups.push(ParamGroup {
                params,
                cells: vec![cell.index],
            }),
        }
    }
    groups
}

/// Mean and population standard deviation of a metric over the finished cells of a group.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Aggregate {
    pub mean: f64,
    pub std: f64,
    /// Finished cells with a value.
    pub n: usize,
}

impl Aggregate {
    /// `0.612 ± 0.010` (just the value for one cell).
    pub fn text(&self) -> String {
        if self.n > 1 {
            format!("{:.3} ± {:.3}", self.mean, self.std)
        } else {
            format!("{:.3}", self.mean)
        }
    }
}

/// The metric over the finished cells of `group`; `None` when none has a value.
pub fn aggregate(
    group: &ParamGroup,
    summaries: &BTreeMap<usize, CellSummary>,
    metric: &RankMetric,
) -> Option<Aggregate> {
    let values: Vec<f64> = group
        .cells
        .iter()
        .filter_map(|c| summaries.get(c))
        .filter_map(|s| metric.value(s))
        .collect();
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    Some(Aggregate {
        mean,
        std,
        n: values.len(),
    })
}

/// The group with the best mean of `metric` (the first of equals), with that aggregate.
pub fn best_group<'g>(
    groups: &'g [ParamGroup],
    summaries: &BTreeMap<usize, CellSummary>,
    metric: &RankMetric,
) -> Option<(&'g ParamGroup, Aggregate)> {
    groups
        .iter()
        .filter_map(|g| aggregate(g, summaries, metric).map(|a| (g, a)))
        .fold(
            None,
            |best: Option<(&ParamGroup, Aggregate)>, (g, a)| match best {
                Some((_, b)) if !metric.better(a.mean, b.mean) => best,
                _ => Some((g, a)),
            },
        )
}

/// Cell indices ordered by `metric`, best first; cells without a value keep grid order, last.
pub fn sorted_cells(
    cells: &[Cell],
    summaries: &BTreeMap<usize, CellSummary>,
    metric: &RankMetric,
) -> Vec<usize> {
    let value = |c: usize| summaries.get(&c).and_then(|s| metric.value(s));
    let mut order: Vec<usize> = cells.iter().map(|c| c.index).collect();
    order.sort_by(|&a, &b| metric.order(value(a), value(b)));
    order
}

/// The groups ordered by the mean of `metric`, best first (a stable sort: equals, and groups
/// with no finished cell, keep their order, the latter last).
pub fn sorted_groups(
    groups: &[ParamGroup],
    summaries: &BTreeMap<usize, CellSummary>,
    metric: &RankMetric,
) -> Vec<ParamGroup> {
    let mut sorted = groups.to_vec();
    let mean = |g: &ParamGroup| aggregate(g, summaries, metric).map(|a| a.mean);
    sorted.sort_by(|a, b| metric.order(mean(a), mean(b)));
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(index: usize, margin: &str, seed: u64) -> Cell {
        Cell {
            index,
            id: format!("{index:03}"),
            values: vec![("margin", margin.into()), ("seed", seed.to_string())],
            params: Default::default(),
        }
    }

    fn summary(map_at_r: f64, test_loss: f64) -> CellSummary {
        CellSummary {
            iterations: 10,
            train_loss: 0.1,
            test_loss,
            wall_seconds: 1.0,
            metrics: siamese_testkit::embedding_metrics(0.9, map_at_r, 0.8),
        }
    }

    #[test]
    fn metrics_know_their_direction_and_value() {
        let map = RankMetric::named("map_at_r").unwrap();
        let loss = RankMetric::named("test_loss").unwrap();
        let eer = RankMetric::named("eer").unwrap();
        assert!(map.better(0.6, 0.5) && !map.better(0.5, 0.5));
        assert!(loss.better(0.1, 0.2) && eer.better(0.05, 0.1));
        assert!(RankMetric::named("accuracy").is_none());
        let s = summary(0.61, f64::NAN);
        assert_eq!(map.value(&s), Some(0.61));
        assert_eq!(loss.value(&s), None, "NaN is no value");
        use std::cmp::Ordering::*;
        assert_eq!(map.order(Some(0.7), Some(0.6)), Less);
        assert_eq!(loss.order(Some(0.7), Some(0.6)), Greater);
        assert_eq!(map.order(None, Some(0.6)), Greater);
    }

    /// Margins 1 and 2, three seeds each; margin 2 is better on average though margin 1 has
    /// the single best cell.
    #[test]
    fn groups_drop_the_seed_and_the_best_mean_wins() {
        let cells: Vec<Cell> = (0..6)
            .map(|i| cell(i, if i < 3 { "1" } else { "2" }, i as u64 % 3))
            .collect();
        let groups = group_by_params(&cells);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[1].cells, [3, 4, 5]);
        assert_eq!(groups[1].describe(), "margin=2");
        let maps = [0.9, 0.1, 0.2, 0.5, 0.6, 0.7];
        let summaries: BTreeMap<usize, CellSummary> = maps
            .iter()
            .enumerate()
            .map(|(i, &m)| (i, summary(m, 1.0 - m)))
            .collect();
        let map = RankMetric::named("map_at_r").unwrap();
        let (best, agg) = best_group(&groups, &summaries, &map).unwrap();
        assert_eq!(best.describe(), "margin=2");
        assert!((agg.mean - 0.6).abs() < 1e-12 && agg.n == 3, "{agg:?}");
        assert!((agg.std - (2.0f64 / 300.0).sqrt()).abs() < 1e-12);
        assert_eq!(agg.text(), "0.600 ± 0.082");
        let loss = RankMetric::named("test_loss").unwrap();
        assert_eq!(
            best_group(&groups, &summaries, &loss).unwrap().0.describe(),
            "margin=2"
        );
        let none = BTreeMap::new();
        assert!(best_group(&groups, &none, &map).is_none());
        assert_eq!(sorted_cells(&cells, &summaries, &map), [0, 5, 4, 3, 2, 1]);
        assert_eq!(sorted_cells(&cells, &summaries, &loss), [0, 5, 4, 3, 2, 1]);
        let partial: BTreeMap<usize, CellSummary> =
            summaries.into_iter().filter(|(i, _)| *i % 2 == 1).collect();
        assert_eq!(sorted_cells(&cells, &partial, &map), [5, 3, 1, 0, 2, 4]);
        let by_mean = sorted_groups(&groups, &partial, &map);
        assert_eq!(by_mean[0].describe(), "margin=2");
    }
}
