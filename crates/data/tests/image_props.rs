//! Property tests for the image reader: any bytes (random, or a PNG cut or bit-flipped) are
//! grey pixels of the asked size or a one-line error naming the file; never a panic.
//! (The same reader is fuzzed by `fuzz/fuzz_targets/image.rs`.)

use std::io::Cursor;
use std::path::Path;

use proptest::prelude::*;
use siamese_data::images::decode_grey;

fn png(width: u32, height: u32, seed: u8) -> Vec<u8> {
    let img = image::GrayImage::from_fn(width, height, |x, y| {
        image::Luma([(x as u8).wrapping_mul(31) ^ (y as u8).wrapping_add(seed)])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn pixels_or_one_line_error(bytes: &[u8], rows: usize, cols: usize) {
    match decode_grey(Path::new("mem.png"), bytes, rows, cols) {
        Ok(pixels) => assert_eq!(pixels.len(), rows * cols),
        Err(e) => {
            let message = e.to_string();
            assert!(message.starts_with("mem.png: "), "{message}");
            assert!(!message.contains('\n'), "{message:?}");
        }
    }
}

proptest! {
    #[test]
    fn any_bytes_are_pixels_or_a_one_line_error(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        pixels_or_one_line_error(&bytes, 28, 28);
    }

    #[test]
    fn damaged_pngs_are_pixels_or_a_one_line_error(
        (w, h) in (1u32..40, 1u32..40),
        cut in 0.0f64..1.0,
        flips in prop::collection::vec((0.0f64..1.0, any::<u8>()), 0..4),
    ) {
        let mut bytes = png(w, h, 7);
        for (at, xor) in flips {
            let i = ((bytes.len() - 1) as f64 * at) as usize;
            bytes[i] ^= xor;
        }
        bytes.truncate(((bytes.len() as f64) * (0.2 + 0.8 * cut)) as usize + 1);
        pixels_or_one_line_error(&bytes, 28, 28);
    }

    #[test]
    fn any_size_becomes_the_input_size(w in 1u32..80, h in 1u32..80, rows in 1usize..40, cols in 1usize..40) {
        let pixels = decode_grey(Path::new("mem.png"), &png(w, h, 3), rows, cols).unwrap();
        prop_assert_eq!(pixels.len(), rows * cols);
    }
}
