//! Times reading a Datum LevelDB (private copy, table checks) or LMDB (page checks) whole, as
//! the Data layer does at start-up, every record decoded. Usage: read_db DB REPEATS

use std::path::Path;
use std::time::Instant;

use siamese_data::DatumDb;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [db, repeats] = args.as_slice() else {
        return Err("usage: read_db DB REPEATS".into());
    };
    let mut times = Vec::new();
    for _ in 0..repeats.parse::<usize>()? {
        let start = Instant::now();
        let records = DatumDb::open(Path::new(db))?.len();
        times.push(start.elapsed().as_secs_f64());
        println!("{records} records in {:.3} s", times.last().unwrap());
    }
    times.sort_by(f64::total_cmp);
    println!(
        "min {:.3} s, median {:.3} s over {} reads",
        times[0],
        times[times.len() / 2],
        times.len()
    );
    Ok(())
}
