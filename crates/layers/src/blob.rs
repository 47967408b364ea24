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
    /// buffers' capacity, so reshaping to a size seen before allocates nothing.
    pub fn reshape(&mut self, shape: &[usize]) {
        if self.shape != shape {
            self.shape.clear();
            self.shape.extend_from_slice(shape);
        }
        let count = self.count();
        self.data.resize(count, 0.0);
        self.diff.resize(count, 0.0);
    }

    /// The shape as Caffe prints it: `64 1 28 28 (50176)`.
    pub fn shape_string(&self) -> String {
        let dims: Vec<String> = self.shape.iter().map(|d| d.to_string()).collect();
        format!("{} ({})", dims.join(" "), self.count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_keeps_capacity_and_zero_fills() {
        let mut b = Blob::from_data(&[2, 3], vec![1.0; 6]);
        let cap = b.data.capacity();
        b.reshape(&[1, 2]);
        assert_eq!(b.count(), 2);
        assert_eq!(b.data.capacity(), cap);
        b.reshape(&[2, 2, 2]);
        assert_eq!(b.data[..2], [1.0, 1.0]);
        assert_eq!(b.data[6..], [0.0, 0.0]);
        assert_eq!(b.shape_string(), "2 2 2 (8)");
        assert_eq!(b.count_from(1), 4);
        assert_eq!(Blob::new(&[]).count(), 1);
    }
}
