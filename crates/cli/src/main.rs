//! The `siamese` command: Caffe's `caffe` tool for the siamese MNIST example.
//! main.rs only declares the commands and dispatches; each command lives in its own module.

mod db;

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
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Db(args) => db::run(args),
    }
}
