//! Fuzzes the file-keyed features CSV reader (`file,f0,…`, from `siamese embed --images`):
//! any bytes are rows or a one-line `ReportError` naming the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use siamese_report::features::read_file_features_from;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = read_file_features_from(data, Path::new("fuzz.csv")) {
        let message = e.to_string();
        assert!(message.starts_with("fuzz.csv: ") && !message.contains('\n'), "{message:?}");
    }
});
