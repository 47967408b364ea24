//! `siamese net` and `siamese draw` run end to end on the project's own prototxt files.

use siamese_testkit::repo;
use std::process::{Command, Output};

fn siamese(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_siamese"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn net_prints_the_table_for_both_phases() {
    for phase in ["train", "test"] {
        let out = siamese(&[
            "net",
            "--model",
            "experiments/siamese/mnist_siamese_train_test.prototxt",
            "--phase",
            phase,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains(&format!("phase {}", phase.to_uppercase())),
            "{stdout}"
        );
        assert!(stdout.contains("conv1_w"), "{stdout}");
        assert!(stdout.contains("10 shared by name"), "{stdout}");
    }
    let out = siamese(&[
        "net",
        "--model",
        "experiments/siamese/mnist_siamese.prototxt",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("distinct parameters: 431,102"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn syntax_error_shows_place_and_caret() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.prototxt");
    std::fs::write(&bad, "layer {\n  name: \"a\"\n  kernel_sise: 3\n}\n").unwrap();
    let out = siamese(&["net", "--model", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("bad.prototxt:3:3: field 'kernel_sise' not found"),
        "{stderr}"
    );
    assert!(
        stderr.contains("3 |   kernel_sise: 3\n  |   ^^^^^^^^^^^"),
        "{stderr}"
    );
}

#[test]
fn draw_writes_dot() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("net.dot");
    let out = siamese(&[
        "draw",
        "--model",
        "experiments/siamese/mnist_siamese_train_test.prototxt",
        "--out",
        out_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dot = std::fs::read_to_string(&out_path).unwrap();
    assert!(
        dot.starts_with("digraph \"mnist_siamese_train_test\""),
        "{dot}"
    );
    assert!(dot.contains("label=\"conv1_w\""), "{dot}");
    // Only the output file: no temporary left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    let bad = siamese(&[
        "draw",
        "--model",
        "experiments/siamese/mnist_siamese.prototxt",
        "--out",
        "net.pdf",
    ]);
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains(".dot, .svg or .png"));
}
