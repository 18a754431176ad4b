//! Bounded reads and bounded caches: the node's files may be huge or hostile, and a
//! long recording may meet millions of processes.

use std::{
    collections::{HashMap, VecDeque},
    fs::File,
    hash::Hash,
    io::{self, Read as _},
    path::Path,
};

/// Reads a whole file of at most `limit` bytes. A larger file is an error, not a
/// truncated read (a cut JSON document would parse as something else, or not at all).
pub fn read_file(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let file = File::open(path)?;
    let mut out = Vec::new();
    // One byte more than the limit tells a file of exactly `limit` bytes from a larger
    // one; `take` keeps the allocation bounded whatever the file claims to be.
    file.take(limit.saturating_add(1)).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: larger than {limit} bytes", path.display()),
        ));
    }
    Ok(out)
}

/// [`read_file`] as UTF-8 text (invalid bytes replaced).
pub fn read_text(path: &Path, limit: u64) -> io::Result<String> {
    read_file(path, limit).map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

/// A map that forgets its oldest entries beyond `capacity`. Lookups are plain hash
/// lookups; an insert may evict one entry.
#[derive(Debug)]
pub struct Cache<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
    capacity: usize,
}

impl<K: Clone + Eq + Hash, V> Cache<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    pub fn insert(&mut self, key: K, value: V) {
        if self.map.insert(key.clone(), value).is_some() {
            return;
        }
        self.order.push_back(key);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn a_file_over_the_limit_is_an_error_not_a_truncated_read() {
        let dir = std::env::temp_dir().join(format!("tcw-bounded-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        File::create(&path)
            .unwrap()
            .write_all(&[b'x'; 100])
            .unwrap();
        assert_eq!(read_file(&path, 100).unwrap().len(), 100);
        let err = read_file(&path, 99).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_cache_forgets_its_oldest_entries() {
        let mut cache = Cache::new(2);
        cache.insert(1, "a");
        cache.insert(2, "b");
        cache.insert(2, "b2");
        cache.insert(3, "c");
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&1), None);
        assert_eq!(cache.get(&2), Some(&"b2"));
        assert_eq!(cache.get(&3), Some(&"c"));
    }
}
