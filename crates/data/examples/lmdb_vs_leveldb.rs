//! Times reading the same 60,000 siamese pairs (the train sample, 8 pairs per image, the first
//! 60,000) from a LevelDB and from an LMDB, interleaved. Usage: lmdb_vs_leveldb DIR REPEATS

use std::path::Path;
use std::time::Instant;

use siamese_data::pairs::{PairOptions, generate_pairs, pair_datum};
use siamese_data::{Backend, Dataset, DatumDb, record_key, write_datums_as};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, repeats] = args.as_slice() else {
        return Err("usage: lmdb_vs_leveldb DIR REPEATS".into());
    };
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist-sample");
    let data = Dataset::load(
        &sample.join("train-images-idx3-ubyte.gz"),
        &sample.join("train-labels-idx1-ubyte.gz"),
    )?;
    let opts = PairOptions {
        pairs_per_image: 8,
        ..PairOptions::default()
    };
    let pairs = generate_pairs(&data, &opts);
    let records: Vec<_> = (0..60_000)
        .map(|k| (record_key(k), pair_datum(&data, &pairs[k])))
        .collect();
    let mut times = Vec::new();
    for backend in [Backend::LevelDb, Backend::Lmdb] {
        let db = Path::new(dir).join(format!("pairs_60000_{}", backend.suffix()));
        if !db.exists() {
            write_datums_as(&db, backend, records.clone(), false)?;
        }
        times.push((backend, db, Vec::new()));
    }
    for _ in 0..repeats.parse::<usize>()? {
        for (backend, db, seconds) in &mut times {
            let start = Instant::now();
            let read = DatumDb::open_as(db, *backend)?;
            seconds.push(start.elapsed().as_secs_f64());
            assert_eq!(read.into_records(), records, "{backend}");
        }
    }
    for (backend, db, mut seconds) in times {
        let bytes: u64 = std::fs::read_dir(&db)?
            .map(|e| e.map(|e| e.metadata().map(|m| m.len()).unwrap_or(0)))
            .sum::<Result<_, _>>()?;
        seconds.sort_by(f64::total_cmp);
        println!(
            "{backend}: {} bytes, reads {:.3?} s, median {:.3} s",
            bytes,
            seconds,
            seconds[seconds.len() / 2]
        );
    }
    Ok(())
}
