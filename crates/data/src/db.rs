//! A Caffe Datum database in either of Caffe's backends, LevelDB or LMDB: [`DatumDb`] reads
//! one (never modifying it), [`write_datums_as`] writes one; callers pick the [`Backend`] once.

use std::path::{Path, PathBuf};

use prost::Message;
use siamese_proto::data_parameter::Db;

use crate::{DataError, Datum, leveldb, lmdb};

/// Caffe's two database formats (`data_param.backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Backend {
    /// A LevelDB folder (`CURRENT`, `MANIFEST-*`, tables): Caffe's `backend: LEVELDB`, the
    /// default of caffe.proto.
    #[default]
    LevelDb,
    /// An LMDB folder (`data.mdb`): Caffe's `backend: LMDB`, what its MNIST example writes.
    Lmdb,
}

impl Backend {
    /// The backend of the database at `path`: LMDB if it holds `data.mdb`, else LevelDB (whose
    /// reader says what is missing if it is neither).
    pub fn detect(path: &Path) -> Backend {
        if lmdb::is_lmdb_folder(path) {
            Backend::Lmdb
        } else {
            Backend::LevelDb
        }
    }

    /// The word for it in folder names Caffe's tools write (`mnist_train_lmdb`).
    pub fn suffix(self) -> &'static str {
        match self {
            Backend::LevelDb => "leveldb",
            Backend::Lmdb => "lmdb",
        }
    }
}

impl From<Db> for Backend {
    fn from(db: Db) -> Backend {
        match db {
            Db::Leveldb => Backend::LevelDb,
            Db::Lmdb => Backend::Lmdb,
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::LevelDb => "LevelDB",
            Backend::Lmdb => "LMDB",
        })
    }
}

impl std::str::FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Backend, String> {
        match s.to_ascii_lowercase().as_str() {
            "leveldb" => Ok(Backend::LevelDb),
            "lmdb" => Ok(Backend::Lmdb),
            _ => Err(format!("backend {s:?}, expected leveldb or lmdb")),
        }
    }
}

/// All records of a Caffe Datum database, read once into memory in key order.
#[derive(Debug, Clone)]
pub struct DatumDb {
    path: PathBuf,
    records: Vec<(String, Datum)>,
}

impl DatumDb {
    /// Reads every record of the database at `path`, whichever backend wrote it
    /// ([`Backend::detect`]), without modifying any of its files.
    pub fn open(path: &Path) -> Result<DatumDb, DataError> {
        DatumDb::open_as(path, Backend::detect(path))
    }

    /// Reads the database at `path` as `backend` says it is (Caffe's `data_param.backend`):
    /// a folder of the other backend is an error that says which setting reads it.
    /// Corruption, undecodable records and failures inside the readers become a [`DataError`].
    pub fn open_as(path: &Path, backend: Backend) -> Result<DatumDb, DataError> {
        let found = Backend::detect(path);
        match (backend, found) {
            (Backend::LevelDb, Backend::LevelDb) => {
                DatumDb::from_raw(path, leveldb::read_raw(path)?)
            }
            // Without data.mdb the LMDB reader says what the folder lacks.
            (Backend::Lmdb, _) => lmdb::read_lmdb(path, |records| DatumDb::from_raw(path, records)),
            (Backend::LevelDb, Backend::Lmdb) => Err(DataError::Db {
                path: path.into(),
                reason: "an LMDB folder (data.mdb), expected a LevelDB (backend: LMDB reads it)"
                    .into(),
            }),
        }
    }

    /// Decodes the bytes of an LMDB `data.mdb` like [`DatumDb::open_as`] reads the file;
    /// `path` names the database in errors (fuzzing, tests).
    pub fn from_lmdb_bytes(path: &Path, data_mdb: &[u8]) -> Result<DatumDb, DataError> {
        lmdb::decode_lmdb_bytes(path, data_mdb, |records| DatumDb::from_raw(path, records))
    }

    /// Decodes `(key, value)` pairs as a database iterator returns them (key order) into
    /// Datums; `path` names the database in errors. [`DatumDb::open`] reads the pairs from disk.
    pub fn from_raw<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        path: &Path,
        raw: impl IntoIterator<Item = (K, V)>,
    ) -> Result<DatumDb, DataError> {
        let records = raw
            .into_iter()
            .map(|(key, value)| {
                let key = String::from_utf8_lossy(key.as_ref()).into_owned();
                match Datum::decode(value.as_ref()) {
                    Ok(datum) => Ok((key, datum)),
                    Err(e) => Err(DataError::Record {
                        path: path.into(),
                        key,
                        problem: format!("undecodable value ({e})"),
                        expected: "a serialized caffe.Datum".into(),
                    }),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(DatumDb {
            path: path.into(),
            records,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The first record in key order (what Caffe's Data layer reads to infer shapes).
    pub fn first(&self) -> Result<Datum, DataError> {
        self.records
            .first()
            .map(|(_, d)| d.clone())
            .ok_or_else(|| DataError::Empty {
                path: self.path.clone(),
            })
    }

    /// Records in key order, borrowed.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Datum)> {
        self.records.iter().map(|(k, d)| (k.as_str(), d))
    }

    /// The records in key order, owned.
    pub fn into_records(self) -> Vec<(String, Datum)> {
        self.records
    }
}

impl IntoIterator for DatumDb {
    type Item = (String, Datum);
    type IntoIter = std::vec::IntoIter<(String, Datum)>;

    fn into_iter(self) -> Self::IntoIter {
        self.records.into_iter()
    }
}

/// Writes `records` as a new Caffe Datum database of `backend` at `path`, returning how many
/// were written, with [`leveldb::write_datums`]'s guarantees: built beside `path` and renamed
/// into place, so a failure leaves nothing; an existing `path` needs `force`.
pub fn write_datums_as(
    path: &Path,
    backend: Backend,
    records: impl IntoIterator<Item = (String, Datum)>,
    force: bool,
) -> Result<usize, DataError> {
    match backend {
        Backend::LevelDb => leveldb::write_datums(path, records, force),
        Backend::Lmdb => write_atomically(path, force, |dir| {
            lmdb::fill_lmdb(dir, records).map_err(|e| DataError::Lmdb {
                path: path.into(),
                reason: e.to_string(),
            })
        }),
    }
}

/// Builds a database folder with `fill` in a temporary folder beside `path` and renames it
/// into place once complete. Temporary folders of earlier writes killed midway are swept from
/// the parent first (siamese-files' rule: ours, and gone).
pub(crate) fn write_atomically(
    path: &Path,
    force: bool,
    fill: impl FnOnce(&Path) -> Result<usize, DataError>,
) -> Result<usize, DataError> {
    if path.exists() && !force {
        return Err(DataError::Exists { path: path.into() });
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    siamese_files::remove_stale_temp_files(parent).map_err(|e| DataError::io(e.path, e.error))?;
    let tmp = siamese_files::AtomicDir::new(path).map_err(|e| DataError::io(parent, e.error))?;
    let count = fill(tmp.temp_path())?;
    if path.exists() && !force {
        // Another writer finished the same database while this one filled its copy: keep
        // theirs (a reader may have it open), drop ours.
        return Err(DataError::Exists { path: path.into() });
    }
    if path.exists() {
        if leveldb::is_locked(path) {
            return Err(DataError::Db {
                path: path.into(),
                reason: "locked by another process (a running Caffe or LevelDB program?), \
                         expected a database no one has open; it was not replaced"
                    .into(),
            });
        }
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_file(path)
        };
        removed.map_err(|e| DataError::io(path, e))?;
    }
    tmp.commit().map_err(|e| DataError::io(path, e.error))?;
    Ok(count)
}
