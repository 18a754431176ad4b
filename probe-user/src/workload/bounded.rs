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
    /// Each value with the generation of its insert: the order queue may still hold
    /// an older generation of a key that was removed and inserted again.
    map: HashMap<K, (V, u64)>,
    order: VecDeque<(K, u64)>,
    capacity: usize,
    next: u64,
}

impl<K: Clone + Eq + Hash, V> Cache<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            next: 0,
        }
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key).map(|(v, _)| v)
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.map.get_mut(key).map(|(v, _)| v)
    }

    pub fn insert(&mut self, key: K, value: V) {
        if let Some((old, _)) = self.map.get_mut(&key) {
            *old = value;
            return;
        }
        self.next += 1;
        self.map.insert(key.clone(), (value, self.next));
        self.order.push_back((key, self.next));
        while self.map.len() > self.capacity {
            let Some((old, generation)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&old).is_some_and(|(_, g)| *g == generation) {
                self.map.remove(&old);
            }
        }
        // Removed keys leave their place in the queue: drop those now and then.
        if self.order.len() > 2 * self.capacity {
            let map = &self.map;
            self.order
                .retain(|(k, g)| map.get(k).is_some_and(|(_, current)| current == g));
        }
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.map.remove(key).map(|(v, _)| v)
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter().map(|(k, (v, _))| (k, v))
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

    #[test]
    fn a_key_removed_and_inserted_again_is_the_newest() {
        let mut cache = Cache::new(2);
        cache.insert(1, "a");
        cache.insert(2, "b");
        assert_eq!(cache.remove(&1), Some("a"));
        cache.insert(1, "a2");
        cache.insert(3, "c");
        assert_eq!(cache.get(&2), None, "the oldest went");
        assert_eq!(cache.get(&1), Some(&"a2"));
        for i in 0..100 {
            cache.insert(10, "x");
            cache.remove(&10);
            cache.insert(i + 20, "y");
        }
        assert!(cache.order.len() <= 4 + 1, "{}", cache.order.len());
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.iter().count(), 2);
    }
}
