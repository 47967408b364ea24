//! `siamese net`: load a prototxt for one phase and print its layer table
//! (shapes, parameters, shared ones marked) and any warnings.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, ValueEnum};
use siamese_layers::MemoryPlan;
use siamese_layers::memory::{PROCESS_OVERHEAD_BYTES, format_bytes};
use siamese_net::NetSpec;
use siamese_proto::Phase;

#[derive(Args)]
pub struct NetArgs {
    /// The net definition (.prototxt, current or 2014 V1 syntax).
    #[arg(long)]
    pub model: PathBuf,
    /// Which phase's layers to keep (include/exclude rules).
    #[arg(long, value_enum, default_value_t = PhaseArg::Train)]
    pub phase: PhaseArg,
}

/// The net phase on the command line.
#[derive(Clone, Copy, ValueEnum)]
pub enum PhaseArg {
    Train,
    Test,
}

impl From<PhaseArg> for Phase {
    fn from(p: PhaseArg) -> Phase {
        match p {
            PhaseArg::Train => Phase::Train,
            PhaseArg::Test => Phase::Test,
        }
    }
}

/// Loads `model` and builds it for `phase`, printing warnings (unreadable data sources) to stderr.
pub fn load(model: &Path, phase: PhaseArg) -> Result<NetSpec> {
    let param = siamese_net::load_net(model)?;
    let net = NetSpec::build(&param, phase.into(), model.parent()).map_err(|e| {
        match e.in_file(model) {
            // Already says `file:line:col`.
            e @ siamese_net::NetError::At { .. } => anyhow::Error::new(e),
            e => anyhow::Error::new(e).context(model.display().to_string()),
        }
    })?;
    for w in &net.warnings {
        eprintln!("warning: {w}");
    }
    Ok(net)
}

pub fn run(args: NetArgs) -> Result<()> {
    let net = load(&args.model, args.phase)?;
    print!("{}", siamese_net::table::render(&net));
    print!("{}", memory_lines(&MemoryPlan::of_net(&net)));
    Ok(())
}

/// The net's memory plan as `siamese net` prints it: the total, then the biggest items.
fn memory_lines(plan: &MemoryPlan) -> String {
    let mut text = format!(
        "memory: {} for this net (values and gradients of every parameter and top, scratch, \
         data records, {} of process overhead); a solver adds its history\n",
        format_bytes(plan.total()),
        format_bytes(PROCESS_OVERHEAD_BYTES)
    );
    for item in plan.biggest(5) {
        text.push_str(&format!("  {item}\n"));
    }
    text
}
