//! LMDB's data file (`data.mdb`, 64-bit little-endian layout of LMDB 0.9.x) read in safe Rust:
//! the newer of the two meta pages, then the main database's B-tree in key order.
//!
//! C LMDB trusts its pages: with LMDB 0.9.36 a truncated `data.mdb` ended most reads in SIGBUS
//! (docs/reliability.md). No crate reads the format without the C library, so the few parts a
//! Caffe database uses are read here (layout: mdb.c's MDB_page, MDB_meta, MDB_db, MDB_node),
//! and every page is checked before anything on it is used.

/// A page starts with its number (8 bytes), padding (2), flags (2), lower/upper bounds (2+2)
/// or, for an overflow page, the count of pages in its run (4).
const PAGE_HEADER: usize = 16;
const P_BRANCH: u16 = 0x01;
const P_LEAF: u16 = 0x02;
const P_OVERFLOW: u16 = 0x04;
const P_META: u16 = 0x08;
/// The flag bits that say what a page is (the others are in-memory marks).
const PAGE_KIND: u16 = 0x6f;
const MAGIC: u32 = 0xBEEF_C0DE;
const DATA_VERSION: u32 = 1;
/// A node: data size low and high halves (2+2; a branch's child page with `flags`), flags (2),
/// key size (2), then the key and the data.
const NODE_HEADER: usize = 8;
/// The value lives in an overflow page run; the node holds its first page number.
const F_BIGDATA: u16 = 0x01;
/// LMDB's cursors hold at most this many levels, so no valid tree is deeper.
const MAX_DEPTH: u16 = 32;
/// "No page": the root of an empty tree.
const P_INVALID: u64 = u64::MAX;

/// Where the main database's tree is and what it should hold, from a meta page.
#[derive(Debug, Clone, Copy)]
struct Meta {
    page_size: usize,
    last_page: u64,
    txn_id: u64,
    flags: u16,
    depth: u16,
    branch_pages: u64,
    leaf_pages: u64,
    overflow_pages: u64,
    entries: u64,
    root: u64,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The meta page at `page` (0 or 1) of `file`, whose pages are `page_size` bytes.
fn read_meta(file: &[u8], page: usize, page_size: usize) -> Result<Meta, String> {
    const META_END: usize = PAGE_HEADER + 136;
    let start = page * page_size;
    let Some(b) = file.get(start..start + META_END) else {
        return Err(format!(
            "{} bytes, expected at least {} (meta page {page}; truncated file)",
            file.len(),
            start + META_END
        ));
    };
    let (magic, version) = (u32_at(b, 16), u32_at(b, 20));
    if magic != MAGIC || version != DATA_VERSION {
        return Err(format!(
            "meta page {page}: magic {magic:#010x} version {version}, expected {MAGIC:#010x} \
             version {DATA_VERSION} (not an LMDB 0.9 data file, or damaged)"
        ));
    }
    let kind = u16_at(b, 10) & PAGE_KIND;
    if u64_at(b, 0) != page as u64 || kind != P_META {
        return Err(format!(
            "meta page {page}: number {} flags {kind:#x}, expected {page} and {P_META:#x} \
             (damaged file)",
            u64_at(b, 0)
        ));
    }
    // mm_dbs[0] (free pages) starts at byte 40 and holds the page size; mm_dbs[1] (main) at 88.
    Ok(Meta {
        page_size: u32_at(b, 40) as usize,
        flags: u16_at(b, 92),
        depth: u16_at(b, 94),
        branch_pages: u64_at(b, 96),
        leaf_pages: u64_at(b, 104),
        overflow_pages: u64_at(b, 112),
        entries: u64_at(b, 120),
        root: u64_at(b, 128),
        last_page: u64_at(b, 136),
        txn_id: u64_at(b, 144),
    })
}

/// The meta page LMDB would use (the one of the latest transaction), checked against the
/// file's length. Returns it and the number of bytes the database uses.
fn current_meta(file: &[u8]) -> Result<(Meta, usize), String> {
    let first = read_meta(file, 0, 0)?;
    let page_size = first.page_size;
    if !page_size.is_power_of_two() || !(512..=65536).contains(&page_size) {
        return Err(format!(
            "meta page 0: page size {page_size}, expected a power of two from 512 to 65536 \
             (damaged file)"
        ));
    }
    let second = read_meta(file, 1, page_size)?;
    let meta = if second.txn_id > first.txn_id {
        second
    } else {
        first
    };
    if meta.page_size != page_size {
        return Err(format!(
            "meta page 1: page size {}, expected {page_size} like meta page 0 (damaged file)",
            meta.page_size
        ));
    }
    let used = meta
        .last_page
        .checked_add(1)
        .and_then(|pages| pages.checked_mul(page_size as u64))
        .filter(|&used| used <= file.len() as u64);
    let Some(used) = used else {
        return Err(format!(
            "{} bytes, expected {} pages of {page_size} bytes (the meta page's last page {}; \
             truncated file)",
            file.len(),
            meta.last_page.saturating_add(1),
            meta.last_page
        ));
    };
    if meta.flags != 0 {
        return Err(format!(
            "main database flags {:#x}, expected 0 (a plain key-value database, as Caffe \
             writes)",
            meta.flags
        ));
    }
    Ok((meta, used as usize))
}

/// Walks the tree, checking each page once; collects the records in key order.
/// A node of a page: flags, lo/hi (a leaf's data size, a branch's child page), key, the rest.
type Node<'a> = (u16, u32, &'a [u8], &'a [u8]);
/// A record as stored: key and value.
type Record<'a> = (&'a [u8], &'a [u8]);

struct Walker<'a> {
    file: &'a [u8],
    meta: Meta,
    visited: Vec<bool>,
    records: Vec<(&'a [u8], &'a [u8])>,
    counts: [u64; 3],
}

impl<'a> Walker<'a> {
    /// The place of damage for a message: the page, and the last key read before it.
    fn at(&self, page: u64) -> String {
        match self.records.last() {
            Some((key, _)) => format!("page {page} (after key {:?})", String::from_utf8_lossy(key)),
            None => format!("page {page} (before the first key)"),
        }
    }

    /// The bytes of `count` pages from `page`, which must be in the tree's part of the file
    /// and not yet visited.
    fn pages(&mut self, page: u64, count: u64, of: &str) -> Result<&'a [u8], String> {
        let last = page
            .checked_add(count - 1)
            .filter(|&l| l <= self.meta.last_page);
        if page < 2 || last.is_none() {
            return Err(format!(
                "{}: {of} is page {page} ({count} pages), expected pages 2 to {} (damaged file)",
                self.at(page),
                self.meta.last_page
            ));
        }
        for p in page..page + count {
            if std::mem::replace(&mut self.visited[p as usize], true) {
                return Err(format!(
                    "{}: reached twice, expected a tree (damaged file)",
                    self.at(p)
                ));
            }
        }
        let size = self.meta.page_size;
        let start = page as usize * size;
        let bytes = &self.file[start..start + count as usize * size];
        if u64_at(bytes, 0) != page {
            return Err(format!(
                "{}: numbered {}, expected {page} (damaged file)",
                self.at(page),
                u64_at(bytes, 0)
            ));
        }
        Ok(bytes)
    }

    /// The nodes of a branch or leaf page: (node flags, key, rest of the page from the data).
    fn nodes(&self, page: u64, bytes: &'a [u8]) -> Result<Vec<Node<'a>>, String> {
        let size = bytes.len();
        let (lower, upper) = (
            usize::from(u16_at(bytes, 12)),
            usize::from(u16_at(bytes, 14)),
        );
        if lower < PAGE_HEADER + 2 || lower % 2 != 0 || lower > upper || upper > size {
            return Err(format!(
                "{}: bounds {lower}..{upper}, expected node pointers after the header and \
                 before the nodes (damaged file)",
                self.at(page)
            ));
        }
        let mut nodes = Vec::with_capacity((lower - PAGE_HEADER) / 2);
        for i in 0..(lower - PAGE_HEADER) / 2 {
            let at = usize::from(u16_at(bytes, PAGE_HEADER + 2 * i));
            let key_len = bytes
                .get(at + 6..at + NODE_HEADER)
                .map(|k| usize::from(u16_at(k, 0)));
            let key_end = key_len.map(|k| at + NODE_HEADER + k).filter(|&e| e <= size);
            let Some(key_end) = key_end.filter(|_| at >= upper) else {
                return Err(format!(
                    "{}: node {i} at byte {at}, expected a node within {upper}..{size} \
                     (damaged file)",
                    self.at(page)
                ));
            };
            let lo_hi = u32::from(u16_at(bytes, at)) | u32::from(u16_at(bytes, at + 2)) << 16;
            let flags = u16_at(bytes, at + 4);
            nodes.push((
                flags,
                lo_hi,
                &bytes[at + NODE_HEADER..key_end],
                &bytes[key_end..],
            ));
        }
        Ok(nodes)
    }

    /// Reads the subtree at `page`, `levels` deep (1: a leaf).
    fn walk(&mut self, page: u64, levels: u16) -> Result<(), String> {
        let bytes = self.pages(page, 1, "a tree page")?;
        let kind = u16_at(bytes, 10) & PAGE_KIND;
        let expected = if levels > 1 { P_BRANCH } else { P_LEAF };
        if kind != expected {
            return Err(format!(
                "{}: flags {kind:#x}, expected {expected:#x} ({} at depth {} of {}; damaged \
                 file)",
                self.at(page),
                if levels > 1 { "a branch" } else { "a leaf" },
                self.meta.depth - levels + 1,
                self.meta.depth
            ));
        }
        let nodes = self.nodes(page, bytes)?;
        if levels > 1 {
            self.counts[0] += 1;
            for (flags, lo_hi, _, _) in nodes {
                // A branch node keeps its child's page number in the size and flag fields.
                self.walk(u64::from(lo_hi) | u64::from(flags) << 32, levels - 1)?;
            }
            return Ok(());
        }
        self.counts[1] += 1;
        for (i, (flags, size, key, data)) in nodes.into_iter().enumerate() {
            let value = self.value(page, i, flags, size as usize, data)?;
            if let Some((last, _)) = self.records.last()
                && *last >= key
            {
                return Err(format!(
                    "{}: key {:?}, expected keys in increasing order (damaged file)",
                    self.at(page),
                    String::from_utf8_lossy(key)
                ));
            }
            self.records.push((key, value));
        }
        Ok(())
    }

    /// The value of leaf node `i` of `page`: `size` bytes at the front of `data` (the page
    /// after the key), or in the overflow pages whose first number is there.
    fn value(
        &mut self,
        page: u64,
        i: usize,
        flags: u16,
        size: usize,
        data: &'a [u8],
    ) -> Result<&'a [u8], String> {
        let place = self.at(page);
        let bad = |what: String| format!("{place}: node {i}: {what} (damaged file)");
        match flags {
            0 => data.get(..size).ok_or_else(|| {
                bad(format!(
                    "{size} value bytes, expected at most {} left on the page",
                    data.len()
                ))
            }),
            F_BIGDATA => {
                let first = data
                    .get(..8)
                    .map(|b| u64_at(b, 0))
                    .ok_or_else(|| bad("no overflow page number".into()))?;
                // The run can be longer than the value needs: LMDB rewrites a smaller value in
                // the run of the one it replaces.
                let needed = (PAGE_HEADER + size).div_ceil(self.meta.page_size) as u64;
                let start = usize::try_from(first)
                    .ok()
                    .and_then(|f| f.checked_mul(self.meta.page_size));
                let header = start.and_then(|s| self.file.get(s..s + PAGE_HEADER));
                let count = header.map_or(needed, |h| u64::from(u32_at(h, 12)));
                if let Some(h) = header
                    && (u16_at(h, 10) & PAGE_KIND != P_OVERFLOW || count < needed)
                {
                    return Err(bad(format!(
                        "overflow page {first}: flags {:#x}, {count} pages, expected \
                         {P_OVERFLOW:#x} and at least {needed} pages for {size} bytes",
                        u16_at(h, 10)
                    )));
                }
                let run = self.pages(first, count, "an overflow value")?;
                self.counts[2] += count;
                Ok(&run[PAGE_HEADER..PAGE_HEADER + size])
            }
            _ => Err(bad(format!(
                "node flags {flags:#x}, expected 0 or {F_BIGDATA:#x} (no sub-databases or \
                 duplicate keys in a Caffe database)"
            ))),
        }
    }
}

/// Every record of the LMDB data file `file` as (key, value), in key order, or what is wrong
/// with it and where.
pub(crate) fn read_records(file: &[u8]) -> Result<Vec<Record<'_>>, String> {
    let (meta, used) = current_meta(file)?;
    let file = &file[..used];
    if meta.root == P_INVALID {
        if meta.entries != 0 || meta.depth != 0 {
            return Err(format!(
                "empty tree with {} entries at depth {}, expected 0 and 0 (damaged file)",
                meta.entries, meta.depth
            ));
        }
        return Ok(Vec::new());
    }
    if meta.depth == 0 || meta.depth > MAX_DEPTH {
        return Err(format!(
            "tree depth {}, expected 1 to {MAX_DEPTH} (damaged file)",
            meta.depth
        ));
    }
    let mut walker = Walker {
        file,
        meta,
        visited: vec![false; used / meta.page_size],
        records: Vec::with_capacity(usize::try_from(meta.entries.min(1 << 24)).unwrap_or(0)),
        counts: [0; 3],
    };
    walker.walk(meta.root, meta.depth)?;
    let found = [
        walker.counts[0],
        walker.counts[1],
        walker.counts[2],
        walker.records.len() as u64,
    ];
    let expected = [
        meta.branch_pages,
        meta.leaf_pages,
        meta.overflow_pages,
        meta.entries,
    ];
    if found != expected {
        return Err(format!(
            "the tree has {found:?} branch, leaf and overflow pages and entries, expected \
             {expected:?} as its meta page says (damaged file)"
        ));
    }
    Ok(walker.records)
}
