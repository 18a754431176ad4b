//! A read-only reader of bbolt database files, enough to list buckets and read
//! values. podman (up to 4.x, and 5.x hosts that kept the old database) keeps its
//! container and pod names in one.
//!
//! The layout, from etcd-io/bbolt v1.3.11 `page.go`, `db.go` and `bucket.go`:
//! - page `N` starts at `N * page_size`; a page header is `id u64, flags u16,
//!   count u16, overflow u32` (16 bytes); a page spans `1 + overflow` pages;
//! - pages 0 and 1 hold a meta (after the header): `magic u32 (0xED0CDAED),
//!   version u32 (2), page_size u32, flags u32, root bucket {root u64, sequence u64},
//!   freelist u64, pgid u64, txid u64, checksum u64` (FNV-1a 64 of the bytes before
//!   it); the valid meta with the larger txid is current;
//! - branch elements: `pos u32, ksize u32, pgid u64`; leaf elements: `flags u32,
//!   pos u32, ksize u32, vsize u32`, each 16 bytes, `pos` counted from the element
//!   itself, the value right after the key; leaf flag 1 marks a nested bucket, whose
//!   value is `{root u64, sequence u64}` followed, when root is 0, by an inline page.
//!
//! Every offset is checked against the file; depth and entry counts are bounded, so
//! a corrupt or hostile file gives an error, never a panic or a huge allocation.

const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
const PAGE_HEADER: usize = 16;
const ELEMENT: usize = 16;
const BUCKET_HEADER: usize = 16;
const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const BUCKET_LEAF: u32 = 0x01;
const MAX_DEPTH: usize = 32;
const MAX_ENTRIES: usize = 1 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BoltError {
    #[error("not a bbolt database (no valid meta page)")]
    NoMeta,
    #[error("corrupt bbolt database: {0}")]
    Corrupt(&'static str),
}

type Result<T> = std::result::Result<T, BoltError>;

fn u16_at(buf: &[u8], at: usize) -> Result<u16> {
    buf.get(at..at + 2)
        .and_then(|b| b.try_into().ok())
        .map(u16::from_le_bytes)
        .ok_or(BoltError::Corrupt("read past a page"))
}

fn u32_at(buf: &[u8], at: usize) -> Result<u32> {
    buf.get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or(BoltError::Corrupt("read past a page"))
}

fn u64_at(buf: &[u8], at: usize) -> Result<u64> {
    buf.get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or(BoltError::Corrupt("read past a page"))
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// An open database: the file's bytes and its current meta.
#[derive(Debug)]
pub struct Db<'a> {
    data: &'a [u8],
    page_size: usize,
    root: u64,
}

/// One key of a bucket.
#[derive(Debug)]
pub enum Value<'a> {
    Bytes(&'a [u8]),
    Bucket(Bucket<'a>),
}

/// A bucket: its root page, in the file or inline in its parent's value.
#[derive(Clone, Copy, Debug)]
pub struct Bucket<'a> {
    root: &'a [u8],
}

impl<'a> Db<'a> {
    pub fn open(data: &'a [u8]) -> Result<Self> {
        let meta0 = Self::meta(data, 0);
        let page_size = meta0.map_or(4096, |m| m.0);
        let meta1 = Self::meta(data, page_size);
        let (page_size, root, _) = match (meta0, meta1) {
            (Some(a), Some(b)) => {
                if b.2 > a.2 {
                    b
                } else {
                    a
                }
            }
            (Some(m), None) | (None, Some(m)) => m,
            (None, None) => return Err(BoltError::NoMeta),
        };
        Ok(Self {
            data,
            page_size,
            root,
        })
    }

    /// `(page_size, root page, txid)` of the meta in the page at `offset`, if valid.
    fn meta(data: &[u8], offset: usize) -> Option<(usize, u64, u64)> {
        let meta = data.get(offset.checked_add(PAGE_HEADER)?..)?;
        let body = meta.get(..56)?;
        let checksum = u64_at(meta, 56).ok()?;
        let page_size = usize::try_from(u32_at(meta, 8).ok()?).ok()?;
        let valid = u32_at(meta, 0).ok()? == MAGIC
            && u32_at(meta, 4).ok()? == VERSION
            && fnv1a64(body) == checksum
            && (512..=1 << 20).contains(&page_size);
        valid.then(|| Some((page_size, u64_at(meta, 16).ok()?, u64_at(meta, 48).ok()?)))?
    }

    /// The top-level bucket.
    pub fn root(&self) -> Result<Bucket<'a>> {
        Ok(Bucket {
            root: self.page(self.root)?,
        })
    }

    fn page(&self, id: u64) -> Result<&'a [u8]> {
        let start = usize::try_from(id)
            .ok()
            .and_then(|id| id.checked_mul(self.page_size))
            .filter(|&s| s >= 2 * self.page_size)
            .ok_or(BoltError::Corrupt("page id out of range"))?;
        let header = self
            .data
            .get(start..)
            .ok_or(BoltError::Corrupt("page past the end of the file"))?;
        let overflow = usize::try_from(u32_at(header, 12)?)
            .map_err(|_| BoltError::Corrupt("page overflow"))?;
        let len = overflow
            .checked_add(1)
            .and_then(|n| n.checked_mul(self.page_size))
            .ok_or(BoltError::Corrupt("page overflow"))?;
        Ok(&header[..len.min(header.len())])
    }

    /// Every key of `bucket`, in order.
    pub fn entries(&self, bucket: Bucket<'a>) -> Result<Vec<(&'a [u8], Value<'a>)>> {
        let mut out = Vec::new();
        // A valid tree visits each page once: more visits mean a cycle.
        let mut budget = self.data.len() / self.page_size + 1;
        self.walk(bucket.root, 0, &mut budget, &mut out)?;
        Ok(out)
    }

    /// The value of `key` in `bucket`.
    pub fn get(&self, bucket: Bucket<'a>, key: &[u8]) -> Result<Option<Value<'a>>> {
        Ok(self
            .entries(bucket)?
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v))
    }

    /// The nested bucket `key` of `bucket`.
    pub fn bucket(&self, bucket: Bucket<'a>, key: &[u8]) -> Result<Option<Bucket<'a>>> {
        Ok(match self.get(bucket, key)? {
            Some(Value::Bucket(b)) => Some(b),
            _ => None,
        })
    }

    fn walk(
        &self,
        page: &'a [u8],
        depth: usize,
        budget: &mut usize,
        out: &mut Vec<(&'a [u8], Value<'a>)>,
    ) -> Result<()> {
        if depth > MAX_DEPTH || *budget == 0 {
            return Err(BoltError::Corrupt("tree too deep, or a cycle"));
        }
        *budget -= 1;
        let flags = u16_at(page, 8)?;
        let count = usize::from(u16_at(page, 10)?);
        for i in 0..count {
            let elem = PAGE_HEADER + i * ELEMENT;
            if flags & BRANCH_PAGE != 0 {
                self.walk(self.page(u64_at(page, elem + 8)?)?, depth + 1, budget, out)?;
            } else if flags & LEAF_PAGE != 0 {
                if out.len() >= MAX_ENTRIES {
                    return Err(BoltError::Corrupt("too many entries"));
                }
                out.push(self.leaf(page, elem)?);
            } else {
                return Err(BoltError::Corrupt("neither a branch nor a leaf page"));
            }
        }
        Ok(())
    }

    fn leaf(&self, page: &'a [u8], elem: usize) -> Result<(&'a [u8], Value<'a>)> {
        let to_usize = |v: u32| usize::try_from(v).map_err(|_| BoltError::Corrupt("offset"));
        let flags = u32_at(page, elem)?;
        let key_at = elem
            .checked_add(to_usize(u32_at(page, elem + 4)?)?)
            .ok_or(BoltError::Corrupt("offset"))?;
        let value_at = key_at
            .checked_add(to_usize(u32_at(page, elem + 8)?)?)
            .ok_or(BoltError::Corrupt("offset"))?;
        let end = value_at
            .checked_add(to_usize(u32_at(page, elem + 12)?)?)
            .ok_or(BoltError::Corrupt("offset"))?;
        let key = page
            .get(key_at..value_at)
            .ok_or(BoltError::Corrupt("key past the page"))?;
        let value = page
            .get(value_at..end)
            .ok_or(BoltError::Corrupt("value past the page"))?;
        if flags & BUCKET_LEAF == 0 {
            return Ok((key, Value::Bytes(value)));
        }
        let root = match u64_at(value, 0)? {
            0 => value
                .get(BUCKET_HEADER..)
                .ok_or(BoltError::Corrupt("inline bucket"))?,
            id => self.page(id)?,
        };
        Ok((key, Value::Bucket(Bucket { root })))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a small database the way bbolt lays it out: two metas, a root leaf page
    /// holding an inline bucket and a bucket on its own page, which holds a branch
    /// page over two leaves.
    pub(crate) fn sample() -> Vec<u8> {
        const PS: usize = 4096;
        let mut data = vec![0u8; PS * 7];
        let header = |data: &mut [u8], id: usize, flags: u16, count: u16| {
            let p = &mut data[id * PS..];
            p[..8].copy_from_slice(&(id as u64).to_le_bytes());
            p[8..10].copy_from_slice(&flags.to_le_bytes());
            p[10..12].copy_from_slice(&count.to_le_bytes());
        };
        for (id, txid) in [(0usize, 1u64), (1, 2)] {
            header(&mut data, id, 0x04, 0);
            let m = &mut data[id * PS + 16..];
            m[0..4].copy_from_slice(&MAGIC.to_le_bytes());
            m[4..8].copy_from_slice(&VERSION.to_le_bytes());
            m[8..12].copy_from_slice(&(PS as u32).to_le_bytes());
            m[16..24].copy_from_slice(&3u64.to_le_bytes()); // root page
            m[48..56].copy_from_slice(&txid.to_le_bytes());
            let sum = fnv1a64(&m[..56]);
            m[56..64].copy_from_slice(&sum.to_le_bytes());
        }
        // A leaf page's elements, then keys and values packed after them.
        let leaf = |data: &mut [u8], id: usize, items: &[(&[u8], &[u8], u32)]| {
            header(data, id, LEAF_PAGE, items.len() as u16);
            let base = id * PS;
            let mut at = PAGE_HEADER + items.len() * ELEMENT;
            for (i, (k, v, flags)) in items.iter().enumerate() {
                let elem = PAGE_HEADER + i * ELEMENT;
                let e = &mut data[base + elem..];
                e[0..4].copy_from_slice(&flags.to_le_bytes());
                e[4..8].copy_from_slice(&((at - elem) as u32).to_le_bytes());
                e[8..12].copy_from_slice(&(k.len() as u32).to_le_bytes());
                e[12..16].copy_from_slice(&(v.len() as u32).to_le_bytes());
                data[base + at..base + at + k.len()].copy_from_slice(k);
                at += k.len();
                data[base + at..base + at + v.len()].copy_from_slice(v);
                at += v.len();
            }
        };
        // Inline bucket value: header with root 0, then a page with one leaf element.
        let mut inline = vec![0u8; BUCKET_HEADER + PAGE_HEADER + ELEMENT];
        inline[BUCKET_HEADER + 8..BUCKET_HEADER + 10].copy_from_slice(&LEAF_PAGE.to_le_bytes());
        inline[BUCKET_HEADER + 10..BUCKET_HEADER + 12].copy_from_slice(&1u16.to_le_bytes());
        let e = BUCKET_HEADER + PAGE_HEADER;
        inline[e + 4..e + 8].copy_from_slice(&16u32.to_le_bytes());
        inline[e + 8..e + 12].copy_from_slice(&6u32.to_le_bytes());
        inline[e + 12..e + 16].copy_from_slice(&2u32.to_le_bytes());
        inline.extend_from_slice(b"config{}");
        let mut on_page = vec![0u8; BUCKET_HEADER];
        on_page[..8].copy_from_slice(&4u64.to_le_bytes());
        leaf(
            &mut data,
            3,
            &[
                (b"big", &on_page, BUCKET_LEAF),
                (b"small", &inline, BUCKET_LEAF),
            ],
        );
        // Page 4: a branch over leaves 5 and 6.
        header(&mut data, 4, BRANCH_PAGE, 2);
        for (i, child) in [5u64, 6].into_iter().enumerate() {
            let e = 4 * PS + PAGE_HEADER + i * ELEMENT;
            data[e + 8..e + 16].copy_from_slice(&child.to_le_bytes());
        }
        leaf(&mut data, 5, &[(b"a", b"1", 0), (b"b", b"2", 0)]);
        leaf(&mut data, 6, &[(b"c", b"3", 0)]);
        data
    }

    fn bytes<'a>(v: Option<Value<'a>>) -> Option<&'a [u8]> {
        match v {
            Some(Value::Bytes(b)) => Some(b),
            _ => None,
        }
    }

    #[test]
    fn reads_inline_and_paged_buckets_through_branches() {
        let data = sample();
        let db = Db::open(&data).unwrap();
        let root = db.root().unwrap();
        let keys: Vec<&[u8]> = db
            .entries(root)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, [&b"big"[..], b"small"]);
        let small = db.bucket(root, b"small").unwrap().unwrap();
        assert_eq!(bytes(db.get(small, b"config").unwrap()), Some(&b"{}"[..]));
        let big = db.bucket(root, b"big").unwrap().unwrap();
        let all: Vec<(&[u8], Option<&[u8]>)> = db
            .entries(big)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, bytes(Some(v))))
            .collect();
        assert_eq!(
            all,
            [
                (&b"a"[..], Some(&b"1"[..])),
                (b"b", Some(b"2")),
                (b"c", Some(b"3"))
            ]
        );
    }

    #[test]
    fn corrupt_files_are_errors() {
        assert_eq!(Db::open(b"").unwrap_err(), BoltError::NoMeta);
        assert_eq!(Db::open(&[0u8; 8192]).unwrap_err(), BoltError::NoMeta);
        let good = sample();
        // Every single-byte change in the tree pages either still reads or errors.
        for at in (3 * 4096..good.len()).step_by(7) {
            let mut bad = good.clone();
            bad[at] ^= 0xff;
            let db = Db::open(&bad).unwrap();
            if let Ok(root) = db.root()
                && let Ok(entries) = db.entries(root)
            {
                for (_, v) in entries {
                    if let Value::Bucket(b) = v {
                        let _entries = db.entries(b);
                    }
                }
            }
        }
        // A branch pointing at itself is cut by the depth limit.
        let mut looped = good;
        let e = 4 * 4096 + PAGE_HEADER;
        looped[e + 8..e + 16].copy_from_slice(&4u64.to_le_bytes());
        let db = Db::open(&looped).unwrap();
        let big = db.bucket(db.root().unwrap(), b"big").unwrap().unwrap();
        assert!(db.entries(big).is_err());
    }
}
