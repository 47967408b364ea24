//! `siamese train`: runs a solver like `caffe train`, printing Caffe's log lines, writing the
//! CSV log and, on request, a JSON summary of speed and memory.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use siamese_layers::Device;
use siamese_report::TrainingLog;
use siamese_report::log_lines::{caffe_float, iteration_line, lr_line, output_line};
use siamese_solver::DeviceChoice;
use siamese_solver::solver::{NetOutput, Solver, SolverEvent};

use crate::threads;

/// Arguments of `siamese train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Solver definition (Caffe's solver.prototxt).
    #[arg(long)]
    pub solver: PathBuf,
    /// Start from these weights (fine-tuning).
    #[arg(long, conflicts_with = "snapshot")]
    pub weights: Option<PathBuf>,
    /// Resume from this .solverstate.
    #[arg(long)]
    pub snapshot: Option<PathBuf>,
    /// Train to this iteration instead of the solver's max_iter.
    #[arg(long)]
    pub iterations: Option<i32>,
    /// Write `iter,lr,train_loss,test_loss,elapsed_s` rows here.
    #[arg(long)]
    pub log_csv: Option<PathBuf>,
    /// Worker threads for the arithmetic (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write a one-object JSON summary (speed, memory, final losses) here.
    #[arg(long)]
    pub json_summary: Option<PathBuf>,
    /// Where to train: cpu, gpu (= gpu:0) or gpu:N [default: the solver file's solver_mode
    /// and device_id, on the CPU when that GPU cannot be used]
    #[arg(long, value_parser = crate::device::parse, value_name = "DEVICE")]
    pub device: Option<Device>,
}

/// What the event printer gathers for the summary.
#[derive(Default)]
struct RunRecord {
    iter_ms: Vec<f64>,
    final_train_loss: Option<f32>,
    final_test_loss: Option<f32>,
}

pub fn run(args: &TrainArgs) -> Result<()> {
    let threads = threads::configure(args.threads)?;
    let mut solver = set_up(args, threads)?;
    let start_iter = solver.iter();
    let record = train(&mut solver, args.log_csv.as_deref())?;
    if let Some(path) = &args.json_summary {
        let summary = summary_json(&solver, &record, threads, solver.iter() - start_iter);
        write_summary(path, &summary)?;
    }
    println!("Optimization Done.");
    Ok(())
}

/// The solver for `args`, on its device, with the weights or snapshot to start from and the
/// signal handlers installed; says each step like `caffe train`.
fn set_up(args: &TrainArgs, threads: usize) -> Result<Solver> {
    let mut param = siamese_net::load_solver(&args.solver)?;
    if let Some(n) = args.iterations {
        if n < 0 {
            bail!("--iterations {n}: expected a count >= 0");
        }
        param.max_iter = Some(n);
    }
    let choice = match args.device {
        Some(device) => DeviceChoice::Required(crate::device::check(device)?),
        None => DeviceChoice::FromFile,
    };
    let mut solver = Solver::with_device(param, Some(&args.solver), choice)
        .with_context(|| format!("{}: cannot set up the solver", args.solver.display()))?;
    match solver.device() {
        Device::Cpu => println!("Using the CPU ({threads} thread(s))"),
        gpu => println!("Using {}", crate::device::describe(gpu)?),
    }
    if solver.seed_from_clock() {
        println!(
            "random_seed is -1: using seed {} (from the clock)",
            solver.seed()
        );
    }
    if let Some(w) = &args.weights {
        println!("Finetuning from {}", w.display());
        solver.load_weights(w)?;
    }
    if let Some(s) = &args.snapshot {
        println!("Resuming from {}", s.display());
        solver.restore(s)?;
    }
    for path in solver.remove_stale_temp_files()? {
        println!(
            "Removed {}: a snapshot file cut short when an earlier run was killed",
            path.display()
        );
    }
    solver
        .control()
        .install_signal_handlers()
        .context("cannot install the SIGINT/SIGHUP handlers")?;
    Ok(solver)
}

/// Solves, printing Caffe's log lines and writing the training log to `log_csv`; returns
/// what the summary needs.
fn train(solver: &mut Solver, log_csv: Option<&Path>) -> Result<RunRecord> {
    println!("Solving {}", solver.spec().name);
    println!("Learning Rate Policy: {}", solver.param().lr_policy());
    let mut csv = log_csv.map(TrainingLog::create).transpose()?;
    let mut record = RunRecord::default();
    let started = Instant::now();
    let mut printer = LinePrinter::new(solver.param().display(), solver.iter());
    let mut csv_error = None;
    // The whole run on a pool thread: the layers' parallel work is then pushed to this
    // thread's own queue instead of handed over from a sleeping outside thread (~30 hand-offs
    // per iteration).
    let result = threads::on_pool(|| {
        solver.solve(&mut |event| {
            printer.print(event);
            record.note(event);
            if let Some(log) = csv.as_mut()
                && let Err(e) = write_csv(log, event, started.elapsed().as_secs_f64())
            {
                csv_error.get_or_insert(e);
            }
        })
    });
    if let Some(log) = csv.as_mut() {
        log.finish()?;
    }
    if let Some(e) = csv_error {
        return Err(e.into());
    }
    result?;
    Ok(record)
}

fn write_csv(
    log: &mut TrainingLog<std::io::BufWriter<std::fs::File>>,
    event: &SolverEvent,
    elapsed: f64,
) -> Result<(), siamese_report::ReportError> {
    match event {
        SolverEvent::Iteration {
            iter,
            lr,
            smoothed_loss,
            display: true,
            ..
        } => log.train(*iter, *lr, *smoothed_loss, elapsed),
        SolverEvent::FinalLoss {
            iter,
            lr,
            smoothed_loss,
            ..
        } => log.train(*iter, *lr, *smoothed_loss, elapsed),
        SolverEvent::Test {
            iter,
            net_id: 0,
            outputs,
        } => match test_loss(outputs) {
            Some(loss) => log.test(*iter, loss, elapsed),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// The test loss to log: the output named `loss`, else the first output with a loss weight.
fn test_loss(outputs: &[NetOutput]) -> Option<f32> {
    outputs
        .iter()
        .find(|o| o.name == "loss")
        .or_else(|| outputs.iter().find(|o| o.loss_weight != 0.0))
        .map(|o| o.value)
}

impl RunRecord {
    fn note(&mut self, event: &SolverEvent) {
        match event {
            SolverEvent::Iteration {
                ms, smoothed_loss, ..
            } => {
                self.iter_ms.push(*ms);
                self.final_train_loss = Some(*smoothed_loss);
            }
            SolverEvent::FinalLoss { smoothed_loss, .. } => {
                self.final_train_loss = Some(*smoothed_loss);
            }
            SolverEvent::Test {
                net_id: 0, outputs, ..
            } => {
                self.final_test_loss = test_loss(outputs).or(self.final_test_loss);
            }
            _ => {}
        }
    }
}

/// Turns events into Caffe's log lines, timing display intervals like Caffe.
struct LinePrinter {
    display: i32,
    last_iter: i32,
    last_time: Instant,
}

impl LinePrinter {
    fn new(display: i32, start_iter: i32) -> LinePrinter {
        LinePrinter {
            display,
            last_iter: start_iter,
            last_time: Instant::now(),
        }
    }

    fn print(&mut self, event: &SolverEvent) {
        match event {
            SolverEvent::Iteration {
                iter,
                lr,
                smoothed_loss,
                display: true,
                outputs,
                ..
            } => {
                let lapse = self.last_time.elapsed().as_secs_f32();
                let per_s = (iter - self.last_iter) as f32 / if lapse > 0.0 { lapse } else { 1.0 };
                println!(
                    "{}",
                    iteration_line(*iter, per_s, lapse, self.display, *smoothed_loss)
                );
                for (i, o) in outputs.iter().enumerate() {
                    println!(
                        "{}",
                        output_line("Train", i, &o.name, o.value, o.loss_weight)
                    );
                }
                println!("{}", lr_line(*iter, *lr));
                self.last_time = Instant::now();
                self.last_iter = *iter;
            }
            SolverEvent::FinalLoss {
                iter,
                smoothed_loss,
                ..
            } => {
                println!("Iteration {iter}, loss = {}", caffe_float(*smoothed_loss));
            }
            SolverEvent::Test {
                iter,
                net_id,
                outputs,
            } => {
                println!("Iteration {iter}, Testing net (#{net_id})");
                for (i, o) in outputs.iter().enumerate() {
                    println!(
                        "{}",
                        output_line("Test", i, &o.name, o.value, o.loss_weight)
                    );
                }
            }
            SolverEvent::Snapshot {
                caffemodel,
                solverstate,
                ..
            } => {
                println!("Snapshotting to binary proto file {}", caffemodel.display());
                println!(
                    "Snapshotting solver state to binary proto file {}",
                    solverstate.display()
                );
            }
            SolverEvent::Finished {
                iter,
                stopped_early: true,
            } => {
                println!("Optimization stopped early at iteration {iter}.");
            }
            SolverEvent::Notice(text) => {
                println!("note: {text} (pass --device gpu to make this an error)");
            }
            _ => {}
        }
    }
}

fn summary_json(
    solver: &Solver,
    record: &RunRecord,
    threads: usize,
    iterations: i32,
) -> serde_json::Value {
    let mut ms = record.iter_ms.clone();
    ms.sort_by(f64::total_cmp);
    let median = match ms.len() {
        0 => None,
        n if n % 2 == 1 => Some(ms[n / 2]),
        n => Some((ms[n / 2 - 1] + ms[n / 2]) / 2.0),
    };
    let mean = (!ms.is_empty()).then(|| ms.iter().sum::<f64>() / ms.len() as f64);
    let iter_size = f64::from(solver.param().iter_size().max(1));
    let images = crate::net_stats::images_per_forward(solver.spec()) as f64 * iter_size;
    let flops = crate::net_stats::train_flops_per_forward(solver.net()) * iter_size;
    let per_s = |amount: f64| mean.filter(|&m| m > 0.0).map(|m| amount / (m / 1e3));
    serde_json::json!({
        "iterations": iterations,
        "threads": threads,
        "device": solver.device().to_string(),
        "ms_per_iter_median": median,
        "ms_per_iter_mean": mean,
        "images_per_s": per_s(images),
        "gflops_per_s": per_s(flops / 1e9),
        "peak_rss_mb": crate::net_stats::peak_rss_mb(),
        "memory_estimate_mb": solver.memory_plan().total() as f64 / (1024.0 * 1024.0),
        "final_train_loss": record.final_train_loss,
        "final_test_loss": record.final_test_loss,
    })
}

fn write_summary(path: &Path, summary: &serde_json::Value) -> Result<()> {
    let text = format!("{summary}\n");
    siamese_solver::snapshot::write_atomically(path, text.as_bytes())?;
    println!("Summary written to {}: {}", path.display(), summary);
    Ok(())
}
