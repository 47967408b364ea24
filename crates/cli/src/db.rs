//! `siamese db`: look inside Caffe Datum LevelDBs and LMDBs (ours or Caffe's) without modifying
//! them. `dump` prints one CSV row per record, with the SHA-256 of its pixel bytes.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use sha2::{Digest, Sha256};
use siamese_data::DatumDb;

#[derive(Args)]
pub struct DbArgs {
    #[command(subcommand)]
    command: DbCommand,
}

#[derive(Subcommand)]
enum DbCommand {
    /// Print `key,channels,height,width,label,data_sha256` for each record, in key order.
    Dump {
        /// The LevelDB or LMDB folder (an LMDB is one holding data.mdb).
        db: PathBuf,
        /// Print at most N records.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
}

pub fn run(args: DbArgs) -> Result<()> {
    match args.command {
        DbCommand::Dump { db, limit } => dump(&db, limit, &mut std::io::stdout().lock()),
    }
}

fn dump(path: &std::path::Path, limit: Option<usize>, out: &mut impl Write) -> Result<()> {
    let db = DatumDb::open(path)?;
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(["key", "channels", "height", "width", "label", "data_sha256"])?;
    for (key, datum) in db.iter().take(limit.unwrap_or(usize::MAX)) {
        let sha = hex::encode(Sha256::digest(datum.data()));
        csv.write_record([
            key.to_string(),
            datum.channels().to_string(),
            datum.height().to_string(),
            datum.width().to_string(),
            datum.label().to_string(),
            sha,
        ])?;
    }
    csv.flush().context("writing to stdout")?;
    Ok(())
}
