//! The `siamese` command: Caffe's tools for the siamese example, one subcommand per module.

mod features;
mod plot;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "siamese",
    version,
    about = "Train and inspect Caffe's siamese MNIST example"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Draw the embedding scatter (--features) or the loss curves (--log) as PNG.
    Plot(plot::PlotArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Plot(args) => plot::run(&args),
    }
}
