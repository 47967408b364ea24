//! Fuzzes the experiment file (TOML) checker and the grid expansion: any text is Ok (and
//! expands into cells) or an `ExperimentError`.
#![no_main]

use std::path::Path;
use std::sync::Once;

use libfuzzer_sys::fuzz_target;
use siamese_grid::cells::Cell;
use siamese_grid::experiment::Experiment;

fuzz_target!(|data: &[u8]| {
    // The default solver, net and data paths are relative to the repository root.
    static ROOT: Once = Once::new();
    ROOT.call_once(|| {
        std::env::set_current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).expect("repo root");
    });
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(experiment) = Experiment::parse(Path::new("fuzz.toml"), text) {
        let _ = Cell::expand(&experiment);
    }
});
