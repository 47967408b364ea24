//! The `siamese-tui` command: checks an experiment file, then runs its grid behind a live
//! screen, or with `--headless` (automatic when stdout is not a terminal) as plain lines;
//! `run-cell` and `slurm` run a grid as a Slurm job array, and `--watch` shows one.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use siamese_grid::cell_trainer::Control;
use siamese_grid::cells::Cell;
use siamese_grid::experiment::Experiment;
use siamese_grid::manifest::GridManifest;
use siamese_grid::run_cell::CellTask;
use siamese_grid::runner::RunOptions;
use siamese_grid::slurm::ArrayJob;
use siamese_grid::train::SolverTrainer;
use siamese_grid::{run_cell, slurm, summary, train};
use siamese_tui::{headless, terminal, watch};

/// Run a grid of siamese training runs and watch them learn.
#[derive(Parser, Debug)]
#[command(name = "siamese-tui", version, args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// The experiment file (TOML), e.g. experiments/margin_sweep.toml.
    #[arg(required_unless_present = "watch", conflicts_with = "watch")]
    experiment: Option<PathBuf>,
    /// Watch a grid that runs elsewhere (Slurm tasks, another siamese-tui): runs/<experiment>.
    #[arg(long, value_name = "DIR")]
    watch: Option<PathBuf>,
    /// No screen: one line per event on stdout (automatic when stdout is not a terminal).
    #[arg(long)]
    headless: bool,
    /// Train each cell for N iterations instead of the file's `iterations`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    iterations: Option<u32>,
    /// The runs folder; results go to DIR/<experiment name>/.
    #[arg(long, value_name = "DIR", default_value = "runs")]
    out: PathBuf,
    /// Delete this experiment's earlier results and start every cell over.
    #[arg(long)]
    fresh: bool,
    /// Cells trained at once (default: fits the cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    workers: Option<u32>,
    /// Compute threads per cell (default: the cores shared among the workers).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    threads: Option<u32>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train one cell of the grid, headless (what each Slurm array task runs).
    RunCell(RunCellArgs),
    /// Write an sbatch script with one job-array task per unfinished cell (and submit it).
    Slurm(SlurmArgs),
    /// Write GRID_DIR/report.md with PNG charts: the cells ranked by the experiment's metric,
    /// each metric against each varied parameter, the best cells' test loss, the best embedding.
    Report(ReportArgs),
}

#[derive(clap::Args, Debug)]
struct ReportArgs {
    /// A grid's folder: runs/<experiment> (it holds grid.toml).
    grid_dir: PathBuf,
}

#[derive(clap::Args, Debug)]
struct RunCellArgs {
    /// The experiment file (TOML).
    experiment: PathBuf,
    /// The cell: its index in the grid (e.g. $SLURM_ARRAY_TASK_ID) or its id.
    #[arg(long, value_name = "I")]
    cell: String,
    /// The runs folder; results go to DIR/<experiment name>/<cell id>/.
    #[arg(long, value_name = "DIR", default_value = "runs")]
    out: PathBuf,
    /// Train for N iterations instead of the file's `iterations`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    iterations: Option<u32>,
    /// Compute threads (default: $SLURM_CPUS_PER_TASK, else every core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    threads: Option<u32>,
}

#[derive(clap::Args, Debug)]
struct SlurmArgs {
    /// The experiment file (TOML).
    experiment: PathBuf,
    /// The runs folder on a filesystem the compute nodes share.
    #[arg(long, value_name = "DIR", default_value = "runs")]
    out: PathBuf,
    /// Slurm partition (default: the cluster's default partition).
    #[arg(long, value_name = "P")]
    partition: Option<String>,
    /// Time limit per cell, in Slurm's format (e.g. 30, 2:00:00, 1-00:00:00).
    #[arg(long, value_name = "T")]
    time: Option<String>,
    /// CPUs per cell (its compute threads).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    cpus_per_task: Option<u32>,
    /// GPUs per cell.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    gpus_per_task: Option<u32>,
    /// At most N cells at once (default: all).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_parallel: Option<u32>,
    /// Train each cell for N iterations instead of the file's `iterations`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    iterations: Option<u32>,
    /// Submit the script with sbatch and print the job id.
    #[arg(long)]
    submit: bool,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("siamese-tui: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(Command::RunCell(a)) => return run_one_cell(a),
        Some(Command::Slurm(a)) => return write_array_job(a),
        Some(Command::Report(a)) => {
            let files = siamese_grid::report::write_report(&a.grid_dir)?;
            println!(
                "wrote {} and {} charts ({} of {} cells finished)",
                files.page.display(),
                files.charts.len(),
                files.finished,
                files.cells
            );
            return Ok(ExitCode::SUCCESS);
        }
        None => {}
    }
    if let Some(grid_dir) = &args.watch {
        return watch_grid(grid_dir, args.headless);
    }
    let file = args.experiment.context("no experiment file given")?;
    let mut experiment = Experiment::load(&file)?;
    if let Some(n) = args.iterations {
        experiment.iterations = n;
    }
    let cells = Cell::expand(&experiment);
    train::check_devices(&cells).with_context(|| file.display().to_string())?;
    if let Some(note) = train::solver_file_device_note(&experiment.solver, &cells) {
        experiment.data.note = format!("{} · {note}", experiment.data.note);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut options = RunOptions::fitting(args.out.clone(), cells.len(), cores, args.fresh);
    if let Some(w) = args.workers {
        options.workers = w as usize;
        options.threads = (cores / options.workers).max(1);
    }
    if let Some(t) = args.threads {
        options.threads = t as usize;
    }
    let trainer = SolverTrainer::new();
    let control = Arc::new(Control::new());
    let headless = args.headless || !std::io::stdout().is_terminal();
    let report = if headless {
        stop_on_ctrl_c(Arc::clone(&control))?;
        let mut stdout = std::io::stdout().lock();
        headless::run_headless(
            &experiment,
            &cells,
            &options,
            &trainer,
            &control,
            &mut stdout,
        )?
    } else {
        let report = terminal::run_screen(&experiment, &cells, &options, &trainer, &control)?;
        println!("{}", headless::end_line(&report));
        report
    };
    Ok(if report.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn load(file: &Path, iterations: Option<u32>) -> anyhow::Result<(Experiment, Vec<Cell>)> {
    let mut experiment = Experiment::load(file)?;
    if let Some(n) = iterations {
        experiment.iterations = n;
    }
    let cells = Cell::expand(&experiment);
    Ok((experiment, cells))
}

fn exit_code(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `run-cell`: one cell, headless; Ctrl-C or Slurm's SIGTERM (scancel, time limit) make it
/// snapshot and stop, resumable.
fn run_one_cell(args: RunCellArgs) -> anyhow::Result<ExitCode> {
    let (experiment, cells) = load(&args.experiment, args.iterations)?;
    let cell = run_cell::find_cell(&cells, &args.cell, &args.experiment)?;
    let task = CellTask {
        experiment: &experiment,
        cells: &cells,
        cell,
        out: &args.out,
        threads: args
            .threads
            .map_or_else(run_cell::default_threads, |n| n as usize),
    };
    let control = Arc::new(Control::new());
    stop_on_ctrl_c(Arc::clone(&control))?;
    let mut stdout = std::io::stdout().lock();
    let report = headless::run_cell_headless(&task, &SolverTrainer::new(), &control, &mut stdout)?;
    // A cell another task holds the claim of is that task's to train: nothing is left here.
    Ok(exit_code(
        report.finished + report.skipped + report.elsewhere + report.pruned == 1,
    ))
}

/// `slurm`: the sbatch script for the unfinished cells, submitted with `--submit`.
fn write_array_job(args: SlurmArgs) -> anyhow::Result<ExitCode> {
    let (experiment, cells) = load(&args.experiment, args.iterations)?;
    let out = std::path::absolute(&args.out)
        .with_context(|| format!("{}: cannot make the path absolute", args.out.display()))?;
    let grid_dir = out.join(&experiment.name);
    let finished = summary::finished_cells(&grid_dir, &cells, experiment.iterations);
    let pruned = summary::pruned_cells(&grid_dir, &cells);
    let pending: Vec<usize> = cells
        .iter()
        .map(|c| c.index)
        .filter(|i| !finished.contains_key(i) && !pruned.contains_key(i))
        .collect();
    if pending.is_empty() {
        println!(
            "every cell of {} is finished ({} cells); nothing to submit. Summary: {}",
            experiment.name,
            cells.len(),
            grid_dir.join(summary::SUMMARY_FILE).display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let job = array_job(&args, &experiment, cells.len(), out, pending)?;
    let script = job.write()?;
    GridManifest::new(&experiment, &cells)
        .write(&grid_dir)
        .with_context(|| format!("{}: writing grid.toml", grid_dir.display()))?;
    println!(
        "wrote {} ({} of {} cells)",
        script.display(),
        job.cells.len(),
        cells.len()
    );
    submit_or_say_how(&job, &script, args.submit)?;
    Ok(ExitCode::SUCCESS)
}

/// The job array for the `pending` cells of a grid of `grid_cells`, as `args` ask.
fn array_job(
    args: &SlurmArgs,
    experiment: &Experiment,
    grid_cells: usize,
    out: PathBuf,
    pending: Vec<usize>,
) -> anyhow::Result<ArrayJob> {
    Ok(ArrayJob {
        experiment_name: experiment.name.clone(),
        max_parallel: args.max_parallel.map_or(pending.len(), |n| n as usize),
        cells: pending,
        grid_cells,
        exe: std::env::current_exe()
            .and_then(|p| p.canonicalize())
            .context("finding the siamese-tui binary")?,
        experiment_file: args
            .experiment
            .canonicalize()
            .with_context(|| format!("{}", args.experiment.display()))?,
        out,
        workdir: std::env::current_dir().context("reading the current folder")?,
        iterations: args.iterations,
        partition: args.partition.clone(),
        time: args.time.clone(),
        cpus_per_task: args.cpus_per_task,
        gpus_per_task: args.gpus_per_task,
    })
}

/// Submits the script (`submit`) or says how to; either way, says how to watch the job.
fn submit_or_say_how(job: &ArrayJob, script: &Path, submit: bool) -> anyhow::Result<()> {
    let grid_dir = job.grid_dir();
    if submit {
        let id = slurm::submit(script)?;
        println!(
            "submitted job array {id}; task logs in {}",
            grid_dir.join(slurm::SLURM_DIR).display()
        );
    } else {
        println!("submit it with: sbatch {}", script.display());
    }
    println!(
        "watch it with: {} --watch {}",
        job.exe.display(),
        grid_dir.display()
    );
    Ok(())
}

/// `--watch`: the screen (or, headless, lines until every cell is finished or failed).
fn watch_grid(grid_dir: &Path, headless: bool) -> anyhow::Result<ExitCode> {
    if headless || !std::io::stdout().is_terminal() {
        let mut stdout = std::io::stdout().lock();
        return Ok(exit_code(headless::watch_headless(grid_dir, &mut stdout)?));
    }
    watch::watch_screen(grid_dir)?;
    Ok(ExitCode::SUCCESS)
}

/// First Ctrl-C (or SIGTERM, which Slurm sends on scancel and at the time limit): running
/// cells snapshot and stop (resumable). A second Ctrl-C exits at once.
fn stop_on_ctrl_c(control: Arc<Control>) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let pressed = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register_conditional_shutdown(SIGINT, 130, Arc::clone(&pressed))
        .context("installing the Ctrl-C handler")?;
    signal_hook::flag::register(SIGINT, Arc::clone(&pressed))
        .context("installing the Ctrl-C handler")?;
    signal_hook::flag::register(SIGTERM, Arc::clone(&pressed))
        .context("installing the SIGTERM handler")?;
    std::thread::Builder::new()
        .name("siamese-ctrl-c".into())
        .spawn(move || {
            while !pressed.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
            }
            eprintln!("stopping: running cells save a snapshot (Ctrl-C again exits at once)");
            control.request_stop();
        })
        .context("starting the Ctrl-C watcher")?;
    Ok(())
}
