//! What the database targets share: a real 200-record seed database of either backend, and
//! the byte patcher that turns an input into a damaged copy of one of its files.

use std::path::PathBuf;

use siamese_data::{Backend, Datum, record_key, write_datums_as};

/// Writes a 200-record database (record i holds `value_len(i)` bytes) in a fresh folder of
/// this process; returns (that folder, to remove when done, and the database inside it).
pub fn write_seed_db(backend: Backend, value_len: impl Fn(usize) -> usize) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "siamese-fuzz-{}-{}",
        backend.suffix(),
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("makes the seed folder");
    let path = dir.join("db");
    let records = (0..200).map(|i| {
        let bytes = value_len(i);
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
    write_datums_as(&path, backend, records, true).expect("writes the seed database");
    (dir, path)
}

/// `good` with `edits` applied: 4-byte offset and 1-byte value groups, then (the last two
/// bytes, if any) a cut point in units of `cut_unit` bytes.
pub fn patched(good: &[u8], edits: &[u8], cut_unit: usize) -> Vec<u8> {
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
        let at = u16::from_le_bytes([a, b]) as usize * cut_unit;
        file.truncate(at.min(file.len()));
    }
    file
}
