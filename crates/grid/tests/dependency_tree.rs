//! Architecture invariants read from the workspace's Cargo.lock: siamese-grid's dependency
//! tree has no terminal crates (the screen is siamese-tui's), and siamese-report stands alone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every package of Cargo.lock: name → its versions, each with its dependencies' entries
/// (`name` or `name version`, as Cargo.lock writes them).
type Lock = BTreeMap<String, Vec<(String, Vec<String>)>>;

fn lock() -> Lock {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let lock: toml::Table = toml::from_str(&text).unwrap();
    let mut packages = Lock::new();
    for package in lock["package"].as_array().unwrap() {
        let field = |key: &str| package[key].as_str().unwrap().to_string();
        let deps = package
            .get("dependencies")
            .and_then(|d| d.as_array())
            .map(|d| d.iter().map(|v| v.as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        packages
            .entry(field("name"))
            .or_default()
            .push((field("version"), deps));
    }
    packages
}

/// Every package `root` depends on, directly or not, by name. Cargo.lock records a workspace
/// member's dev-dependencies too, so this is a superset of what a build of `root` links.
fn tree(lock: &Lock, root: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![root.to_string()];
    while let Some(entry) = todo.pop() {
        let mut parts = entry.split(' ');
        let name = parts.next().unwrap().to_string();
        let version = parts.next();
        let Some(versions) = lock.get(&name) else {
            panic!("{entry} is not in Cargo.lock");
        };
        if !seen.insert(entry.clone()) {
            continue;
        }
        for (v, deps) in versions {
            if version.is_none_or(|want| want == v) {
                todo.extend(deps.iter().cloned());
            }
        }
    }
    seen.iter()
        .map(|e| e.split(' ').next().unwrap().to_string())
        .collect()
}

#[test]
fn the_grid_library_has_no_terminal_crates_in_its_tree() {
    let lock = lock();
    let grid = tree(&lock, "siamese-grid");
    assert!(grid.contains("siamese-solver") && grid.contains("siamese-report"));
    for screen in ["ratatui", "crossterm"] {
        assert!(
            !grid.contains(screen),
            "siamese-grid depends on {screen}: the screen belongs to siamese-tui"
        );
    }
    // The check can see them: the front end does pull them in.
    let tui = tree(&lock, "siamese-tui");
    assert!(tui.contains("ratatui") && tui.contains("crossterm"));
}

#[test]
fn the_run_record_depends_on_no_other_siamese_crate() {
    let report = tree(&lock(), "siamese-report");
    let ours: Vec<&String> = report
        .iter()
        .filter(|n| n.starts_with("siamese-") && *n != "siamese-report")
        .collect();
    assert!(ours.is_empty(), "siamese-report depends on {ours:?}");
}
