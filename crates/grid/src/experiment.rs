//! Experiment files: a TOML description of a training grid, parsed with serde and checked
//! before anything runs (unknown keys with a suggestion, wrong types, empty axes, missing files).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use siamese_layers::Device;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::ranking::{DEFAULT_METRIC, RankMetric};
use crate::schedule::Schedule;
use crate::search::{AxisKind, Dimension, Distribution, Search};

/// The solver used when an experiment names none (this project's siamese example).
pub const DEFAULT_SOLVER: &str = "experiments/siamese/mnist_siamese_solver.prototxt";
/// The net used when an experiment names none.
pub const DEFAULT_NET: &str = "experiments/siamese/mnist_siamese_train_test.prototxt";
/// The full MNIST, used by default once downloaded.
pub const FULL_DATA: &str = "data/mnist";
/// The committed 10,000-digit sample, used by default otherwise.
pub const SAMPLE_DATA: &str = "data/mnist-sample";

/// Keys allowed at the top level of an experiment file.
const TOP_KEYS: &[&str] = &[
    "name",
    "solver",
    "net",
    "data",
    "iterations",
    "test_interval",
    "snapshot_interval",
    "seed",
    "knn_k",
    "device",
    "metric",
    "train_classes",
    "grid",
    "search",
    "schedule",
];
/// Keys allowed in `[grid]`: the axes, in the order cell ids and tables show them, then `repeats`.
pub const AXIS_KEYS: &[&str] = &[
    "margin",
    "legacy_version",
    "similar_fraction",
    "base_lr",
    "momentum",
    "weight_decay",
    "batch_size",
    "lr_policy",
    "gamma",
    "power",
    "stepsize",
    "feature_dim",
    "seed",
    "device",
];
/// The most cells a grid may have: each is a training run, and a few typos (`repeats =
/// 4000000000`) must be an error, not an attempt to hold billions of cells in memory.
pub const MAX_CELLS: u64 = 10_000;
const LR_POLICIES: &[&str] = &[
    "fixed",
    "step",
    "exp",
    "inv",
    "multistep",
    "poly",
    "sigmoid",
];

/// A checked experiment: everything the runner needs, with defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    /// Folder name under the runs folder (defaults to the file's stem).
    pub name: String,
    pub solver: PathBuf,
    pub net: PathBuf,
    pub data: DataSource,
    pub iterations: u32,
    pub test_interval: u32,
    /// How often cells write a snapshot to resume from (defaults to `test_interval`).
    pub snapshot_interval: u32,
    /// Seed of every cell when the grid has no `seed` axis (repeat `r` uses `seed + r`).
    pub seed: u64,
    /// Neighbours used for the k-NN accuracy in summary.csv.
    pub knn_k: usize,
    /// What ranks the cells (sorting, the best combination, early stopping).
    pub metric: RankMetric,
    /// Open-set evaluation: train on these classes only, test on the others (`None`: all).
    pub train_classes: Option<Vec<u8>>,
    /// Where every cell trains (`device = "gpu"`); `None` follows the solver file's
    /// `solver_mode`. A `device` grid axis sets it per cell instead.
    pub device: Option<Device>,
    pub grid: Grid,
    /// Early stopping (`[schedule]`), by `metric`; `None`: every cell trains to the end.
    pub schedule: Option<Schedule>,
}

/// Where the IDX files come from, and why that folder was chosen (said on start).
#[derive(Debug, Clone, PartialEq)]
pub struct DataSource {
    pub dir: PathBuf,
    pub note: String,
}

/// The grid axes, in [`AXIS_KEYS`] order, the sampled search space (each grid combination
/// runs with each of its points), and how many times each combination runs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Grid {
    pub axes: Vec<Axis>,
    pub search: Option<Search>,
    pub repeats: u32,
}

/// One `[grid]` key and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub key: &'static str,
    pub values: Vec<AxisValue>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AxisValue {
    Float(f64),
    Int(u64),
    Bool(bool),
    Text(String),
}

impl fmt::Display for AxisValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AxisValue::Float(v) => write!(f, "{v}"),
            AxisValue::Int(v) => write!(f, "{v}"),
            AxisValue::Bool(v) => write!(f, "{v}"),
            AxisValue::Text(v) => write!(f, "{v}"),
        }
    }
}

/// A bad experiment file: `file:line: message` (line when known).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ExperimentError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ExperimentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExperimentFile {
    name: Option<Spanned<String>>,
    solver: Option<Spanned<PathBuf>>,
    net: Option<Spanned<PathBuf>>,
    data: Option<Spanned<PathBuf>>,
    iterations: Spanned<u32>,
    test_interval: Spanned<u32>,
    snapshot_interval: Option<Spanned<u32>>,
    seed: Option<u64>,
    knn_k: Option<Spanned<usize>>,
    device: Option<Spanned<String>>,
    metric: Option<Spanned<String>>,
    train_classes: Option<Spanned<Vec<u8>>>,
    #[serde(default)]
    grid: GridFile,
    search: Option<Spanned<SearchFile>>,
    schedule: Option<Spanned<ScheduleFile>>,
}

/// `[schedule]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleFile {
    kind: Spanned<String>,
    min_iterations: Option<Spanned<u32>>,
    eta: Option<Spanned<u32>>,
    grace_iterations: Option<Spanned<u32>>,
}

/// `[search]` as written: sampled keys with their distributions, `samples` and `seed`.
type SearchFile = BTreeMap<String, Spanned<toml::Value>>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct GridFile {
    margin: Option<Spanned<Vec<f64>>>,
    legacy_version: Option<Spanned<Vec<bool>>>,
    similar_fraction: Option<Spanned<Vec<f64>>>,
    base_lr: Option<Spanned<Vec<f64>>>,
    momentum: Option<Spanned<Vec<f64>>>,
    weight_decay: Option<Spanned<Vec<f64>>>,
    batch_size: Option<Spanned<Vec<u32>>>,
    lr_policy: Option<Spanned<Vec<String>>>,
    gamma: Option<Spanned<Vec<f64>>>,
    power: Option<Spanned<Vec<f64>>>,
    stepsize: Option<Spanned<Vec<u32>>>,
    feature_dim: Option<Spanned<Vec<u32>>>,
    seed: Option<Spanned<Vec<u64>>>,
    device: Option<Spanned<Vec<String>>>,
    repeats: Option<Spanned<u32>>,
}

impl Experiment {
    /// Reads and checks an experiment file; relative paths inside it are relative to the
    /// current directory (as with Caffe's own files).
    pub fn load(file: &Path) -> Result<Experiment, ExperimentError> {
        let text = std::fs::read_to_string(file).map_err(|e| ExperimentError {
            file: file.to_path_buf(),
            line: None,
            message: format!("cannot read experiment file: {e}"),
        })?;
        Experiment::parse(file, &text)
    }

    /// Checks `text` as the contents of `file` (used for messages and the default name).
    pub fn parse(file: &Path, text: &str) -> Result<Experiment, ExperimentError> {
        let checker = Checker { file, text };
        let table = DeTable::parse(text).map_err(|e| checker.toml_error(&e, None))?;
        checker.check_keys(table.get_ref())?;
        let raw: ExperimentFile =
            toml::from_str(text).map_err(|e| checker.toml_error(&e, Some(table.get_ref())))?;
        checker.build(raw)
    }
}

struct Checker<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Checker<'_> {
    fn error(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ExperimentError {
        let line = span.map(|s| {
            self.text[..s.start.min(self.text.len())]
                .matches('\n')
                .count()
                + 1
        });
        ExperimentError {
            file: self.file.to_path_buf(),
            line,
            message: message.into(),
        }
    }

    /// A toml/serde error, prefixed with the key whose value it is about when that is known.
    fn toml_error(&self, e: &toml::de::Error, table: Option<&DeTable>) -> ExperimentError {
        // A missing top-level key comes with an empty span at 0 (or the whole document): no line.
        let whole =
            |s: &Range<usize>| s.start == 0 && (s.end == 0 || s.end >= self.text.trim_end().len());
        let span = e.span().filter(|s| !whole(s));
        let key = span.as_ref().zip(table).and_then(|(s, t)| key_at(t, s));
        let message = match key {
            Some(key) => format!("{key}: {}", e.message().trim_end()),
            None => e.message().trim_end().to_string(),
        };
        self.error(span, message)
    }

    /// Unknown keys, with the closest known key as a suggestion.
    fn check_keys(&self, table: &DeTable) -> Result<(), ExperimentError> {
        for (key, value) in table {
            let key_str = key.get_ref().as_ref();
            if key_str == "grid" {
                let Some(grid) = value.get_ref().as_table() else {
                    return Err(self.error(Some(key.span()), "`grid` must be a table: [grid]"));
                };
                for (axis, _) in grid {
                    let name = axis.get_ref().as_ref();
                    if !AXIS_KEYS.contains(&name) && name != "repeats" {
                        let known: Vec<&str> =
                            AXIS_KEYS.iter().copied().chain(["repeats"]).collect();
                        let hint = suggestion(name, &known);
                        let msg = format!("unknown key `{name}` in [grid]{hint}");
                        return Err(self.error(Some(axis.span()), msg));
                    }
                }
            } else if key_str == "search" {
                self.check_search_keys(key, value)?;
            } else if !TOP_KEYS.contains(&key_str) {
                let msg = if AXIS_KEYS.contains(&key_str) || key_str == "repeats" {
                    format!("`{key_str}` belongs in [grid], as a list of values")
                } else {
                    format!("unknown key `{key_str}`{}", suggestion(key_str, TOP_KEYS))
                };
                return Err(self.error(Some(key.span()), msg));
            }
        }
        Ok(())
    }

    /// `[search]` is a table of axis keys (not `seed`, which seeds the draws), `samples` and
    /// `seed`.
    fn check_search_keys(
        &self,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        value: &Spanned<DeValue<'_>>,
    ) -> Result<(), ExperimentError> {
        let Some(table) = value.get_ref().as_table() else {
            return Err(self.error(Some(key.span()), "`search` must be a table: [search]"));
        };
        let known: Vec<&str> = AXIS_KEYS
            .iter()
            .copied()
            .filter(|k| *k != "seed")
            .chain(SEARCH_KEYS.iter().copied())
            .collect();
        for (name, _) in table {
            if !known.contains(&name.get_ref().as_ref()) {
                let hint = suggestion(name.get_ref(), &known);
                let msg = format!("unknown key `{}` in [search]{hint}", name.get_ref());
                return Err(self.error(Some(name.span()), msg));
            }
        }
        Ok(())
    }

    fn build(&self, raw: ExperimentFile) -> Result<Experiment, ExperimentError> {
        let name = self.name(raw.name)?;
        let solver = self.existing_file("solver", raw.solver, DEFAULT_SOLVER)?;
        let net = self.existing_file("net", raw.net, DEFAULT_NET)?;
        let data = self.data_source(raw.data)?;
        let iterations = self.positive("iterations", raw.iterations)?;
        let test_interval = self.positive("test_interval", raw.test_interval)?;
        let snapshot_interval = match raw.snapshot_interval {
            Some(s) => self.positive("snapshot_interval", s)?,
            None => test_interval,
        };
        let knn_k = match raw.knn_k {
            Some(k) if *k.get_ref() == 0 => {
                return Err(self.error(Some(k.span()), "knn_k: must be at least 1"));
            }
            Some(k) => k.into_inner(),
            None => 5,
        };
        let device = self.device(raw.device, raw.grid.device.is_some())?;
        let metric_span = raw.metric.as_ref().map(|m| m.span());
        let metric = self.metric(raw.metric)?;
        let train_classes = self.train_classes(raw.train_classes)?;
        let seed = raw.seed.unwrap_or(1);
        let grid = self.grid(raw.grid, raw.search, seed)?;
        let schedule = match raw.schedule {
            Some(s) => Some(self.schedule(s, iterations, test_interval, &metric, metric_span)?),
            None => None,
        };
        Ok(Experiment {
            name,
            solver,
            net,
            data,
            iterations,
            test_interval,
            snapshot_interval,
            seed,
            knn_k,
            metric,
            train_classes,
            device,
            grid,
            schedule,
        })
    }

    /// `[schedule]`: its kind and that kind's keys, checked against the experiment's length,
    /// its tests (a rung is decided on a test's metric) and its metric.
    fn schedule(
        &self,
        table: Spanned<ScheduleFile>,
        iterations: u32,
        test_interval: u32,
        metric: &RankMetric,
        metric_span: Option<Range<usize>>,
    ) -> Result<Schedule, ExperimentError> {
        let whole = table.span();
        let raw = table.into_inner();
        let kind_span = Some(raw.kind.span());
        let schedule = match raw.kind.get_ref().as_str() {
            "asha" => self.asha(&raw, whole.clone(), iterations, test_interval)?,
            "median" => self.median(&raw, iterations, test_interval)?,
            other => {
                let msg = format!(
                    "[schedule] kind `{other}`: expected asha or median{}",
                    suggestion(other, &["asha", "median"])
                );
                return Err(self.error(kind_span, msg));
            }
        };
        if metric.key != "test_loss" {
            let msg = format!(
                "metric `{}`: [schedule] decides at tests, where only test_loss is recorded: set metric = \"test_loss\"",
                metric.key
            );
            return Err(self.error(metric_span.or(Some(whole)), msg));
        }
        Ok(schedule)
    }

    /// `kind = "asha"`: `min_iterations` (required) below `iterations`, `eta` (default 3) at
    /// least 2, every rung a test iteration.
    fn asha(
        &self,
        raw: &ScheduleFile,
        whole: Range<usize>,
        iterations: u32,
        test_interval: u32,
    ) -> Result<Schedule, ExperimentError> {
        if let Some(g) = &raw.grace_iterations {
            let msg = "[schedule] grace_iterations: belongs to kind = \"median\"; asha starts at min_iterations";
            return Err(self.error(Some(g.span()), msg));
        }
        let Some(min) = &raw.min_iterations else {
            let msg = "[schedule] min_iterations: missing: the first rung of asha";
            return Err(self.error(Some(whole), msg));
        };
        let min_iterations = *min.get_ref();
        if min_iterations == 0 || min_iterations >= iterations {
            let msg = format!(
                "[schedule] min_iterations = {min_iterations}: expected at least 1 and below iterations ({iterations}), so that there is a rung to stop at"
            );
            return Err(self.error(Some(min.span()), msg));
        }
        let eta = match &raw.eta {
            Some(e) if *e.get_ref() < 2 => {
                let msg = format!(
                    "[schedule] eta = {}: expected at least 2 (a rung keeps the top 1/eta)",
                    e.get_ref()
                );
                return Err(self.error(Some(e.span()), msg));
            }
            Some(e) => *e.get_ref(),
            None => 3,
        };
        let schedule = Schedule::Asha {
            min_iterations,
            eta,
        };
        if let Some(rung) = schedule
            .rungs(iterations)
            .into_iter()
            .find(|r| !r.is_multiple_of(test_interval))
        {
            let msg = format!(
                "[schedule] rung {rung} (min_iterations · eta^k) is not a test iteration: make min_iterations and eta give multiples of test_interval ({test_interval})"
            );
            return Err(self.error(Some(min.span()), msg));
        }
        Ok(schedule)
    }

    /// `kind = "median"`: `grace_iterations` (default 0) below `iterations`.
    fn median(
        &self,
        raw: &ScheduleFile,
        iterations: u32,
        test_interval: u32,
    ) -> Result<Schedule, ExperimentError> {
        for (key, given) in [("min_iterations", &raw.min_iterations), ("eta", &raw.eta)] {
            if let Some(v) = given {
                let msg = format!(
                    "[schedule] {key}: belongs to kind = \"asha\"; median uses grace_iterations"
                );
                return Err(self.error(Some(v.span()), msg));
            }
        }
        let grace_iterations = raw.grace_iterations.as_ref().map_or(0, |g| *g.get_ref());
        if let Some(g) = &raw.grace_iterations
            && grace_iterations.max(test_interval) >= iterations
        {
            let msg = format!(
                "[schedule] grace_iterations = {grace_iterations}: expected below iterations ({iterations}) with a test before the end, so that there is a test to stop at"
            );
            return Err(self.error(Some(g.span()), msg));
        }
        Ok(Schedule::Median { grace_iterations })
    }

    /// `metric`: a loss or one of siamese-report's ranked metrics (default MAP@R).
    fn metric(&self, given: Option<Spanned<String>>) -> Result<RankMetric, ExperimentError> {
        let Some(m) = given else {
            return Ok(RankMetric::named(DEFAULT_METRIC).expect("the default metric exists"));
        };
        RankMetric::named(m.get_ref()).ok_or_else(|| {
            let known: Vec<&str> = RankMetric::all().iter().map(|m| m.key).collect();
            let msg = format!(
                "metric `{}`: expected one of {}{}",
                m.get_ref(),
                known.join(", "),
                suggestion(m.get_ref(), &known)
            );
            self.error(Some(m.span()), msg)
        })
    }

    /// `train_classes`: at least one class, none twice.
    fn train_classes(
        &self,
        given: Option<Spanned<Vec<u8>>>,
    ) -> Result<Option<Vec<u8>>, ExperimentError> {
        let Some(c) = given else {
            return Ok(None);
        };
        let classes = c.get_ref();
        if classes.is_empty() {
            let msg = "train_classes: list at least one class (e.g. [0, 1, 2, 3, 4])";
            return Err(self.error(Some(c.span()), msg));
        }
        if let Some(twice) = classes
            .iter()
            .find(|&&x| classes.iter().filter(|&&y| y == x).count() > 1)
        {
            let msg = format!("train_classes: class {twice} is listed twice");
            return Err(self.error(Some(c.span()), msg));
        }
        Ok(Some(c.into_inner()))
    }

    /// The experiment's name: the file's, else the file's stem. It names a folder.
    fn name(&self, given: Option<Spanned<String>>) -> Result<String, ExperimentError> {
        let Some(n) = given else {
            return Ok(self
                .file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default());
        };
        let valid = !n.get_ref().is_empty()
            && n.get_ref()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            && !n.get_ref().starts_with('.');
        if !valid {
            let msg = format!(
                "name `{}`: use letters, digits, `.`, `_` and `-` (it names a folder)",
                n.get_ref()
            );
            return Err(self.error(Some(n.span()), msg));
        }
        Ok(n.into_inner())
    }

    /// The top-level `device` (only when the grid has no `device` axis).
    fn device(
        &self,
        given: Option<Spanned<String>>,
        on_grid: bool,
    ) -> Result<Option<Device>, ExperimentError> {
        match given {
            Some(d) if on_grid => {
                let msg = "`device` is set here and as a [grid] axis: keep one";
                Err(self.error(Some(d.span()), msg))
            }
            Some(d) => match d.get_ref().parse::<Device>() {
                Ok(device) => Ok(Some(device)),
                Err(_) => Err(self.error(Some(d.span()), device_expected(d.get_ref()))),
            },
            None => Ok(None),
        }
    }

    fn positive(&self, key: &str, value: Spanned<u32>) -> Result<u32, ExperimentError> {
        if *value.get_ref() == 0 {
            return Err(self.error(Some(value.span()), format!("{key}: must be at least 1")));
        }
        Ok(value.into_inner())
    }

    fn existing_file(
        &self,
        key: &str,
        given: Option<Spanned<PathBuf>>,
        default: &str,
    ) -> Result<PathBuf, ExperimentError> {
        let (path, span) = match given {
            Some(p) => (p.get_ref().clone(), Some(p.span())),
            None => (PathBuf::from(default), None),
        };
        if !path.is_file() {
            let how = if span.is_some() {
                ""
            } else {
                " (the default; set `"
            };
            let tail = if span.is_some() {
                String::new()
            } else {
                format!("{key} = \"...\"` to use another)")
            };
            let what = siamese_files::not_a_file(&path).map_or("not found".to_string(), |found| {
                format!("{found}, expected a file")
            });
            let msg = format!("{key} file {} {what}{how}{tail}", path.display());
            return Err(self.error(span, msg));
        }
        Ok(path)
    }

    fn data_source(&self, given: Option<Spanned<PathBuf>>) -> Result<DataSource, ExperimentError> {
        if let Some(dir) = given {
            if !has_idx_files(dir.get_ref()) {
                let msg = format!(
                    "data folder {} has no train-images-idx3-ubyte(.gz): expected MNIST's IDX files",
                    dir.get_ref().display()
                );
                return Err(self.error(Some(dir.span()), msg));
            }
            let note = format!(
                "data: {} (from the experiment file)",
                dir.get_ref().display()
            );
            return Ok(DataSource {
                dir: dir.into_inner(),
                note,
            });
        }
        if has_idx_files(Path::new(FULL_DATA)) {
            let note = format!("data: {FULL_DATA} (the full MNIST)");
            return Ok(DataSource {
                dir: FULL_DATA.into(),
                note,
            });
        }
        if has_idx_files(Path::new(SAMPLE_DATA)) {
            let note = format!(
                "data: {SAMPLE_DATA} (the 10,000-digit sample; {FULL_DATA} is not downloaded)"
            );
            return Ok(DataSource {
                dir: SAMPLE_DATA.into(),
                note,
            });
        }
        Err(self.error(None, format!("no data: neither {FULL_DATA} nor {SAMPLE_DATA} holds MNIST's IDX files; set `data = \"...\"`")))
    }

    /// The `[grid]` table: every axis checked value by value, the repeats, the `[search]`
    /// table, and the size.
    fn grid(
        &self,
        raw: GridFile,
        search: Option<Spanned<SearchFile>>,
        experiment_seed: u64,
    ) -> Result<Grid, ExperimentError> {
        let seed_given = raw.seed.is_some();
        let repeats = raw.repeats.clone();
        let mut axes = Vec::new();
        for (key, values, check) in raw.axes() {
            if let Some(values) = values {
                axes.push(self.axis(key, values, check)?);
            }
        }
        let repeats = self.repeats(repeats, seed_given)?;
        let search_span = search.as_ref().map(|t| t.span());
        let search = match search {
            Some(table) => Some(self.search(table, &axes, experiment_seed)?),
            None => None,
        };
        let samples = search.as_ref().map_or(1, |s| s.samples);
        self.check_cell_count(&axes, repeats, samples)?;
        if let (Some(search), Some(span)) = (&search, search_span) {
            self.check_samples(search, span)?;
        }
        Ok(Grid {
            axes,
            search,
            repeats,
        })
    }

    /// `[search]`: each sampled key (an axis not on the grid) with its distribution, in
    /// [`AXIS_KEYS`] order; `samples` (required, at least 1) and `seed` (default: the
    /// experiment's).
    fn search(
        &self,
        table: Spanned<SearchFile>,
        grid_axes: &[Axis],
        experiment_seed: u64,
    ) -> Result<Search, ExperimentError> {
        let whole = Some(table.span());
        let mut table = table.into_inner();
        let samples = table.remove("samples");
        let seed = table.remove("seed");
        let mut dimensions = Vec::new();
        for key in AXIS_KEYS.iter().copied().filter(|k| *k != "seed") {
            let Some(value) = table.get(key) else {
                continue;
            };
            let span = Some(value.span());
            if grid_axes.iter().any(|a| a.key == key) {
                let msg = format!("`{key}` is in [grid] and in [search]: keep one");
                return Err(self.error(span, msg));
            }
            let toml::Value::String(text) = value.get_ref() else {
                let msg = format!(
                    "[search] {key}: expected a distribution as a string, e.g. \"log_uniform(1e-4, 0.1)\" or \"choice([1, 2])\""
                );
                return Err(self.error(span, msg));
            };
            let distribution =
                Distribution::parse(text, axis_kind(key), &|list| choice_values(key, list))
                    .map_err(|e| self.error(span.clone(), format!("[search] {key}: {e}")))?;
            dimensions.push(Dimension { key, distribution });
        }
        let Some(samples) = samples else {
            return Err(self.error(
                whole.clone(),
                "[search] samples: missing: how many points to draw",
            ));
        };
        let samples = match samples.get_ref() {
            toml::Value::Integer(n) if (1..=i64::from(u32::MAX)).contains(n) => *n as u32,
            _ => {
                let msg = "[search] samples: expected a whole number of at least 1";
                return Err(self.error(Some(samples.span()), msg));
            }
        };
        let seed = match seed.as_ref().map(|s| (s.get_ref(), s.span())) {
            None => experiment_seed,
            Some((toml::Value::Integer(n), _)) if *n >= 0 => *n as u64,
            Some((_, span)) => {
                let msg = "[search] seed: expected a whole number of at least 0";
                return Err(self.error(Some(span), msg));
            }
        };
        if dimensions.is_empty() {
            let msg =
                "[search] samples nothing: add a key such as base_lr = \"log_uniform(1e-4, 0.1)\"";
            return Err(self.error(whole, msg));
        }
        Ok(Search {
            dimensions,
            samples,
            seed,
        })
    }

    /// Every drawn value meets its key's rule (e.g. momentum below 1).
    fn check_samples(&self, search: &Search, span: Range<usize>) -> Result<(), ExperimentError> {
        for (sample, point) in search.points().iter().enumerate() {
            for (key, value) in point {
                if let Some(expected) = value_check(key)(value) {
                    let msg = format!(
                        "[search] {key}: sample {sample} drew {value}, expected {expected}: narrow the range"
                    );
                    return Err(self.error(Some(span.clone()), msg));
                }
            }
        }
        Ok(())
    }

    /// One axis: a list of at least one value, each meeting `check`, none twice.
    fn axis(
        &self,
        key: &'static str,
        values: Spanned<Vec<AxisValue>>,
        check: ValueCheck,
    ) -> Result<Axis, ExperimentError> {
        let span = values.span();
        if values.get_ref().is_empty() {
            return Err(self.error(
                Some(span),
                format!("[grid] {key}: empty list; give at least one value or remove the key"),
            ));
        }
        let mut seen = BTreeSet::new();
        for v in values.get_ref() {
            if let Some(expected) = check(v) {
                return Err(self.error(
                    Some(span),
                    format!("[grid] {key}: value {v}: expected {expected}"),
                ));
            }
            if !seen.insert(v.to_string()) {
                return Err(self.error(
                    Some(span),
                    format!("[grid] {key}: value {v} is listed twice"),
                ));
            }
        }
        Ok(Axis {
            key,
            values: values.into_inner(),
        })
    }

    /// `repeats` (1 when not given): at least 1, and not beside a `seed` axis.
    fn repeats(
        &self,
        given: Option<Spanned<u32>>,
        seed_axis: bool,
    ) -> Result<u32, ExperimentError> {
        match given {
            Some(r) if *r.get_ref() == 0 => {
                Err(self.error(Some(r.span()), "[grid] repeats: must be at least 1"))
            }
            Some(r) if *r.get_ref() > 1 && seed_axis => Err(self.error(
                Some(r.span()),
                "[grid] has both `seed` and `repeats`: list the seeds or give repeats, not both",
            )),
            Some(r) => Ok(r.into_inner()),
            None => Ok(1),
        }
    }

    /// At most [`MAX_CELLS`] cells (the product of the axis sizes, the repeats and the
    /// search samples).
    fn check_cell_count(
        &self,
        axes: &[Axis],
        repeats: u32,
        samples: u32,
    ) -> Result<(), ExperimentError> {
        let cells = axes
            .iter()
            .try_fold(u64::from(repeats) * u64::from(samples), |n, a| {
                n.checked_mul(a.values.len() as u64)
            })
            .filter(|&n| n <= MAX_CELLS);
        if cells.is_some() {
            return Ok(());
        }
        let sizes: Vec<String> = axes
            .iter()
            .map(|a| format!("{} {}", a.values.len(), a.key))
            .chain((samples > 1).then(|| format!("{samples} search samples")))
            .chain((repeats > 1).then(|| format!("{repeats} repeats")))
            .collect();
        let msg = format!(
            "[grid] makes too many cells ({}), expected at most {MAX_CELLS}",
            sizes.join(" x ")
        );
        Err(self.error(None, msg))
    }
}

/// Keys of `[search]` besides the axes it samples.
const SEARCH_KEYS: &[&str] = &["samples", "seed"];

/// The rule of axis `key`'s values (as `[grid]` checks them).
fn value_check(key: &str) -> ValueCheck {
    GridFile::default()
        .axes()
        .into_iter()
        .find(|(k, _, _)| *k == key)
        .map_or(|_| None, |(_, _, check)| check)
}

/// Which values axis `key` takes.
fn axis_kind(key: &str) -> AxisKind {
    match key {
        "batch_size" | "stepsize" | "feature_dim" => AxisKind::Whole,
        "legacy_version" | "lr_policy" | "device" => AxisKind::Other,
        _ => AxisKind::Real,
    }
}

/// The list of `choice([...])` as values of axis `key`, each meeting its rule, none twice.
fn choice_values(key: &str, list: &str) -> Result<Vec<AxisValue>, String> {
    let table: toml::Table = toml::from_str(&format!("v = {list}"))
        .map_err(|_| format!("choice({list}): expected a list such as [1, 2, 4]"))?;
    let Some(toml::Value::Array(items)) = table.get("v") else {
        return Err(format!("choice({list}): expected a list such as [1, 2, 4]"));
    };
    let mut values: Vec<AxisValue> = Vec::new();
    for item in items {
        let value = match (axis_kind(key), item) {
            (AxisKind::Real, toml::Value::Float(x)) => AxisValue::Float(*x),
            (AxisKind::Real, toml::Value::Integer(x)) => AxisValue::Float(*x as f64),
            (AxisKind::Whole, toml::Value::Integer(x)) if *x >= 0 => AxisValue::Int(*x as u64),
            (AxisKind::Other, toml::Value::Boolean(b)) if key == "legacy_version" => {
                AxisValue::Bool(*b)
            }
            (AxisKind::Other, toml::Value::String(t)) if key == "device" => {
                canonical_device(t.clone())
            }
            (AxisKind::Other, toml::Value::String(t)) if key == "lr_policy" => {
                AxisValue::Text(t.clone())
            }
            (_, other) => return Err(format!("choice: value {other} does not fit this key")),
        };
        if let Some(expected) = value_check(key)(&value) {
            return Err(format!("choice: value {value}: expected {expected}"));
        }
        if values.contains(&value) {
            return Err(format!("choice: value {value} is listed twice"));
        }
        values.push(value);
    }
    Ok(values)
}

/// What a grid value must be: `None` when it is fine, else what was expected.
type ValueCheck = fn(&AxisValue) -> Option<&'static str>;
/// A `[grid]` key's values as the file gives them (`None` when absent).
type GivenValues = Option<Spanned<Vec<AxisValue>>>;

impl GridFile {
    /// Each axis key in [`AXIS_KEYS`] order, its values (when given) and their rule.
    fn axes(self) -> Vec<(&'static str, GivenValues, ValueCheck)> {
        use AxisValue::{Bool, Float, Int, Text};
        let int = |x: u32| Int(x.into());
        vec![
            ("margin", map(self.margin, Float), above_zero),
            ("legacy_version", map(self.legacy_version, Bool), |_| None),
            ("similar_fraction", map(self.similar_fraction, Float), |v| {
                float_where(
                    v,
                    |x| (0.0..=1.0).contains(&x),
                    "a fraction between 0 and 1",
                )
            }),
            ("base_lr", map(self.base_lr, Float), above_zero),
            ("momentum", map(self.momentum, Float), |v| {
                float_where(v, |x| (0.0..1.0).contains(&x), "a number in [0, 1)")
            }),
            ("weight_decay", map(self.weight_decay, Float), |v| {
                float_where(v, |x| x.is_finite() && x >= 0.0, "a number of at least 0")
            }),
            ("batch_size", map(self.batch_size, int), positive_int),
            ("lr_policy", map(self.lr_policy, Text), |v| match v {
                Text(p) if LR_POLICIES.contains(&p.as_str()) => None,
                _ => Some("one of fixed, step, exp, inv, multistep, poly, sigmoid"),
            }),
            ("gamma", map(self.gamma, Float), above_zero),
            ("power", map(self.power, Float), |v| {
                float_where(v, f64::is_finite, "a finite number")
            }),
            ("stepsize", map(self.stepsize, int), positive_int),
            ("feature_dim", map(self.feature_dim, int), positive_int),
            ("seed", map(self.seed, Int), |_| None),
            ("device", map(self.device, canonical_device), |v| match v {
                Text(d) if d.parse::<Device>().is_ok() => None,
                _ => Some("cpu, gpu or gpu:N (N a GPU ordinal)"),
            }),
        ]
    }
}

/// The values of a `[grid]` key as [`AxisValue`]s, keeping the key's span.
fn map<T>(
    v: Option<Spanned<Vec<T>>>,
    f: impl Fn(T) -> AxisValue,
) -> Option<Spanned<Vec<AxisValue>>> {
    v.map(|s| {
        let span = s.span();
        Spanned::new(span, s.into_inner().into_iter().map(f).collect())
    })
}

/// A device written as `Device` shows it (`gpu` → `gpu:0`), so equal devices count as
/// repeats; other text is left for the check to refuse.
fn canonical_device(v: String) -> AxisValue {
    match v.parse::<Device>() {
        Ok(d) => AxisValue::Text(d.to_string()),
        Err(_) => AxisValue::Text(v),
    }
}

fn float_where(v: &AxisValue, ok: fn(f64) -> bool, expected: &'static str) -> Option<&'static str> {
    match v {
        AxisValue::Float(x) if ok(*x) => None,
        _ => Some(expected),
    }
}

fn above_zero(v: &AxisValue) -> Option<&'static str> {
    float_where(v, |x| x.is_finite() && x > 0.0, "a number above 0")
}

fn positive_int(v: &AxisValue) -> Option<&'static str> {
    match v {
        AxisValue::Int(0) => Some("a whole number of at least 1"),
        _ => None,
    }
}

/// The message for a `device` value that is not a device.
fn device_expected(value: &str) -> String {
    format!("device \"{value}\": expected cpu, gpu or gpu:N (N a GPU ordinal)")
}

/// " did you mean `x`?" for the known key closest to `key`, or nothing when none is close.
fn suggestion(key: &str, known: &[&str]) -> String {
    known
        .iter()
        .map(|k| (strsim::levenshtein(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min()
        .map(|(_, k)| format!(", did you mean `{k}`?"))
        .unwrap_or_default()
}

/// The key (`name` or `[grid] name`) whose entry (key through value) contains `span`.
fn key_at(table: &DeTable, span: &Range<usize>) -> Option<String> {
    let contains =
        |k: Range<usize>, v: Range<usize>| k.start <= span.start && span.end <= v.end.max(k.end);
    for (key, value) in table {
        if let DeValue::Table(inner) = value.get_ref() {
            for (k, v) in inner {
                if contains(k.span(), v.span()) {
                    return Some(format!("[{}] {}", key.get_ref(), k.get_ref()));
                }
            }
        }
        if contains(key.span(), value.span()) {
            return Some(key.get_ref().to_string());
        }
    }
    None
}

/// Whether `dir` holds MNIST's training images (plain or gzipped).
fn has_idx_files(dir: &Path) -> bool {
    ["train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"]
        .iter()
        .any(|f| dir.join(f).is_file())
}
