//! Fuzzes the image reader (`siamese embed --images`, `siamese compare`) and the list-file
//! parser: any bytes are 28×28 grey pixels or a one-line `DataError` naming the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use siamese_data::images::{decode_grey, parse_image_list};

fuzz_target!(|data: &[u8]| {
    match decode_grey(Path::new("fuzz.png"), data, 28, 28) {
        Ok(pixels) => assert_eq!(pixels.len(), 28 * 28),
        Err(e) => {
            let message = e.to_string();
            assert!(message.starts_with("fuzz.png: ") && !message.contains('\n'), "{message:?}");
        }
    }
    if let Err(e) = parse_image_list(Path::new("fuzz.txt"), data) {
        let message = e.to_string();
        assert!(message.starts_with("fuzz.txt: ") && !message.contains('\n'), "{message:?}");
    }
});
