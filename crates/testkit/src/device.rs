//! Parity tests written once for every device: `test_device!` runs a body on the CPU and, in
//! builds with `cuda`, on GPU 0 where one can be used; the tolerance GPU results are held to.

use std::fmt::Display;

/// What a GPU probe gave, for a test that needs that GPU: the value, or `None` after printing
/// `skipped: <reason>` (machines without a GPU pass, saying why).
pub fn gpu_or_skip<T, E: Display>(probe: Result<T, E>) -> Option<T> {
    match probe {
        Ok(gpu) => Some(gpu),
        Err(reason) => {
            eprintln!("skipped: {reason}");
            None
        }
    }
}

/// `|got − want| ≤ tol · max(|want|, 1% of the largest |want|, 1e-7)` element by element: a
/// device result against the CPU's (the same arithmetic summed in another order).
#[track_caller]
pub fn assert_close(what: &str, want: &[f32], got: &[f32], tol: f32) {
    assert_eq!(want.len(), got.len(), "{what}: lengths");
    let largest = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        let bound = tol * w.abs().max(0.01 * largest).max(1e-7);
        assert!((w - g).abs() <= bound, "{what}[{i}]: cpu {w}, device {g}");
    }
}

/// Writes a test once for every device: `test_device!(body, body_cpu, body_gpu)` defines the
/// tests `body_cpu`, calling `body(Device::Cpu)`, and (where the calling crate's `cuda`
/// feature is on) `body_gpu`, calling `body(Device::Gpu(0))` or skipping with the reason GPU 0
/// cannot be used. The calling crate depends on siamese-layers (for `Device`, `probe_gpu`).
#[macro_export]
macro_rules! test_device {
    ($body:ident, $cpu:ident, $gpu:ident) => {
        #[test]
        fn $cpu() {
            $body(::siamese_layers::Device::Cpu)
        }

        #[cfg(feature = "cuda")]
        #[test]
        fn $gpu() {
            if let Some(about) = $crate::gpu_or_skip(::siamese_layers::probe_gpu(0)) {
                eprintln!("testing on {about}");
                $body(::siamese_layers::Device::Gpu(0))
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_allows_the_relative_error_and_a_floor_near_zero() {
        assert_close("exact", &[1.0, -2.0], &[1.0, -2.0], 0.0);
        assert_close("relative", &[100.0, 1.0], &[100.009, 1.00009], 1e-4);
        // 1% of the largest value is the floor: 0.0 against 100 may be off by 1e-4 · 1.
        assert_close("floor", &[100.0, 0.0], &[100.0, 9e-5], 1e-4);
        assert_eq!(gpu_or_skip::<u8, _>(Err("no GPU here")), None);
        assert_eq!(gpu_or_skip::<u8, &str>(Ok(3)), Some(3));
    }

    #[test]
    #[should_panic(expected = "x[1]: cpu 1, device 1.1")]
    fn close_names_the_first_element_off() {
        assert_close("x", &[1.0, 1.0], &[1.0, 1.1], 1e-3);
    }
}
