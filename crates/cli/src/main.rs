//! The `siamese` command: Caffe's `caffe` tool for the siamese MNIST example.
//! main.rs only declares the commands and dispatches; each command lives in its own module.

mod db;
mod features;
mod plot;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "siamese", version, about = "Train and inspect Caffe's siamese MNIST example")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect Caffe Datum LevelDBs.
    Db(db::DbArgs),
    /// Draw the embedding scatter (--features) or the loss curves (--log) as PNG.
    Plot(plot::PlotArgs),
}

/// Errors print on one line (`{:#}` joins the causes) and exit with status 1.
fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Db(args) => db::run(args),
        Command::Plot(args) => plot::run(&args),
    }
}
