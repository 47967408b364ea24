//! The training loop, as Caffe's `Solver::Solve`/`Step`/`Test`: forward/backward with
//! iter_size accumulation, periodic tests, lr policy and update rule, snapshots and resume.

use std::path::{Path, PathBuf};
use std::time::Instant;

use siamese_layers::{Device, LearnableParam, MemoryPlan, Net};
use siamese_net::{LayerConfig, NetSpec};
use siamese_proto::{Message, NetParameter, Phase, SolverParameter, SolverState};

use crate::SolverError;
use crate::control::{SolverAction, SolverControl};
use crate::device::DeviceChoice;
use crate::lr_policy::LearningRate;
use crate::smoothing::SmoothedLoss;
use crate::snapshot::{self, snapshot_path, write_atomically};
use crate::update::{ParamSlot, UpdateRule};

/// One value of a net output blob (a blob with several values gives several outputs).
#[derive(Debug, Clone, PartialEq)]
pub struct NetOutput {
    pub name: String,
    pub value: f32,
    /// The blob's loss weight (0 for outputs that are not losses).
    pub loss_weight: f32,
}

/// What the solver reports while it runs; front ends turn these into lines, rows or frames.
#[derive(Debug, Clone, PartialEq)]
pub enum SolverEvent {
    /// Iteration `iter` was computed (before its update is applied). `display` is true on
    /// Caffe's display iterations, and only then are `outputs` filled.
    Iteration {
        iter: i32,
        lr: f32,
        loss: f32,
        smoothed_loss: f32,
        display: bool,
        outputs: Vec<NetOutput>,
        /// Wall time of this iteration (forward, backward, update), in milliseconds.
        ms: f64,
    },
    /// After the last iteration, when `max_iter` falls on a display iteration: one more
    /// forward pass on the final weights (Caffe's closing `Iteration N, loss = X` line).
    FinalLoss {
        iter: i32,
        lr: f32,
        loss: f32,
        smoothed_loss: f32,
    },
    /// Test net `net_id` was run `test_iter` times at iteration `iter`; the means.
    Test {
        iter: i32,
        net_id: usize,
        outputs: Vec<NetOutput>,
    },
    /// Snapshot files were written.
    Snapshot {
        iter: i32,
        caffemodel: PathBuf,
        solverstate: PathBuf,
    },
    /// The run ended: at `max_iter`, or early on a stop request.
    Finished { iter: i32, stopped_early: bool },
    /// Something the user should know that is not an error, reported once before the first
    /// iteration or test: e.g. that the solver file asks for a GPU that cannot be used here
    /// ("solver_mode GPU (device_id 0): <reason>; running on the CPU").
    Notice(String),
}

struct TestNet {
    net: Net,
    spec: NetSpec,
    iters: i32,
}

/// Caffe's SGD-family solver over a train net and its test nets.
pub struct Solver {
    param: SolverParameter,
    net: Net,
    spec: NetSpec,
    test_nets: Vec<TestNet>,
    rule: UpdateRule,
    lr: LearningRate,
    /// Element counts of the update history blobs (the history itself lives with the net).
    history_counts: Vec<usize>,
    /// What the nets and history were reckoned to need before they were built.
    memory_plan: MemoryPlan,
    /// Reported through [`SolverEvent::Notice`] by the next call that takes events.
    notice: Option<String>,
    iter: i32,
    current_step: i32,
    smoothed: SmoothedLoss,
    seed: u64,
    seed_from_clock: bool,
    snapshot_prefix: String,
    control: SolverControl,
    last_snapshot: Option<PathBuf>,
    stop_requested: bool,
}

impl Solver {
    /// Reads the solver file, resolves the nets and snapshot prefix it names (relative to the
    /// working folder when they exist there, else to the solver's folder), builds the nets.
    pub fn from_file(path: &Path) -> Result<Solver, SolverError> {
        let param = siamese_net::load_solver(path).map_err(net_error)?;
        Solver::new(param, Some(path))
    }

    /// Builds the solver of `param`; `solver_file` is where it was read from (for relative
    /// paths and the default snapshot prefix). Use this to change settings (e.g. `max_iter`)
    /// before building. The device is the file's ([`DeviceChoice::FromFile`]).
    pub fn new(param: SolverParameter, solver_file: Option<&Path>) -> Result<Solver, SolverError> {
        Solver::with_device(param, solver_file, DeviceChoice::FromFile)
    }

    /// As [`Solver::new`], on the device `choice` gives: an explicit device must be usable
    /// (else the error says why); the file's GPU falls back to the CPU with a notice.
    pub fn with_device(
        param: SolverParameter,
        solver_file: Option<&Path>,
        choice: DeviceChoice,
    ) -> Result<Solver, SolverError> {
        let in_file = |e: SolverError| match solver_file {
            Some(f) => e.in_file(f),
            None => e,
        };
        let decision = choice.resolve(&param).map_err(in_file)?;
        let device = decision.device;
        let rule = UpdateRule::from_param(&param).map_err(in_file)?;
        let lr = LearningRate::from_param(&param).map_err(in_file)?;
        let (seed, seed_from_clock) = match param.random_seed() {
            s if s >= 0 => (s as u64, false),
            _ => (clock_seed(), true),
        };
        crate::ranges::check(&param).map_err(in_file)?;
        let TrainingSpecs {
            train: spec,
            tests: test_specs,
            memory_plan,
            net_file,
        } = training_specs(&param, solver_file, &rule)?;
        memory_plan
            .check_now("training (train and test nets, solver history)")
            .map_err(|error| SolverError::Memory {
                path: net_file,
                error: Box::new(error),
            })?;
        let mut net = Net::on_device(&spec, seed, device).map_err(layer_error)?;
        let mut test_nets = Vec::new();
        for (spec, &iters) in test_specs.into_iter().zip(&param.test_iter) {
            let net = Net::on_device(&spec, seed, device).map_err(layer_error)?;
            test_nets.push(TestNet { net, spec, iters });
        }
        let counts: Vec<usize> = net
            .learnable_params()
            .iter()
            .map(|p| p.blob.data.len())
            .collect();
        let history = rule.new_history(&counts);
        let history_counts = history.iter().map(Vec::len).collect();
        net.set_update_history(history).map_err(layer_error)?;
        let snapshot_prefix = snapshot_prefix(&param, solver_file);
        Ok(Solver {
            smoothed: SmoothedLoss::new(param.average_loss(), 0),
            param,
            net,
            spec,
            test_nets,
            rule,
            lr,
            history_counts,
            memory_plan,
            notice: decision.notice,
            iter: 0,
            current_step: 0,
            seed,
            seed_from_clock,
            snapshot_prefix,
            control: SolverControl::new(),
            last_snapshot: None,
            stop_requested: false,
        })
    }

    /// The flags this solver polls between iterations; clone it to a signal handler or UI.
    pub fn control(&self) -> SolverControl {
        self.control.clone()
    }

    /// Replaces the request flags (e.g. with ones shared by several solvers).
    pub fn set_control(&mut self, control: SolverControl) {
        self.control = control;
    }

    /// The seed given to the nets: `random_seed`, or one taken from the clock when it is -1.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Whether [`Solver::seed`] came from the clock (`random_seed` unset or negative).
    pub fn seed_from_clock(&self) -> bool {
        self.seed_from_clock
    }

    /// Updates done so far.
    pub fn iter(&self) -> i32 {
        self.iter
    }

    /// The solver settings.
    pub fn param(&self) -> &SolverParameter {
        &self.param
    }

    /// The train net.
    pub fn net(&self) -> &Net {
        &self.net
    }

    /// The train net's spec (layers, outputs, loss weights).
    pub fn spec(&self) -> &NetSpec {
        &self.spec
    }

    /// Where the nets run.
    pub fn device(&self) -> Device {
        self.net.device()
    }

    /// What training with `param` would hold, reckoned without allocating (the nets are
    /// checked as [`Solver::new`] does), and the net file to name when it does not fit.
    pub fn plan_memory(
        param: &SolverParameter,
        solver_file: Option<&Path>,
    ) -> Result<(MemoryPlan, Option<PathBuf>), SolverError> {
        let in_file = |e: SolverError| match solver_file {
            Some(f) => e.in_file(f),
            None => e,
        };
        let rule = UpdateRule::from_param(param).map_err(in_file)?;
        let specs = training_specs(param, solver_file, &rule)?;
        Ok((specs.memory_plan, specs.net_file))
    }

    /// What the train and test nets and the update history were reckoned to need (checked
    /// against the memory this process could use before anything was allocated).
    pub fn memory_plan(&self) -> &MemoryPlan {
        &self.memory_plan
    }

    /// The update history in Caffe's order (see [`UpdateRule::new_history`]).
    pub fn history(&self) -> Result<Vec<Vec<f32>>, SolverError> {
        self.net.update_history().map_err(layer_error)
    }

    /// `<prefix>` of the snapshot files, resolved.
    pub fn snapshot_prefix(&self) -> &str {
        &self.snapshot_prefix
    }

    /// Removes the temporary files that snapshots cut short by a kill left in the snapshot
    /// folder (see [`siamese_files::remove_stale_temp_files`]); call it before training starts.
    /// Returns the removed paths, for the log.
    pub fn remove_stale_temp_files(&self) -> Result<Vec<PathBuf>, SolverError> {
        let prefix = Path::new(&self.snapshot_prefix);
        let dir = match prefix.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        Ok(siamese_files::remove_stale_temp_files(dir)?)
    }

    /// The solverstate of the last snapshot written, if any.
    pub fn last_snapshot(&self) -> Option<&Path> {
        self.last_snapshot.as_deref()
    }

    /// Copies trained layers from a `.caffemodel` (fine-tuning; `--weights`).
    pub fn load_weights(&mut self, caffemodel: &Path) -> Result<(), SolverError> {
        self.net.load_caffemodel(caffemodel).map_err(layer_error)
    }

    /// Resumes from a `.solverstate`: iteration, lr step, history, the weights it names
    /// (`learned_net`), and data cursors derived from the iteration.
    pub fn restore(&mut self, solverstate: &Path) -> Result<(), SolverError> {
        let state = snapshot::read_solver_state(solverstate)?;
        let history = snapshot::history_from_state(solverstate, &state, &self.history_counts)?;
        if state.iter() < 0 || state.current_step() < 0 {
            return Err(SolverError::Format {
                path: solverstate.to_path_buf(),
                message: format!(
                    "iter {} and current_step {}, expected counts of at least 0",
                    state.iter(),
                    state.current_step()
                ),
            });
        }
        if let Some(learned) = state.learned_net.as_deref() {
            let model = snapshot::learned_net_path(solverstate, learned);
            self.net.load_caffemodel(&model).map_err(layer_error)?;
        }
        self.net.set_update_history(history).map_err(layer_error)?;
        self.iter = state.iter();
        self.current_step = state.current_step();
        self.position_data()
    }

    /// Trains to `max_iter` like Caffe's `Solve`: steps, then a final snapshot (always when
    /// stopped early, else when `snapshot_after_train` and not just written), then a final
    /// display forward and test when `max_iter` falls on their intervals.
    pub fn solve(&mut self, on_event: &mut dyn FnMut(&SolverEvent)) -> Result<(), SolverError> {
        self.report_notice(on_event);
        self.step(self.param.max_iter() - self.iter, on_event)?;
        let just_written = self.param.snapshot() > 0 && self.iter % self.param.snapshot() == 0;
        let snapshot_now =
            self.stop_requested || (self.param.snapshot_after_train() && !just_written);
        if snapshot_now && self.last_snapshot_iter() != Some(self.iter) {
            self.snapshot(on_event)?;
        }
        if self.stop_requested {
            on_event(&SolverEvent::Finished {
                iter: self.iter,
                stopped_early: true,
            });
            return Ok(());
        }
        let display = self.param.display();
        if display > 0 && self.iter % display == 0 {
            let loss = self.net.forward().map_err(layer_error)?;
            let smoothed_loss = self.smoothed.push(self.iter, loss);
            let lr = self.lr.rate(self.iter, &mut self.current_step.clone());
            on_event(&SolverEvent::FinalLoss {
                iter: self.iter,
                lr,
                loss,
                smoothed_loss,
            });
        }
        let interval = self.param.test_interval();
        if interval > 0 && self.iter % interval == 0 {
            self.test_all(on_event)?;
        }
        on_event(&SolverEvent::Finished {
            iter: self.iter,
            stopped_early: self.stop_requested,
        });
        Ok(())
    }

    /// Runs `iters` iterations (fewer when a stop is requested), like Caffe's `Step`.
    pub fn step(
        &mut self,
        iters: i32,
        on_event: &mut dyn FnMut(&SolverEvent),
    ) -> Result<(), SolverError> {
        self.report_notice(on_event);
        let stop_iter = self.iter.saturating_add(iters.max(0));
        self.smoothed = SmoothedLoss::new(self.param.average_loss(), self.iter);
        self.stop_requested = false;
        while self.iter < stop_iter {
            let interval = self.param.test_interval();
            if interval > 0
                && self.iter % interval == 0
                && (self.iter > 0 || self.param.test_initialization())
            {
                self.test_all(on_event)?;
                if self.stop_requested {
                    break;
                }
            }
            self.one_iteration(on_event)?;
            let request = self.control.take();
            let periodic = self.param.snapshot() > 0 && self.iter % self.param.snapshot() == 0;
            if periodic || request == SolverAction::Snapshot {
                self.snapshot(on_event)?;
            }
            if request == SolverAction::Stop {
                self.stop_requested = true;
                break;
            }
        }
        Ok(())
    }

    /// Forward/backward `iter_size` times, report, update, advance `iter`.
    fn one_iteration(&mut self, on_event: &mut dyn FnMut(&SolverEvent)) -> Result<(), SolverError> {
        let started = Instant::now();
        self.net.clear_param_diffs();
        let iter_size = self.param.iter_size().max(1);
        let mut loss = 0.0f32;
        for _ in 0..iter_size {
            loss += self.net.forward().map_err(layer_error)?;
            self.net.backward();
        }
        loss /= iter_size as f32;
        if !loss.is_finite() {
            return Err(SolverError::NonFiniteLoss {
                iter: self.iter,
                loss,
                last_snapshot: self.last_snapshot.clone(),
            });
        }
        let smoothed_loss = self.smoothed.push(self.iter, loss);
        let display = self.param.display() > 0 && self.iter % self.param.display() == 0;
        let lr = self.lr.rate(self.iter, &mut self.current_step);
        let outputs = if display {
            outputs_of(&self.net)
        } else {
            Vec::new()
        };
        self.apply_update(lr)?;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        on_event(&SolverEvent::Iteration {
            iter: self.iter,
            lr,
            loss,
            smoothed_loss,
            display,
            outputs,
            ms,
        });
        self.iter += 1;
        Ok(())
    }

    /// The rule's step over the net's params and history, wherever the net keeps them.
    fn apply_update(&mut self, rate: f32) -> Result<(), SolverError> {
        let (rule, iter) = (&self.rule, self.iter);
        let host = |params: &mut [LearnableParam], history: &mut [Vec<f32>]| {
            let mut slots: Vec<ParamSlot<'_>> = params
                .iter_mut()
                .map(|p| ParamSlot {
                    data: p.blob.data.as_mut_slice(),
                    diff: p.blob.diff.as_mut_slice(),
                    lr_mult: p.lr_mult,
                    decay_mult: p.decay_mult,
                })
                .collect();
            rule.apply(&mut slots, history, rate, iter);
        };
        self.net
            .update_params(rule.fused_sgd(rate), host)
            .map_err(layer_error)
    }

    /// Reports the pending notice (once).
    fn report_notice(&mut self, on_event: &mut dyn FnMut(&SolverEvent)) {
        if let Some(notice) = self.notice.take() {
            on_event(&SolverEvent::Notice(notice));
        }
    }

    /// Runs every test net `test_iter` times on the current weights and reports the means.
    /// Requests are honoured between test batches, as in Caffe.
    pub fn test_all(&mut self, on_event: &mut dyn FnMut(&SolverEvent)) -> Result<(), SolverError> {
        self.report_notice(on_event);
        for net_id in 0..self.test_nets.len() {
            self.test_nets[net_id]
                .net
                .copy_params_from(&self.net)
                .map_err(layer_error)?;
            let iters = self.test_nets[net_id].iters;
            let mut sums: Vec<NetOutput> = Vec::new();
            for i in 0..iters {
                loop {
                    match self.control.take() {
                        SolverAction::None => break,
                        SolverAction::Snapshot => self.snapshot(on_event)?,
                        SolverAction::Stop => self.stop_requested = true,
                    }
                }
                if self.stop_requested {
                    return Ok(());
                }
                let t = &mut self.test_nets[net_id];
                t.net.forward().map_err(layer_error)?;
                let outputs = outputs_of(&t.net);
                if i == 0 {
                    sums = outputs;
                } else {
                    for (s, o) in sums.iter_mut().zip(outputs) {
                        s.value += o.value;
                    }
                }
            }
            for s in &mut sums {
                s.value /= iters.max(1) as f32;
            }
            on_event(&SolverEvent::Test {
                iter: self.iter,
                net_id,
                outputs: sums,
            });
        }
        Ok(())
    }

    /// Writes `<prefix>_iter_N.caffemodel` and `<prefix>_iter_N.solverstate` atomically,
    /// creating the prefix's folder if needed.
    pub fn snapshot(&mut self, on_event: &mut dyn FnMut(&SolverEvent)) -> Result<(), SolverError> {
        let caffemodel = snapshot_path(&self.snapshot_prefix, self.iter, ".caffemodel");
        let solverstate = snapshot_path(&self.snapshot_prefix, self.iter, ".solverstate");
        if let Some(dir) = caffemodel.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| SolverError::Io {
                path: dir.to_path_buf(),
                error: source,
            })?;
        }
        let model: NetParameter = self.net.try_to_proto().map_err(layer_error)?;
        write_atomically(&caffemodel, &model.encode_to_vec())?;
        let shapes: Vec<Vec<usize>> = self
            .net
            .learnable_params()
            .iter()
            .map(|p| p.blob.shape.clone())
            .collect();
        let history = self.history()?;
        let state = SolverState {
            iter: Some(self.iter),
            learned_net: Some(caffemodel.display().to_string()),
            history: history
                .iter()
                .enumerate()
                .map(|(i, h)| snapshot::blob_to_proto(&shapes[i % shapes.len().max(1)], h))
                .collect(),
            current_step: Some(self.current_step),
        };
        snapshot::write_solver_state(&solverstate, &state)?;
        self.last_snapshot = Some(solverstate.clone());
        on_event(&SolverEvent::Snapshot {
            iter: self.iter,
            caffemodel,
            solverstate,
        });
        Ok(())
    }

    fn last_snapshot_iter(&self) -> Option<i32> {
        let last = self.last_snapshot.as_ref()?;
        (last == &snapshot_path(&self.snapshot_prefix, self.iter, ".solverstate"))
            .then_some(self.iter)
    }

    /// Moves every data cursor to where an uninterrupted run would be at `iter`: the train
    /// net has read `iter × iter_size` batches, each test net `test_iter` batches per test run
    /// before `iter`.
    fn position_data(&mut self) -> Result<(), SolverError> {
        // A restored iteration can be anything up to i32::MAX: count in u64, check products.
        let train_batches = self.iter.max(0) as u64 * self.param.iter_size().max(1) as u64;
        set_positions(&mut self.net, &self.spec, train_batches)?;
        let interval = self.param.test_interval();
        let tests_before = if interval > 0 {
            let iter = i64::from(self.iter);
            let at_multiples = (iter + i64::from(interval) - 1) / i64::from(interval); // k·interval < iter
            let skipped_zero = i64::from(self.iter > 0 && !self.param.test_initialization());
            (at_multiples - skipped_zero).max(0) as u64
        } else {
            0
        };
        for t in &mut self.test_nets {
            set_positions(&mut t.net, &t.spec, tests_before * t.iters.max(0) as u64)?;
        }
        Ok(())
    }
}

/// Sets each Data layer's cursor to `batches × batch_size` records.
fn set_positions(net: &mut Net, spec: &NetSpec, batches: u64) -> Result<(), SolverError> {
    let positions: Vec<usize> = spec
        .layers
        .iter()
        .filter_map(|l| match &l.config {
            LayerConfig::Data(data) => Some((l, data.batch_size as u64)),
            _ => None,
        })
        .map(|(l, batch)| {
            batches
                .checked_mul(batch)
                .and_then(|records| usize::try_from(records).ok())
                .ok_or_else(|| SolverError::Setting {
                    message: format!(
                        "layer \"{}\": {batches} batches of {batch} records: past what a data \
                         cursor can count",
                        l.name
                    ),
                })
        })
        .collect::<Result<_, _>>()?;
    net.set_data_positions(&positions).map_err(layer_error)
}

/// Every value of every output blob with its loss weight, in Caffe's order.
fn outputs_of(net: &Net) -> Vec<NetOutput> {
    net.outputs()
        .into_iter()
        .zip(net.output_loss_weights())
        .flat_map(|((name, blob), w)| {
            blob.data.iter().map(move |&value| NetOutput {
                name: name.to_string(),
                value,
                loss_weight: w,
            })
        })
        .collect()
}

/// A net, the folder its relative paths are resolved in, and the file it was read from (None
/// for a net written inside the solver file).
type NetSource = (NetParameter, Option<PathBuf>, Option<PathBuf>);

/// The train net and test nets a solver names, as Caffe's `InitTrainNet`/`InitTestNets`:
/// exactly one of `train_net_param`, `train_net`, `net_param`, `net` for training; test nets
/// from `test_net_param`, `test_net`, then `net`/`net_param` for the remaining `test_iter`s.
fn net_params(
    param: &SolverParameter,
    solver_file: Option<&Path>,
) -> Result<(NetSource, Vec<NetSource>), SolverError> {
    let solver_dir = solver_file.and_then(Path::parent).map(Path::to_path_buf);
    let load = |name: &str| -> Result<NetSource, SolverError> {
        let path = match solver_file {
            Some(f) => siamese_net::resolve_path(name, f),
            None => PathBuf::from(name),
        };
        let p = siamese_net::load_net(&path).map_err(net_error)?;
        Ok((p, path.parent().map(Path::to_path_buf), Some(path)))
    };
    let given = [
        param.train_net_param.is_some(),
        param.train_net.is_some(),
        param.net_param.is_some(),
        param.net.is_some(),
    ]
    .iter()
    .filter(|&&g| g)
    .count();
    if given != 1 {
        return Err(SolverError::Setting {
            message: format!(
                "give exactly one of net, net_param, train_net, train_net_param (found {given})"
            ),
        });
    }
    let generic: Option<NetSource> = match (&param.net_param, &param.net) {
        (Some(p), _) => Some((p.clone(), solver_dir.clone(), None)),
        (None, Some(name)) => Some(load(name)?),
        _ => None,
    };
    let train = match (&param.train_net_param, &param.train_net, &generic) {
        (Some(p), _, _) => (p.clone(), solver_dir.clone(), None),
        (None, Some(name), _) => load(name)?,
        (None, None, Some(g)) => g.clone(),
        _ => unreachable!("exactly one train net source was checked above"),
    };
    let mut tests: Vec<NetSource> = param
        .test_net_param
        .iter()
        .map(|p| (p.clone(), solver_dir.clone(), None))
        .collect();
    for name in &param.test_net {
        tests.push(load(name)?);
    }
    if let Some(g) = generic {
        while tests.len() < param.test_iter.len() {
            tests.push(g.clone());
        }
    }
    Ok((train, tests))
}

/// Caffe 1.0's `UpgradeSnapshotPrefixProperty`: no prefix means the solver file's path without
/// its extension; a prefix naming a folder (trailing `/`) gets the solver's file stem. The
/// folder is then resolved like the solver's other paths.
fn snapshot_prefix(param: &SolverParameter, solver_file: Option<&Path>) -> String {
    let stem = solver_file
        .and_then(Path::file_stem)
        .map_or("solver".to_string(), |s| s.to_string_lossy().into_owned());
    let prefix = match param.snapshot_prefix.as_deref() {
        None | Some("") => {
            return solver_file
                .map_or(stem.clone(), |f| f.with_extension("").display().to_string());
        }
        Some(p) if p.ends_with('/') => format!("{p}{stem}"),
        Some(p) => p.to_string(),
    };
    match solver_file {
        Some(f) => {
            let with_prefix = SolverParameter {
                snapshot_prefix: Some(prefix.clone()),
                ..Default::default()
            };
            siamese_net::resolve_solver_paths(&with_prefix, f)
                .snapshot_prefix
                .map_or(prefix, |p| p.display().to_string())
        }
        None => prefix,
    }
}

/// A seed from the clock, for `random_seed: -1`.
fn clock_seed() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    now.as_secs().wrapping_mul(1_000_000_007) ^ u64::from(now.subsec_nanos())
}

/// A net error placed at its line in the net file it came from, when there is one.
fn located(e: siamese_net::NetError, file: Option<&Path>) -> siamese_net::NetError {
    match file {
        Some(f) => e.in_file(f),
        None => e,
    }
}

fn net_error(e: siamese_net::NetError) -> SolverError {
    SolverError::from(e)
}

/// The nets a solver file trains and tests, checked, with what training them will hold.
struct TrainingSpecs {
    train: NetSpec,
    tests: Vec<NetSpec>,
    memory_plan: MemoryPlan,
    /// The train net's file (the solver file when the net is inline).
    net_file: Option<PathBuf>,
}

fn training_specs(
    param: &SolverParameter,
    solver_file: Option<&Path>,
    rule: &UpdateRule,
) -> Result<TrainingSpecs, SolverError> {
    let in_file = |e: SolverError| match solver_file {
        Some(f) => e.in_file(f),
        None => e,
    };
    let ((train_param, train_dir, train_file), test_params) =
        net_params(param, solver_file).map_err(in_file)?;
    let train = NetSpec::build(&train_param, Phase::Train, train_dir.as_deref())
        .map_err(|e| net_error(located(e, train_file.as_deref())))?;
    if param.test_iter.len() != test_params.len() {
        return Err(in_file(SolverError::Setting {
            message: format!(
                "{} test_iter value(s) for {} test net(s); give one test_iter per test net",
                param.test_iter.len(),
                test_params.len()
            ),
        }));
    }
    let tests = test_params
        .iter()
        .map(|(p, dir, file)| {
            NetSpec::build(p, Phase::Test, dir.as_deref())
                .map_err(|e| net_error(located(e, file.as_deref())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TrainingSpecs {
        memory_plan: memory_plan(&train, &tests, rule.kind.history_slots()),
        train,
        tests,
        net_file: train_file.or(solver_file.map(Path::to_path_buf)),
    })
}

/// What training holds: the train net, the update history, and every test net.
fn memory_plan(train: &NetSpec, tests: &[NetSpec], history_slots: usize) -> MemoryPlan {
    let mut plan = MemoryPlan::of_net(train);
    let values = train
        .params
        .iter()
        .filter_map(|p| p.count())
        .fold(0u64, |n, c| n.saturating_add(c as u64));
    let slots = history_slots as u64;
    plan.push(
        "solver history".to_string(),
        format!("{slots} × {values} values"),
        values.saturating_mul(4 * slots),
    );
    for test in tests {
        plan.append(MemoryPlan::of_net(test).prefixed("test net: "));
    }
    plan
}

fn layer_error(e: siamese_layers::LayerError) -> SolverError {
    SolverError::from(e)
}
