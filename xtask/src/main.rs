//! `cargo xtask`: the project's chores as Rust instead of shell scripts.
//! Run `cargo xtask --help` for the list.

mod codegen;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "siamese project chores")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Regenerate crates/proto's Rust code and descriptor set from caffe.proto.
    Codegen {
        /// Only check that the checked-in files are up to date.
        #[arg(long)]
        check: bool,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Codegen { check } => codegen::run(check),
    }
}
