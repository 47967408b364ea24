//! siamese-net: Caffe net and solver definitions in, a checked graph out: prototxt parsing
//! (both syntaxes), V1 upgrade, phase rules, implicit splits, shared parameters, shapes.
//!
//! ```no_run
//! use siamese_net::{NetSpec, load_net};
//! let path = std::path::Path::new("experiments/siamese/mnist_siamese_train_test.prototxt");
//! let param = load_net(path)?;
//! let net = NetSpec::build(&param, siamese_proto::Phase::Train, path.parent())?;
//! println!("{}", siamese_net::table::render(&net));
//! # Ok::<(), siamese_net::NetError>(())
//! ```

mod data_probe;
pub mod dot;
mod error;
pub mod layer;
pub mod locate;
pub mod parse;
mod paths;
pub mod shape;
mod spec;
pub mod table;
pub mod upgrade;

use std::path::Path;

use siamese_proto::{NetParameter, SolverParameter};

pub use data_probe::{DataProbe, probe_data_source};
pub use error::NetError;
pub use layer::{LayerConfig, LayerKind};
pub use paths::{SolverPaths, resolve_in, resolve_path, resolve_solver_paths};
pub use spec::{BlobSpec, LayerSpec, NetSpec, ParamInfo};

/// Reads and upgrades a net definition (`.prototxt`, either syntax).
pub fn load_net(path: &Path) -> Result<NetParameter, NetError> {
    parse::parse_net_text(&read(path)?, &path.display().to_string())
}

/// Reads and upgrades a solver definition. Paths inside are left as written; see
/// [`resolve_solver_paths`].
pub fn load_solver(path: &Path) -> Result<SolverParameter, NetError> {
    parse::parse_solver_text(&read(path)?, &path.display().to_string())
}

fn read(path: &Path) -> Result<String, NetError> {
    if let Some(found) = siamese_files::not_a_file(path) {
        return Err(NetError::WrongKind {
            path: path.to_path_buf(),
            found,
            expected: "a prototxt file",
        });
    }
    std::fs::read_to_string(path).map_err(|source| NetError::Io {
        path: path.to_path_buf(),
        error: source,
    })
}
