//! The `siamese-tui` command: checks an experiment file, then runs its grid behind a live
//! screen, or with `--headless` (automatic when stdout is not a terminal) as plain lines.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use siamese_tui::cell_trainer::Control;
use siamese_tui::experiment::Experiment;
use siamese_tui::grid::Cell;
use siamese_tui::runner::RunOptions;
use siamese_tui::{headless, terminal, train};

/// Run a grid of siamese training runs and watch them learn.
#[derive(Parser, Debug)]
#[command(name = "siamese-tui", version)]
struct Args {
    /// The experiment file (TOML), e.g. experiments/margin_sweep.toml.
    experiment: PathBuf,
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
    let mut experiment = Experiment::load(&args.experiment)?;
    if let Some(n) = args.iterations {
        experiment.iterations = n;
    }
    let cells = Cell::expand(&experiment);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut options = RunOptions::fitting(args.out.clone(), cells.len(), cores, args.fresh);
    if let Some(w) = args.workers {
        options.workers = w as usize;
        options.threads = (cores / options.workers).max(1);
    }
    if let Some(t) = args.threads {
        options.threads = t as usize;
    }
    let trainer = train::trainer()?;
    let control = Arc::new(Control::new());
    let headless = args.headless || !std::io::stdout().is_terminal();
    let report = if headless {
        stop_on_ctrl_c(Arc::clone(&control))?;
        let mut stdout = std::io::stdout().lock();
        headless::run_headless(
            &experiment,
            &cells,
            &options,
            trainer.as_ref(),
            &control,
            &mut stdout,
        )?
    } else {
        let report =
            terminal::run_screen(&experiment, &cells, &options, trainer.as_ref(), &control)?;
        println!("{}", siamese_tui::end_line(&report));
        report
    };
    Ok(if report.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// First Ctrl-C: running cells snapshot and stop (resumable). Second: exit at once.
fn stop_on_ctrl_c(control: Arc<Control>) -> anyhow::Result<()> {
    use signal_hook::consts::SIGINT;
    let pressed = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register_conditional_shutdown(SIGINT, 130, Arc::clone(&pressed))
        .context("installing the Ctrl-C handler")?;
    signal_hook::flag::register(SIGINT, Arc::clone(&pressed))
        .context("installing the Ctrl-C handler")?;
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
