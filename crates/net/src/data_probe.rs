//! The shape of a Data layer's records, read from the first record of its LevelDB source,
//! as Caffe's DataLayer does at set-up.
//!
//! Interim: the integrator swaps the body for `siamese_data::leveldb::DatumDb::open(path)?.first()`
//! once the data crate's reader lands. LevelDB writes lock and log files even when only read, so
//! the database is copied to a private temporary folder first: the user's DB is never modified.

use std::path::Path;

use prost::Message;
use rusty_leveldb::{DB, LdbIterator, Options};
use siamese_proto::Datum;

/// `[channels, height, width]` of the first Datum in the LevelDB at `path`.
pub fn probe_datum_shape(path: &Path) -> Result<[usize; 3], String> {
    if !path.is_dir() {
        return Err(if path.exists() {
            "not a LevelDB folder".to_string()
        } else {
            "not found".to_string()
        });
    }
    let copy = tempfile::tempdir().map_err(|e| format!("cannot make a temporary folder: {e}"))?;
    let entries = std::fs::read_dir(path).map_err(|e| e.to_string())?;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name();
        if name == "LOCK" || !entry.file_type().map_err(|e| e.to_string())?.is_file() {
            continue;
        }
        std::fs::copy(entry.path(), copy.path().join(&name))
            .map_err(|e| format!("cannot copy {}: {e}", entry.path().display()))?;
    }
    let options = Options {
        create_if_missing: false,
        ..Options::default()
    };
    let mut db = DB::open(copy.path(), options).map_err(|e| format!("not a LevelDB: {e}"))?;
    let mut iter = db.new_iter().map_err(|e| e.to_string())?;
    let (_key, value) = iter.next().ok_or("the database is empty")?;
    let datum =
        Datum::decode(value.as_slice()).map_err(|e| format!("first record is not a Datum: {e}"))?;
    if datum.encoded() {
        return Err("first record is an encoded image (not supported)".into());
    }
    let dim = |v: i32, what: &str| {
        usize::try_from(v)
            .ok()
            .filter(|&d| d > 0)
            .ok_or(format!("first record has {what} {v}"))
    };
    Ok([
        dim(datum.channels(), "channels")?,
        dim(datum.height(), "height")?,
        dim(datum.width(), "width")?,
    ])
}

/// Writes a LevelDB holding `datums` (test support, also used by the snapshot tests).
#[cfg(test)]
pub(crate) fn write_test_db(path: &Path, datums: &[Datum]) {
    let mut db = DB::open(path, Options::default()).unwrap();
    for (i, d) in datums.iter().enumerate() {
        db.put(format!("{i:08}").as_bytes(), &d.encode_to_vec())
            .unwrap();
    }
    db.flush().unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_shape_of_first_record_without_touching_the_db() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let datum = Datum {
            channels: Some(2),
            height: Some(3),
            width: Some(4),
            data: Some(vec![0; 24]),
            label: Some(1),
            ..Default::default()
        };
        write_test_db(&db, &[datum]);
        let before: Vec<_> = std::fs::read_dir(&db)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(probe_datum_shape(&db), Ok([2, 3, 4]));
        let after: Vec<_> = std::fs::read_dir(&db)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(before, after);
    }

    #[test]
    fn missing_and_empty_sources_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            probe_datum_shape(&dir.path().join("nope")),
            Err("not found".into())
        );
        let db = dir.path().join("empty");
        write_test_db(&db, &[]);
        assert_eq!(probe_datum_shape(&db), Err("the database is empty".into()));
    }
}
