//! Property tests of the LMDB reader: any records C LMDB writes read back as written, and any
//! bytes or damage to a real data.mdb give records or a one-line error naming the database,
//! never a panic. (The same entry point is fuzzed by `fuzz/fuzz_targets/lmdb.rs`.)

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use siamese_data::{Backend, Datum, DatumDb, record_key, write_datums_as};

/// Reads `bytes` as a data.mdb and checks what comes out: records in strictly increasing key
/// order, or a one-line error that names the database.
fn check(bytes: &[u8]) {
    match DatumDb::from_lmdb_bytes(Path::new("props/db"), bytes) {
        Ok(db) => {
            let keys: Vec<_> = db.iter().map(|(k, _)| k.to_string()).collect();
            assert!(keys.windows(2).all(|w| w[0] < w[1]) || keys.len() < 2);
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("props/db: "), "{msg}");
            assert!(!msg.contains('\n'), "{msg:?}");
        }
    }
}

fn datum(bytes: usize, label: i32) -> Datum {
    Datum {
        channels: Some(1),
        height: Some(1),
        width: Some(bytes as i32),
        data: Some((0..bytes).map(|b| (b * 31 + bytes) as u8).collect()),
        label: Some(label),
        ..Default::default()
    }
}

/// A real database of 200 records (some in overflow pages), written once.
fn good_file() -> &'static [u8] {
    static FILE: OnceLock<Vec<u8>> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let records = (0..200).map(|i| (record_key(i), datum(300 + (i % 9) * 700, i as i32)));
        write_datums_as(&path, Backend::Lmdb, records, false).unwrap();
        std::fs::read(path.join("data.mdb")).unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Keys of any bytes a String holds and values up to 9 KB (over two 4 KiB pages), in any
    /// order with repeats: reading gives the last value of each key, in key order.
    #[test]
    fn what_c_lmdb_writes_reads_back(
        records in prop::collection::vec(("[0-9a-z]{1,12}", 0usize..9000, any::<i32>()), 0..120)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let written = records.iter().map(|(k, n, l)| (k.clone(), datum(*n, *l)));
        write_datums_as(&path, Backend::Lmdb, written, false).unwrap();
        let expected: BTreeMap<_, _> =
            records.iter().map(|(k, n, l)| (k.clone(), datum(*n, *l))).collect();
        let read = DatumDb::open(&path).unwrap().into_records();
        prop_assert_eq!(read, expected.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn any_bytes_are_records_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..20_000)) {
        check(&bytes);
    }

    /// A real data.mdb with a few bytes overwritten and maybe cut short.
    #[test]
    fn damaged_files_are_records_or_an_error(
        patches in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let mut bytes = good_file().to_vec();
        for (at, byte) in patches {
            let at = at.index(bytes.len());
            bytes[at] = byte;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        check(&bytes);
    }

    /// Meta pages whose numbers point anywhere: the one place a 64-byte change redirects the
    /// whole tree (root, depth, last page, counts).
    #[test]
    fn damaged_meta_pages_are_records_or_an_error(
        field in 0usize..20, value in any::<u64>(), page in 0usize..2,
    ) {
        let mut bytes = good_file().to_vec();
        let at = page * 4096 + 16 + field * 8;
        bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
        check(&bytes);
    }
}
