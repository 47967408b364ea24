//! Fuzzes the LMDB reader (`DatumDb::from_lmdb_bytes`, what `open_as(.., Lmdb)` does with a
//! data.mdb). An input starting with an even byte is a whole data.mdb; one starting with an
//! odd byte patches a real 200-record data.mdb: 4-byte offset and 1-byte value groups, the
//! last two bytes a cut point, so the fuzzer reaches the tree behind valid meta pages.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use siamese_data::{Backend, Datum, DatumDb, record_key, write_datums_as};

fn good_file() -> &'static [u8] {
    static FILE: OnceLock<Vec<u8>> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("siamese-fuzz-lmdb-{}", std::process::id()));
        let path = dir.join("db");
        std::fs::create_dir_all(&dir).expect("makes the seed folder");
        let records = (0..200).map(|i| {
            let bytes = 300 + (i % 9) * 700;
            let datum = Datum {
                channels: Some(1),
                height: Some(1),
                width: Some(bytes as i32),
                data: Some(vec![i as u8; bytes]),
                label: Some(i as i32),
                ..Default::default()
            };
            (record_key(i), datum)
        });
        write_datums_as(&path, Backend::Lmdb, records, true).expect("writes the seed database");
        let bytes = std::fs::read(path.join("data.mdb")).expect("reads it back");
        let _ = std::fs::remove_dir_all(&dir);
        bytes
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let patched;
    let bytes = if mode % 2 == 0 {
        rest
    } else {
        let mut file = good_file().to_vec();
        let (groups, cut) = rest.split_at(rest.len() - rest.len() % 5);
        for group in groups.chunks_exact(5) {
            let at = u32::from_le_bytes(group[..4].try_into().expect("4 bytes")) as usize;
            let len = file.len();
            file[at % len] = group[4];
        }
        if let &[a, b] = &cut[..cut.len().min(2)] {
            let at = u16::from_le_bytes([a, b]) as usize * 16;
            file.truncate(at.min(file.len()));
        }
        patched = file;
        &patched
    };
    if let Err(e) = DatumDb::from_lmdb_bytes(Path::new("fuzz_lmdb"), bytes) {
        assert!(!e.to_string().contains('\n'));
    }
});
