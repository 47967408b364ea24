//! `siamese draw`: a net as Graphviz DOT (like Caffe's draw_net.py), or SVG/PNG through the
//! `dot` program; the output is written to a temporary file and renamed into place.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::net::{PhaseArg, load};

#[derive(Args)]
pub struct DrawArgs {
    /// The net definition (.prototxt).
    #[arg(long)]
    pub model: PathBuf,
    /// Which phase's layers to draw.
    #[arg(long, value_enum, default_value_t = PhaseArg::Train)]
    pub phase: PhaseArg,
    /// Output file: .dot, .svg or .png (svg and png need Graphviz's `dot`).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: DrawArgs) -> Result<()> {
    let format = match args.out.extension().and_then(|e| e.to_str()) {
        Some("dot" | "gv") => None,
        Some("svg") => Some("svg"),
        Some("png") => Some("png"),
        _ => bail!(
            "{}: the output must end in .dot, .svg or .png",
            args.out.display()
        ),
    };
    let net = load(&args.model, args.phase)?;
    let dot = siamese_net::dot::render(&net);
    let bytes = match format {
        None => dot.into_bytes(),
        Some(format) => run_dot(&dot, format)?,
    };
    siamese_files::write_atomic(&args.out, &bytes)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

/// Renders DOT text with Graphviz's `dot -T<format>`.
fn run_dot(dot: &str, format: &str) -> Result<Vec<u8>> {
    let mut child = match Command::new("dot")
        .arg(format!("-T{format}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "drawing {format} needs Graphviz's `dot` program, which is not installed: install the \
             `graphviz` package (e.g. `apt install graphviz`, `brew install graphviz`), or write \
             a .dot file instead"
        ),
        Err(e) => return Err(e).context("cannot run Graphviz's `dot`"),
    };
    let mut stdin = child.stdin.take().context("no stdin for `dot`")?;
    let text = dot.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let output = child.wait_with_output().context("`dot` failed")?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("writing to `dot` panicked"))?
        .context("cannot write to `dot`")?;
    if !output.status.success() {
        bail!(
            "`dot -T{format}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output.stdout)
}
