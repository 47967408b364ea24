//! Test support: a deterministic `CellTrainer` test double that emits a realistic event
//! sequence and writes the files a real engine writes, plus experiment-file fixtures.
//! (siamese-tui's tests include this file too.)

#![allow(dead_code)] // each test binary uses part of this module

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use siamese_grid::cell_progress::DigitScatter;
use siamese_grid::cell_trainer::{
    CellError, CellEvent, CellJob, CellOutcome, CellTrainer, Control, Flow, TrainedCell,
};

/// Trains nothing: losses fall smoothly with the iteration (scaled by the cell's margin),
/// features are ten well-separated digit clusters. Records every job it gets.
#[derive(Default)]
pub struct ScriptedTrainer {
    /// `(cell index, iteration)`: the run ends there without a snapshot (as if killed) and
    /// asks the grid to stop.
    pub die_at: Option<(usize, u32)>,
    /// Cell index whose run fails with an error.
    pub fail_cell: Option<usize>,
    /// Cell index whose run panics.
    pub panic_cell: Option<usize>,
    /// `(cell id, resumed-from iteration)` of every run, in call order.
    pub calls: Mutex<Vec<(String, Option<u32>)>>,
    /// A pause after each iteration, so that runs overlap in time.
    pub pause: std::time::Duration,
    /// The bytes cell `i`'s memory plan asks for (no plan when empty).
    pub memory_bytes: Vec<u64>,
}

pub const TEST_POINTS: usize = 40;

impl ScriptedTrainer {
    pub fn calls(&self) -> Vec<(String, Option<u32>)> {
        self.calls.lock().unwrap().clone()
    }
}

fn loss_at(job: &CellJob, iter: u32) -> f32 {
    let margin = job.cell.params.margin.unwrap_or(1.0) as f32;
    margin * 0.5 / (1.0 + iter as f32 * 0.2) + (job.cell.params.seed % 7) as f32 * 1e-3
}

/// `n` points in ten clusters on a circle, the digit cycling 0..9.
pub fn clusters(n: usize, spread: f32) -> Vec<(Vec<f32>, u8)> {
    (0..n)
        .map(|i| {
            let digit = (i % 10) as u8;
            let angle = f32::from(digit) * std::f32::consts::TAU / 10.0;
            let jitter = ((i * 37 % 11) as f32 / 11.0 - 0.5) * spread;
            (
                vec![3.0 * angle.cos() + jitter, 3.0 * angle.sin() - jitter],
                digit,
            )
        })
        .collect()
}

fn snapshot(
    job: &CellJob,
    iter: u32,
    events: &(dyn Fn(CellEvent) + Sync),
) -> Result<(), CellError> {
    let base = job.dir.join(format!("snap_iter_{iter}"));
    let write = |ext: &str| {
        fs::write(base.with_extension(ext), format!("weights at {iter}")).map_err(CellError::engine)
    };
    write("caffemodel")?;
    write("solverstate")?;
    events(CellEvent::Snapshot {
        cell: job.cell.index,
        iter,
        path: base.with_extension("solverstate"),
    });
    Ok(())
}

impl CellTrainer for ScriptedTrainer {
    fn memory_plan(
        &self,
        job: &CellJob,
    ) -> Result<Option<siamese_grid::cell_trainer::MemoryPlan>, CellError> {
        Ok(self.memory_bytes.get(job.cell.index).map(|&bytes| {
            let mut plan = siamese_grid::cell_trainer::MemoryPlan::default();
            plan.push("scripted weights".into(), String::new(), bytes);
            plan
        }))
    }

    fn run(
        &self,
        job: &CellJob,
        events: &(dyn Fn(CellEvent) + Sync),
        control: &Control,
    ) -> Result<CellOutcome, CellError> {
        let cell = job.cell.index;
        self.calls
            .lock()
            .unwrap()
            .push((job.cell.id.clone(), job.resume.as_ref().map(|r| r.iter)));
        if self.panic_cell == Some(cell) {
            panic!("scripted panic in cell {cell}");
        }
        let start = job.resume.as_ref().map_or(0, |r| r.iter);
        for iter in start + 1..=job.iterations {
            if control.checkpoint() == Flow::Stop {
                snapshot(job, iter - 1, events)?;
                return Ok(CellOutcome::Stopped { at: iter - 1 });
            }
            events(CellEvent::Train {
                cell,
                iter,
                lr: 0.01,
                loss: loss_at(job, iter),
            });
            std::thread::sleep(self.pause);
            if self.die_at == Some((cell, iter)) {
                control.request_stop();
                return Ok(CellOutcome::Stopped { at: iter });
            }
            if self.fail_cell == Some(cell) {
                return Err(CellError::engine("scripted failure: loss is NaN"));
            }
            if iter % job.test_interval == 0 || iter == job.iterations {
                let loss = loss_at(job, iter) * 1.1;
                events(CellEvent::Test {
                    cell,
                    iter,
                    loss,
                    outputs: vec![("loss".to_string(), loss)],
                });
                let points = clusters(TEST_POINTS, 1.0 / iter as f32)
                    .into_iter()
                    .map(|(f, d)| (f[0], f[1], d))
                    .collect();
                let scatter = DigitScatter {
                    iter,
                    dim: 2,
                    points,
                };
                events(CellEvent::Embedding { cell, scatter });
            }
            if iter % job.snapshot_interval == 0 {
                snapshot(job, iter, events)?;
            }
        }
        let model = job
            .dir
            .join(format!("snap_iter_{}.caffemodel", job.iterations));
        fs::write(&model, "final weights").map_err(CellError::engine)?;
        Ok(CellOutcome::Finished(TrainedCell {
            model,
            test_features: clusters(TEST_POINTS, 0.5),
            reference_features: clusters(100, 0.5),
        }))
    }
}

/// The committed MNIST sample (the experiment check wants real IDX files there).
pub fn sample_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist-sample")
}

/// Writes solver and net files into `dir` and an experiment file with `prelude` lines
/// pointing at them, then `body`. Returns the experiment file's path.
pub fn experiment_file(dir: &Path, name: &str, body: &str) -> PathBuf {
    // Atomic: tests with two runners write the same files at once, and a runner reading a
    // file the other is rewriting (truncated) failed with "missing field `iterations`".
    let write = |path: &Path, text: &str| {
        siamese_grid::cell_folder::write_atomic(path, text.as_bytes()).unwrap();
    };
    write(&dir.join("solver.prototxt"), "base_lr: 0.01\n");
    write(&dir.join("net.prototxt"), "name: \"siamese\"\n");
    let path = dir.join(format!("{name}.toml"));
    write(&path, &format!("{}{body}", prelude(dir)));
    path
}

/// Three lines: solver, net and data.
pub fn prelude(dir: &Path) -> String {
    format!(
        "solver = {:?}\nnet = {:?}\ndata = {:?}\n",
        dir.join("solver.prototxt"),
        dir.join("net.prototxt"),
        sample_data()
    )
}
