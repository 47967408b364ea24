//! Fuzzes the LevelDB reader with its integrity checks (`DatumDb::open_as(.., LevelDb)`): the
//! first byte picks one file of a real 200-record database (a table, the log, the manifest,
//! CURRENT); an even second byte replaces that file by the rest, an odd one patches it (4-byte
//! offset and 1-byte value groups, the last two bytes a cut point), like the `lmdb` target.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use siamese_data::{Backend, Datum, DatumDb, record_key, write_datums_as};

/// The seed database's files, by name.
fn good_files() -> &'static [(String, Vec<u8>)] {
    static FILES: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("siamese-fuzz-ldb-{}", std::process::id()));
        let path = dir.join("db");
        std::fs::create_dir_all(&dir).expect("makes the seed folder");
        let records = (0..200).map(|i| {
            let bytes = 20 + (i % 9) * 30;
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
        write_datums_as(&path, Backend::LevelDb, records, true).expect("writes the seed database");
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
    DIR.get_or_init(|| std::env::temp_dir().join(format!("siamese-fuzz-ldb-in-{}", std::process::id())))
}

fn patched(good: &[u8], edits: &[u8]) -> Vec<u8> {
    let mut file = good.to_vec();
    let (groups, cut) = edits.split_at(edits.len() - edits.len() % 5);
    for group in groups.chunks_exact(5) {
        let at = u32::from_le_bytes(group[..4].try_into().expect("4 bytes")) as usize;
        if !file.is_empty() {
            let len = file.len();
            file[at % len] = group[4];
        }
    }
    if let &[a, b] = &cut[..cut.len().min(2)] {
        let at = u16::from_le_bytes([a, b]) as usize;
        file.truncate(at.min(file.len()));
    }
    file
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
            (true, _) => patched(good, rest),
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
