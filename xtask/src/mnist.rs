//! MNIST and Fashion-MNIST: the published files and their checksums, `get-mnist` (download or
//! import, verify, decompress, convert) and the conversions into Caffe's LevelDBs or LMDBs.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use siamese_data::Backend;
use siamese_data::convert::{
    ConvertReport, create_mnist_db_as, create_siamese_db, create_siamese_db_as,
};
use siamese_data::pairs::{ClassFilter, PairOptions};

use crate::download::{FetchOptions, RemoteFile, download, sha256_file};

/// SHA-256 of the published MNIST files (as also listed by TensorFlow Datasets' checksums).
const MNIST_FILES: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte.gz",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ),
];
const MNIST_MIRRORS: [&str; 3] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
];
/// SHA-256 of the published Fashion-MNIST files (TensorFlow Datasets' checksums list).
const FASHION_FILES: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte.gz",
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    ),
];
const FASHION_MIRRORS: [&str; 1] = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"];

/// Where the embedded sample lives, relative to the workspace root.
pub const SAMPLE_DIR: &str = "data/mnist-sample";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DatasetKind {
    Mnist,
    Fashion,
}

impl DatasetKind {
    pub fn files(self) -> Vec<RemoteFile> {
        let table = match self {
            DatasetKind::Mnist => MNIST_FILES,
            DatasetKind::Fashion => FASHION_FILES,
        };
        table
            .iter()
            .map(|(name, sha)| RemoteFile {
                name: name.to_string(),
                sha256: sha.to_string(),
            })
            .collect()
    }

    fn mirrors(self) -> Vec<String> {
        let list: &[&str] = match self {
            DatasetKind::Mnist => &MNIST_MIRRORS,
            DatasetKind::Fashion => &FASHION_MIRRORS,
        };
        list.iter().map(|m| m.to_string()).collect()
    }

    fn default_out(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "data/mnist",
            DatasetKind::Fashion => "data/fashion",
        }
    }
}

/// The pair options of Caffe's convert_mnist_siamese_data, plus seeding and balancing.
#[derive(Debug, Clone, Args)]
pub struct PairArgs {
    /// Seed of the pair generator (same seed, same pairs).
    #[arg(long, default_value_t = PairOptions::default().seed)]
    pub seed: u64,
    /// Pairs per image (Caffe: 1).
    #[arg(long, default_value_t = 1)]
    pub pairs_per_image: usize,
    /// Exact fraction of similar pairs, e.g. 0.5; default: Caffe's uniform draws (~10%).
    #[arg(long)]
    pub similar_fraction: Option<f64>,
    /// Open-set split: the train pairs use only these classes, the test pairs only the others
    /// (e.g. `--train-classes 0,1,2,3,4` tests on digits 5 to 9).
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub train_classes: Option<Vec<u8>>,
}

impl PairArgs {
    /// The options for the `train` or `t10k` set.
    fn options(&self, set: &str) -> PairOptions {
        let classes = match &self.train_classes {
            None => ClassFilter::All,
            Some(train) => {
                let (train, test) = ClassFilter::open_set(train);
                if set == "train" { train } else { test }
            }
        };
        PairOptions {
            seed: self.seed,
            pairs_per_image: self.pairs_per_image,
            similar_fraction: self.similar_fraction,
            classes,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct GetMnistArgs {
    #[arg(long, value_enum, default_value = "mnist")]
    pub dataset: DatasetKind,
    /// Import the four files (.gz or raw) from this folder instead of downloading.
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
    /// A mirror to try before the built-in ones (repeatable).
    #[arg(long, value_name = "URL")]
    pub mirror: Vec<String>,
    /// Output folder [default: data/mnist, or data/fashion].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace existing pair databases.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub pairs: PairArgs,
}

/// Input of a conversion: an images/labels pair, or a folder holding train and t10k files.
#[derive(Debug, Clone, Args)]
pub struct ConvertArgs {
    /// IDX images file (raw or .gz); needs --labels and --out.
    #[arg(long, requires_all = ["labels", "out"], conflicts_with = "input")]
    pub images: Option<PathBuf>,
    /// IDX labels file (raw or .gz).
    #[arg(long, requires = "images")]
    pub labels: Option<PathBuf>,
    /// Folder with train-* and t10k-* files (raw or .gz) [default: data/mnist-sample].
    #[arg(long = "in", value_name = "DIR")]
    pub input: Option<PathBuf>,
    /// The database (with --images), or the folder for both databases [default: the --in DIR].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace existing databases.
    #[arg(long)]
    pub force: bool,
    /// Database format: leveldb, or lmdb (Caffe's default; folders `*_lmdb`).
    #[arg(long, value_enum, default_value_t = BackendArg::Leveldb)]
    pub backend: BackendArg,
}

/// `--backend`: Caffe's two database formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    Leveldb,
    Lmdb,
}

impl From<BackendArg> for Backend {
    fn from(arg: BackendArg) -> Backend {
        match arg {
            BackendArg::Leveldb => Backend::LevelDb,
            BackendArg::Lmdb => Backend::Lmdb,
        }
    }
}

/// `cargo xtask get-mnist`.
pub fn get_mnist(args: &GetMnistArgs, root: &Path) -> Result<()> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| root.join(args.dataset.default_out()));
    let dbs = [
        out.join("siamese_train_leveldb"),
        out.join("siamese_test_leveldb"),
    ];
    if !args.force {
        refuse_existing(&dbs)?;
    }
    std::fs::create_dir_all(&out)
        .with_context(|| format!("{}: cannot create folder", out.display()))?;
    for file in args.dataset.files() {
        let gz = match &args.from {
            Some(from) => import(from, &file, &out)?,
            None => {
                let mut mirrors = args.mirror.clone();
                mirrors.extend(args.dataset.mirrors());
                let path = download(&file, &mirrors, &out, &FetchOptions::default())?;
                println!("{}: SHA-256 ok", path.display());
                Some(path)
            }
        };
        if let Some(gz) = gz {
            gunzip(&gz, &out.join(raw_name(&file.name)))?;
        }
    }
    for (set, db) in [("train", &dbs[0]), ("t10k", &dbs[1])] {
        let opts = args.pairs.options(set);
        let (images, labels) = idx_pair(&out, set)?;
        convert_one(db, || {
            create_siamese_db(&images, &labels, db, &opts, args.force)
        })?;
    }
    Ok(())
}

/// `cargo xtask create-siamese-db`.
pub fn create_siamese(args: &ConvertArgs, pairs: &PairArgs, root: &Path) -> Result<()> {
    for (set, images, labels, db) in conversion_plan(args, root, "siamese")? {
        let opts = pairs.options(set);
        let backend = args.backend.into();
        convert_one(&db, || {
            create_siamese_db_as(backend, &images, &labels, &db, &opts, args.force)
        })?;
    }
    Ok(())
}

/// `cargo xtask create-mnist-db`.
pub fn create_mnist(args: &ConvertArgs, root: &Path) -> Result<()> {
    for (_, images, labels, db) in conversion_plan(args, root, "mnist")? {
        let backend = args.backend.into();
        convert_one(&db, || {
            create_mnist_db_as(backend, &images, &labels, &db, args.force)
        })?;
    }
    Ok(())
}

/// (set, images, labels, database) for each conversion the arguments ask for; the set is
/// `train` or `t10k` (a single `--images` file counts as `train`).
fn conversion_plan(
    args: &ConvertArgs,
    root: &Path,
    prefix: &str,
) -> Result<Vec<(&'static str, PathBuf, PathBuf, PathBuf)>> {
    if let (Some(images), Some(labels), Some(out)) = (&args.images, &args.labels, &args.out) {
        return Ok(vec![("train", images.clone(), labels.clone(), out.clone())]);
    }
    let input = args.input.clone().unwrap_or_else(|| root.join(SAMPLE_DIR));
    let out = args.out.clone().unwrap_or_else(|| input.clone());
    let plan = [("train", "train"), ("t10k", "test")]
        .into_iter()
        .map(|(set, db)| {
            let (images, labels) = idx_pair(&input, set)?;
            Ok((
                set,
                images,
                labels,
                out.join(format!(
                    "{prefix}_{db}_{}",
                    Backend::from(args.backend).suffix()
                )),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    if !args.force {
        let dbs: Vec<_> = plan.iter().map(|(_, _, _, db)| db.clone()).collect();
        refuse_existing(&dbs)?;
    }
    std::fs::create_dir_all(&out)
        .with_context(|| format!("{}: cannot create folder", out.display()))?;
    Ok(plan)
}

fn convert_one(
    db: &Path,
    run: impl FnOnce() -> Result<ConvertReport, siamese_data::DataError>,
) -> Result<()> {
    let start = Instant::now();
    let report = run()?;
    let similar = match report.similar {
        Some(s) if report.records > 0 => {
            format!(
                ", {s} similar ({:.1}%)",
                100.0 * s as f64 / report.records as f64
            )
        }
        _ => String::new(),
    };
    println!(
        "{}: {} records{similar} in {:.2} s",
        db.display(),
        report.records,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn refuse_existing(dbs: &[PathBuf]) -> Result<()> {
    for db in dbs {
        if db.exists() {
            bail!(
                "{}: already exists, expected a new path (--force replaces it)",
                db.display()
            );
        }
    }
    Ok(())
}

/// The images and labels files of `set` ("train" or "t10k") in `dir`, raw preferred to .gz.
fn idx_pair(dir: &Path, set: &str) -> Result<(PathBuf, PathBuf)> {
    let find = |stem: String| -> Result<PathBuf> {
        [dir.join(&stem), dir.join(format!("{stem}.gz"))]
            .into_iter()
            .find(|p| p.is_file())
            .with_context(|| {
                format!(
                    "{}: no {stem} or {stem}.gz, expected the IDX file there",
                    dir.display()
                )
            })
    };
    Ok((
        find(format!("{set}-images-idx3-ubyte"))?,
        find(format!("{set}-labels-idx1-ubyte"))?,
    ))
}

fn raw_name(gz_name: &str) -> &str {
    gz_name.strip_suffix(".gz").unwrap_or(gz_name)
}

/// Copies `file` (.gz, else raw) from `from` into `out`, printing its SHA-256 and whether it
/// is the published file. Returns the .gz path to decompress, or None for a raw file.
fn import(from: &Path, file: &RemoteFile, out: &Path) -> Result<Option<PathBuf>> {
    let gz = from.join(&file.name);
    let raw = from.join(raw_name(&file.name));
    let (source, is_gz) = if gz.is_file() {
        (gz, true)
    } else if raw.is_file() {
        (raw, false)
    } else {
        bail!(
            "{}: no {} or {}, expected the file to import",
            from.display(),
            file.name,
            raw_name(&file.name)
        );
    };
    let sha = sha256_file(&source)?;
    let verdict = match (is_gz, sha == file.sha256) {
        (true, true) => "the published file",
        (true, false) => "not the published file (e.g. the embedded sample); using it as given",
        (false, _) => "raw file, no published checksum to compare; using it as given",
    };
    println!("{}: SHA-256 {sha} ({verdict})", source.display());
    let dest = out.join(source.file_name().unwrap());
    if !same_file(&source, &dest) {
        copy_atomic(&source, &dest)?;
    }
    Ok(is_gz.then_some(dest))
}

fn same_file(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

fn copy_atomic(from: &Path, to: &Path) -> Result<()> {
    let part = siamese_files::AtomicFile::new(to)?;
    std::fs::copy(from, part.temp_path())
        .with_context(|| format!("{}: cannot copy to {}", from.display(), to.display()))?;
    Ok(part.commit()?)
}

/// Decompresses `gz` into `raw` atomically.
fn gunzip(gz: &Path, raw: &Path) -> Result<()> {
    let input = File::open(gz).with_context(|| format!("{}: cannot open", gz.display()))?;
    let mut decoder = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(input));
    let mut read_error = None;
    let written = siamese_files::write_atomic_with(raw, |out| {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match std::io::Read::read(&mut decoder, &mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    read_error = Some(e.to_string());
                    return Err(e);
                }
            };
            out.write_all(&buf[..n])?;
        }
    });
    match (written, read_error) {
        (Err(_), Some(why)) => bail!(
            "{}: bad gzip data, expected a gzip-compressed IDX file ({why})",
            gz.display()
        ),
        (written, _) => Ok(written?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PathBuf {
        crate::workspace_root().join(SAMPLE_DIR)
    }

    fn get_args(from: &Path, out: &Path) -> GetMnistArgs {
        GetMnistArgs {
            dataset: DatasetKind::Mnist,
            from: Some(from.into()),
            mirror: vec![],
            out: Some(out.into()),
            force: false,
            pairs: PairArgs {
                seed: 1,
                pairs_per_image: 1,
                similar_fraction: Some(0.5),
                train_classes: None,
            },
        }
    }

    #[test]
    fn train_classes_split_the_pair_databases_open_set() {
        let dir = tempfile::tempdir().unwrap();
        let convert = ConvertArgs {
            images: None,
            labels: None,
            input: Some(sample()),
            out: Some(dir.path().into()),
            force: false,
            backend: BackendArg::Leveldb,
        };
        let pairs = PairArgs {
            seed: 1,
            pairs_per_image: 1,
            similar_fraction: None,
            train_classes: Some(vec![0, 1, 2, 3, 4]),
        };
        create_siamese(&convert, &pairs, Path::new("/unused")).unwrap();
        let count = |set: &str, keep: fn(u8) -> bool| {
            let labels = siamese_data::idx::read_labels(
                &sample().join(format!("{set}-labels-idx1-ubyte.gz")),
            )
            .unwrap();
            labels.labels.iter().filter(|&&l| keep(l)).count()
        };
        let open = |name: &str| {
            siamese_data::leveldb::DatumDb::open(&dir.path().join(name))
                .unwrap()
                .len()
        };
        assert_eq!(open("siamese_train_leveldb"), count("train", |l| l < 5));
        assert_eq!(open("siamese_test_leveldb"), count("t10k", |l| l >= 5));
    }

    #[test]
    fn get_mnist_from_the_sample_imports_decompresses_and_converts() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("mnist");
        get_mnist(&get_args(&sample(), &out), Path::new("/unused")).unwrap();
        let gz = out.join("t10k-images-idx3-ubyte.gz");
        let raw = out.join("t10k-images-idx3-ubyte");
        assert_eq!(
            std::fs::read(&gz).unwrap(),
            std::fs::read(sample().join("t10k-images-idx3-ubyte.gz")).unwrap()
        );
        assert_eq!(
            siamese_data::idx::read_images(&gz).unwrap(),
            siamese_data::idx::read_images(&raw).unwrap()
        );
        assert_eq!(
            std::fs::read(&raw).unwrap()[..4],
            [0, 0, 8, 3],
            "raw IDX, not gzip"
        );
        let train =
            siamese_data::leveldb::DatumDb::open(&out.join("siamese_train_leveldb")).unwrap();
        assert_eq!(train.len(), 8000);
        let similar = train.iter().filter(|(_, d)| d.label() == 1).count();
        assert_eq!(similar, 4000);
        // Again without --force: refused before touching anything.
        let err = get_mnist(&get_args(&sample(), &out), Path::new("/unused")).unwrap_err();
        assert!(
            err.to_string().ends_with(
                "siamese_train_leveldb: already exists, expected a new path (--force replaces it)"
            ),
            "{err}"
        );
        let no_temporary = std::fs::read_dir(&out)
            .unwrap()
            .all(|e| !siamese_files::is_temp_name(&e.unwrap().file_name().to_string_lossy()));
        assert!(no_temporary);
    }

    #[test]
    fn import_from_a_folder_without_the_files_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = get_mnist(
            &get_args(dir.path(), &dir.path().join("out")),
            Path::new("/unused"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: no train-images-idx3-ubyte.gz or train-images-idx3-ubyte, expected the file to import",
                dir.path().display()
            )
        );
    }

    #[test]
    fn bad_gzip_leaves_no_part_file() {
        let dir = tempfile::tempdir().unwrap();
        let gz = dir.path().join("x.gz");
        std::fs::write(&gz, [0x1f, 0x8b, 8, 0, 1, 2, 3]).unwrap();
        let err = gunzip(&gz, &dir.path().join("x")).unwrap_err();
        assert!(err.to_string().contains("bad gzip data"), "{err:#}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn create_mnist_db_from_a_folder_writes_train_and_test() {
        let dir = tempfile::tempdir().unwrap();
        let args = ConvertArgs {
            images: None,
            labels: None,
            input: Some(sample()),
            out: Some(dir.path().into()),
            force: false,
            backend: BackendArg::Leveldb,
        };
        create_mnist(&args, Path::new("/unused")).unwrap();
        let test =
            siamese_data::leveldb::DatumDb::open(&dir.path().join("mnist_test_leveldb")).unwrap();
        assert_eq!(test.len(), 2000);
        assert_eq!(test.first().unwrap().channels(), 1);
        let err = create_mnist(&args, Path::new("/unused")).unwrap_err();
        assert!(
            err.to_string()
                .contains("mnist_train_leveldb: already exists"),
            "{err}"
        );
    }

    #[test]
    fn backend_lmdb_writes_caffes_lmdb_folders() {
        let dir = tempfile::tempdir().unwrap();
        let args = ConvertArgs {
            images: None,
            labels: None,
            input: Some(sample()),
            out: Some(dir.path().into()),
            force: false,
            backend: BackendArg::Lmdb,
        };
        create_mnist(&args, Path::new("/unused")).unwrap();
        let pairs = PairArgs {
            seed: 1,
            pairs_per_image: 1,
            similar_fraction: None,
            train_classes: None,
        };
        create_siamese(&args, &pairs, Path::new("/unused")).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "mnist_test_lmdb",
                "mnist_train_lmdb",
                "siamese_test_lmdb",
                "siamese_train_lmdb"
            ]
        );
        let test = dir.path().join("mnist_test_lmdb");
        assert_eq!(
            std::fs::read_dir(&test)
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .file_name(),
            "data.mdb"
        );
        let db = siamese_data::DatumDb::open_as(&test, Backend::Lmdb).unwrap();
        assert_eq!((db.len(), db.iter().nth(7).unwrap().0), (2000, "00000007"));
    }

    #[test]
    fn checksum_tables_are_well_formed() {
        for kind in [DatasetKind::Mnist, DatasetKind::Fashion] {
            for f in kind.files() {
                assert_eq!(f.sha256.len(), 64, "{}", f.name);
                assert!(
                    f.sha256
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                );
            }
        }
    }
}
