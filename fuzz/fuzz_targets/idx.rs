//! Fuzzes the IDX reader (raw and gzip) as both images and labels.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use siamese_data::idx::{IdxImages, IdxLabels};

fuzz_target!(|data: &[u8]| {
    if let Ok(images) = IdxImages::from_bytes(Path::new("fuzz-images"), data) {
        if images.count > 0 {
            let _ = images.image(images.count - 1);
        }
    }
    let _ = IdxLabels::from_bytes(Path::new("fuzz-labels"), data);
});
