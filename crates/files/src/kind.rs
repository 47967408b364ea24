//! What a path that exists turns out to be, for the one message every reader gives when a
//! folder stands where a file is expected (or a FIFO, which would block a read forever).

use std::path::Path;

/// What `metadata` says the path is, in words ("a folder", "a FIFO"...).
fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "is a folder";
    }
    if t.is_file() {
        return "is a regular file";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "is a FIFO (named pipe)";
        }
        if t.is_socket() {
            return "is a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "is a device";
        }
    }
    "is not a regular file"
}

/// `Some("is a folder")` (or FIFO, socket, device) when `path` exists (links followed) and is
/// not a regular file; None when it is one or does not exist (the read then says so).
pub fn not_a_file(path: &Path) -> Option<&'static str> {
    let meta = std::fs::metadata(path).ok()?;
    (!meta.is_file()).then(|| kind_of(&meta))
}

/// `Some("is a regular file")` (or FIFO...) when `path` exists and is not a folder.
pub fn not_a_folder(path: &Path) -> Option<&'static str> {
    let meta = std::fs::metadata(path).ok()?;
    (!meta.is_dir()).then(|| kind_of(&meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_what_stands_where_a_file_or_folder_is_expected() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        assert_eq!(not_a_file(dir.path()), Some("is a folder"));
        assert_eq!(not_a_file(&file), None);
        assert_eq!(not_a_file(&dir.path().join("missing")), None);
        assert_eq!(not_a_folder(&file), Some("is a regular file"));
        assert_eq!(not_a_folder(dir.path()), None);
        #[cfg(unix)]
        assert_eq!(not_a_file(Path::new("/dev/null")), Some("is a device"));
    }
}
