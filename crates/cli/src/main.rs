//! The `siamese` command: Caffe's `caffe` tool for the siamese MNIST example.
//! main.rs only declares the commands and dispatches; each command lives in its own module.

mod compare;
mod db;
mod device;
mod draw;
mod embed;
mod eval;
mod export;
mod net;
mod net_stats;
mod plot;
mod test_net;
mod threads;
mod time;
mod train;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "siamese",
    version,
    about = "Train and inspect Caffe's siamese MNIST example"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect Caffe Datum LevelDBs.
    Db(db::DbArgs),
    /// Show a net's layers, blobs, shapes and parameters.
    Net(net::NetArgs),
    /// Draw a net as Graphviz DOT, SVG or PNG.
    Draw(draw::DrawArgs),
    /// Run a deploy net over IDX images or PNG/JPEG files and write its last output as CSV.
    Embed(embed::EmbedArgs),
    /// Distance between two images' embeddings, and whether they count as the same class.
    Compare(compare::CompareArgs),
    /// Write a deploy net with its trained weights as an ONNX model.
    Export(export::ExportArgs),
    /// Train a net from a solver definition (Caffe's `caffe train`).
    Train(train::TrainArgs),
    /// Mean of each net output over N test batches (Caffe's `caffe test`).
    Test(test_net::TestArgs),
    /// Forward/backward timings per layer (Caffe's `caffe time`).
    Time(time::TimeArgs),
    /// k-NN and pair-verification accuracy of an embedding.
    Eval(eval::EvalArgs),
    /// Draw the embedding scatter (--features) or the loss curves (--log) as PNG.
    Plot(plot::PlotArgs),
}

/// Errors print on one line (the causes joined by `: `), followed by the offending prototxt
/// line with a caret when there is one, and exit with status 1.
fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            if let Some(excerpt) = e
                .downcast_ref::<siamese_net::NetError>()
                .and_then(|n| n.excerpt())
            {
                eprintln!("{excerpt}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined by `: `, skipping a cause whose text the message before it
/// already ends with (library errors often print their source themselves).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.is_empty() {
            line = text;
        } else if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Db(args) => db::run(args),
        Command::Net(args) => net::run(args),
        Command::Draw(args) => draw::run(args),
        Command::Embed(args) => embed::run(args),
        Command::Compare(args) => compare::run(&args),
        Command::Export(args) => export::run(&args),
        Command::Train(args) => train::run(&args),
        Command::Test(args) => test_net::run(&args),
        Command::Time(args) => time::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Plot(args) => plot::run(&args),
    }
}

#[cfg(test)]
mod tests {
    use super::one_line;

    /// An error that prints its source and also reports it as its source.
    #[derive(Debug)]
    struct Repeats {
        source: std::io::Error,
    }

    impl std::fmt::Display for Repeats {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "layer \"data\": {}", self.source)
        }
    }

    impl std::error::Error for Repeats {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn causes_join_once() {
        let io = || std::io::Error::other("db: no such folder");
        let repeated = anyhow::Error::new(Repeats { source: io() }).context("solver.prototxt");
        assert_eq!(
            one_line(&repeated),
            "solver.prototxt: layer \"data\": db: no such folder"
        );
        let plain = anyhow::Error::new(io()).context("cannot open");
        assert_eq!(one_line(&plain), "cannot open: db: no such folder");
    }
}
