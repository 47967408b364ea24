//! Fuzzes the solver prototxt reader: parse, `solver_type` upgrade, embedded nets, and the
//! resolution of the paths it names.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(solver) = siamese_net::parse::parse_solver_text(text, "fuzz_solver.prototxt") {
        let _ = siamese_net::resolve_solver_paths(
            &solver,
            std::path::Path::new("fuzz_solver.prototxt"),
        );
    }
});
