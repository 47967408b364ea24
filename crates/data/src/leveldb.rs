//! Caffe `Datum` records in LevelDB, written and read through rusty-leveldb so the files are
//! interchangeable with Caffe's (C++ LevelDB, snappy blocks, keys like `00000042`).
//!
//! rusty-leveldb has no read-only mode (opening rewrites MANIFEST and log files) and can panic
//! on corrupted files, so [`DatumDb::open`] copies the database to a private temporary folder,
//! reads the copy under `catch_unwind`, and leaves the user's files byte-identical. It also
//! checks every table block and log record first (`crate::integrity`): rusty-leveldb skips a
//! damaged table block, and stops replaying a log at a damaged record, without an error.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Once;

use prost::Message;
use rusty_leveldb::{DB, LdbIterator, Options, WriteBatch, compressor};

use crate::db::write_atomically;
use crate::integrity::{check_log_file, check_table_file};
use crate::{DataError, Datum};

/// The reader of either backend; kept here too, where it began.
pub use crate::db::DatumDb;

/// Records per LevelDB write batch when writing.
const WRITE_BATCH: usize = 1000;
/// Caffe's convert tools open their output with a 256 MB write buffer; so do we, so a whole
/// MNIST pair database is sorted in memory and flushed as tables once.
const WRITE_BUFFER: usize = 256 << 20;

/// LevelDB options as Caffe writes: defaults plus snappy block compression.
fn options(create: bool) -> Options {
    Options {
        compressor: <compressor::SnappyCompressor as rusty_leveldb::CompressorId>::ID,
        write_buffer_size: WRITE_BUFFER,
        create_if_missing: create,
        // Writing goes to a fresh, empty temporary folder, which LevelDB would count as existing.
        error_if_exists: false,
        paranoid_checks: !create,
        ..Options::default()
    }
}

thread_local! {
    /// True while this thread runs rusty-leveldb under `guarded`: its panics become errors,
    /// so the panic hook stays quiet for them.
    static QUIET_PANICS: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` (rusty-leveldb calls) turning a panic into an error message. The first call
/// installs a panic hook that silences panics inside `guarded` on this thread and hands
/// every other panic to the hook that was there before.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET_PANICS.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was_quiet = QUIET_PANICS.with(|q| q.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    QUIET_PANICS.with(|q| q.set(was_quiet));
    result.map_err(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        format!("corrupted database (LevelDB panicked: {msg})")
    })
}

fn db_error(path: &Path, reason: impl std::fmt::Display) -> DataError {
    DataError::Db {
        path: path.into(),
        reason: reason.to_string(),
    }
}

/// Writes `records` as a new Caffe Datum LevelDB at `path`, returning how many were written.
///
/// The database is built in a temporary folder beside `path` and renamed into place at the
/// end, so a failure leaves nothing at `path`. An existing `path` is an error unless `force`,
/// which replaces it (only once the new one is complete). Temporary folders of earlier writes
/// killed midway are swept from the parent first (siamese-files' rule: ours, and gone).
pub fn write_datums(
    path: &Path,
    records: impl IntoIterator<Item = (String, Datum)>,
    force: bool,
) -> Result<usize, DataError> {
    write_atomically(path, force, |dir| {
        guarded(|| fill(dir, records))
            .map_err(|reason| db_error(path, reason))?
            .map_err(|reason| db_error(path, reason))
    })
}

/// Whether another process holds the LevelDB lock of the database folder `path`: an fcntl
/// lock on `LOCK` (C++ LevelDB, so Caffe) or a flock (rusty-leveldb). Only tried, never kept.
pub(crate) fn is_locked(path: &Path) -> bool {
    let lock = path.join("LOCK");
    if !lock.is_file() {
        return false;
    }
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&lock)
    else {
        return false;
    };
    if let Err(std::fs::TryLockError::WouldBlock) = file.try_lock() {
        return true;
    }
    let _ = file.unlock();
    fcntl_locked(&file)
}

#[cfg(unix)]
fn fcntl_locked(file: &std::fs::File) -> bool {
    use rustix::fs::{FlockOperation, fcntl_lock};
    match fcntl_lock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {
            let _ = fcntl_lock(file, FlockOperation::NonBlockingUnlock);
            false
        }
        Err(e) => e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::ACCESS,
    }
}

#[cfg(not(unix))]
fn fcntl_locked(_: &std::fs::File) -> bool {
    false
}

/// Puts every record into a fresh database in `dir` and flushes it to tables.
fn fill(
    dir: &Path,
    records: impl IntoIterator<Item = (String, Datum)>,
) -> Result<usize, rusty_leveldb::Status> {
    let mut db = DB::open(dir, options(true))?;
    let mut batch = WriteBatch::default();
    let mut count = 0;
    let mut value = Vec::new();
    for (key, datum) in records {
        value.clear();
        datum.encode(&mut value).expect("Vec<u8> grows as needed");
        batch.put(key.as_bytes(), &value);
        count += 1;
        if count % WRITE_BATCH == 0 {
            db.write(std::mem::take(&mut batch), false)?;
        }
    }
    if batch.count() > 0 {
        db.write(batch, false)?;
    }
    // Moves the memtable into sorted tables, so readers need not replay a large log.
    db.compact_range(b"", &[0xff; 16])?;
    db.close()?;
    Ok(count)
}

/// A record as LevelDB stores it: key bytes, value bytes.
type RawRecord = (Vec<u8>, Vec<u8>);

/// Copies the database to a temporary folder and reads all (key, value) pairs from the copy.
pub(crate) fn read_raw(path: &Path) -> Result<Vec<RawRecord>, DataError> {
    if !path.join("CURRENT").is_file() {
        let reason = if path.is_dir() {
            "no CURRENT file, expected a LevelDB folder"
        } else if path.exists() {
            "not a folder, expected a LevelDB folder"
        } else {
            "no such folder, expected a LevelDB folder"
        };
        return Err(db_error(path, reason));
    }
    let copy = tempfile::Builder::new()
        .prefix("siamese-leveldb-")
        .tempdir()
        .map_err(|e| DataError::io(std::env::temp_dir(), e))?;
    let stored = copy_db_files(path, copy.path())?;
    let tables_before = table_names(copy.path())?;
    let damaged = damaged_files(copy.path())?;
    let records = guarded(|| -> Result<_, rusty_leveldb::Status> {
        let mut db = DB::open(copy.path(), options(false))?;
        let mut iter = db.new_iter()?;
        let mut out = Vec::new();
        while let Some((key, value)) = LdbIterator::next(&mut iter) {
            out.push((key, value));
        }
        drop(iter);
        db.close()?;
        Ok(out)
    });
    // A damaged file is the error unless LevelDB found it obsolete: it opened the database,
    // deleted the file, and wrote no table (so nothing can have been copied from it).
    if !damaged.is_empty() {
        let tables_after = table_names(copy.path())?;
        let no_new_table = tables_after.iter().all(|t| tables_before.contains(t));
        for (name, problem) in damaged {
            let obsolete =
                matches!(records, Ok(Ok(_))) && !copy.path().join(&name).exists() && no_new_table;
            if !obsolete {
                return Err(db_error(path, format!("{name}: {problem}")));
            }
        }
    }
    // Messages name the user's database, on one line, never the private copy.
    let reason = |r: String| {
        let copy_name = copy.path().display().to_string();
        let r = r.replace(&copy_name, &path.display().to_string());
        db_error(path, r.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    let records = records
        .map_err(reason)?
        .map_err(|e| reason(e.to_string()))?;
    if records.is_empty() && stored > 0 {
        return Err(reason(format!(
            "corrupted database (no record readable from {stored} bytes of tables)"
        )));
    }
    Ok(records)
}

fn is_table(name: &str) -> bool {
    name.ends_with(".ldb") || name.ends_with(".sst")
}

/// The names of the table files in the folder `dir`, sorted.
fn table_names(dir: &Path) -> Result<Vec<String>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut names = Vec::new();
    for entry in entries {
        let name = entry.map_err(|e| DataError::io(dir, e))?.file_name();
        let name = name.to_string_lossy();
        if is_table(&name) {
            names.push(name.into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Each table or log file of `dir` that fails its check (`crate::integrity`), with what is
/// wrong, in name order.
fn damaged_files(dir: &Path) -> Result<Vec<(String, String)>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut damaged = Vec::new();
    for entry in entries {
        let name = entry.map_err(|e| DataError::io(dir, e))?.file_name();
        let name = name.to_string_lossy().into_owned();
        let file = dir.join(&name);
        let check = if is_table(&name) {
            check_table_file(&file)
        } else if name.ends_with(".log") {
            check_log_file(&file)
        } else {
            continue;
        };
        if let Err(problem) = check.map_err(|e| DataError::io(&file, e))? {
            damaged.push((name, problem));
        }
    }
    damaged.sort();
    Ok(damaged)
}

/// Copies the files LevelDB needs (not LOCK, nor the LOG text files); returns the bytes of
/// table files, which cannot be there with no record unless the database is corrupted.
fn copy_db_files(from: &Path, to: &Path) -> Result<u64, DataError> {
    let entries = std::fs::read_dir(from).map_err(|e| DataError::io(from, e))?;
    let mut stored = 0;
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(from, e))?;
        let name = entry.file_name();
        let name_text = name.to_string_lossy();
        if matches!(&*name_text, "LOCK" | "LOG" | "LOG.old") {
            continue;
        }
        let source = entry.path();
        if source.is_file() {
            let bytes =
                std::fs::copy(&source, to.join(&name)).map_err(|e| DataError::io(&source, e))?;
            if is_table(&name_text) {
                stored += bytes;
            }
        }
    }
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record_key;
    use sha2::{Digest, Sha256};
    use std::collections::BTreeMap;

    fn datum(i: usize) -> Datum {
        Datum {
            channels: Some(2),
            height: Some(3),
            width: Some(4),
            data: Some((0..24).map(|b| (b * 7 + i) as u8).collect()),
            label: Some((i % 2) as i32),
            ..Default::default()
        }
    }

    fn records(n: usize) -> Vec<(String, Datum)> {
        (0..n).map(|i| (record_key(i), datum(i))).collect()
    }

    /// File name -> SHA-256 of its bytes, for every file of a folder.
    fn hash_files(dir: &Path) -> BTreeMap<String, String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let bytes = std::fs::read(e.path()).unwrap();
                let hash = Sha256::digest(&bytes);
                (
                    e.file_name().to_string_lossy().into_owned(),
                    format!("{hash:x}"),
                )
            })
            .collect()
    }

    #[test]
    fn write_then_read_round_trips_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut input = records(2500);
        input.reverse(); // LevelDB sorts by key whatever the write order.
        assert_eq!(write_datums(&path, input, false).unwrap(), 2500);
        let db = DatumDb::open(&path).unwrap();
        assert_eq!(db.len(), 2500);
        assert_eq!(db.first().unwrap(), datum(0));
        let read: Vec<_> = db.into_iter().collect();
        assert_eq!(read, records(2500));
        // Only the database is left in the parent folder: no temporary folders.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["db"]);
    }

    /// tests/fixtures/cpp_leveldb_50 was written by C++ LevelDB 1.23 (Debian libleveldb,
    /// default options: snappy blocks): records 0..40 in a table, 40..50 in the log, each
    /// the `datum(i)` above, hand-encoded, keys "%08d" as Caffe writes them.
    #[test]
    fn reads_a_database_written_by_cpp_leveldb_untouched() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cpp_leveldb_50");
        let before = hash_files(&path);
        let db = DatumDb::open(&path).unwrap();
        assert_eq!(db.into_records(), records(50));
        assert_eq!(hash_files(&path), before);
    }

    #[test]
    fn existing_output_needs_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        write_datums(&path, records(3), false).unwrap();
        let err = write_datums(&path, records(5), false).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: already exists, expected a new path (force/--force replaces it)",
                path.display()
            )
        );
        assert_eq!(DatumDb::open(&path).unwrap().len(), 3);
        write_datums(&path, records(5), true).unwrap();
        assert_eq!(DatumDb::open(&path).unwrap().len(), 5);
    }

    #[test]
    fn unwritable_folder_is_an_error_naming_it() {
        let err = write_datums(Path::new("/nonexistent-dir/db"), records(1), false).unwrap_err();
        assert!(err.to_string().starts_with("/nonexistent-dir: "), "{err}");
    }

    #[test]
    fn reading_leaves_every_file_byte_identical() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        write_datums(&path, records(300), false).unwrap();
        let before = hash_files(&path);
        for _ in 0..2 {
            assert_eq!(DatumDb::open(&path).unwrap().len(), 300);
        }
        assert_eq!(hash_files(&path), before);
    }

    /// A database whose 300 records are still in the log (as C++ LevelDB leaves a small one).
    fn write_log_only(path: &Path) {
        let mut db = DB::open(path, options(true)).unwrap();
        for (key, datum) in records(300) {
            db.put(key.as_bytes(), &datum.encode_to_vec()).unwrap();
        }
        db.close().unwrap();
    }

    #[test]
    fn corrupted_databases_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let tables = dir.path().join("tables");
        write_datums(&tables, records(300), false).unwrap();
        let log_only = dir.path().join("log_only");
        write_log_only(&log_only);
        let mut errors = 0;
        for good in [&tables, &log_only] {
            for file in hash_files(good).into_keys() {
                for how in ["truncated", "garbled"] {
                    let bad = dir.path().join(format!("{}-{file}-{how}", good.display()));
                    std::fs::create_dir(&bad).unwrap();
                    copy_db_files(good, &bad).unwrap();
                    let target = bad.join(&file);
                    let Ok(mut bytes) = std::fs::read(&target) else {
                        continue; // LOCK and LOG are not copied.
                    };
                    if how == "truncated" {
                        bytes.truncate(bytes.len() / 2);
                    } else {
                        for i in (bytes.len() / 3..bytes.len()).step_by(7) {
                            bytes[i] ^= 0x5a;
                        }
                    }
                    std::fs::write(&target, &bytes).unwrap();
                    let before = hash_files(&bad);
                    // LevelDB may drop a torn log tail (fewer records); anything else is an
                    // error naming the database on one line, never a panic.
                    match DatumDb::open(&bad) {
                        Ok(db) => assert!(db.len() < 300 || bytes.is_empty(), "{file} {how}"),
                        Err(e) => {
                            let msg = e.to_string();
                            assert!(
                                msg.starts_with(&format!("{}: LevelDB: ", bad.display())),
                                "{msg}"
                            );
                            assert!(!msg.contains('\n'), "{msg}");
                            errors += 1;
                        }
                    }
                    assert_eq!(hash_files(&bad), before, "{file} {how}");
                }
            }
        }
        assert!(errors >= 8, "only {errors} damaged databases gave an error");
    }

    /// The table file of a database written by `write_datums` (it writes one).
    fn only_table(db: &Path) -> String {
        let tables = table_names(db).unwrap();
        assert_eq!(tables.len(), 1, "{tables:?}");
        tables[0].clone()
    }

    /// rusty-leveldb alone read 34 of these 300 records and no error.
    #[test]
    fn zeroed_table_region_is_an_error_naming_the_file_and_block() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        write_datums(&path, records(300), false).unwrap();
        let table = only_table(&path);
        let mut bytes = std::fs::read(path.join(&table)).unwrap();
        let n = bytes.len();
        bytes[n / 4..n / 2].fill(0);
        std::fs::write(path.join(&table), &bytes).unwrap();
        let before = hash_files(&path);
        let err = DatumDb::open(&path).unwrap_err().to_string();
        let start = format!("{}: LevelDB: {table}: data block at byte ", path.display());
        assert!(err.starts_with(&start), "{err}");
        assert!(err.contains(" bytes): CRC32C 0x"), "{err}");
        assert!(err.ends_with(" (damaged table file)"), "{err}");
        assert_eq!(hash_files(&path), before);
    }

    /// Damage at offsets all over a table (its data, index, meta-index, filter blocks and
    /// footer): reading gives every record unchanged or a one-line error, never fewer records.
    #[test]
    fn damage_anywhere_in_a_table_is_an_error_or_harmless() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        write_datums(&good, records(300), false).unwrap();
        let table = only_table(&good);
        let (errors, tries) = damage_all_over(&good, &table, false);
        // Only damage to bytes nothing reads (footer padding, bytes already zero) is harmless.
        assert!(
            errors * 10 >= tries * 9,
            "{errors} errors in {tries} damaged tables"
        );
    }

    /// The same for a log holding all 300 records, except that a log cut short reads as the
    /// records before the cut, as after a crash mid-write (LevelDB drops a torn last record).
    #[test]
    fn damage_anywhere_in_a_log_is_an_error_or_a_clean_cut() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        write_log_only(&good);
        let logs: Vec<_> = hash_files(&good)
            .into_keys()
            .filter(|n| n.ends_with(".log"))
            .collect();
        let [log] = logs.as_slice() else {
            panic!("{logs:?}")
        };
        let (errors, tries) = damage_all_over(&good, log, true);
        // Zeroed or flipped bytes are all errors; a cut only when it leaves no whole record.
        assert!(
            errors * 3 >= tries * 2,
            "{errors} errors in {tries} damaged logs"
        );
    }

    /// Copies of `good` with `file` zeroed (64 bytes), cut or with one bit flipped, at ~60
    /// offsets: each reads as all 300 records, or (`cut_ok`, for a cut log) the records before
    /// the cut, or gives a one-line error naming the database. Returns (errors, tries).
    fn damage_all_over(good: &Path, file: &str, cut_ok: bool) -> (usize, usize) {
        let original = std::fs::read(good.join(file)).unwrap();
        let n = original.len();
        let mut errors = 0;
        let mut tries = 0;
        for at in (0..n).step_by(n / 60).chain([n - 48, n - 8, n - 1]) {
            for how in ["zeroed", "truncated", "flipped"] {
                let mut bytes = original.clone();
                match how {
                    "zeroed" => bytes[at..(at + 64).min(n)].fill(0),
                    "truncated" => bytes.truncate(at),
                    _ => bytes[at] ^= 0x10,
                }
                let bad = good.with_file_name(format!("{how}-{at}"));
                std::fs::create_dir(&bad).unwrap();
                copy_db_files(good, &bad).unwrap();
                std::fs::write(bad.join(file), &bytes).unwrap();
                tries += 1;
                match DatumDb::open(&bad) {
                    Ok(db) => {
                        let read = db.into_records();
                        let all = records(300);
                        let fine =
                            read == all || (cut_ok && how == "truncated" && all.starts_with(&read));
                        assert!(fine, "{file} {how} at {at}: {} records", read.len());
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        let start = format!("{}: LevelDB: ", bad.display());
                        assert!(msg.starts_with(&start), "{how} at {at}: {msg}");
                        assert!(!msg.contains('\n'), "{msg}");
                        errors += 1;
                    }
                }
            }
        }
        (errors, tries)
    }

    #[test]
    fn not_a_database_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = DatumDb::open(dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: LevelDB: no CURRENT file, expected a LevelDB folder",
                dir.path().display()
            )
        );
    }

    #[test]
    fn undecodable_value_names_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let tmp = dir.path().join("raw");
        {
            let mut db = DB::open(&tmp, options(true)).unwrap();
            db.put(b"00000000", &[0x0f, 0xff]).unwrap();
            db.close().unwrap();
        }
        std::fs::rename(&tmp, &path).unwrap();
        let err = DatumDb::open(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "{}: record \"00000000\": undecodable value",
                path.display()
            )),
            "{err}"
        );
        assert!(err.ends_with("expected a serialized caffe.Datum"), "{err}");
    }
}
