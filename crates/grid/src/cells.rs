//! The cells of an experiment: the Cartesian product of its grid axes (times repeats), each
//! with a stable, readable id such as `003-margin_2-seed_1` and typed solver overrides.

use serde::Serialize;

use crate::experiment::{AxisValue, Experiment};

/// One training run of the grid.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// Position in the grid (0-based), also the first part of the id.
    pub index: usize,
    /// Folder name under `runs/<experiment>/`.
    pub id: String,
    /// `(axis key, value)` for each grid axis, in the order of the id.
    #[serde(skip)]
    pub values: Vec<(&'static str, String)>,
    pub params: CellParams,
}

/// What a cell changes in the base solver and net; `None` keeps the prototxt's value.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct CellParams {
    /// ContrastiveLoss `margin`.
    pub margin: Option<f64>,
    /// ContrastiveLoss `legacy_version`.
    pub legacy_version: Option<bool>,
    /// Fraction of similar pairs when making the pair LevelDBs.
    pub similar_fraction: Option<f64>,
    pub base_lr: Option<f64>,
    pub momentum: Option<f64>,
    pub weight_decay: Option<f64>,
    /// Data layer batch size (train phase).
    pub batch_size: Option<u32>,
    pub lr_policy: Option<String>,
    pub gamma: Option<f64>,
    pub power: Option<f64>,
    pub stepsize: Option<u32>,
    /// `num_output` of the `feat` layer (and its `_p` twin).
    pub feature_dim: Option<u32>,
    /// Solver `random_seed` and pair-generation seed; always set.
    pub seed: u64,
    /// Which repeat of the same combination this is (0-based).
    pub repeat: u32,
    /// `cpu` or `gpu:N` (the experiment's `device`, or the cell's on a `device` axis);
    /// `None` follows the solver file's `solver_mode`.
    pub device: Option<String>,
}

impl Cell {
    /// The cells of `experiment`, in a fixed order: the first axis varies slowest, then the
    /// search samples, then repeats. The same file always gives the same ids.
    pub fn expand(experiment: &Experiment) -> Vec<Cell> {
        let grid = &experiment.grid;
        let points = grid.search.as_ref().map(|s| s.points()).unwrap_or_default();
        let mut combos: Vec<Vec<(&'static str, &AxisValue)>> = vec![Vec::new()];
        for axis in &grid.axes {
            combos = combos
                .into_iter()
                .flat_map(|combo| {
                    axis.values.iter().map(move |v| {
                        let mut next = combo.clone();
                        next.push((axis.key, v));
                        next
                    })
                })
                .collect();
        }
        if !points.is_empty() {
            combos = combos
                .into_iter()
                .flat_map(|combo| {
                    points.iter().map(move |point| {
                        let mut next = combo.clone();
                        next.extend(point.iter().map(|(k, v)| (*k, v)));
                        next
                    })
                })
                .collect();
        }
        let mut cells = Vec::new();
        for combo in combos {
            for repeat in 0..grid.repeats {
                let index = cells.len();
                let mut params = CellParams {
                    seed: experiment.seed + u64::from(repeat),
                    repeat,
                    device: experiment.device.map(|d| d.to_string()),
                    ..Default::default()
                };
                for (key, value) in &combo {
                    params.set(key, value);
                }
                let mut values: Vec<(&'static str, String)> =
                    combo.iter().map(|(k, v)| (*k, v.to_string())).collect();
                if grid.repeats > 1 {
                    values.push(("seed", params.seed.to_string()));
                }
                let id = std::iter::once(format!("{index:03}"))
                    .chain(
                        values
                            .iter()
                            .map(|(k, v)| format!("{k}_{}", folder_safe(v))),
                    )
                    .collect::<Vec<_>>()
                    .join("-");
                cells.push(Cell {
                    index,
                    id,
                    values,
                    params,
                });
            }
        }
        cells
    }
}

impl CellParams {
    fn set(&mut self, key: &str, value: &AxisValue) {
        use AxisValue::{Bool, Float, Int, Text};
        let int32 = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        match (key, value) {
            ("margin", Float(v)) => self.margin = Some(*v),
            ("legacy_version", Bool(v)) => self.legacy_version = Some(*v),
            ("similar_fraction", Float(v)) => self.similar_fraction = Some(*v),
            ("base_lr", Float(v)) => self.base_lr = Some(*v),
            ("momentum", Float(v)) => self.momentum = Some(*v),
            ("weight_decay", Float(v)) => self.weight_decay = Some(*v),
            ("batch_size", Int(v)) => self.batch_size = Some(int32(*v)),
            ("lr_policy", Text(v)) => self.lr_policy = Some(v.clone()),
            ("gamma", Float(v)) => self.gamma = Some(*v),
            ("power", Float(v)) => self.power = Some(*v),
            ("stepsize", Int(v)) => self.stepsize = Some(int32(*v)),
            ("feature_dim", Int(v)) => self.feature_dim = Some(int32(*v)),
            ("seed", Int(v)) => self.seed = *v,
            ("device", Text(v)) => self.device = Some(v.clone()),
            // The experiment parser only builds the pairs above.
            (key, value) => unreachable!("axis {key} with value {value:?}"),
        }
    }
}

/// `v` with anything but letters, digits, `.`, `_` and `-` replaced by `_`.
fn folder_safe(v: &str) -> String {
    v.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}
