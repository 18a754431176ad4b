//! Compact hash keys for addresses. `SocketAddr` hashes and compares field by field
//! through an enum; replay looks tuples up for every new socket, so addresses become
//! plain integers first (an IPv4 address as its IPv4-mapped IPv6 form).

use std::net::{IpAddr, SocketAddr};

use crate::model::{HostId, SocketTuple};

pub fn ip_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Two socket addresses, in a fixed order chosen by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddrPairKey {
    ips: [u128; 2],
    ports: [u16; 2],
    netns: u32,
    host: HostId,
}

impl AddrPairKey {
    pub fn new(netns: u32, first: SocketAddr, second: SocketAddr) -> Self {
        Self {
            ips: [ip_bits(first.ip()), ip_bits(second.ip())],
            ports: [first.port(), second.port()],
            netns,
            host: HostId::FIRST,
        }
    }

    /// A socket in its namespace on its host, local address first.
    pub fn socket(host: HostId, netns: u32, tuple: &SocketTuple) -> Self {
        Self {
            host,
            ..Self::new(netns, tuple.local, tuple.remote)
        }
    }

    /// The same addresses, only on `host`.
    pub fn on_host(self, host: HostId) -> Self {
        Self { host, ..self }
    }

    /// A well-mixed 64-bit digest, for tables with a million keys where a 48-byte key
    /// would cost a cache miss per probe. Two different sockets share a digest with
    /// probability 2^-64 per pair: with a million live entries, about one replay in
    /// 10^7 would end one TIME_WAIT early.
    pub fn fingerprint(&self) -> u64 {
        fn mix(mut z: u64) -> u64 {
            // splitmix64's finalizer.
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        let words = [
            self.ips[0] as u64,
            (self.ips[0] >> 64) as u64,
            self.ips[1] as u64,
            (self.ips[1] >> 64) as u64,
            u64::from(self.ports[0]) | u64::from(self.ports[1]) << 16 | u64::from(self.netns) << 32,
            u64::from(self.host.0),
        ];
        words.iter().fold(0x9e37_79b9_7f4a_7c15, |h, &w| {
            mix(h ^ w).wrapping_add(0x9e37_79b9_7f4a_7c15)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_and_plain_ipv4_are_one_key() {
        let a = AddrPairKey::new(
            1,
            "10.0.0.1:80".parse().unwrap(),
            "10.0.0.2:5".parse().unwrap(),
        );
        let b = AddrPairKey::new(
            1,
            "[::ffff:10.0.0.1]:80".parse().unwrap(),
            "[::ffff:10.0.0.2]:5".parse().unwrap(),
        );
        assert_eq!(a, b);
        assert_eq!(a.fingerprint(), b.fingerprint());
        let swapped = AddrPairKey::new(
            1,
            "10.0.0.2:5".parse().unwrap(),
            "10.0.0.1:80".parse().unwrap(),
        );
        assert_ne!(a.fingerprint(), swapped.fingerprint());
        assert_ne!(
            a,
            AddrPairKey::new(
                2,
                "10.0.0.1:80".parse().unwrap(),
                "10.0.0.2:5".parse().unwrap()
            )
        );
    }
}
