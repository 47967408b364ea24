//! The shape of a Data layer's records, read from the first record of its LevelDB source,
//! as Caffe's DataLayer does at set-up.
//!
//! Reading goes through siamese-data's `DatumDb`, which reads a private copy: the user's
//! database is never modified, and corruption is an error, not a panic.

use std::path::Path;

use siamese_data::leveldb::DatumDb;

/// Why an LMDB source cannot be read, and what to do about it (Caffe's LeNet files name LMDB
/// sources; siamese reads LevelDB only).
pub const LMDB_UNSUPPORTED: &str = "LMDB is not supported, convert with `cargo xtask create-mnist-db` (LevelDB) and set backend: LEVELDB";

/// Whether `path` is an LMDB environment folder (it holds LMDB's `data.mdb`).
pub fn is_lmdb_folder(path: &Path) -> bool {
    path.join("data.mdb").is_file()
}

/// `[channels, height, width]` of the first Datum in the LevelDB at `path`.
pub fn probe_datum_shape(path: &Path) -> Result<[usize; 3], String> {
    if is_lmdb_folder(path) {
        return Err(LMDB_UNSUPPORTED.to_string());
    }
    if !path.is_dir() {
        return Err(if path.exists() {
            "not a LevelDB folder".to_string()
        } else {
            "not found".to_string()
        });
    }
    let datum = DatumDb::open(path)
        .and_then(|db| db.first())
        .map_err(|e| e.to_string())?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use siamese_data::leveldb::write_datums;
    use siamese_proto::Datum;

    fn write_db(path: &Path, datums: Vec<Datum>) {
        let records = datums
            .into_iter()
            .enumerate()
            .map(|(i, d)| (format!("{i:08}"), d));
        write_datums(path, records, false).unwrap();
    }

    #[test]
    fn reads_shape_of_first_record() {
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
        write_db(&db, vec![datum]);
        assert_eq!(probe_datum_shape(&db), Ok([2, 3, 4]));
    }

    #[test]
    fn missing_and_empty_sources_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            probe_datum_shape(&dir.path().join("nope")),
            Err("not found".into())
        );
        let db = dir.path().join("empty");
        write_db(&db, vec![]);
        let err = probe_datum_shape(&db).unwrap_err();
        assert!(err.contains("no records"), "{err}");
        let lmdb = dir.path().join("mnist_train_lmdb");
        std::fs::create_dir(&lmdb).unwrap();
        std::fs::write(lmdb.join("data.mdb"), b"").unwrap();
        assert_eq!(probe_datum_shape(&lmdb), Err(LMDB_UNSUPPORTED.into()));
    }
}
