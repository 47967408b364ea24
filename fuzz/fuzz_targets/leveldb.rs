//! Fuzzes the LevelDB reader with its integrity checks (`DatumDb::open_as(.., LevelDb)`): the
//! first byte picks one file of a real 200-record database (a table, the log, the manifest,
//! CURRENT); an even second byte replaces that file by the rest, an odd one patches it (4-byte
//! offset and 1-byte value groups, the last two bytes a cut point), like the `lmdb` target.
#![no_main]

#[path = "seed_db.rs"]
mod seed_db;

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use siamese_data::{Backend, DatumDb};

/// The seed database's files, by name.
fn good_files() -> &'static [(String, Vec<u8>)] {
    static FILES: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    FILES.get_or_init(|| {
        let (dir, path) = seed_db::write_seed_db(Backend::LevelDb, |i| 20 + (i % 9) * 30);
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&path)
            .expect("lists it")
            .map(|e| {
                let e = e.expect("an entry");
                let bytes = std::fs::read(e.path()).expect("reads a file");
                (e.file_name().to_string_lossy().into_owned(), bytes)
            })
            .filter(|(name, _)| name != "LOCK" && name != "LOG" && name != "LOG.old")
            .collect();
        files.sort();
        let _ = std::fs::remove_dir_all(&dir);
        files
    })
}

/// A folder of this process where each input's database is laid out.
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        std::env::temp_dir().join(format!("siamese-fuzz-ldb-in-{}", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let &[pick, mode, ref rest @ ..] = data else {
        return;
    };
    let files = good_files();
    let target = pick as usize % files.len();
    let dir = scratch();
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("makes the scratch folder");
    for (i, (name, good)) in files.iter().enumerate() {
        let bytes = match (i == target, mode % 2) {
            (false, _) => good.clone(),
            (true, 0) => rest.to_vec(),
            (true, _) => seed_db::patched(good, rest, 1),
        };
        std::fs::write(dir.join(name), bytes).expect("writes a file");
    }
    match DatumDb::open_as(dir, Backend::LevelDb) {
        Ok(db) => {
            let _ = db.first();
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "{e}"),
    }
});
