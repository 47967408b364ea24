//! The `siamese` command: a Caffe-like front end to the siamese crates.
//! This file only declares the subcommands and dispatches; each lives in its own module.

mod draw;
mod net;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "siamese", version, about = "Caffe's siamese example, in Rust")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a net's layers, blobs, shapes and parameters.
    Net(net::NetArgs),
    /// Draw a net as Graphviz DOT, SVG or PNG.
    Draw(draw::DrawArgs),
}

fn main() {
    let result = match Cli::parse().command {
        Command::Net(args) => net::run(args),
        Command::Draw(args) => draw::run(args),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        if let Some(excerpt) = e
            .downcast_ref::<siamese_net::NetError>()
            .and_then(|n| n.excerpt())
        {
            eprintln!("{excerpt}");
        }
        std::process::exit(1);
    }
}
