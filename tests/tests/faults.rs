//! Faults, through the `siamese` binary as a user meets them: a full disk, an unwritable output
//! folder, damaged LevelDBs and weights, a LevelDB locked by another process, missing inputs.
//! Each gives a clear one-line error and loses nothing already written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use prost::Message;
use sha2::{Digest, Sha256};
use siamese_data::Datum;
use siamese_data::leveldb::{DatumDb, write_datums};
use siamese_e2e::{LockHolder, SmallDisk, limit_file_size, repo, siamese};
use siamese_layers::Net;
use siamese_layers::embed::cap_input_batch;
use siamese_net::{NetSpec, load_net};
use siamese_proto::Phase;

fn records(n: usize) -> Vec<(String, Datum)> {
    (0..n)
        .map(|i| {
            let datum = Datum {
                channels: Some(2),
                height: Some(2),
                width: Some(2),
                data: Some((0..8).map(|b| (b * 31 + i) as u8).collect()),
                label: Some((i % 2) as i32),
                ..Default::default()
            };
            (siamese_data::record_key(i), datum)
        })
        .collect()
}

/// File name -> SHA-256, for every file of a folder.
fn hashes(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let sha = hex::encode(Sha256::digest(std::fs::read(e.path()).unwrap()));
            (e.file_name().to_string_lossy().into_owned(), sha)
        })
        .collect()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The one error line of a failed run (`error: ...`), checking it failed with exactly one.
fn error_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected a failure; stderr: {stderr}"
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line: {stderr}");
    lines[0].to_string()
}

fn dump(db: &Path) -> Output {
    siamese()
        .args(["db", "dump"])
        .arg(db)
        .args(["--limit", "2"])
        .output()
        .unwrap()
}

#[test]
fn locked_leveldb_is_read_through_a_private_copy() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    write_datums(&db, records(5), false).unwrap();
    let _lock = LockHolder::hold(env!("CARGO_BIN_EXE_hold_lock"), &db);
    let before = hashes(&db);
    let out = dump(&db);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    assert_eq!(DatumDb::open(&db).unwrap().into_records(), records(5));
    assert_eq!(hashes(&db), before, "the locked database was modified");
}

#[test]
fn locked_leveldb_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    write_datums(&db, records(5), false).unwrap();
    let _lock = LockHolder::hold(env!("CARGO_BIN_EXE_hold_lock"), &db);
    let err = write_datums(&db, records(2), true).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}: LevelDB: locked by another process (a running Caffe or LevelDB program?), \
             expected a database no one has open; it was not replaced",
            db.display()
        )
    );
    let err = write_datums(&db, records(2), false)
        .unwrap_err()
        .to_string();
    assert!(err.ends_with("already exists, expected a new path (force/--force replaces it)"));
    assert_eq!(DatumDb::open(&db).unwrap().len(), 5);
    assert_eq!(names(dir.path()), ["db"], "no temporary folder left");
}

#[test]
fn damaged_leveldb_is_a_one_line_error_and_left_as_it_was() {
    let (table, line) = damaged_leveldb("truncated");
    assert!(
        line.contains(&format!(": LevelDB: {table}: footer magic 0x")),
        "{line}"
    );
    assert!(
        line.ends_with("(truncated or damaged table file)"),
        "{line}"
    );
}

/// rusty-leveldb alone skips a table block that fails its checksum without an error (34 of
/// these 300 records were read); siamese-data checks every block of every table first.
#[test]
fn zeroed_table_region_is_an_error() {
    let (table, line) = damaged_leveldb("zeroed");
    assert!(
        line.contains(&format!(": LevelDB: {table}: data block at byte ")),
        "{line}"
    );
    assert!(line.ends_with("(damaged table file)"), "{line}");
}

/// The one-line error of `siamese db dump` on a copy of a 300-record database whose table is
/// damaged (`how`: "truncated" to half, or "zeroed" from 1/4 to 1/2), checked to name the
/// database and to leave its files as they were; returns the table's name and the line.
fn damaged_leveldb(how: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    write_datums(&good, records(300), false).unwrap();
    let table = names(&good)
        .into_iter()
        .find(|n| n.ends_with(".ldb"))
        .expect("a table file");
    let bad = dir.path().join(how);
    std::fs::create_dir(&bad).unwrap();
    for name in names(&good) {
        std::fs::copy(good.join(&name), bad.join(&name)).unwrap();
    }
    let mut bytes = std::fs::read(bad.join(&table)).unwrap();
    if how == "truncated" {
        bytes.truncate(bytes.len() / 2);
    } else {
        let n = bytes.len();
        bytes[n / 4..n / 2].fill(0);
    }
    std::fs::write(bad.join(&table), &bytes).unwrap();
    let before = hashes(&bad);
    let line = error_line(&dump(&bad));
    assert!(
        line.starts_with(&format!("error: {}: LevelDB: ", bad.display())),
        "{line}"
    );
    eprintln!("{how}: {line}");
    assert_eq!(hashes(&bad), before);
    (table, line)
}

#[test]
fn missing_leveldb_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    assert_eq!(
        error_line(&dump(&missing)),
        format!(
            "error: {}: LevelDB: no such folder, expected a LevelDB folder",
            missing.display()
        )
    );
}

/// The deploy net's weights (random, seeded) saved as a .caffemodel in `dir`.
fn deploy_weights(dir: &Path) -> PathBuf {
    let mut param = load_net(&deploy_model()).unwrap();
    cap_input_batch(&mut param, 16);
    let net = Net::new(&NetSpec::build(&param, Phase::Test, None).unwrap(), 3).unwrap();
    let path = dir.join("w.caffemodel");
    net.save_caffemodel(&path).unwrap();
    path
}

fn deploy_model() -> PathBuf {
    repo().join("experiments/siamese/mnist_siamese.prototxt")
}

fn embed(weights: &Path, out: &Path) -> std::process::Command {
    let mut cmd = siamese();
    cmd.arg("embed")
        .arg("--model")
        .arg(deploy_model())
        .arg("--weights")
        .arg(weights)
        .arg("--images")
        .arg(repo().join("data/mnist-sample/t10k-images-idx3-ubyte.gz"))
        .args(["--limit", "40", "--out"])
        .arg(out);
    cmd
}

const OLD_CSV: &[u8] = b"index,label,f0,f1\n0,,1,2\n";

/// A write that fails mid-file (the file size limit stands in for a full disk, for any user):
/// the error names the output, the previous output is intact, no temporary file is left.
#[test]
fn output_that_cannot_be_written_whole_keeps_the_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    let weights = deploy_weights(dir.path());
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("feats.csv");
    std::fs::write(&out, OLD_CSV).unwrap();
    let mut cmd = embed(&weights, &out);
    let result = limit_file_size(&mut cmd, 512).output().unwrap();
    assert_eq!(
        error_line(&result),
        format!(
            "error: {}: cannot write: File too large (os error 27)",
            out.display()
        )
    );
    assert_eq!(std::fs::read(&out).unwrap(), OLD_CSV);
    assert_eq!(names(&out_dir), ["feats.csv"]);
}

/// The same on a disk that is really full (a tmpfs; skipped where mounting is not allowed).
#[test]
fn full_disk_keeps_the_previous_output() {
    let Some(disk) = SmallDisk::mount(16) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let weights = deploy_weights(dir.path());
    let out = disk.path().join("feats.csv");
    std::fs::write(&out, OLD_CSV).unwrap();
    // Fill the disk to the last byte.
    let filler = vec![7u8; 1024];
    let mut fill = std::fs::File::create(disk.path().join("filler")).unwrap();
    while std::io::Write::write_all(&mut fill, &filler).is_ok() {}
    drop(fill);
    let result = embed(&weights, &out).output().unwrap();
    assert_eq!(
        error_line(&result),
        format!(
            "error: {}: cannot write: No space left on device (os error 28)",
            out.display()
        )
    );
    assert_eq!(std::fs::read(&out).unwrap(), OLD_CSV);
    assert_eq!(names(disk.path()), ["feats.csv", "filler"]);
}

/// An output folder that cannot take files. Tests run as root in CI, where chmod 0555 is
/// bypassed; a folder path running through a regular file fails for every user.
#[test]
fn unwritable_output_folder_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let weights = deploy_weights(dir.path());
    let blocker = dir.path().join("not-a-folder");
    std::fs::write(&blocker, b"x").unwrap();
    let out = blocker.join("feats.csv");
    let result = embed(&weights, &out).output().unwrap();
    assert_eq!(
        error_line(&result),
        format!(
            "error: {}: cannot write: Not a directory (os error 20)",
            out.display()
        )
    );
    assert_eq!(std::fs::read(&blocker).unwrap(), b"x");

    // chmod 0555 where it means something (not root).
    #[cfg(unix)]
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        use std::os::unix::fs::PermissionsExt;
        let ro = dir.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        let out = ro.join("feats.csv");
        let result = embed(&weights, &out).output().unwrap();
        assert_eq!(
            error_line(&result),
            format!(
                "error: {}: cannot write: Permission denied (os error 13)",
                out.display()
            )
        );
        assert!(names(&ro).is_empty());
    } else {
        eprintln!("chmod 0555 part skipped: running as root, which bypasses permissions");
    }
}

#[test]
fn damaged_caffemodel_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let weights = deploy_weights(dir.path());
    let bytes = std::fs::read(&weights).unwrap();
    let out = dir.path().join("feats.csv");
    let truncated = dir.path().join("truncated.caffemodel");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let line = error_line(&embed(&truncated, &out).output().unwrap());
    assert!(
        line.starts_with(&format!(
            "error: {}: not a binary NetParameter (.caffemodel): ",
            truncated.display()
        )),
        "{line}"
    );
    eprintln!("truncated: {line}");
    // Well-formed protobuf, wrong weights: a blob of another shape.
    let mut param = siamese_proto::NetParameter::decode(bytes.as_slice()).unwrap();
    let feat = param.layer.iter_mut().find(|l| l.name() == "feat").unwrap();
    feat.blobs[0].shape.as_mut().unwrap().dim = vec![3, 10];
    let wrong = dir.path().join("wrong.caffemodel");
    std::fs::write(&wrong, param.encode_to_vec()).unwrap();
    assert_eq!(
        error_line(&embed(&wrong, &out).output().unwrap()),
        format!(
            "error: {}: layer \"feat\" blob 0: shape [3, 10] in the file, the net expects [2, 10]",
            wrong.display()
        )
    );
    assert!(!out.exists());
}

#[test]
fn missing_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let weights = deploy_weights(dir.path());
    let out = dir.path().join("feats.csv");
    let missing = dir.path().join("none.caffemodel");
    assert_eq!(
        error_line(&embed(&missing, &out).output().unwrap()),
        format!(
            "error: {}: No such file or directory (os error 2)",
            missing.display()
        )
    );
    let images = dir.path().join("none-idx3-ubyte");
    let result = siamese()
        .arg("embed")
        .arg("--model")
        .arg(deploy_model())
        .arg("--weights")
        .arg(&weights)
        .arg("--images")
        .arg(&images)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        error_line(&result),
        format!(
            "error: {}: No such file or directory (os error 2)",
            images.display()
        )
    );
    assert!(!out.exists());
}
