//! Fuzzes the features CSV reader (`siamese plot --features`, `siamese eval`, the TUI): any
//! bytes are labelled points or a one-line `ReportError` naming the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use siamese_report::features::read_features_from;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = read_features_from(data, Path::new("fuzz.csv")) {
        let message = e.to_string();
        assert!(message.starts_with("fuzz.csv: ") && !message.contains('\n'), "{message:?}");
    }
});
