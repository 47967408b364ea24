//! The shape of a Data layer's records, read from the first record of its LevelDB or LMDB
//! source, as Caffe's DataLayer does at set-up, and how many records it holds.
//!
//! Reading goes through siamese-data's `DatumDb`, which never modifies the user's database
//! (a private copy for LevelDB, a plain read of data.mdb for LMDB); corruption is an error.

use std::path::Path;

use siamese_data::{Backend, DatumDb};

/// What a Data layer's set-up needs to know of its source before reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataProbe {
    /// `[channels, height, width]` of the first Datum.
    pub shape: [usize; 3],
    /// Number of records (the Data layer holds them all in memory).
    pub records: usize,
}

/// The first Datum's shape and the record count of the database at `path`, read as
/// `backend` (the layer's `data_param.backend`).
pub fn probe_data_source(path: &Path, backend: Backend) -> Result<DataProbe, String> {
    if !path.is_dir() {
        return Err(if path.exists() {
            format!("not a {backend} folder")
        } else {
            "not found".to_string()
        });
    }
    let db = DatumDb::open_as(path, backend).map_err(|e| e.to_string())?;
    let datum = db.first().map_err(|e| e.to_string())?;
    if datum.encoded() {
        return Err("first record is an encoded image (not supported)".into());
    }
    let dim = |v: i32, what: &str| {
        usize::try_from(v)
            .ok()
            .filter(|&d| d > 0)
            .ok_or(format!("first record has {what} {v}"))
    };
    let shape = [
        dim(datum.channels(), "channels")?,
        dim(datum.height(), "height")?,
        dim(datum.width(), "width")?,
    ];
    Ok(DataProbe {
        shape,
        records: db.len(),
    })
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
            assert_eq!(
                probe_data_source(&db, backend),
                Ok(DataProbe {
                    shape: [2, 3, 4],
                    records: 1
                })
            );
        }
    }

    #[test]
    fn missing_and_empty_sources_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            probe_data_source(&dir.path().join("nope"), Backend::Lmdb),
            Err("not found".into())
        );
        for backend in [Backend::LevelDb, Backend::Lmdb] {
            let db = dir.path().join(format!("empty_{}", backend.suffix()));
            write_db(&db, vec![], backend);
            let err = probe_data_source(&db, backend).unwrap_err();
            assert!(err.contains("no records"), "{err}");
        }
        // An LMDB named as a LevelDB (caffe.proto's default backend) says which setting reads it.
        let lmdb = dir.path().join("empty_lmdb");
        let err = probe_data_source(&lmdb, Backend::LevelDb).unwrap_err();
        assert!(err.ends_with("(backend: LMDB reads it)"), "{err}");
    }
}
