//! `cargo xtask`: the project's chores as Rust instead of shell scripts.
//! Run `cargo xtask --help` for the list.

mod codegen;
mod download;
mod mnist;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
    /// Download (or import with --from) MNIST or Fashion-MNIST, verify, decompress and build
    /// the siamese pair LevelDBs (siamese_train_leveldb, siamese_test_leveldb).
    GetMnist(mnist::GetMnistArgs),
    /// Build siamese pair LevelDBs or LMDBs from IDX files (Caffe's convert_mnist_siamese_data).
    CreateSiameseDb {
        #[command(flatten)]
        input: mnist::ConvertArgs,
        #[command(flatten)]
        pairs: mnist::PairArgs,
    },
    /// Build one-Datum-per-digit LevelDBs or LMDBs for LeNet (Caffe's convert_mnist_data).
    CreateMnistDb(mnist::ConvertArgs),
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
    let root = workspace_root();
    match cli.command {
        Command::Codegen { check } => codegen::run(check),
        Command::GetMnist(args) => mnist::get_mnist(&args, &root),
        Command::CreateSiameseDb { input, pairs } => mnist::create_siamese(&input, &pairs, &root),
        Command::CreateMnistDb(args) => mnist::create_mnist(&args, &root),
    }
}

/// The workspace root (the folder above xtask/); default data paths are relative to it.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}
