//! The shape of a Data layer's records, read from the first record of its LevelDB or LMDB
//! source, as Caffe's DataLayer does at set-up.
//!
//! Reading goes through siamese-data's `DatumDb`, which never modifies the user's database
//! (a private copy for LevelDB, a plain read of data.mdb for LMDB); corruption is an error.

use std::path::Path;

use siamese_data::{Backend, DatumDb};

/// `[channels, height, width]` of the first Datum in the database at `path`, read as
/// `backend` (the layer's `data_param.backend`).
pub fn probe_datum_shape(path: &Path, backend: Backend) -> Result<[usize; 3], String> {
    if !path.is_dir() {
        return Err(if path.exists() {
            format!("not a {backend} folder")
        } else {
            "not found".to_string()
        });
    }
    let datum = DatumDb::open_as(path, backend)
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
    use siamese_data::write_datums_as;
    use siamese_proto::Datum;

    fn write_db(path: &Path, datums: Vec<Datum>, backend: Backend) {
        let records = datums
            .into_iter()
            .enumerate()
            .map(|(i, d)| (format!("{i:08}"), d));
        write_datums_as(path, backend, records, false).unwrap();
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
        for backend in [Backend::LevelDb, Backend::Lmdb] {
            let db = db.with_extension(backend.suffix());
            write_db(&db, vec![datum.clone()], backend);
            assert_eq!(probe_datum_shape(&db, backend), Ok([2, 3, 4]));
        }
    }

    #[test]
    fn missing_and_empty_sources_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            probe_datum_shape(&dir.path().join("nope"), Backend::Lmdb),
            Err("not found".into())
        );
        for backend in [Backend::LevelDb, Backend::Lmdb] {
            let db = dir.path().join(format!("empty_{}", backend.suffix()));
            write_db(&db, vec![], backend);
            let err = probe_datum_shape(&db, backend).unwrap_err();
            assert!(err.contains("no records"), "{err}");
        }
        // An LMDB named as a LevelDB (caffe.proto's default backend) says which setting reads it.
        let lmdb = dir.path().join("empty_lmdb");
        let err = probe_datum_shape(&lmdb, Backend::LevelDb).unwrap_err();
        assert!(err.ends_with("(backend: LMDB reads it)"), "{err}");
    }
}
