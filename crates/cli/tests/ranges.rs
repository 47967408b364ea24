//! Settings out of Caffe's ranges and paths of the wrong kind, through the real `siamese`
//! binary: each a one-line error naming the file, line and field, with nothing trained.

use std::path::Path;
use std::process::Command;

const NET: &str = "name: \"tiny\"\nlayer { name: \"data\" type: \"Input\" top: \"data\" top: \"label\"\n  input_param { shape { dim: 4 dim: 1 dim: 2 dim: 2 } shape { dim: 4 } } }\nlayer { name: \"ip\" type: \"InnerProduct\" bottom: \"data\" top: \"ip\"\n  inner_product_param { num_output: 1 } }\nlayer { name: \"loss\" type: \"EuclideanLoss\" bottom: \"ip\" bottom: \"label\" top: \"loss\" }\n";

fn solver(extra: &str) -> String {
    format!(
        "net: \"net.prototxt\"\nbase_lr: 0.01\nlr_policy: \"fixed\"\n{extra}\nsnapshot_prefix: \"snaps/t\"\n"
    )
}

/// Runs `siamese <args>` in `dir`; (success, stderr).
fn run(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_siamese"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("Optimization Done"), "{stdout}");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn train_error(net: &str, solver_text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("net.prototxt"), net).unwrap();
    std::fs::write(dir.path().join("solver.prototxt"), solver_text).unwrap();
    let (ok, stderr) = run(dir.path(), &["train", "--solver", "solver.prototxt"]);
    assert!(!ok, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    stderr.trim().to_string()
}

#[test]
fn solver_fields_out_of_range_name_file_line_and_field() {
    let cases = [
        (
            "max_iter: -5",
            "solver.prototxt:4:1: max_iter -5: expected an iteration count of at least 0",
        ),
        (
            "max_iter: 10\nmomentum: 1",
            "solver.prototxt:5:1: momentum 1: expected a number in [0, 1)",
        ),
        (
            "max_iter: 10\n\nweight_decay: -0.5",
            "solver.prototxt:6:1: weight_decay -0.5: expected a finite number of at least 0",
        ),
        (
            "max_iter: 10 display: -2",
            "solver.prototxt:4:14: display -2: expected an interval of at least 0 (0: never)",
        ),
    ];
    for (extra, want) in cases {
        let err = train_error(NET, &solver(extra));
        assert!(err.ends_with(want), "{extra:?}: {err}");
    }
}

#[test]
fn net_fields_out_of_range_name_file_line_and_field() {
    let net = NET.replace(
        "top: \"loss\" }",
        "top: \"loss2\" }\nlayer { name: \"c\" type: \"ContrastiveLoss\" bottom: \"ip\" bottom: \"ip\" bottom: \"label\" top: \"closs\"\n  contrastive_loss_param { margin: -1 } }",
    );
    let err = train_error(&net, &solver("max_iter: 2"));
    assert!(
        err.ends_with("net.prototxt:8:28: layer 'c' (ContrastiveLoss): margin -1 must be a finite number of at least 0"),
        "{err}"
    );
    let net = NET.replace("num_output: 1", "num_output: 0");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("net.prototxt"), net).unwrap();
    let (ok, stderr) = run(dir.path(), &["net", "--model", "net.prototxt"]);
    assert!(!ok);
    assert!(
        stderr
            .trim()
            .ends_with("net.prototxt:5:25: layer 'ip' (InnerProduct): num_output must be positive"),
        "{stderr}"
    );
}

#[test]
fn a_folder_where_a_file_is_expected_says_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("net.prototxt")).unwrap();
    std::fs::write(dir.path().join("solver.prototxt"), solver("max_iter: 2")).unwrap();
    let (ok, stderr) = run(dir.path(), &["train", "--solver", "solver.prototxt"]);
    assert!(!ok);
    assert!(
        stderr
            .trim()
            .ends_with("net.prototxt: is a folder, expected a prototxt file"),
        "{stderr}"
    );
    let (ok, stderr) = run(dir.path(), &["train", "--solver", "."]);
    assert!(!ok);
    assert!(
        stderr
            .trim()
            .ends_with(".: is a folder, expected a prototxt file"),
        "{stderr}"
    );
}
