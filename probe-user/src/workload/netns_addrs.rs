//! The local addresses of a network namespace, read through a process inside it:
//! `/proc/PID/net/fib_trie` (IPv4) and `/proc/PID/net/if_inet6` (IPv6) show the
//! namespace of PID, so no `setns` (and no thread pinned to another namespace) is
//! needed, and the reads work from a container with the host's `/proc` mounted.
//!
//! Loopback and link-local addresses are skipped: every namespace has them, so they
//! name no pod.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
};

use super::bounded;

/// fib_trie grows with routes; a pod's is a few kilobytes, a router's can be large.
const FIB_LIMIT: u64 = 16 << 20;
const IF_INET6_LIMIT: u64 = 1 << 20;

/// IPv4 addresses the kernel marks `/32 host LOCAL` in a `fib_trie` dump.
pub fn parse_fib_trie(text: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut last = None;
    for line in text.lines() {
        let line = line.trim_start();
        if let Some(addr) = line
            .strip_prefix("|-- ")
            .or_else(|| line.strip_prefix("+-- "))
        {
            last = addr
                .split_whitespace()
                .next()
                .and_then(|a| a.parse::<Ipv4Addr>().ok());
        } else if line.starts_with("/32 host LOCAL")
            && let Some(addr) = last
            && !addr.is_loopback()
            && !addr.is_link_local()
            && !out.contains(&addr)
        {
            out.push(addr);
        }
    }
    out
}

/// IPv6 addresses of `if_inet6` (`addr ifindex prefixlen scope flags name`) with
/// global scope.
pub fn parse_if_inet6(text: &str) -> Vec<Ipv6Addr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let (Some(hex), Some(_), Some(_), Some(scope)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if hex.len() != 32 || scope != "00" {
            continue;
        }
        if let Ok(bits) = u128::from_str_radix(hex, 16) {
            let addr = Ipv6Addr::from(bits);
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
    }
    out
}

/// The addresses of the network namespace `pid` is in, `proc` being the (host's)
/// `/proc`; `None` when the process is gone (its files cannot be read), so the caller
/// can ask another process of the same namespace.
pub fn of_process(proc: &Path, pid: u32) -> Option<Vec<IpAddr>> {
    let net = proc.join(pid.to_string()).join("net");
    let v4 = parse_fib_trie(&bounded::read_text(&net.join("fib_trie"), FIB_LIMIT).ok()?);
    // A namespace without IPv6 has no `if_inet6`.
    let v6 = bounded::read_text(&net.join("if_inet6"), IF_INET6_LIMIT)
        .map(|t| parse_if_inet6(&t))
        .unwrap_or_default();
    Some(
        v4.into_iter()
            .map(IpAddr::V4)
            .chain(v6.into_iter().map(IpAddr::V6))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/proc/PID/net/fib_trie` of a namespace with `lo` up and a veth at
    /// 10.77.0.1/24, read on this machine (kernel 6.18).
    const FIB_TRIE: &str = "Main:
  +-- 0.0.0.0/1 2 0 2
     +-- 10.77.0.0/24 2 0 2
        +-- 10.77.0.0/31 1 0 0
           |-- 10.77.0.0
              /24 link UNICAST
           |-- 10.77.0.1
              /32 host LOCAL
        |-- 10.77.0.255
           /32 link BROADCAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
Local:
  +-- 0.0.0.0/1 2 0 2
     +-- 10.77.0.0/24 2 0 2
        +-- 10.77.0.0/31 1 0 0
           |-- 10.77.0.0
              /24 link UNICAST
           |-- 10.77.0.1
              /32 host LOCAL
        |-- 10.77.0.255
           /32 link BROADCAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
";

    #[test]
    fn fib_trie_local_addresses_without_loopback() {
        assert_eq!(parse_fib_trie(FIB_TRIE), [Ipv4Addr::new(10, 77, 0, 1)]);
        assert!(parse_fib_trie("").is_empty());
        assert!(parse_fib_trie("/32 host LOCAL\n|-- x\n/32 host LOCAL").is_empty());
    }

    #[test]
    fn if_inet6_global_addresses_only() {
        // The same namespace with fd77::1/64 (nodad), read on this machine.
        let text = "fe80000000000000747959fffe00b4f2 03 40 20 c0       v0
fd770000000000000000000000000001 03 40 00 82       v0
00000000000000000000000000000001 01 80 10 80       lo
fe80000000000000203cd9fffe29b873 02 40 20 c0       v1
zz 03 40 00 80 bad
";
        assert_eq!(
            parse_if_inet6(text),
            ["fd77::1".parse::<Ipv6Addr>().unwrap()]
        );
    }
}
