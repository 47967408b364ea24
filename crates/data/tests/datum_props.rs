//! Property tests: whatever values a LevelDB holds, decoding them as Caffe Datums and checking
//! them into batches gives batches or a one-line error naming the database, never a panic.
//! (The same entry point is fuzzed by `fuzz/fuzz_targets/datum.rs`.)

use std::path::Path;

use proptest::prelude::*;
use prost::Message;
use siamese_data::batches::BatchReader;
use siamese_data::leveldb::DatumDb;
use siamese_data::{Datum, record_key};

/// Decodes `values` as the records of a database and reads two batches when they check.
fn check(values: Vec<Vec<u8>>) {
    let path = Path::new("props/db");
    let raw = values
        .into_iter()
        .enumerate()
        .map(|(i, v)| (record_key(i).into_bytes(), v));
    let result = DatumDb::from_raw(path, raw).and_then(|db| BatchReader::from_db(db, 0.5));
    match result {
        Ok(mut reader) => {
            let size: usize = reader.datum_shape().iter().product();
            for batch in [1, reader.len() + 1] {
                let mut data = vec![0f32; batch * size];
                let mut labels = vec![0f32; batch];
                reader.next_batch(&mut data, &mut labels).unwrap();
                assert!(data.iter().all(|v| (0.0..=127.5).contains(v)));
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("props/db: "), "{msg}");
            assert!(!msg.contains('\n'), "{msg:?}");
        }
    }
}

/// A Datum with small, zero, negative or huge dimensions and data that may or may not fit.
fn datum() -> impl Strategy<Value = Datum> {
    let dim = prop_oneof![4 => 1i32..4, 1 => Just(0), 1 => Just(-1), 1 => Just(i32::MAX)];
    (
        prop::option::of(dim.clone()),
        prop::option::of(dim.clone()),
        prop::option::of(dim),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..30)),
        prop::collection::vec(any::<f32>(), 0..3),
        any::<Option<i32>>(),
        prop::option::of(any::<bool>()),
    )
        .prop_map(
            |(channels, height, width, data, float_data, label, encoded)| Datum {
                channels,
                height,
                width,
                data,
                float_data,
                label,
                encoded,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_values_never_panic(
        values in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..5),
    ) {
        check(values);
    }

    #[test]
    fn random_datums_never_panic(datums in prop::collection::vec(datum(), 0..5)) {
        check(datums.iter().map(Message::encode_to_vec).collect());
    }

    #[test]
    fn damaged_datums_never_panic(
        datums in prop::collection::vec(datum(), 1..4),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
    ) {
        let mut values: Vec<Vec<u8>> = datums.iter().map(Message::encode_to_vec).collect();
        for (at, xor) in flips {
            let v = at.get_mut(&mut values);
            if !v.is_empty() {
                let i = at.index(v.len());
                v[i] ^= xor;
            }
        }
        check(values);
    }
}

/// Two well-formed records give batches (so the properties above exercise the good path too).
#[test]
fn good_records_give_batches() {
    let good = |label| Datum {
        channels: Some(2),
        height: Some(1),
        width: Some(2),
        data: Some(vec![0, 255, 1, 2]),
        label: Some(label),
        ..Default::default()
    };
    let raw = [0, 1].map(|i| (record_key(i as usize).into_bytes(), good(i).encode_to_vec()));
    let mut reader =
        BatchReader::from_db(DatumDb::from_raw(Path::new("db"), raw).unwrap(), 0.5).unwrap();
    let (mut data, mut labels) = ([0f32; 8], [0f32; 2]);
    reader.next_batch(&mut data, &mut labels).unwrap();
    assert_eq!(labels, [0.0, 1.0]);
    assert_eq!(data[1], 127.5);
}
