//! IDX files (MNIST's format: big-endian magic, counts and dims, then unsigned bytes), raw or
//! gzip-compressed, checked against their header before anything is trusted.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::DataError;

/// Magic number of an IDX file of unsigned-byte images (3 dimensions: count, rows, cols).
pub const IMAGES_MAGIC: u32 = 2051;
/// Magic number of an IDX file of unsigned-byte labels (1 dimension: count).
pub const LABELS_MAGIC: u32 = 2049;
/// The most a gzip-compressed IDX file may expand to; larger is treated as bad input.
const MAX_DECOMPRESSED: u64 = 1 << 30;

/// A stack of `count` grey images of `rows` x `cols` bytes, stored one after the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    pub pixels: Vec<u8>,
}

impl IdxImages {
    /// The pixels of image `i` (row-major, `rows * cols` bytes). Panics if `i >= count`.
    pub fn image(&self, i: usize) -> &[u8] {
        let size = self.rows * self.cols;
        &self.pixels[i * size..(i + 1) * size]
    }

    /// Bytes per image.
    pub fn image_size(&self) -> usize {
        self.rows * self.cols
    }

    /// Parses the bytes of an IDX images file (raw or gzip); `origin` names it in errors.
    pub fn from_bytes(origin: &Path, bytes: &[u8]) -> Result<IdxImages, DataError> {
        let bytes = decompress(origin, bytes)?;
        let dims = header(origin, &bytes, IMAGES_MAGIC, "IDX images", 3)?;
        let (count, rows, cols) = (dims[0], dims[1], dims[2]);
        if rows == 0 || cols == 0 {
            return Err(DataError::Header {
                path: origin.into(),
                problem: format!("images of {rows} x {cols} pixels"),
                expected: "at least 1 x 1".into(),
            });
        }
        let pixels = body(origin, &bytes, 16, &[count, rows, cols], "IDX images")?;
        Ok(IdxImages {
            count,
            rows,
            cols,
            pixels,
        })
    }
}

/// One label byte per item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxLabels {
    pub labels: Vec<u8>,
}

impl IdxLabels {
    /// Parses the bytes of an IDX labels file (raw or gzip); `origin` names it in errors.
    pub fn from_bytes(origin: &Path, bytes: &[u8]) -> Result<IdxLabels, DataError> {
        let bytes = decompress(origin, bytes)?;
        let dims = header(origin, &bytes, LABELS_MAGIC, "IDX labels", 1)?;
        let labels = body(origin, &bytes, 8, &dims, "IDX labels")?;
        Ok(IdxLabels { labels })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Reads an IDX images file (magic 2051), raw or gzip-compressed.
pub fn read_images(path: &Path) -> Result<IdxImages, DataError> {
    IdxImages::from_bytes(path, &read(path)?)
}

/// Reads an IDX labels file (magic 2049), raw or gzip-compressed.
pub fn read_labels(path: &Path) -> Result<IdxLabels, DataError> {
    IdxLabels::from_bytes(path, &read(path)?)
}

fn read(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|e| DataError::io(path, e))
}

/// Gunzips `bytes` when they start with the gzip magic (1f 8b); raw bytes pass through.
fn decompress<'a>(origin: &Path, bytes: &'a [u8]) -> Result<std::borrow::Cow<'a, [u8]>, DataError> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes.into());
    }
    let gzip_error = |reason: String| DataError::Gzip {
        path: PathBuf::from(origin),
        reason,
    };
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .take(MAX_DECOMPRESSED + 1)
        .read_to_end(&mut out)
        .map_err(|e| gzip_error(e.to_string()))?;
    if out.len() as u64 > MAX_DECOMPRESSED {
        return Err(gzip_error(format!("expands past {MAX_DECOMPRESSED} bytes")));
    }
    Ok(out.into())
}

/// Checks the magic and returns the `ndims` dimensions that follow it.
fn header(
    origin: &Path,
    bytes: &[u8],
    magic: u32,
    what: &'static str,
    ndims: usize,
) -> Result<Vec<usize>, DataError> {
    let header_len = 4 * (1 + ndims);
    if bytes.len() < header_len {
        return Err(DataError::Size {
            path: origin.into(),
            found: bytes.len() as u64,
            expected: header_len as u64,
            what: format!("at least the {what} header"),
        });
    }
    let word = |i: usize| u32::from_be_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap());
    if word(0) != magic {
        return Err(DataError::Magic {
            path: origin.into(),
            found: word(0),
            expected: magic,
            what,
        });
    }
    Ok((1..=ndims).map(|i| word(i) as usize).collect())
}

/// Checks that exactly `product(dims)` bytes follow the header and returns them.
fn body(
    origin: &Path,
    bytes: &[u8],
    header_len: usize,
    dims: &[usize],
    what: &str,
) -> Result<Vec<u8>, DataError> {
    let dims_text = dims
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(" x ");
    let expected = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .and_then(|payload| payload.checked_add(header_len as u64));
    let Some(expected) = expected else {
        return Err(DataError::Header {
            path: origin.into(),
            problem: format!("dimensions {dims_text} overflow"),
            expected: "a size that fits in memory".into(),
        });
    };
    if bytes.len() as u64 != expected {
        let shape = if (bytes.len() as u64) < expected {
            "truncated"
        } else {
            "trailing bytes"
        };
        return Err(DataError::Size {
            path: origin.into(),
            found: bytes.len() as u64,
            expected,
            what: format!("{what} {dims_text}, {shape}"),
        });
    }
    Ok(bytes[header_len..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn images_file(magic: u32, dims: [u32; 3], payload: usize) -> Vec<u8> {
        let mut bytes = magic.to_be_bytes().to_vec();
        for d in dims {
            bytes.extend(d.to_be_bytes());
        }
        bytes.extend((0..payload).map(|i| i as u8));
        bytes
    }

    fn labels_file(magic: u32, count: u32, payload: usize) -> Vec<u8> {
        let mut bytes = magic.to_be_bytes().to_vec();
        bytes.extend(count.to_be_bytes());
        bytes.extend((0..payload).map(|i| (i % 10) as u8));
        bytes
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    enum Kind {
        Images,
        Labels,
    }

    /// Parses `bytes` as `kind`; `expect` is `Ok(summary)` or `Err(error message)`.
    fn check(kind: Kind, bytes: &[u8], expect: Result<&str, &str>) {
        let origin = Path::new("data/mnist/x-idx-ubyte");
        let got = match kind {
            Kind::Images => IdxImages::from_bytes(origin, bytes).map(|im| {
                format!(
                    "{} x {} x {}, {} bytes",
                    im.count,
                    im.rows,
                    im.cols,
                    im.pixels.len()
                )
            }),
            Kind::Labels => {
                IdxLabels::from_bytes(origin, bytes).map(|l| format!("{} labels", l.len()))
            }
        };
        match (got, expect) {
            (Ok(s), Ok(e)) => assert_eq!(s, e),
            (Err(err), Err(e)) => assert_eq!(err.to_string(), e),
            (got, expect) => panic!("got {got:?}, expected {expect:?}"),
        }
    }

    #[test]
    fn idx_files_good_and_bad() {
        use Kind::*;
        check(
            Images,
            &images_file(2051, [3, 2, 4], 24),
            Ok("3 x 2 x 4, 24 bytes"),
        );
        check(
            Images,
            &gzip(&images_file(2051, [3, 2, 4], 24)),
            Ok("3 x 2 x 4, 24 bytes"),
        );
        check(
            Images,
            &images_file(2051, [0, 28, 28], 0),
            Ok("0 x 28 x 28, 0 bytes"),
        );
        check(Labels, &labels_file(2049, 5, 5), Ok("5 labels"));
        check(Labels, &gzip(&labels_file(2049, 5, 5)), Ok("5 labels"));
        check(
            Images,
            &labels_file(2049, 5, 11),
            Err("data/mnist/x-idx-ubyte: magic 2049, expected 2051 (IDX images)"),
        );
        check(
            Labels,
            &images_file(2051, [3, 2, 4], 24),
            Err("data/mnist/x-idx-ubyte: magic 2051, expected 2049 (IDX labels)"),
        );
        check(
            Images,
            &images_file(2051, [3, 2, 4], 23),
            Err("data/mnist/x-idx-ubyte: 39 bytes, expected 40 (IDX images 3 x 2 x 4, truncated)"),
        );
        check(
            Images,
            &images_file(2051, [3, 2, 4], 25),
            Err(
                "data/mnist/x-idx-ubyte: 41 bytes, expected 40 (IDX images 3 x 2 x 4, trailing bytes)",
            ),
        );
        check(
            Labels,
            &labels_file(2049, 5, 4),
            Err("data/mnist/x-idx-ubyte: 12 bytes, expected 13 (IDX labels 5, truncated)"),
        );
        check(
            Images,
            &images_file(2051, [3, 0, 4], 0),
            Err("data/mnist/x-idx-ubyte: images of 0 x 4 pixels, expected at least 1 x 1"),
        );
        check(
            Images,
            &[0, 0, 8, 3, 0, 0],
            Err("data/mnist/x-idx-ubyte: 6 bytes, expected 16 (at least the IDX images header)"),
        );
        let mut broken = gzip(&images_file(2051, [3, 2, 4], 24));
        broken.truncate(broken.len() - 12);
        let msg = IdxImages::from_bytes(Path::new("f.gz"), &broken)
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("f.gz: bad gzip data ("), "{msg}");
        assert!(
            msg.ends_with("expected a gzip-compressed IDX file"),
            "{msg}"
        );
    }

    #[test]
    fn huge_dims_are_an_error_not_an_allocation() {
        let bytes = images_file(2051, [u32::MAX, u32::MAX, u32::MAX], 0);
        let err = IdxImages::from_bytes(Path::new("f"), &bytes)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("f: "), "{err}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = read_images(Path::new("/nonexistent/train-images-idx3-ubyte")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/nonexistent/train-images-idx3-ubyte: "),
            "{err}"
        );
    }

    #[test]
    fn image_returns_the_right_slice() {
        let im = IdxImages::from_bytes(Path::new("f"), &images_file(2051, [3, 2, 2], 12)).unwrap();
        assert_eq!(im.image(0), &[0, 1, 2, 3]);
        assert_eq!(im.image(2), &[8, 9, 10, 11]);
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = IdxImages::from_bytes(Path::new("f"), &bytes);
            let _ = IdxLabels::from_bytes(Path::new("f"), &bytes);
        }

        #[test]
        fn mutated_files_never_panic(
            pos in 0usize..64, value in proptest::num::u8::ANY, cut in 0usize..64, zip in proptest::bool::ANY,
        ) {
            let mut bytes = images_file(2051, [2, 3, 4], 24);
            if zip {
                bytes = gzip(&bytes);
            }
            let pos = pos % bytes.len();
            bytes[pos] = value;
            bytes.truncate(bytes.len() - cut.min(bytes.len()));
            let _ = IdxImages::from_bytes(Path::new("f"), &bytes);
            let _ = IdxLabels::from_bytes(Path::new("f"), &bytes);
        }
    }
}
