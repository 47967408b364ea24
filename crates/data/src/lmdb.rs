//! Caffe `Datum` records in LMDB (Caffe's default backend): written through heed (C LMDB from
//! the mdb.master branch, on-disk format 1 like LMDB 0.9.x), read in safe Rust.
//!
//! Reading never calls the C library (`crate::lmdb_pages` says why): it reads `data.mdb` as a
//! plain file, so the folder may be read-only, nothing in it changes and no `lock.mdb` appears.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use heed::types::Bytes;
use heed::{CommitOrAbort, EnvFlags, EnvOpenOptions, PutFlags};
use prost::Message;

use crate::lmdb_pages::read_records;
use crate::{DataError, Datum};

/// Records per write transaction, as Caffe's convert tools commit.
const WRITE_BATCH: usize = 1000;
/// The first map size; it doubles whenever a batch could fill it (as Caffe's LMDB writer does).
const FIRST_MAP_SIZE: usize = 64 << 20;

fn lmdb_error(path: &Path, reason: impl std::fmt::Display) -> DataError {
    DataError::Lmdb {
        path: path.into(),
        reason: reason.to_string(),
    }
}

/// The file LMDB keeps its data in, inside the environment folder.
pub const DATA_FILE: &str = "data.mdb";

/// Whether `path` is an LMDB environment folder (it holds `data.mdb`).
pub fn is_lmdb_folder(path: &Path) -> bool {
    path.join(DATA_FILE).is_file()
}

/// Every (key, value) of the LMDB at `path`, in key order, decoded by `decode` while the file's
/// bytes are held. Errors name `path` and the page (and key) at fault.
pub(crate) fn read_lmdb<T>(
    path: &Path,
    decode: impl FnOnce(Vec<(&[u8], &[u8])>) -> Result<T, DataError>,
) -> Result<T, DataError> {
    let file = path.join(DATA_FILE);
    if !file.is_file() {
        let reason = if path.is_dir() {
            "no data.mdb, expected an LMDB folder"
        } else if path.exists() {
            "not a folder, expected an LMDB folder (holding data.mdb)"
        } else {
            "no such folder, expected an LMDB folder"
        };
        return Err(lmdb_error(path, reason));
    }
    let mut bytes = Vec::new();
    File::open(&file)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| DataError::io(&file, e))?;
    decode_lmdb_bytes(path, &bytes, decode)
}

/// Like [`read_lmdb`] over the bytes of a `data.mdb` (fuzzing, tests).
pub(crate) fn decode_lmdb_bytes<T>(
    path: &Path,
    bytes: &[u8],
    decode: impl FnOnce(Vec<(&[u8], &[u8])>) -> Result<T, DataError>,
) -> Result<T, DataError> {
    let records = read_records(bytes).map_err(|e| lmdb_error(path, format!("data.mdb: {e}")))?;
    decode(records)
}

/// Writes `records` as a new LMDB environment in the empty folder `dir` (no `lock.mdb`: a
/// reader makes its own). Keys in increasing order are appended (full pages), others put.
pub(crate) fn fill_lmdb(
    dir: &Path,
    records: impl IntoIterator<Item = (String, Datum)>,
) -> Result<usize, heed::Error> {
    let mut map_size = FIRST_MAP_SIZE;
    let mut options = EnvOpenOptions::new();
    options.map_size(map_size);
    // SAFETY: the folder is our fresh temporary one; nothing else opens it while we write.
    let env = unsafe {
        options.flags(EnvFlags::NO_LOCK);
        options.open(dir)?
    };
    let db = env
        .create_databases_and_commit(env.write_txn()?, |opener, txn| {
            let db = opener.create_database::<Bytes, Bytes>(txn, None)?;
            Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit(db))
        })?
        .unwrap_commit();
    let mut txn = env.write_txn()?;
    // The greatest key so far: a greater one can be appended.
    let (mut count, mut value, mut max_key) = (0, Vec::new(), Vec::new());
    let mut batch_bytes = 0;
    let page_size = env.unnamed_database_stat().page_size as usize;
    for (key, datum) in records {
        value.clear();
        datum.encode(&mut value).expect("Vec<u8> grows as needed");
        if count == 0 || key.as_bytes() > max_key.as_slice() {
            db.put_with_flags(&mut txn, PutFlags::APPEND, key.as_bytes(), &value)?;
            max_key.clear();
            max_key.extend_from_slice(key.as_bytes());
        } else {
            db.put(&mut txn, key.as_bytes(), &value)?;
        }
        count += 1;
        batch_bytes += key.len() + value.len();
        if count % WRITE_BATCH == 0 {
            txn.commit()?;
            let used = (env.info().last_page_number + 1) * page_size;
            // Room for two more batches like this one (pages half full, at worst).
            while used + 4 * batch_bytes + (1 << 20) > map_size {
                map_size *= 2;
            }
            if map_size > env.info().map_size {
                // SAFETY: no transaction is open, and this process alone has the folder.
                unsafe { env.resize(map_size)? };
            }
            batch_bytes = 0;
            txn = env.write_txn()?;
        }
    }
    txn.commit()?;
    env.force_sync()?;
    env.prepare_for_closing().wait();
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Backend, DatumDb, write_datums_as};
    use crate::record_key;
    use std::collections::BTreeMap;
    use std::time::SystemTime;

    /// A pair-sized record (2 x 28 x 28 bytes), or with `big` one of 3 x 40 x 40 bytes: more
    /// than LMDB keeps on a 4 KiB page, so in overflow pages.
    fn datum(i: usize, big: bool) -> Datum {
        let (c, side) = if big { (3, 40) } else { (2, 28) };
        Datum {
            channels: Some(c),
            height: Some(side),
            width: Some(side),
            data: Some(
                (0..c * side * side)
                    .map(|b| (b as usize * 7 + i) as u8)
                    .collect(),
            ),
            label: Some((i % 2) as i32),
            ..Default::default()
        }
    }

    fn records(n: usize) -> Vec<(String, Datum)> {
        (0..n)
            .map(|i| (record_key(i), datum(i, i % 7 == 3)))
            .collect()
    }

    fn write(path: &Path, records: Vec<(String, Datum)>) {
        write_datums_as(path, Backend::Lmdb, records, false).unwrap();
    }

    /// File name -> (bytes, modification time), for every file of a folder.
    fn snapshot(dir: &Path) -> BTreeMap<String, (Vec<u8>, SystemTime)> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let modified = e.metadata().unwrap().modified().unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                (name, (std::fs::read(e.path()).unwrap(), modified))
            })
            .collect()
    }

    /// What C LMDB reads from the environment at `path` (a copy, so the original stays as it was).
    fn read_with_c_lmdb(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
        let copy = tempfile::tempdir().unwrap();
        std::fs::copy(path.join(DATA_FILE), copy.path().join(DATA_FILE)).unwrap();
        // SAFETY: a private copy that nothing else opens.
        let env = unsafe { EnvOpenOptions::new().open(copy.path()).unwrap() };
        let db = env
            .open_databases_and_commit(env.read_txn().unwrap(), |opener, txn| {
                let db = opener.open_database::<Bytes, Bytes>(txn, None)?;
                Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit(db))
            })
            .unwrap()
            .unwrap_commit()
            .expect("the unnamed database");
        let txn = env.read_txn().unwrap();
        let out = db
            .iter(&txn)
            .unwrap()
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
            .collect();
        drop(txn);
        env.prepare_for_closing().wait();
        out
    }

    #[test]
    fn write_then_read_round_trips_and_agrees_with_c_lmdb() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        // Over several write batches; out of order, so both appends and plain puts are used.
        let mut input = records(2600);
        input.swap(10, 2000);
        write(&path, input);
        let db = DatumDb::open(&path).unwrap();
        assert_eq!(db.into_records(), records(2600));
        let ours = read_records(&std::fs::read(path.join(DATA_FILE)).unwrap())
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect::<Vec<_>>();
        assert_eq!(ours, read_with_c_lmdb(&path));
        // Only data.mdb (no lock.mdb), and nothing temporary beside the database.
        assert_eq!(snapshot(&path).into_keys().collect::<Vec<_>>(), [DATA_FILE]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// tests/fixtures/py_lmdb_50 was written by py-lmdb 3.0.0 (bundled LMDB 0.9.36) with
    /// scripts/lmdb_compat.py: records 0..50, each the `datum(i, i % 7 == 3)` above.
    #[test]
    fn reads_a_database_written_by_lmdb_0_9_untouched() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/py_lmdb_50");
        let before = snapshot(&path);
        let db = DatumDb::open_as(&path, Backend::Lmdb).unwrap();
        assert_eq!(db.into_records(), records(50));
        assert_eq!(snapshot(&path), before);
    }

    #[cfg(unix)]
    #[test]
    fn a_read_only_folder_reads_and_nothing_changes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        write(&path, records(300));
        let mode = |p: &Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
        mode(&path.join(DATA_FILE), 0o444).unwrap();
        mode(&path, 0o555).unwrap();
        let before = snapshot(&path);
        for _ in 0..2 {
            assert_eq!(DatumDb::open(&path).unwrap().len(), 300);
        }
        // Same files (no lock.mdb), same bytes, same modification times.
        assert_eq!(snapshot(&path), before);
        mode(&path, 0o755).unwrap();
    }

    #[test]
    fn an_empty_database_reads_as_no_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        write(&path, Vec::new());
        assert!(DatumDb::open(&path).unwrap().is_empty());
    }

    fn error_of(path: &Path) -> String {
        DatumDb::open_as(path, Backend::Lmdb)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn folders_that_are_not_an_lmdb_are_errors_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let expect = |path: &Path, what: &str| {
            assert_eq!(error_of(path), format!("{}: LMDB: {what}", path.display()));
        };
        expect(p, "no data.mdb, expected an LMDB folder");
        expect(&p.join("nope"), "no such folder, expected an LMDB folder");
        std::fs::write(p.join("file"), b"x").unwrap();
        expect(
            &p.join("file"),
            "not a folder, expected an LMDB folder (holding data.mdb)",
        );
        let db = p.join("db");
        std::fs::create_dir(&db).unwrap();
        std::fs::write(db.join(DATA_FILE), b"").unwrap();
        expect(
            &db,
            "data.mdb: 0 bytes, expected at least 152 (meta page 0; truncated file)",
        );
        std::fs::write(db.join(DATA_FILE), [0x5a; 9000]).unwrap();
        expect(
            &db,
            "data.mdb: meta page 0: magic 0x5a5a5a5a version 1515870810, expected 0xbeefc0de \
             version 1 (not an LMDB 0.9 data file, or damaged)",
        );
    }

    #[test]
    fn undecodable_value_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        std::fs::create_dir(&path).unwrap();
        // SAFETY: a fresh folder of this test.
        let env = unsafe { EnvOpenOptions::new().open(&path).unwrap() };
        let db = env
            .create_databases_and_commit(env.write_txn().unwrap(), |opener, txn| {
                let db = opener.create_database::<Bytes, Bytes>(txn, None)?;
                Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit(db))
            })
            .unwrap()
            .unwrap_commit();
        let mut txn = env.write_txn().unwrap();
        db.put(&mut txn, b"00000000", &[0x0f, 0xff]).unwrap();
        txn.commit().unwrap();
        env.prepare_for_closing().wait();
        let err = error_of(&path);
        assert!(
            err.starts_with(&format!(
                "{}: record \"00000000\": undecodable value",
                path.display()
            )),
            "{err}"
        );
    }

    #[test]
    fn truncation_anywhere_is_an_error_naming_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        write(&good, records(300));
        let original = std::fs::read(good.join(DATA_FILE)).unwrap();
        let bad = dir.path().join("bad");
        std::fs::create_dir(&bad).unwrap();
        for at in (0..original.len()).step_by(997).chain([original.len() - 1]) {
            std::fs::write(bad.join(DATA_FILE), &original[..at]).unwrap();
            let err = error_of(&bad);
            assert!(
                err.starts_with(&format!("{}: LMDB: data.mdb: ", bad.display())),
                "{err}"
            );
            assert!(err.ends_with("truncated file)"), "cut at {at}: {err}");
        }
    }

    /// Reads a damaged copy of `good` (300 records): `Ok(true)` for the records as written,
    /// `Ok(false)` for changed ones, or the one-line error naming the database.
    fn read_damaged(bad: &Path, bytes: &[u8]) -> Result<bool, String> {
        std::fs::write(bad.join(DATA_FILE), bytes).unwrap();
        match DatumDb::open_as(bad, Backend::Lmdb) {
            Ok(db) => Ok(db.into_records() == records(300)),
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.starts_with(&format!("{}: ", bad.display())), "{msg}");
                assert!(!msg.contains('\n'), "{msg}");
                Err(msg)
            }
        }
    }

    /// Zeroed (64 bytes) or flipped bytes at ~200 offsets: records or a one-line error. LMDB
    /// keeps no checksums, so damage inside a value (pixels, most of these pages) reads as
    /// changed records, as it would in Caffe.
    #[test]
    fn damage_anywhere_is_an_error_or_records_never_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        write(&good, records(300));
        let original = std::fs::read(good.join(DATA_FILE)).unwrap();
        let bad = dir.path().join("bad");
        std::fs::create_dir(&bad).unwrap();
        let n = original.len();
        let mut errors = 0;
        for at in (0..n).step_by(n / 100) {
            let mut zeroed = original.clone();
            zeroed[at..(at + 64).min(n)].fill(0);
            let mut flipped = original.clone();
            flipped[at] ^= 0x24;
            for bytes in [zeroed, flipped] {
                errors += usize::from(read_damaged(&bad, &bytes).is_err());
            }
        }
        assert!(errors > 0);
    }

    /// What the reader checks (every page's number, kind and bounds, and the meta pages) is
    /// never read past: damage to any page header is an error, or harmless on a free page.
    #[test]
    fn damage_to_any_page_header_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        write(&good, records(300));
        let original = std::fs::read(good.join(DATA_FILE)).unwrap();
        let page_size = u32::from_le_bytes(original[40..44].try_into().unwrap()) as usize;
        let bad = dir.path().join("bad");
        std::fs::create_dir(&bad).unwrap();
        let (mut errors, mut tries, mut page) = (0, 0, 0);
        while page < original.len() / page_size {
            let at = page * page_size;
            // An overflow value's later pages hold its bytes, not headers.
            let overflow = original[at + 10] & 0x04 != 0;
            let run = if overflow {
                u32::from_le_bytes(original[at + 12..at + 16].try_into().unwrap()) as usize
            } else {
                1
            };
            // The page number, its kind, its lower and upper bounds (or overflow run length).
            for (offset, change) in [(0, 0x01), (10, 0x03), (12, 0x02), (14, 0x40)] {
                let mut bytes = original.clone();
                bytes[at + offset] ^= change;
                tries += 1;
                match read_damaged(&bad, &bytes) {
                    Ok(intact) => assert!(intact, "page {page} byte {offset}: changed records"),
                    Err(_) => errors += 1,
                }
            }
            page += run;
        }
        assert!(errors * 10 >= tries * 9, "{errors} errors in {tries}");
    }
}
