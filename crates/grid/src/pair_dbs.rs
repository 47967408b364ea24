//! The pair LevelDBs a grid trains on: made from the data folder's IDX files on first use, one
//! train/test pair per (similar_fraction, seed), shared by the cells and reused across runs.

use std::path::{Path, PathBuf};

use siamese_data::DataError;
use siamese_data::convert::create_siamese_db;
use siamese_data::pairs::{ClassFilter, PairOptions};

/// A data folder without MNIST's files, or a pair database that cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum PairDbError {
    #[error("{}: no {name} (or {name}.gz): expected MNIST's IDX files", .dir.display())]
    MissingIdx { dir: PathBuf, name: &'static str },
    #[error("making pair database {}: {error}", .db.display())]
    Make { db: PathBuf, error: DataError },
    #[error(transparent)]
    Labels(DataError),
    #[error("{}: cannot take the lock that makes pair databases one at a time: {error}", .path.display())]
    Lock {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// The lock in the pairs folder held while a runner checks for and makes a database, so that
/// runners sharing the folder (processes, machines, Slurm tasks) make each one once.
pub const PAIRS_LOCK_FILE: &str = "pairs.lock";

/// MNIST's IDX files in a data folder, plain or gzipped.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxFiles {
    pub train_images: PathBuf,
    pub train_labels: PathBuf,
    pub test_images: PathBuf,
    pub test_labels: PathBuf,
}

impl IdxFiles {
    /// Finds the four files in `dir` (`train-images-idx3-ubyte`, …, each plain or `.gz`).
    pub fn find(dir: &Path) -> Result<IdxFiles, PairDbError> {
        let find = |name: &'static str| -> Result<PathBuf, PairDbError> {
            [name.to_string(), format!("{name}.gz")]
                .iter()
                .map(|f| dir.join(f))
                .find(|p| p.is_file())
                .ok_or_else(|| PairDbError::MissingIdx {
                    dir: dir.to_path_buf(),
                    name,
                })
        };
        Ok(IdxFiles {
            train_images: find("train-images-idx3-ubyte")?,
            train_labels: find("train-labels-idx1-ubyte")?,
            test_images: find("t10k-images-idx3-ubyte")?,
            test_labels: find("t10k-labels-idx1-ubyte")?,
        })
    }
}

/// The two databases of a cell.
#[derive(Debug, Clone, PartialEq)]
pub struct PairDbs {
    pub train: PathBuf,
    pub test: PathBuf,
    /// Records in the test database (one pair per test image).
    pub test_pairs: usize,
}

/// Makes pair databases once, however many workers and runners ask for them at the same time.
#[derive(Debug, Default)]
pub struct PairMaker;

impl PairMaker {
    pub fn new() -> PairMaker {
        PairMaker
    }

    /// The databases for `similar_fraction` (`None`: Caffe's uniform draws) and `seed` in
    /// `pairs_dir`, written there first when missing. With `train_classes` (open set) the
    /// train pairs use those classes only and the test pairs the others.
    pub fn ensure(
        &self,
        files: &IdxFiles,
        pairs_dir: &Path,
        similar_fraction: Option<f64>,
        seed: u64,
        train_classes: Option<&[u8]>,
    ) -> Result<PairDbs, PairDbError> {
        let mut tag = match similar_fraction {
            None => format!("caffe_seed{seed}"),
            Some(f) => format!("similar{f}_seed{seed}"),
        };
        let (train_filter, test_filter) = match train_classes {
            Some(classes) => {
                let list: Vec<String> = classes.iter().map(u8::to_string).collect();
                tag += &format!("_train{}", list.join("-"));
                ClassFilter::open_set(classes)
            }
            None => (ClassFilter::All, ClassFilter::All),
        };
        let train = pairs_dir.join(format!("siamese_train_{tag}_leveldb"));
        let test = pairs_dir.join(format!("siamese_test_{tag}_leveldb"));
        let opts = |classes: &ClassFilter| PairOptions {
            seed,
            pairs_per_image: 1,
            similar_fraction,
            classes: classes.clone(),
        };
        {
            // Held while checking and writing, so no two workers or runners build the same
            // database (a file lock: other opens, in this process or another, wait for it).
            let _making = crate::claim::lock(pairs_dir, PAIRS_LOCK_FILE).map_err(|error| {
                PairDbError::Lock {
                    path: pairs_dir.join(PAIRS_LOCK_FILE),
                    error,
                }
            })?;
            for (images, labels, out, classes) in [
                (
                    &files.train_images,
                    &files.train_labels,
                    &train,
                    &train_filter,
                ),
                (&files.test_images, &files.test_labels, &test, &test_filter),
            ] {
                // create_siamese_db renames a finished database into place: one that exists
                // is complete. A runner whose filesystem lacks locks may still race us: its
                // database arriving first is success (ours is dropped, never swapped in).
                if !out.exists() {
                    let made = create_siamese_db(images, labels, out, &opts(classes), false);
                    if made.is_err() && out.exists() {
                        continue;
                    }
                    made.map_err(|error| PairDbError::Make {
                        db: out.clone(),
                        error,
                    })?;
                }
            }
        }
        let test_pairs = siamese_data::idx::read_labels(&files.test_labels)
            .map_err(PairDbError::Labels)?
            .labels
            .iter()
            .filter(|&&l| test_filter.keeps(l))
            .count();
        Ok(PairDbs {
            train,
            test,
            test_pairs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use siamese_data::leveldb::DatumDb;

    fn sample() -> IdxFiles {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist-sample");
        IdxFiles::find(&dir).unwrap()
    }

    #[test]
    fn databases_are_made_once_per_fraction_and_seed() {
        let dir = tempfile::tempdir().unwrap();
        let maker = PairMaker::new();
        let files = sample();
        let dbs = std::thread::scope(|s| {
            let a = s.spawn(|| {
                maker
                    .ensure(&files, dir.path(), Some(0.5), 3, None)
                    .unwrap()
            });
            let b = s.spawn(|| {
                maker
                    .ensure(&files, dir.path(), Some(0.5), 3, None)
                    .unwrap()
            });
            let (a, b) = (a.join().unwrap(), b.join().unwrap());
            assert_eq!(a, b);
            a
        });
        assert!(
            dbs.train
                .ends_with("siamese_train_similar0.5_seed3_leveldb")
        );
        assert_eq!(dbs.test_pairs, 2000);
        let test = DatumDb::open(&dbs.test).unwrap();
        assert_eq!(test.len(), 2000);
        let similar = test.iter().filter(|(_, d)| d.label() == 1).count();
        assert_eq!(similar, 1000, "half the pairs are similar");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name != PAIRS_LOCK_FILE)
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_folder_without_idx_files_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = IdxFiles::find(dir.path()).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: no train-images-idx3-ubyte (or train-images-idx3-ubyte.gz): expected \
                 MNIST's IDX files",
                dir.path().display()
            )
        );
    }
}
