//! Times a siamese pair conversion: IDX files in, Datum LevelDB out, as `cargo xtask
//! create-siamese-db` does it. Usage: convert_pairs IMAGES LABELS OUT PAIRS_PER_IMAGE

use std::path::Path;
use std::time::Instant;

use siamese_data::convert::create_siamese_db;
use siamese_data::pairs::PairOptions;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [images, labels, out, per_image] = args.as_slice() else {
        return Err("usage: convert_pairs IMAGES LABELS OUT PAIRS_PER_IMAGE".into());
    };
    let opts = PairOptions {
        pairs_per_image: per_image.parse()?,
        ..Default::default()
    };
    let start = Instant::now();
    let report = create_siamese_db(
        Path::new(images),
        Path::new(labels),
        Path::new(out),
        &opts,
        true,
    )?;
    println!(
        "{} pairs written to {out} in {:.3} s",
        report.records,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
