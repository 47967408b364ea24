//! The training engine behind `siamese-tui`: a `CellTrainer` on siamese-solver that trains a
//! cell on its own thread pool, tests and embeds the test digits, snapshots, and stops on request.

use std::path::{Path, PathBuf};

use siamese_data::{DataError, Dataset};
use siamese_layers::embed::{ImageFeatures, cap_input_batch, embed_images};
use siamese_layers::{Device, DeviceError, LayerError, MemoryPlan, Net};
use siamese_net::{NetError, NetSpec};
use siamese_proto::{NetParameter, Phase, SolverParameter};
use siamese_report::LabelledFeatures;
use siamese_solver::{DeviceChoice, NetOutput, Solver, SolverError, SolverEvent};

use crate::cell_progress::DigitScatter;
use crate::cell_trainer::{
    CellError, CellEvent, CellJob, CellOutcome, CellTrainer, Control, Flow, TrainedCell,
};
use crate::cells::{Cell, CellParams};
use crate::overrides::{self, OverrideError, SolverSetup};
use crate::pair_dbs::{IdxFiles, PairDbError, PairMaker};

/// The deploy net used when none sits beside the experiment's net.
pub const DEFAULT_DEPLOY_NET: &str = "experiments/siamese/mnist_siamese.prototxt";
/// Test digits embedded after each test (the scatter and features.csv), at most.
pub const TEST_EMBED_CAP: usize = 2_000;
/// Training digits embedded at the end as the k-NN reference set, at most.
pub const REFERENCE_CAP: usize = 10_000;
/// Images per forward pass of the deploy net.
const EMBED_BATCH: usize = 256;

/// Why the solver trainer could not train a cell (every message names the file or setting).
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("cannot start {threads} compute threads: {error}")]
    Threads {
        threads: usize,
        error: rayon::ThreadPoolBuildError,
    },
    #[error(transparent)]
    PairDb(#[from] PairDbError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Net(Box<NetError>),
    #[error(transparent)]
    Layer(Box<LayerError>),
    /// The cell's device is not one (`cpu`, `gpu`, `gpu:N`).
    #[error("GPU: {0}")]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Solver(#[from] SolverError),
    /// The cell's parameters do not fit the net file.
    #[error("{}: {error}", .path.display())]
    Override { path: PathBuf, error: OverrideError },
    #[error("{}: cannot set up the solver: {error}", .path.display())]
    SolverSetup { path: PathBuf, error: SolverError },
    /// The deploy net could not be built.
    #[error("{}: {error}", .path.display())]
    DeployNet {
        path: PathBuf,
        error: Box<LayerError>,
    },
    #[error("{}: {error}", .path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "{}: no TEST-phase Data layer with a batch_size: expected one to test on",
        .path.display()
    )]
    NoTestBatch { path: PathBuf },
    #[error("the deploy net gave {got} features of size {dim} for {expected} digits")]
    FeatureCount {
        got: usize,
        dim: usize,
        expected: usize,
    },
}

impl From<NetError> for TrainError {
    fn from(e: NetError) -> TrainError {
        TrainError::Net(Box::new(e))
    }
}

impl From<LayerError> for TrainError {
    fn from(e: LayerError) -> TrainError {
        TrainError::Layer(Box::new(e))
    }
}

impl From<TrainError> for CellError {
    fn from(e: TrainError) -> CellError {
        CellError::engine(e)
    }
}

/// A GPU named in an experiment that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("device = \"{device}\": {error}")]
pub struct DeviceCheckError {
    pub device: String,
    pub error: DeviceError,
}

/// Trains cells with siamese-solver's `Solver`, on the cell's device (the CPU unless the
/// experiment or the solver file asks for a GPU).
#[derive(Debug, Default)]
pub struct SolverTrainer {
    pairs: PairMaker,
}

impl SolverTrainer {
    pub fn new() -> SolverTrainer {
        SolverTrainer::default()
    }
}

impl CellTrainer for SolverTrainer {
    /// The solver's plan (train and test nets, history) and the deploy net's; makes the
    /// cell's pair DBs first when they do not exist yet (their records are part of it).
    fn memory_plan(&self, job: &CellJob) -> Result<Option<MemoryPlan>, CellError> {
        let cell = CellSolver::new(&self.pairs, job)?;
        let (mut plan, _) =
            Solver::plan_memory(&cell.param, Some(&job.solver)).map_err(|error| {
                TrainError::SolverSetup {
                    path: job.solver.clone(),
                    error,
                }
            })?;
        let deploy = deploy_spec(&deploy_net_path(&job.net), &job.cell.params)?;
        plan.append(MemoryPlan::of_net(&deploy).prefixed("deploy net: "));
        Ok(Some(plan))
    }

    fn run(
        &self,
        job: &CellJob,
        events: &(dyn Fn(CellEvent) + Sync),
        control: &Control,
    ) -> Result<CellOutcome, CellError> {
        // A pool per cell: concurrent cells each compute on their own `job.threads` threads.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(job.threads.max(1))
            .thread_name(move |i| format!("siamese-compute-{i}"))
            .build()
            .map_err(|error| TrainError::Threads {
                threads: job.threads,
                error,
            })?;
        Ok(pool.install(|| self.train(job, events, control))?)
    }
}

impl SolverTrainer {
    fn train(
        &self,
        job: &CellJob,
        events: &(dyn Fn(CellEvent) + Sync),
        control: &Control,
    ) -> Result<CellOutcome, TrainError> {
        let cell = job.cell.index;
        let mut run = CellRun::prepare(&self.pairs, job)?;
        let mut last_snapshot = job.resume.as_ref().map(|r| r.iter);
        let mut test_features = None;
        while run.iter() < job.iterations {
            if control.checkpoint() == Flow::Stop {
                let iter = run.iter();
                if last_snapshot != Some(iter) {
                    run.snapshot(cell, events)?;
                }
                return Ok(CellOutcome::Stopped { at: iter });
            }
            run.step(cell, events)?;
            let iter = run.iter();
            if iter % job.test_interval == 0 || iter == job.iterations {
                run.test(cell, events)?;
                let embedding = run.embed_test_digits()?;
                if let Some(scatter) =
                    DigitScatter::of_features(iter, &run.test_digits.features(&embedding))
                {
                    events(CellEvent::Embedding { cell, scatter });
                }
                test_features = Some(embedding);
            }
            if iter % job.snapshot_interval == 0 {
                run.snapshot(cell, events)?;
                last_snapshot = Some(iter);
            }
        }
        if last_snapshot != Some(job.iterations) {
            run.snapshot(cell, events)?;
        }
        let test_features = match test_features {
            Some(f) => f,
            None => run.embed_test_digits()?,
        };
        let reference = run.embed_reference_digits()?;
        Ok(CellOutcome::Finished(TrainedCell {
            model: run.model_path(job.iterations),
            test_features: run.test_digits.features(&test_features),
            reference_features: reference,
        }))
    }
}

/// Digits to embed and their labels.
struct Digits {
    set: Dataset,
    count: usize,
}

impl Digits {
    fn load(images: &Path, labels: &Path, cap: usize) -> Result<Digits, TrainError> {
        let set = Dataset::load(images, labels)?;
        let count = set.len().min(cap);
        Ok(Digits { set, count })
    }

    fn embed(&self, net: &mut Net, scale: f32) -> Result<ImageFeatures, TrainError> {
        let e = embed_images(net, &self.set.images, self.count, scale, EMBED_BATCH)?;
        if e.len() != self.count || e.dim == 0 {
            return Err(TrainError::FeatureCount {
                got: e.len(),
                dim: e.dim,
                expected: self.count,
            });
        }
        Ok(e)
    }

    /// `(features, digit)` per image.
    fn features(&self, e: &ImageFeatures) -> LabelledFeatures {
        (0..e.len())
            .map(|i| (e.row(i).to_vec(), self.set.labels.labels[i]))
            .collect()
    }
}

/// One cell's solver, deploy net and digits, ready to train.
struct CellRun {
    solver: Solver,
    deploy: Net,
    /// Pixel scale of the train Data layer, applied to the digits the deploy net embeds.
    scale: f32,
    test_digits: Digits,
    files: IdxFiles,
    prefix: PathBuf,
}

/// A cell's solver settings: the base files with the cell's overrides, on its pair DBs.
struct CellSolver {
    param: SolverParameter,
    files: IdxFiles,
    scale: f32,
    prefix: PathBuf,
}

impl CellSolver {
    /// Makes the cell's pair DBs when they do not exist yet, and its solver settings.
    fn new(pairs: &PairMaker, job: &CellJob) -> Result<CellSolver, TrainError> {
        let params = &job.cell.params;
        let files = IdxFiles::find(&job.data)?;
        let pairs_dir = absolute(&job.pairs_dir)?;
        let dbs = pairs.ensure(
            &files,
            &pairs_dir,
            params.similar_fraction,
            params.seed,
            job.train_classes.as_deref(),
        )?;
        let base_net = siamese_net::load_net(&job.net)?;
        let net =
            overrides::train_net(base_net, params, &dbs.train, &dbs.test).map_err(|error| {
                TrainError::Override {
                    path: job.net.clone(),
                    error,
                }
            })?;
        let test_batch = test_batch_size(&net).ok_or_else(|| TrainError::NoTestBatch {
            path: job.net.clone(),
        })?;
        let scale = train_scale(&net);
        let prefix = absolute(&job.dir)?.join(snapshot_name(&job.solver));
        let setup = SolverSetup {
            iterations: job.iterations,
            test_iter: i32::try_from(dbs.test_pairs.div_ceil(test_batch).max(1))
                .unwrap_or(i32::MAX),
            snapshot_prefix: prefix.display().to_string(),
        };
        let base_solver = siamese_net::load_solver(&job.solver)?;
        let param = overrides::solver_param(base_solver, params, net, &setup);
        Ok(CellSolver {
            param,
            files,
            scale,
            prefix,
        })
    }
}

impl CellRun {
    fn prepare(pairs: &PairMaker, job: &CellJob) -> Result<CellRun, TrainError> {
        let params = &job.cell.params;
        let CellSolver {
            param,
            files,
            scale,
            prefix,
        } = CellSolver::new(pairs, job)?;
        let mut solver = Solver::with_device(param, Some(&job.solver), device_choice(params)?)
            .map_err(|error| TrainError::SolverSetup {
                path: job.solver.clone(),
                error,
            })?;
        if let Some(resume) = &job.resume {
            solver.restore(&resume.solverstate)?;
        }

        let deploy_spec = deploy_spec(&deploy_net_path(&job.net), params)?;
        let deploy =
            Net::on_device(&deploy_spec, params.seed, solver.device()).map_err(|error| {
                TrainError::DeployNet {
                    path: deploy_net_path(&job.net),
                    error: Box::new(error),
                }
            })?;
        let test_digits = Digits::load(&files.test_images, &files.test_labels, TEST_EMBED_CAP)?;
        Ok(CellRun {
            solver,
            deploy,
            scale,
            test_digits,
            files,
            prefix,
        })
    }

    /// Iterations done.
    fn iter(&self) -> u32 {
        u32::try_from(self.solver.iter()).unwrap_or(0)
    }

    /// One training iteration, reported as `Train` with the count of iterations done.
    fn step(&mut self, cell: usize, events: &(dyn Fn(CellEvent) + Sync)) -> Result<(), TrainError> {
        self.solver.step(1, &mut |event| {
            if let SolverEvent::Iteration { iter, lr, loss, .. } = event {
                events(CellEvent::Train {
                    cell,
                    iter: u32::try_from(*iter + 1).unwrap_or(0),
                    lr: *lr,
                    loss: *loss,
                });
            }
        })?;
        Ok(())
    }

    /// A pass over the test pairs on the current weights.
    fn test(&mut self, cell: usize, events: &(dyn Fn(CellEvent) + Sync)) -> Result<(), TrainError> {
        self.solver.test_all(&mut |event| {
            if let SolverEvent::Test {
                iter,
                net_id: 0,
                outputs,
            } = event
            {
                events(CellEvent::Test {
                    cell,
                    iter: u32::try_from(*iter).unwrap_or(0),
                    loss: test_loss(outputs),
                    outputs: outputs.iter().map(|o| (o.name.clone(), o.value)).collect(),
                });
            }
        })?;
        Ok(())
    }

    fn snapshot(
        &mut self,
        cell: usize,
        events: &(dyn Fn(CellEvent) + Sync),
    ) -> Result<(), TrainError> {
        self.solver.snapshot(&mut |event| {
            if let SolverEvent::Snapshot {
                iter, solverstate, ..
            } = event
            {
                events(CellEvent::Snapshot {
                    cell,
                    iter: u32::try_from(*iter).unwrap_or(0),
                    path: solverstate.clone(),
                });
            }
        })?;
        Ok(())
    }

    /// The test digits through the deploy net with the train net's current weights.
    fn embed_test_digits(&mut self) -> Result<ImageFeatures, TrainError> {
        self.deploy.copy_params_from(self.solver.net())?;
        self.test_digits.embed(&mut self.deploy, self.scale)
    }

    /// Features of (up to [`REFERENCE_CAP`]) training digits: the k-NN reference set.
    fn embed_reference_digits(&mut self) -> Result<LabelledFeatures, TrainError> {
        let digits = Digits::load(
            &self.files.train_images,
            &self.files.train_labels,
            REFERENCE_CAP,
        )?;
        self.deploy.copy_params_from(self.solver.net())?;
        let e = digits.embed(&mut self.deploy, self.scale)?;
        Ok(digits.features(&e))
    }

    /// `<prefix>_iter_<iter>.caffemodel`, as the solver names its snapshots.
    fn model_path(&self, iter: u32) -> PathBuf {
        let mut name = self.prefix.as_os_str().to_owned();
        name.push(format!("_iter_{iter}.caffemodel"));
        PathBuf::from(name)
    }
}

/// Checks that every GPU the cells ask for can be used, before any cell starts: one error
/// naming the device and the reason, rather than every cell failing with it.
pub fn check_devices(cells: &[Cell]) -> Result<(), DeviceCheckError> {
    let wanted: std::collections::BTreeSet<&str> = cells
        .iter()
        .filter_map(|c| c.params.device.as_deref())
        .collect();
    for text in wanted {
        let unusable = |error| DeviceCheckError {
            device: text.to_string(),
            error,
        };
        if let Device::Gpu(n) = text.parse::<Device>().map_err(unusable)? {
            siamese_layers::probe_gpu(n).map_err(unusable)?;
        }
    }
    Ok(())
}

/// Where the cells train, for the header, when the solver file decides it: its GPU, or why
/// that GPU could not be used and the cells train on the CPU (`None` for `solver_mode: CPU`,
/// and when the experiment sets `device` itself).
pub fn solver_file_device_note(solver: &Path, cells: &[Cell]) -> Option<String> {
    if cells.iter().any(|c| c.params.device.is_some()) {
        return None;
    }
    let param = siamese_net::load_solver(solver).ok()?;
    let decision = DeviceChoice::FromFile.resolve(&param).ok()?;
    match (decision.device, decision.notice) {
        (_, Some(notice)) => Some(format!(
            "note: {notice} (set device = \"gpu\" in the experiment to make this an error)"
        )),
        (Device::Gpu(n), None) => Some(format!("device: gpu:{n} (the solver's solver_mode GPU)")),
        (Device::Cpu, None) => None,
    }
}

/// The cell's `device` as the solver's choice: that device, strictly, or the solver file's.
fn device_choice(params: &CellParams) -> Result<DeviceChoice, TrainError> {
    Ok(match &params.device {
        Some(d) => DeviceChoice::Required(d.parse::<Device>()?),
        None => DeviceChoice::FromFile,
    })
}

/// The deploy net (one tower, Input layer) with the cell's feature size, batch capped (built
/// on the train net's device, so copying the weights stays on that device).
fn deploy_spec(path: &Path, params: &CellParams) -> Result<NetSpec, TrainError> {
    let param = siamese_net::load_net(path)?;
    let mut param = overrides::deploy_net(param, params).map_err(|error| TrainError::Override {
        path: path.to_path_buf(),
        error,
    })?;
    cap_input_batch(&mut param, EMBED_BATCH);
    Ok(NetSpec::build(&param, Phase::Test, path.parent()).map_err(|e| e.in_file(path))?)
}

/// `path` made absolute (the solver writes snapshots from other working folders' view).
fn absolute(path: &Path) -> Result<PathBuf, TrainError> {
    std::path::absolute(path).map_err(|error| TrainError::Io {
        path: path.to_path_buf(),
        error,
    })
}

/// The deploy net for a train/test net: `X.prototxt` beside `X_train_test.prototxt` when it
/// exists (Caffe's naming), else [`DEFAULT_DEPLOY_NET`].
pub fn deploy_net_path(net: &Path) -> PathBuf {
    let beside = net
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.strip_suffix("_train_test"))
        .map(|stem| net.with_file_name(format!("{stem}.prototxt")));
    match beside {
        Some(p) if p.is_file() => p,
        _ => PathBuf::from(DEFAULT_DEPLOY_NET),
    }
}

/// The file name part of the base solver's snapshot prefix (else the solver's file stem).
fn snapshot_name(solver: &Path) -> String {
    let from_prefix = siamese_net::load_solver(solver).ok().and_then(|p| {
        let prefix = p.snapshot_prefix?;
        let name = Path::new(&prefix).file_name()?.to_str()?.to_string();
        (!prefix.ends_with('/') && !name.is_empty()).then_some(name)
    });
    from_prefix.unwrap_or_else(|| {
        solver
            .file_stem()
            .map_or("model".into(), |s| s.to_string_lossy().into_owned())
    })
}

/// Batch size of the TEST Data layer (the one not included in TRAIN).
fn test_batch_size(net: &NetParameter) -> Option<usize> {
    let test = net.layer.iter().filter(|l| l.r#type() == "Data").find(|l| {
        l.include
            .iter()
            .any(|r| r.phase == Some(Phase::Test as i32))
            || l.phase == Some(Phase::Test as i32)
    });
    match test
        .and_then(|l| l.data_param.as_ref())
        .map(|d| d.batch_size())
    {
        Some(b) if b > 0 => Some(b as usize),
        _ => None,
    }
}

/// `transform_param.scale` of the first Data layer (Caffe's default 1).
fn train_scale(net: &NetParameter) -> f32 {
    net.layer
        .iter()
        .find(|l| l.r#type() == "Data")
        .and_then(|l| l.transform_param.as_ref())
        .map_or(1.0, |t| t.scale())
}

/// The test loss: the output named `loss`, else the first one with a loss weight.
fn test_loss(outputs: &[NetOutput]) -> f32 {
    outputs
        .iter()
        .find(|o| o.name == "loss")
        .or_else(|| outputs.iter().find(|o| o.loss_weight != 0.0))
        .or(outputs.first())
        .map_or(f32::NAN, |o| o.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(device: Option<&str>) -> Cell {
        Cell {
            index: 0,
            id: "000".into(),
            values: Vec::new(),
            params: CellParams {
                device: device.map(str::to_string),
                ..Default::default()
            },
        }
    }

    #[test]
    fn the_header_says_when_the_solver_files_gpu_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        let solver = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("net: \"n.prototxt\"\n{text}")).unwrap();
            path
        };
        let cpu = solver("cpu.prototxt", "solver_mode: CPU\n");
        let gpu = solver("gpu.prototxt", "");
        assert_eq!(solver_file_device_note(&cpu, &[cell(None)]), None);
        assert_eq!(solver_file_device_note(&gpu, &[cell(Some("cpu"))]), None);
        let note = solver_file_device_note(&gpu, &[cell(None)]).unwrap();
        match siamese_layers::probe_gpu(0) {
            Ok(_) => assert_eq!(note, "device: gpu:0 (the solver's solver_mode GPU)"),
            Err(_) => {
                assert!(
                    note.starts_with("note: solver_mode GPU (device_id 0): "),
                    "{note}"
                );
                assert!(note.ends_with("; running on the CPU (set device = \"gpu\" in the experiment to make this an error)"), "{note}");
            }
        }
    }
}
