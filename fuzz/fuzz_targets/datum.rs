//! Fuzzes Datum decoding as the Data layer does it: the input is split into LevelDB values
//! (each prefixed by a one-byte length), decoded into Datums, checked into a BatchReader and
//! read for a few batches.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use siamese_data::batches::BatchReader;
use siamese_data::leveldb::DatumDb;

fuzz_target!(|data: &[u8]| {
    let mut raw = Vec::new();
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let len = (len as usize).min(tail.len());
        let key = siamese_data::record_key(raw.len()).into_bytes();
        raw.push((key, tail[..len].to_vec()));
        rest = &tail[len..];
    }
    let Ok(db) = DatumDb::from_raw(Path::new("fuzz_leveldb"), raw) else {
        return;
    };
    let Ok(mut reader) = BatchReader::from_db(db, 1.0 / 256.0) else {
        return;
    };
    let size: usize = reader.datum_shape().iter().product();
    if size > 1 << 16 {
        return;
    }
    for batch in [1, 3] {
        let mut values = vec![0f32; batch * size];
        let mut labels = vec![0f32; batch];
        reader
            .next_batch(&mut values, &mut labels)
            .expect("buffers fit the batch");
    }
});
