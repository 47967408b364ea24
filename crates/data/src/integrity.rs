//! Checks LevelDB's data files whole before rusty-leveldb reads them: a table (`.ldb`/`.sst`):
//! footer, index and meta-index blocks and the CRC32C of every block they point to; a log
//! (`.log`, records not yet in a table): the CRC32C of every record.
//!
//! rusty-leveldb verifies checksums as it reads, but its table iterator skips a block that
//! fails and its log replay stops at the first bad record, both without an error (a zeroed
//! table region read as 34 of 300 records). Its readers are private and no maintained crate
//! exposes LevelDB's file formats, so the few parts needed here are read by hand (formats:
//! leveldb/doc/table_format.md and log_format.md).

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use prost::encoding::decode_varint;

/// Footer: meta-index and index block handles (padded to 40 bytes), then the magic number.
const FOOTER_LEN: usize = 48;
const MAGIC: u64 = 0xdb47_7524_8b80_fb57;
/// Each block is followed by its compression type (1 byte) and masked CRC32C (4 bytes).
const TRAILER_LEN: usize = 5;
const NO_COMPRESSION: u8 = 0;
const SNAPPY: u8 = 1;

/// Where a block lies in the file (its contents, without the trailer).
#[derive(Debug, Clone, Copy)]
struct BlockHandle {
    offset: u64,
    size: u64,
}

impl BlockHandle {
    /// Reads a handle (two varints) from the front of `bytes`, advancing it.
    fn decode(bytes: &mut &[u8]) -> Option<BlockHandle> {
        let offset = decode_varint(bytes).ok()?;
        let size = decode_varint(bytes).ok()?;
        Some(BlockHandle { offset, size })
    }
}

/// Checks the table file at `path`. The outer `Err` is a failure to read it; the inner one
/// says what is damaged and where, for a message of the form `<db>: LevelDB: <file>: <this>`.
/// Data blocks are read in file order through one buffer, so a large table costs a CRC pass,
/// not an allocation of its size.
pub(crate) fn check_table_file(path: &Path) -> io::Result<Result<(), String>> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    if len < FOOTER_LEN as u64 {
        return Ok(Err(format!(
            "{len} bytes, expected at least {FOOTER_LEN} (a table footer; truncated table file)"
        )));
    }
    let mut footer = [0; FOOTER_LEN];
    file.seek(SeekFrom::Start(len - FOOTER_LEN as u64))?;
    file.read_exact(&mut footer)?;
    let magic = u64::from_le_bytes(footer[40..].try_into().expect("8 bytes"));
    if magic != MAGIC {
        return Ok(Err(format!(
            "footer magic {magic:#018x}, expected {MAGIC:#018x} (truncated or damaged table file)"
        )));
    }
    let mut handles = &footer[..40];
    let meta_index = BlockHandle::decode(&mut handles);
    let (Some(meta_index), Some(index)) = (meta_index, BlockHandle::decode(&mut handles)) else {
        return Ok(Err(
            "undecodable block handles in the footer, expected two (damaged table file)".into(),
        ));
    };
    let blocks_end = len - FOOTER_LEN as u64;
    // The index points at the data blocks; the meta-index at the filter block, if any.
    let mut blocks = Vec::new();
    for (what, handle, inner) in [
        ("index", index, "data"),
        ("meta-index", meta_index, "filter"),
    ] {
        let mut raw = Vec::new();
        if let Err(e) = in_bounds(handle, blocks_end, what) {
            return Ok(Err(e));
        }
        file.seek(SeekFrom::Start(handle.offset))?;
        read_block_bytes(&mut file, handle, &mut raw)?;
        let block = match decompressed(&raw, handle, what) {
            Ok(block) => block,
            Err(e) => return Ok(Err(e)),
        };
        let values = match block_values(&block) {
            Ok(values) => values,
            Err(e) => return Ok(Err(format!("{what} {e}"))),
        };
        for mut value in values {
            let Some(inner_handle) = BlockHandle::decode(&mut value) else {
                return Ok(Err(format!(
                    "{what} block at byte {}: undecodable block handle, expected offset and size",
                    handle.offset
                )));
            };
            if let Err(e) = in_bounds(inner_handle, blocks_end, inner) {
                return Ok(Err(e));
            }
            blocks.push((inner_handle, inner));
        }
    }
    blocks.sort_by_key(|(h, _)| h.offset);
    let mut reader = BufReader::with_capacity(1 << 20, file);
    reader.seek(SeekFrom::Start(0))?;
    let (mut at, mut raw) = (0, Vec::new());
    for (handle, what) in blocks {
        if handle.offset != at {
            reader.seek(SeekFrom::Start(handle.offset))?;
        }
        read_block_bytes(&mut reader, handle, &mut raw)?;
        at = handle.offset + handle.size + TRAILER_LEN as u64;
        if let Err(e) = checksum(&raw, handle, what) {
            return Ok(Err(e));
        }
    }
    Ok(Ok(()))
}

/// Checks that a block and its trailer lie before `end` (where the footer starts).
fn in_bounds(handle: BlockHandle, end: u64, what: &str) -> Result<(), String> {
    let block_end = handle
        .offset
        .checked_add(handle.size)
        .and_then(|e| e.checked_add(TRAILER_LEN as u64));
    match block_end {
        Some(e) if e <= end => Ok(()),
        _ => Err(format!(
            "{what} block at byte {} ({} bytes) runs past the blocks' end at byte {end} \
             (truncated or damaged table file)",
            handle.offset, handle.size
        )),
    }
}

/// Reads a block and its trailer (already checked to be in the file) into `raw`.
fn read_block_bytes(
    from: &mut impl Read,
    handle: BlockHandle,
    raw: &mut Vec<u8>,
) -> io::Result<()> {
    raw.resize(handle.size as usize + TRAILER_LEN, 0);
    from.read_exact(raw)
}

/// Checks the CRC32C in the trailer of `raw` (a block and its trailer); returns the contents
/// and their compression type.
fn checksum<'a>(raw: &'a [u8], handle: BlockHandle, what: &str) -> Result<(&'a [u8], u8), String> {
    let (contents, trailer) = raw.split_at(raw.len() - TRAILER_LEN);
    let kind = trailer[0];
    let stored = u32::from_le_bytes(trailer[1..].try_into().expect("4 bytes"));
    let crc = mask(crc32c::crc32c_append(crc32c::crc32c(contents), &[kind]));
    if crc != stored {
        return Err(format!(
            "{what} block at byte {} ({} bytes): CRC32C {crc:#010x}, expected {stored:#010x} \
             (damaged table file)",
            handle.offset, handle.size
        ));
    }
    Ok((contents, kind))
}

/// The contents of a block read with its trailer (`raw`), checked and decompressed.
fn decompressed(raw: &[u8], handle: BlockHandle, what: &str) -> Result<Vec<u8>, String> {
    let (contents, kind) = checksum(raw, handle, what)?;
    match kind {
        NO_COMPRESSION => Ok(contents.to_vec()),
        SNAPPY => snap::raw::Decoder::new()
            .decompress_vec(contents)
            .map_err(|e| {
                format!(
                    "{what} block at byte {}: bad snappy data ({e})",
                    handle.offset
                )
            }),
        other => Err(format!(
            "{what} block at byte {}: compression type {other}, expected 0 (none) or 1 (snappy)",
            handle.offset
        )),
    }
}

/// The values of a block's entries (prefix-compressed keys are skipped, not rebuilt).
fn block_values(block: &[u8]) -> Result<Vec<&[u8]>, String> {
    let bad = |why: &str| format!("block: {why}, expected LevelDB block entries");
    let len = block.len();
    if len < 4 {
        return Err(bad(&format!("{len} bytes")));
    }
    let restarts = u32::from_le_bytes(block[len - 4..].try_into().expect("4 bytes")) as usize;
    let entries_end = restarts
        .checked_mul(4)
        .and_then(|r| (len - 4).checked_sub(r))
        .ok_or_else(|| bad(&format!("{restarts} restart points in {len} bytes")))?;
    let mut rest = &block[..entries_end];
    let mut values = Vec::new();
    while !rest.is_empty() {
        let mut header = || decode_varint(&mut rest).map_err(|_| bad("undecodable entry header"));
        let (_shared, key_len, value_len) = (header()?, header()?, header()?);
        let skip = usize::try_from(key_len).map_err(|_| bad("key too long"))?;
        let take = usize::try_from(value_len).map_err(|_| bad("value too long"))?;
        let Some(entry) = skip.checked_add(take).filter(|&n| n <= rest.len()) else {
            return Err(bad("an entry runs past the block's end"));
        };
        values.push(&rest[skip..entry]);
        rest = &rest[entry..];
    }
    Ok(values)
}

/// LevelDB stores CRCs rotated and offset ("masked"), so a CRC of data holding CRCs stays strong.
fn mask(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Log files are cut into blocks of 32 KiB; a record never crosses one.
const LOG_BLOCK: usize = 32 * 1024;
/// A log record's header: masked CRC32C (4 bytes), length (2), type (1: full, 2-4: fragments).
const LOG_HEADER: usize = 7;

/// Checks the log file at `path` like [`check_table_file`], one 32 KiB block at a time (a
/// Caffe-written log can hold a 256 MB write buffer). A record cut at the very end (a crash
/// mid-write) and a zero-filled tail (C++ LevelDB's preallocation) are normal: LevelDB drops
/// them; a bad record, or zeros with data after them, is damage.
pub(crate) fn check_log_file(path: &Path) -> io::Result<Result<(), String>> {
    let mut file = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut block = vec![0; LOG_BLOCK];
    let mut start = 0;
    // Where a zero header was seen: every byte from there on must be zero.
    let mut zeros_from: Option<u64> = None;
    loop {
        let n = read_up_to(&mut file, &mut block)?;
        if n == 0 {
            return Ok(Ok(()));
        }
        let bytes = &block[..n];
        if let Some(from) = zeros_from {
            if bytes.iter().any(|&b| b != 0) {
                return Ok(Err(zeros_then_data(from)));
            }
        } else {
            match check_log_block(bytes, start) {
                Ok(LogBlock::Records) => {}
                Ok(LogBlock::ZerosFrom(at)) => {
                    if bytes[at..].iter().any(|&b| b != 0) {
                        return Ok(Err(zeros_then_data(start + at as u64)));
                    }
                    zeros_from = Some(start + at as u64);
                }
                Err(e) => return Ok(Err(e)),
            }
        }
        start += n as u64;
    }
}

/// Reads until `buf` is full or the end of the input; returns the bytes read.
fn read_up_to(from: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match from.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn zeros_then_data(at: u64) -> String {
    format!(
        "zeroed bytes at byte {at} with records after them, expected log records (damaged log file)"
    )
}

/// What a log block holds after its checked records.
enum LogBlock {
    /// Records up to its end (or a record cut by the end of the file).
    Records,
    /// A zero header at this offset: padding, if the rest of the file is zeros.
    ZerosFrom(usize),
}

/// Checks the records of one log block (`bytes`, shorter than 32 KiB only at the end of the
/// file); `start` is its offset in the file, for messages.
fn check_log_block(bytes: &[u8], start: u64) -> Result<LogBlock, String> {
    let mut at = 0;
    while LOG_BLOCK - at >= LOG_HEADER {
        // A header or record running past `bytes` is cut by the end of the file: a crash
        // mid-write, which LevelDB drops.
        let Some(header) = bytes.get(at..at + LOG_HEADER) else {
            return Ok(LogBlock::Records);
        };
        let stored = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
        let len = usize::from(u16::from_le_bytes([header[4], header[5]]));
        let kind = header[6];
        if kind == 0 && len == 0 {
            return Ok(LogBlock::ZerosFrom(at));
        }
        let byte = start + at as u64;
        if !(1..=4).contains(&kind) || LOG_HEADER + len > LOG_BLOCK - at {
            return Err(format!(
                "record at byte {byte}: type {kind}, length {len}, expected type 1-4 and a \
                 record within its 32 KiB block (damaged log file)"
            ));
        }
        let Some(data) = bytes.get(at + LOG_HEADER..at + LOG_HEADER + len) else {
            return Ok(LogBlock::Records);
        };
        let crc = mask(crc32c::crc32c_append(crc32c::crc32c(&[kind]), data));
        if crc != stored {
            return Err(format!(
                "record at byte {byte} ({len} bytes): CRC32C {crc:#010x}, expected \
                 {stored:#010x} (damaged log file)"
            ));
        }
        at += LOG_HEADER + len;
    }
    // The writer pads a block's last few bytes with zeros.
    Ok(LogBlock::Records)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log of several 32 KiB blocks, as rusty-leveldb writes it (records never flushed to a
    /// table); returns its bytes.
    fn multi_block_log(dir: &Path) -> Vec<u8> {
        let opts = rusty_leveldb::Options {
            create_if_missing: true,
            ..Default::default()
        };
        let mut db = rusty_leveldb::DB::open(dir, opts).unwrap();
        for i in 0..3000u32 {
            db.put(format!("{i:08}").as_bytes(), &[i as u8; 40])
                .unwrap();
        }
        db.close().unwrap();
        let log = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "log"))
            .unwrap();
        std::fs::read(log).unwrap()
    }

    fn check(bytes: &[u8], dir: &Path) -> Result<(), String> {
        let path = dir.join("damaged.log");
        std::fs::write(&path, bytes).unwrap();
        check_log_file(&path).unwrap()
    }

    #[test]
    fn log_damage_is_found_in_any_block_and_clean_ends_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let log = multi_block_log(&dir.path().join("db"));
        assert!(log.len() > 3 * LOG_BLOCK, "{} bytes", log.len());
        assert_eq!(check(&log, dir.path()), Ok(()));
        for at in [100, LOG_BLOCK + 5, 2 * LOG_BLOCK + 1000, log.len() - 30] {
            let mut zeroed = log.clone();
            zeroed[at..at + 20].fill(0);
            let err = check(&zeroed, dir.path()).unwrap_err();
            assert!(err.ends_with("(damaged log file)"), "{at}: {err}");
            // A cut anywhere is a crash mid-write, not damage.
            assert_eq!(check(&log[..at], dir.path()), Ok(()), "cut at {at}");
        }
        // A zero-filled tail (preallocation) is fine; data after zeros is not.
        let mut tail = log.clone();
        tail.resize(log.len() + 40_000, 0);
        assert_eq!(check(&tail, dir.path()), Ok(()));
        *tail.last_mut().unwrap() = 1;
        let err = check(&tail, dir.path()).unwrap_err();
        assert!(
            err.starts_with(&format!("zeroed bytes at byte {} with records", log.len())),
            "{err}"
        );
    }
}
