//! Hash maps keyed by trace connection ids.
//!
//! The recorder hands out connection ids in order, and sockets mostly close in the
//! order they opened, so the sockets alive at any moment have ids close together. A
//! general-purpose hash scatters them over the whole table, and with hundreds of
//! thousands of entries nearly every insert and remove misses the cache. This hash
//! keeps the id's low bits as the bucket position (neighbouring ids share cache lines)
//! and mixes only the top seven bits, which hashbrown uses as the tag it compares first.

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
};

use crate::model::ConnKey;

/// See the module documentation.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnIdHasher(u64);

impl Hasher for ConnIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used for u64 keys; a plain FNV-1a keeps other keys correct.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, id: u64) {
        const TAG_BITS: u64 = 0x7f << 57;
        let mixed = id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = (id & !TAG_BITS) | (mixed & TAG_BITS);
    }
}

/// A map from connection (id and host).
pub type ConnIdMap<V> = HashMap<ConnKey, V, BuildHasherDefault<ConnIdHasher>>;

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher as _;

    use super::*;

    #[test]
    fn neighbouring_ids_get_neighbouring_positions_and_mixed_tags() {
        let build = BuildHasherDefault::<ConnIdHasher>::default();
        let (a, b) = (build.hash_one(1000u64), build.hash_one(1001u64));
        assert_eq!(b & 0xffff, (a & 0xffff) + 1);
        assert_ne!(a >> 57, b >> 57);
        let mut map: ConnIdMap<u32> = ConnIdMap::default();
        for id in 0..10_000u64 {
            map.insert(ConnKey::first_host(id), u32::try_from(id).unwrap());
        }
        assert!(
            (0..10_000u64).all(|id| {
                map.get(&ConnKey::first_host(id)) == Some(&u32::try_from(id).unwrap())
            })
        );
    }
}
