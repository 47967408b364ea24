//! Runs the `siamese` binary's `db dump` on a LevelDB and an LMDB made from the embedded MNIST
//! sample.

use std::path::PathBuf;
use std::process::Command;

use sha2::{Digest, Sha256};
use siamese_data::Dataset;

fn sample_test_set() -> Dataset {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist-sample");
    Dataset::load(
        &dir.join("t10k-images-idx3-ubyte.gz"),
        &dir.join("t10k-labels-idx1-ubyte.gz"),
    )
    .unwrap()
}

fn siamese(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_siamese"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn dump_prints_one_csv_row_per_record() {
    for backend in [siamese_data::Backend::LevelDb, siamese_data::Backend::Lmdb] {
        dump_prints_one_csv_row_per_record_of(backend);
    }
}

fn dump_prints_one_csv_row_per_record_of(backend: siamese_data::Backend) {
    let data = sample_test_set();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(format!("mnist_test_{}", backend.suffix()));
    let records = (0..50).map(|i| (siamese_data::record_key(i), data.image_datum(i)));
    siamese_data::write_datums_as(&db, backend, records, false).unwrap();

    let out = siamese(&["db", "dump", db.to_str().unwrap(), "--limit", "3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut expected = String::from("key,channels,height,width,label,data_sha256\n");
    for i in 0..3 {
        let sha = hex::encode(Sha256::digest(data.images.image(i)));
        expected += &format!("{:08},1,28,28,{},{sha}\n", i, data.labels.labels[i]);
    }
    assert_eq!(text, expected);

    let all = siamese(&["db", "dump", db.to_str().unwrap()]);
    assert_eq!(String::from_utf8(all.stdout).unwrap().lines().count(), 51);
}

#[test]
fn dump_of_a_missing_database_is_a_one_line_error() {
    let out = siamese(&["db", "dump", "/nonexistent/siamese_train_leveldb"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err.trim_end(),
        "error: /nonexistent/siamese_train_leveldb: LevelDB: no such folder, expected a LevelDB folder"
    );
}
