//! Fuzzes the training log reader (`siamese plot --log`, a TUI cell's log.csv): any bytes are
//! rows or a one-line `ReportError` naming the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use siamese_report::training_log::{parse_log_lines, read_training_log_from};

fuzz_target!(|data: &[u8]| {
    if let Err(e) = read_training_log_from(data, Path::new("fuzz.csv")) {
        let message = e.to_string();
        assert!(message.starts_with("fuzz.csv: ") && !message.contains('\n'), "{message:?}");
    }
    let _ = parse_log_lines(data);
});
