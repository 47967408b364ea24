//! ARCHITECTURE.md's invariants that a test can see in the source: the solver prints nothing,
//! library crates keep anyhow out (typed errors; binaries add context), and only
//! siamese-files names temporary files.

use std::fs;
use std::path::{Path, PathBuf};

use siamese_e2e::repo;

/// The library crates (not the binaries cli and tui, not xtask).
const LIBRARIES: [&str; 9] = [
    "proto", "data", "net", "layers", "solver", "report", "grid", "files", "testkit",
];

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// A file's code outside its `#[cfg(test)]` module (which this project keeps last).
fn non_test_code(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Lines of the crates' non-test code that contain any of `needles`.
fn offending_lines(crates: &[&str], needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for krate in crates {
        for path in sources(&repo().join("crates").join(krate).join("src")) {
            for (n, line) in non_test_code(&path).lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                if needles.iter().any(|needle| code.contains(needle)) {
                    found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn the_solver_writes_nothing_to_the_terminal() {
    let printing = [
        "println!",
        "eprintln!",
        "print!(",
        "eprint!(",
        "dbg!(",
        "io::stdout",
        "io::stderr",
    ];
    let found = offending_lines(&["solver"], &printing);
    assert!(
        found.is_empty(),
        "the solver emits events instead:\n{}",
        found.join("\n")
    );
}

#[test]
fn library_crates_return_typed_errors() {
    for krate in LIBRARIES {
        let manifest = repo().join("crates").join(krate).join("Cargo.toml");
        let text = fs::read_to_string(&manifest).unwrap();
        let dependencies = text
            .split("[dependencies]")
            .nth(1)
            .map(|rest| rest.split("\n[").next().unwrap_or(""))
            .unwrap_or("");
        assert!(
            !dependencies
                .lines()
                .any(|l| l.trim_start().starts_with("anyhow")),
            "{}: anyhow belongs to the binaries; return a thiserror type",
            manifest.display()
        );
    }
}

#[test]
fn only_siamese_files_makes_temporary_names() {
    let naming = [".tmp{", ".tmp-", "\".part\"", ".part\""];
    let mut crates: Vec<&str> = LIBRARIES
        .iter()
        .copied()
        .filter(|c| *c != "files")
        .collect();
    crates.extend(["cli", "tui"]);
    let found = offending_lines(&crates, &naming);
    assert!(
        found.is_empty(),
        "write through siamese-files:\n{}",
        found.join("\n")
    );
}
