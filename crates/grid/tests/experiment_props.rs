//! Property tests: any experiment file text is either a checked experiment whose grid expands
//! into at most `MAX_CELLS` cells, or a one-line error naming the file; never a panic.
//! (The same entry point is fuzzed by `fuzz/fuzz_targets/experiment_toml.rs`.)

mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use siamese_grid::cells::Cell;
use siamese_grid::experiment::{Experiment, MAX_CELLS};

/// A folder with the solver and net files the prelude points at (shared by every case).
fn prelude() -> &'static str {
    static DIR: OnceLock<(tempfile::TempDir, String)> = OnceLock::new();
    let (_, text) = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        support::experiment_file(dir.path(), "unused", "");
        let text = support::prelude(dir.path());
        (dir, text)
    });
    text
}

fn check(text: &str) {
    let file = PathBuf::from("props/exp.toml");
    match Experiment::parse(&file, text) {
        Ok(e) => {
            let cells = Cell::expand(&e);
            assert!(!cells.is_empty() && cells.len() as u64 <= MAX_CELLS);
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with(&format!("{}:", file.display())), "{msg}");
            assert!(!msg.contains('\n'), "{msg:?}");
            assert!(Path::new(&e.file) == file);
        }
    }
}

const KEYS: &[&str] = &[
    "name",
    "solver",
    "net",
    "data",
    "iterations",
    "test_interval",
    "snapshot_interval",
    "seed",
    "knn_k",
    "metric",
    "train_classes",
    "margin",
    "legacy_version",
    "similar_fraction",
    "base_lr",
    "momentum",
    "weight_decay",
    "batch_size",
    "lr_policy",
    "gamma",
    "power",
    "stepsize",
    "feature_dim",
    "repeats",
    "marign",
    "grid",
    "\"quoted key\"",
    "a.b",
];

const VALUES: &[&str] = &[
    "0",
    "1",
    "3",
    "-1",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "1.5",
    "nan",
    "inf",
    "-inf",
    "1e308",
    "true",
    "\"step\"",
    "\"a/b\"",
    "\"\"",
    "[]",
    "[1, 2]",
    "[0.5, 1.0]",
    "[1, 1.0]",
    "[true, false]",
    "[\"fixed\", \"inv\"]",
    "[1, \"x\"]",
    "[[1]]",
    "{ a = 1 }",
    "1979-05-27",
    "'''multi'''",
    "[1,2,3,4,5,6,7,8,9,10]",
];

/// Lines of `key = value`, some under a `[grid]` header (possibly twice).
fn lines() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        8 => (0..KEYS.len(), 0..VALUES.len())
            .prop_map(|(k, v)| format!("{} = {}", KEYS[k], VALUES[v])),
        1 => Just("[grid]".to_string()),
        1 => Just("[other]".to_string()),
        1 => "\\PC{0,12}",
    ];
    prop::collection::vec(line, 0..14).prop_map(|l| l.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics(text in "\\PC{0,200}") {
        check(&text);
        check(&format!("{}{text}", prelude()));
    }

    #[test]
    fn random_keys_and_values_never_panic(body in lines(), with_prelude in any::<bool>()) {
        let text = if with_prelude {
            format!("{}iterations = 10\ntest_interval = 5\n{body}", prelude())
        } else {
            body
        };
        check(&text);
    }
}
