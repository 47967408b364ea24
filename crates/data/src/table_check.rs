//! Checks a LevelDB table file (`.ldb`/`.sst`) whole: footer, index and meta-index blocks, and
//! the CRC32C of every block they point to, so a damaged table is an error, not fewer records.
//!
//! rusty-leveldb verifies a block's checksum when it reads it, but its table iterator skips a
//! block that fails and goes on silently (a zeroed region read as 34 of 300 records, no error).
//! Its table reader is private and no maintained crate exposes LevelDB's table format, so the
//! few parts of it needed here are read by hand (format: leveldb/doc/table_format.md).

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

/// Checks the table `bytes` (a whole file). `Err` says what is damaged and where, for a
/// message of the form `<db>: LevelDB: <file>: <this>`.
pub(crate) fn check_table(bytes: &[u8]) -> Result<(), String> {
    let len = bytes.len();
    if len < FOOTER_LEN {
        return Err(format!(
            "{len} bytes, expected at least {FOOTER_LEN} (a table footer; truncated table file)"
        ));
    }
    let footer = &bytes[len - FOOTER_LEN..];
    let magic = u64::from_le_bytes(footer[40..].try_into().expect("8 bytes"));
    if magic != MAGIC {
        return Err(format!(
            "footer magic {magic:#018x}, expected {MAGIC:#018x} (truncated or damaged table file)"
        ));
    }
    let mut handles = &footer[..40];
    let meta_index = BlockHandle::decode(&mut handles);
    let (Some(meta_index), Some(index)) = (meta_index, BlockHandle::decode(&mut handles)) else {
        return Err("undecodable block handles in the footer, expected two (damaged table file)".into());
    };
    let blocks_end = (len - FOOTER_LEN) as u64;
    // The index points at the data blocks; the meta-index at the filter block, if any.
    for (what, handle, inner) in [("index", index, "data"), ("meta-index", meta_index, "filter")] {
        let block = read_block(bytes, handle, blocks_end, what)?;
        for mut value in block_values(&block).map_err(|e| format!("{what} {e}"))? {
            let inner_handle = BlockHandle::decode(&mut value).ok_or_else(|| {
                format!(
                    "{what} block at byte {}: undecodable block handle, expected offset and size",
                    handle.offset
                )
            })?;
            check_block(bytes, inner_handle, blocks_end, inner)?;
        }
    }
    Ok(())
}

/// The bytes of a block and its trailer, after checking they lie before `end` and that the
/// checksum matches.
fn check_block<'a>(
    bytes: &'a [u8],
    handle: BlockHandle,
    end: u64,
    what: &str,
) -> Result<(&'a [u8], u8), String> {
    let at = handle.offset;
    let block_end = handle
        .offset
        .checked_add(handle.size)
        .and_then(|e| e.checked_add(TRAILER_LEN as u64))
        .filter(|&e| e <= end)
        .ok_or_else(|| {
            format!(
                "{what} block at byte {at} ({} bytes) runs past the blocks' end at byte {end} \
                 (truncated or damaged table file)",
                handle.size
            )
        })?;
    let (start, stop) = (at as usize, (block_end as usize) - TRAILER_LEN);
    let contents = &bytes[start..stop];
    let kind = bytes[stop];
    let stored = u32::from_le_bytes(bytes[stop + 1..stop + 5].try_into().expect("4 bytes"));
    let crc = crc32c::crc32c_append(crc32c::crc32c(contents), &[kind]);
    if mask(crc) != stored {
        return Err(format!(
            "{what} block at byte {at} ({} bytes): CRC32C {:#010x}, expected {:#010x} \
             (damaged table file)",
            handle.size,
            mask(crc),
            stored
        ));
    }
    Ok((contents, kind))
}

/// A checked block, decompressed.
fn read_block(bytes: &[u8], handle: BlockHandle, end: u64, what: &str) -> Result<Vec<u8>, String> {
    let (contents, kind) = check_block(bytes, handle, end, what)?;
    match kind {
        NO_COMPRESSION => Ok(contents.to_vec()),
        SNAPPY => snap::raw::Decoder::new()
            .decompress_vec(contents)
            .map_err(|e| format!("{what} block at byte {}: bad snappy data ({e})", handle.offset)),
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
