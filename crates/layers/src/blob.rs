//! `Blob`: an n-dimensional f32 tensor with its gradient, Caffe's unit of data.
//! Data and diff live in host memory, row-major, shape `[num, channels, height, width]` style.

/// A tensor with its gradient (`diff`), both `count()` long, laid out row-major in `shape`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Blob {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    pub diff: Vec<f32>,
}

impl Blob {
    /// A zero-filled blob of `shape`.
    pub fn new(shape: &[usize]) -> Self {
        let count = shape.iter().product();
        Self {
            shape: shape.to_vec(),
            data: vec![0.0; count],
            diff: vec![0.0; count],
        }
    }

    /// A blob holding `data` (diff zeroed). Panics when `data.len()` is not the shape's count.
    pub fn from_data(shape: &[usize], data: Vec<f32>) -> Self {
        let count: usize = shape.iter().product();
        assert_eq!(
            count,
            data.len(),
            "Blob::from_data: data does not fit {shape:?}"
        );
        Self {
            shape: shape.to_vec(),
            diff: vec![0.0; count],
            data,
        }
    }

    /// Number of elements: the product of the shape (1 for a scalar of shape `[]`).
    pub fn count(&self) -> usize {
        self.shape.iter().product()
    }

    /// Product of the dimensions `start..end`.
    pub fn count_range(&self, start: usize, end: usize) -> usize {
        self.shape[start..end].iter().product()
    }

    /// Product of the dimensions from `axis` on.
    pub fn count_from(&self, axis: usize) -> usize {
        self.count_range(axis, self.shape.len())
    }

    /// Size of the leading dimension (1 for a scalar).
    pub fn num(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Changes the shape, growing or shrinking data and diff (new elements are zero). Keeps the
    /// buffers' capacity, so reshaping to a size seen before allocates nothing. A size the
    /// allocator refuses (or that overflows) is an error and leaves the blob as it was.
    pub fn reshape(&mut self, shape: &[usize]) -> Result<(), AllocError> {
        let count = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or(AllocError::overflow("blob", shape))?;
        try_reserve_len(&mut self.data, count, "blob data")?;
        try_reserve_len(&mut self.diff, count, "blob diff")?;
        self.data.resize(count, 0.0);
        self.diff.resize(count, 0.0);
        if self.shape != shape {
            self.shape.clear();
            self.shape.extend_from_slice(shape);
        }
        Ok(())
    }

    /// The shape as Caffe prints it: `64 1 28 28 (50176)`.
    pub fn shape_string(&self) -> String {
        shape_string(&self.shape)
    }
}

/// A shape as Caffe prints it: `64 1 28 28 (50176)`.
pub(crate) fn shape_string(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let count = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    match count {
        Some(n) => format!("{} ({n})", dims.join(" ")),
        None => format!("{} (overflows)", dims.join(" ")),
    }
}

/// A buffer the allocator refused: what it was for and how many bytes it asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot allocate {} for {what}", crate::memory::format_bytes(*bytes))]
pub struct AllocError {
    pub what: &'static str,
    /// `u64::MAX` when the size itself overflows.
    pub bytes: u64,
}

impl AllocError {
    fn overflow(what: &'static str, _shape: &[usize]) -> AllocError {
        AllocError {
            what,
            bytes: u64::MAX,
        }
    }
}

/// `v.resize(len, value)` through fallible allocation: running out is an error, not an abort.
pub(crate) fn try_resize<T: Clone>(
    v: &mut Vec<T>,
    len: usize,
    value: T,
    what: &'static str,
) -> Result<(), AllocError> {
    try_reserve_len(v, len, what)?;
    v.resize(len, value);
    Ok(())
}

/// Makes room for `len` elements in `v` (no change when it already has it).
fn try_reserve_len<T>(v: &mut Vec<T>, len: usize, what: &'static str) -> Result<(), AllocError> {
    match len.checked_sub(v.len()) {
        Some(more) if more > 0 => v.try_reserve_exact(more).map_err(|_| AllocError {
            what,
            bytes: (len as u64).saturating_mul(std::mem::size_of::<T>() as u64),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_keeps_capacity_and_zero_fills() {
        let mut b = Blob::from_data(&[2, 3], vec![1.0; 6]);
        let cap = b.data.capacity();
        b.reshape(&[1, 2]).unwrap();
        assert_eq!(b.count(), 2);
        assert_eq!(b.data.capacity(), cap);
        b.reshape(&[2, 2, 2]).unwrap();
        assert_eq!(b.data[..2], [1.0, 1.0]);
        assert_eq!(b.data[6..], [0.0, 0.0]);
        assert_eq!(b.shape_string(), "2 2 2 (8)");
        assert_eq!(b.count_from(1), 4);
        assert_eq!(Blob::new(&[]).count(), 1);
    }

    #[test]
    fn a_reshape_too_big_to_allocate_is_an_error_and_changes_nothing() {
        let mut b = Blob::from_data(&[2], vec![1.0, 2.0]);
        let e = b.reshape(&[1 << 40, 1 << 20]).unwrap_err();
        assert_eq!(e.what, "blob data");
        let e = b.reshape(&[usize::MAX, 2]).unwrap_err();
        assert_eq!(e.bytes, u64::MAX);
        assert_eq!(b, Blob::from_data(&[2], vec![1.0, 2.0]));
    }
}
