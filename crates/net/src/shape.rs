//! Blob shapes: the `Shape` type, its element count and its display (`[64, 1, 28, 28]`).
//! Each layer type's shape rule is in [`crate::layer`].

/// A blob shape; `[]` is a scalar.
pub type Shape = Vec<usize>;

/// Formats a shape as `[64, 1, 28, 28]`.
pub fn fmt_shape(s: &[usize]) -> String {
    let dims: Vec<String> = s.iter().map(usize::to_string).collect();
    format!("[{}]", dims.join(", "))
}

/// Number of elements, `None` on overflow.
pub fn count(s: &[usize]) -> Option<usize> {
    s.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}
