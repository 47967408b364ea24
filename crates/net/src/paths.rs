//! Where the files a prototxt names live: relative to the current folder when they exist
//! there (Caffe's rule), else relative to the folder of the file that names them.

use std::path::{Path, PathBuf};

use siamese_proto::SolverParameter;

/// Resolves `path` as named inside the file `referrer`: absolute paths as they are; a relative
/// path that exists from the current folder as it is; else, if it exists beside `referrer`,
/// that one; else the path as given (so errors show what the user wrote).
pub fn resolve_path(path: &str, referrer: &Path) -> PathBuf {
    resolve_in(path, referrer.parent())
}

/// Like [`resolve_path`] with the referrer's folder given directly.
pub fn resolve_in(path: &str, base_dir: Option<&Path>) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() || p.exists() {
        return p.to_path_buf();
    }
    match base_dir {
        Some(dir) if dir.join(p).exists() => dir.join(p),
        _ => p.to_path_buf(),
    }
}

/// The files a solver names, resolved with [`resolve_path`].
#[derive(Debug, Clone, PartialEq)]
pub struct SolverPaths {
    /// `net`, the train/test net.
    pub net: Option<PathBuf>,
    /// `train_net`, when given instead of `net`.
    pub train_net: Option<PathBuf>,
    /// `test_net`s, when given instead of `net`.
    pub test_nets: Vec<PathBuf>,
    /// `snapshot_prefix`; its folder is what is looked up (the files do not exist yet).
    pub snapshot_prefix: Option<PathBuf>,
}

/// Resolves the paths named by `solver`, which was read from `solver_file`.
pub fn resolve_solver_paths(solver: &SolverParameter, solver_file: &Path) -> SolverPaths {
    let base = solver_file.parent();
    let snapshot_prefix = solver.snapshot_prefix.as_deref().map(|prefix| {
        let p = Path::new(prefix);
        match (p.parent(), p.file_name(), base) {
            (Some(parent), Some(stem), Some(dir))
                if !p.is_absolute()
                    && !parent.as_os_str().is_empty()
                    && !parent.exists()
                    && dir.join(parent).is_dir() =>
            {
                dir.join(parent).join(stem)
            }
            _ => p.to_path_buf(),
        }
    });
    SolverPaths {
        net: solver.net.as_deref().map(|n| resolve_in(n, base)),
        train_net: solver.train_net.as_deref().map(|n| resolve_in(n, base)),
        test_nets: solver
            .test_net
            .iter()
            .map(|n| resolve_in(n, base))
            .collect(),
        snapshot_prefix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falls_back_to_the_referrers_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/net.prototxt"), "").unwrap();
        let referrer = dir.path().join("solver.prototxt");
        assert_eq!(
            resolve_path("sub/net.prototxt", &referrer),
            dir.path().join("sub/net.prototxt")
        );
        // Found from the current folder (the crate folder in tests): kept as written.
        assert_eq!(
            resolve_path("Cargo.toml", &referrer),
            PathBuf::from("Cargo.toml")
        );
        // Found nowhere: as written.
        assert_eq!(
            resolve_path("nowhere/x", &referrer),
            PathBuf::from("nowhere/x")
        );
    }

    #[test]
    fn solver_paths_resolve_net_and_snapshot_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("snaps")).unwrap();
        std::fs::write(dir.path().join("train.prototxt"), "").unwrap();
        let solver = SolverParameter {
            net: Some("train.prototxt".into()),
            snapshot_prefix: Some("snaps/run".into()),
            ..Default::default()
        };
        let paths = resolve_solver_paths(&solver, &dir.path().join("solver.prototxt"));
        assert_eq!(paths.net, Some(dir.path().join("train.prototxt")));
        assert_eq!(paths.snapshot_prefix, Some(dir.path().join("snaps/run")));
        let missing = SolverParameter {
            snapshot_prefix: Some("runs/x/snap".into()),
            ..Default::default()
        };
        let paths = resolve_solver_paths(&missing, &dir.path().join("solver.prototxt"));
        assert_eq!(paths.snapshot_prefix, Some(PathBuf::from("runs/x/snap")));
    }
}
