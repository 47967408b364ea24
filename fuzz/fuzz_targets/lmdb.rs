//! Fuzzes the LMDB reader (`DatumDb::from_lmdb_bytes`, what `open_as(.., Lmdb)` does with a
//! data.mdb). An input starting with an even byte is a whole data.mdb; one starting with an
//! odd byte patches a real 200-record data.mdb: 4-byte offset and 1-byte value groups, the
//! last two bytes a cut point, so the fuzzer reaches the tree behind valid meta pages.
#![no_main]

#[path = "seed_db.rs"]
mod seed_db;

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use siamese_data::{Backend, DatumDb};

fn good_file() -> &'static [u8] {
    static FILE: OnceLock<Vec<u8>> = OnceLock::new();
    FILE.get_or_init(|| {
        let (dir, path) = seed_db::write_seed_db(Backend::Lmdb, |i| 300 + (i % 9) * 700);
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
        patched = seed_db::patched(good_file(), rest, 16);
        &patched
    };
    if let Err(e) = DatumDb::from_lmdb_bytes(Path::new("fuzz_lmdb"), bytes) {
        assert!(!e.to_string().contains('\n'));
    }
});
