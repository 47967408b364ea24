//! Image files (PNG, JPEG) as a net's input: found in a folder or a list file, decoded,
//! converted to grey and resized to the input's size, stacked like an IDX images file.

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{ImageFormat, io::Limits};

use crate::DataError;
use crate::idx::{IMAGES_MAGIC, IdxImages};

/// The largest width or height decoded: bigger is treated as bad input, not a reason to
/// allocate gigabytes.
const MAX_SIDE: u32 = 16_384;
/// What a decoder may allocate at most.
const MAX_DECODE_BYTES: u64 = 256 << 20;

/// Where images come from: what `siamese embed --images` was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageSource {
    /// An IDX images file (raw or gzip).
    Idx(PathBuf),
    /// PNG/JPEG files: one image, a folder's images by name, or a list file's lines.
    Files {
        files: Vec<PathBuf>,
        /// Files of a folder left out because their name does not end in .png/.jpg/.jpeg.
        skipped: usize,
    },
}

impl ImageSource {
    /// What `path` holds: a folder (its `.png`/`.jpg`/`.jpeg` files, not hidden ones, sorted
    /// by name), an IDX file (IDX or gzip magic), one PNG/JPEG image, or else a list file.
    pub fn detect(path: &Path) -> Result<ImageSource, DataError> {
        if path.is_dir() {
            return folder_images(path);
        }
        let bytes = first_bytes(path, 16)?;
        let idx_magic = IMAGES_MAGIC.to_be_bytes();
        if bytes.starts_with(&[0x1f, 0x8b]) || bytes.starts_with(&idx_magic) {
            return Ok(ImageSource::Idx(path.to_path_buf()));
        }
        if image_format(&bytes).is_some() {
            return Ok(ImageSource::Files {
                files: vec![path.to_path_buf()],
                skipped: 0,
            });
        }
        let text = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        let files = parse_image_list(path, &text)?;
        Ok(ImageSource::Files { files, skipped: 0 })
    }
}

/// Up to `n` bytes from the start of the file at `path` (enough to tell formats apart).
fn first_bytes(path: &Path, n: u64) -> Result<Vec<u8>, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut bytes = Vec::new();
    file.take(n)
        .read_to_end(&mut bytes)
        .map_err(|e| DataError::io(path, e))?;
    Ok(bytes)
}

fn folder_images(dir: &Path) -> Result<ImageSource, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let (mut files, mut skipped) = (Vec::new(), 0);
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || entry.path().is_dir() {
            continue;
        }
        let lower = name.to_ascii_lowercase();
        if [".png", ".jpg", ".jpeg"]
            .iter()
            .any(|ext| lower.ends_with(ext))
        {
            files.push(entry.path());
        } else {
            skipped += 1;
        }
    }
    if files.is_empty() {
        return Err(DataError::Image {
            path: dir.into(),
            problem: "no .png, .jpg or .jpeg files in this folder".into(),
        });
    }
    files.sort();
    Ok(ImageSource::Files { files, skipped })
}

/// The images a list file names: one path per line (relative ones from the list's folder),
/// blank lines and lines starting with `#` skipped.
pub fn parse_image_list(list: &Path, bytes: &[u8]) -> Result<Vec<PathBuf>, DataError> {
    let fail = |problem: String| DataError::Image {
        path: list.into(),
        problem,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        fail(format!(
            "not UTF-8 text at byte {} (neither an IDX file, a PNG/JPEG image nor a list of image files, one per line)",
            e.valid_up_to()
        ))
    })?;
    let base = list.parent().unwrap_or(Path::new(""));
    let files: Vec<PathBuf> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| base.join(l))
        .collect();
    if files.is_empty() {
        return Err(fail(
            "no image paths (expected a list of image files, one per line)".into(),
        ));
    }
    Ok(files)
}

/// PNG or JPEG, from the file's first bytes (not its name).
fn image_format(bytes: &[u8]) -> Option<ImageFormat> {
    match image::guess_format(bytes) {
        Ok(f @ (ImageFormat::Png | ImageFormat::Jpeg)) => Some(f),
        _ => None,
    }
}

/// Decodes a PNG or JPEG into `rows` x `cols` grey bytes: colour is converted with Rec. 709
/// luma weights (the `image` crate's `to_luma8`; alpha dropped), and a different size is
/// resized to exactly `rows` x `cols` with a bilinear (triangle) filter, ignoring the aspect
/// ratio, as Caffe's `convert_imageset --resize_height --resize_width` does.
pub fn decode_grey(
    origin: &Path,
    bytes: &[u8],
    rows: usize,
    cols: usize,
) -> Result<Vec<u8>, DataError> {
    let fail = |problem: String| DataError::Image {
        path: origin.into(),
        problem,
    };
    let Some(format) = image_format(bytes) else {
        let start: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
        return Err(fail(format!(
            "starts with bytes [{}], not a PNG or JPEG image",
            start.join(" ")
        )));
    };
    let mut reader = image::io::Reader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let decoded = reader.decode().map_err(|e| {
        let reason = e.to_string().replace('\n', " ");
        fail(format!("cannot decode the {format:?} image: {reason}"))
    })?;
    let grey = decoded.to_luma8();
    let (width, height) = (cols as u32, rows as u32);
    if grey.dimensions() == (width, height) {
        return Ok(grey.into_raw());
    }
    Ok(image::imageops::resize(&grey, width, height, FilterType::Triangle).into_raw())
}

/// Reads `files` as `rows` x `cols` grey images (see [`decode_grey`]), in their order.
pub fn read_image_files(
    files: &[PathBuf],
    rows: usize,
    cols: usize,
) -> Result<IdxImages, DataError> {
    let mut pixels = Vec::with_capacity(files.len() * rows * cols);
    for file in files {
        let bytes = std::fs::read(file).map_err(|e| DataError::io(file, e))?;
        pixels.extend(decode_grey(file, &bytes, rows, cols)?);
    }
    Ok(IdxImages {
        count: files.len(),
        rows,
        cols,
        pixels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32, pixel: impl Fn(u32, u32) -> u8) -> Vec<u8> {
        let img = image::GrayImage::from_fn(width, height, |x, y| image::Luma([pixel(x, y)]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn grey_png_of_the_input_size_reads_byte_for_byte() {
        let bytes = png(3, 2, |x, y| (x * 10 + y * 100) as u8);
        let grey = decode_grey(Path::new("a.png"), &bytes, 2, 3).unwrap();
        assert_eq!(grey, vec![0, 10, 20, 100, 110, 120]);
    }

    #[test]
    fn colour_and_other_sizes_become_grey_of_the_input_size() {
        let img = image::RgbImage::from_pixel(8, 4, image::Rgb([255, 255, 255]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Jpeg).unwrap();
        let grey = decode_grey(Path::new("w.jpg"), out.get_ref(), 2, 2).unwrap();
        assert_eq!(grey.len(), 4);
        assert!(grey.iter().all(|&p| p >= 250), "{grey:?}");
        // A uniform image stays uniform through the bilinear filter.
        let flat = decode_grey(Path::new("f.png"), &png(56, 56, |_, _| 77), 28, 28).unwrap();
        assert!(flat.iter().all(|&p| p == 77));
    }

    #[test]
    fn bad_bytes_are_errors_naming_the_file() {
        let check = |bytes: &[u8], want: &str| {
            let e = decode_grey(Path::new("x.png"), bytes, 2, 2)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("x.png: ") && e.contains(want), "{e}");
            assert!(!e.contains('\n'), "{e:?}");
        };
        check(
            b"hello",
            "starts with bytes [68 65 6c 6c], not a PNG or JPEG image",
        );
        check(b"", "starts with bytes [], not a PNG");
        let mut cut = png(4, 4, |x, _| x as u8);
        cut.truncate(cut.len() / 2);
        check(&cut, "cannot decode the Png image");
    }

    #[test]
    fn list_files_resolve_from_their_folder() {
        let list = Path::new("/data/set/list.txt");
        let files = parse_image_list(list, b"# digits\na.png\n\n  b/c.jpg \n/abs/d.png\n").unwrap();
        let want: Vec<PathBuf> = ["/data/set/a.png", "/data/set/b/c.jpg", "/abs/d.png"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(files, want);
        let e = parse_image_list(list, b"\n# none\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/data/set/list.txt: no image paths"), "{e}");
        let e = parse_image_list(list, &[0x41, 0xff, 0])
            .unwrap_err()
            .to_string();
        assert!(e.contains("not UTF-8 text at byte 1"), "{e}");
    }

    #[test]
    fn folders_give_their_images_by_name_and_count_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.PNG", "a.jpg", "notes.txt", ".hidden.png", "c.jpeg"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.png")).unwrap();
        let ImageSource::Files { files, skipped } = ImageSource::detect(dir.path()).unwrap() else {
            panic!("a folder is files");
        };
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!((names, skipped), (vec!["a.jpg", "b.PNG", "c.jpeg"], 1));
        let empty = tempfile::tempdir().unwrap();
        let e = ImageSource::detect(empty.path()).unwrap_err().to_string();
        assert!(
            e.contains("no .png, .jpg or .jpeg files in this folder"),
            "{e}"
        );
    }

    #[test]
    fn files_are_told_apart_by_their_first_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        let idx = write("images", &[0, 0, 8, 3, 0, 0, 0, 0]);
        assert_eq!(ImageSource::detect(&idx).unwrap(), ImageSource::Idx(idx));
        let gz = write("images.gz", &[0x1f, 0x8b, 8]);
        assert_eq!(ImageSource::detect(&gz).unwrap(), ImageSource::Idx(gz));
        let one = write("one.bin", &png(1, 1, |_, _| 0));
        let want = ImageSource::Files {
            files: vec![one.clone()],
            skipped: 0,
        };
        assert_eq!(ImageSource::detect(&one).unwrap(), want);
        let list = write("list.txt", b"one.bin\n");
        let ImageSource::Files { files, .. } = ImageSource::detect(&list).unwrap() else {
            panic!("a list is files");
        };
        assert_eq!(files, vec![dir.path().join("one.bin")]);
    }
}
