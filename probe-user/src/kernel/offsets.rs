//! The struct offsets the kernel program needs, resolved from kernel BTF.
//!
//! Rust BPF programs get no CO-RE relocations, so the offsets of `struct sock` members
//! the kernel program dereferences (netns, cgroup) are looked up here in the kernel's
//! BTF and passed to the program as constants. A member that cannot be found means
//! "unknown", never a guessed offset.

use std::path::{Path, PathBuf};

use probe_common::{BtfStateOffsets, CounterOffsets, SockOffsets, counter_field};

use crate::{
    kernel::btf::{self, Btf, BtfError},
    model::SocketOffsetsInfo,
};

/// Kernel BTF as the recorder uses it: the offsets the kernel program needs. The file
/// itself is not kept (vmlinux BTF is megabytes); the program loader reads it again
/// from `path` when it needs it, after this parse is freed.
#[derive(Debug)]
pub struct KernelBtf {
    pub path: PathBuf,
    pub sock: SockOffsets,
    /// What the trace header says about `sock`.
    pub info: SocketOffsetsInfo,
    /// For the `tp_btf` state-change program, or why it cannot be used.
    pub state: Result<BtfStateOffsets, String>,
    /// The `struct tcp_sock` counters the kernel program reads (those it cannot are
    /// recorded as unknown).
    pub counters: CounterOffsets,
}

impl KernelBtf {
    /// Reads and resolves `path`. Without BTF the recording goes on, with netns and
    /// cgroup unknown; a path that cannot be BTF at all (not a regular file, too large)
    /// is refused.
    pub fn read(path: &Path) -> Result<Self, BtfError> {
        let raw = match btf::read_file(path) {
            Err(err) if err.is_wrong_file() => return Err(err),
            raw => raw,
        };
        let parsed = raw.as_deref().map_err(|err| err.to_string());
        let parsed = parsed.and_then(|data| Btf::parse(data).map_err(|err| err.to_string()));
        let (sock, info, state, counters) = match parsed {
            Ok(btf) => {
                let report = sock_offsets(&btf);
                let (counters, counter_missing) = counter_offsets(&btf);
                let mut missing = report.missing;
                missing.extend(counter_missing);
                let info = SocketOffsetsInfo {
                    netns: report.offsets.netns_valid == 1,
                    cgroup: report.offsets.cgroup_valid == 1,
                    counters: counter_names(counters.known),
                    missing,
                };
                let state = btf_state_offsets(&btf).map_err(|missing| missing.join("; "));
                (report.offsets, info, state, counters)
            }
            Err(err) => (
                SockOffsets::UNKNOWN,
                SocketOffsetsInfo {
                    netns: false,
                    cgroup: false,
                    counters: Vec::new(),
                    missing: vec![format!(
                        "no kernel BTF ({err}): network namespace, cgroup and the sockets' \
                         byte counters are not recorded"
                    )],
                },
                Err("no kernel BTF".to_owned()),
                CounterOffsets::UNKNOWN,
            ),
        };
        Ok(Self {
            path: path.to_path_buf(),
            sock,
            info,
            state,
            counters,
        })
    }
}

/// What [`sock_offsets`] could and could not resolve, for the trace header and the
/// "no BTF" warning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OffsetReport {
    pub offsets: SockOffsets,
    /// Human-readable reasons for each part that stays unknown.
    pub missing: Vec<String>,
}

fn pointer(btf: &Btf, root: &str, path: &[&str]) -> Result<u32, String> {
    match btf.member_offset(root, path) {
        Some(m) if m.is_pointer => Ok(m.offset),
        Some(m) => Err(format!(
            "struct {root}.{} is not a pointer (size {})",
            path.join("."),
            m.size
        )),
        None => Err(format!("struct {root} has no member {}", path.join("."))),
    }
}

fn integer(btf: &Btf, root: &str, path: &[&str], size: u32) -> Result<u32, String> {
    match btf.member_offset(root, path) {
        Some(m) if m.size == size && !m.is_pointer => Ok(m.offset),
        Some(m) => Err(format!(
            "struct {root}.{} has size {}, expected {size}",
            path.join("."),
            m.size
        )),
        None => Err(format!("struct {root} has no member {}", path.join("."))),
    }
}

/// Every one of `parts`, or what is missing.
fn all_of<const N: usize>(parts: [Result<u32, String>; N]) -> Result<[u32; N], Vec<String>> {
    let mut values = [0; N];
    let mut missing = Vec::new();
    for (value, part) in values.iter_mut().zip(parts) {
        match part {
            Ok(offset) => *value = offset,
            Err(err) => missing.push(err),
        }
    }
    if missing.is_empty() {
        Ok(values)
    } else {
        Err(missing)
    }
}

impl OffsetReport {
    /// The offsets of one part, if all of them resolve; otherwise says why, as `what`.
    fn part<const N: usize>(
        &mut self,
        what: &str,
        parts: [Result<u32, String>; N],
    ) -> Option<[u32; N]> {
        all_of(parts)
            .map_err(|missing| {
                let reasons = missing.into_iter().map(|e| format!("{what}: {e}"));
                self.missing.extend(reasons);
            })
            .ok()
    }
}

/// Resolves every offset the kernel program needs. Parts that cannot be resolved stay
/// marked invalid, so the program reports "unknown" instead of reading wrong memory.
pub fn sock_offsets(btf: &Btf) -> OffsetReport {
    let mut report = OffsetReport::default();
    if let Some([sk_net, net_inum]) = report.part(
        "netns",
        [
            pointer(btf, "sock", &["__sk_common", "skc_net", "net"]),
            integer(btf, "net", &["ns", "inum"], 4),
        ],
    ) {
        report.offsets.sk_net = sk_net;
        report.offsets.net_inum = net_inum;
        report.offsets.netns_valid = 1;
        // Optional: without it every event loads the inode number itself.
        if let Ok(cookie) = integer(btf, "net", &["net_cookie"], 8) {
            report.offsets.net_cookie = cookie;
        }
    }
    if let Some([sk_cgroup, cgroup_kn, kn_id]) = report.part(
        "cgroup",
        [
            pointer(btf, "sock", &["sk_cgrp_data", "cgroup"]),
            pointer(btf, "cgroup", &["kn"]),
            integer(btf, "kernfs_node", &["id"], 8),
        ],
    ) {
        report.offsets.sk_cgroup = sk_cgroup;
        report.offsets.cgroup_kn = cgroup_kn;
        report.offsets.kn_id = kn_id;
        report.offsets.cgroup_valid = 1;
    }
    if let Some([skb_dev, dev_net]) = report.part(
        "netns of resets without a socket",
        [
            pointer(btf, "sk_buff", &["dev"]),
            pointer(btf, "net_device", &["nd_net", "net"]),
        ],
    ) {
        report.offsets.skb_dev = skb_dev;
        report.offsets.dev_net = dev_net;
        report.offsets.skb_valid = 1;
    }
    // Whether an event runs in its socket owner's context (docs/attribution.md §5);
    // without it, the softirq tracepoints tell.
    if let Some([owned, state]) = report.part(
        "owner context from the socket lock",
        [
            integer(btf, "sock", &["sk_lock", "owned"], 4),
            integer(btf, "sock", &["__sk_common", "skc_state"], 1),
        ],
    ) {
        report.offsets.sk_lock_owned = owned;
        report.offsets.sk_state = state;
    }
    report
}

/// The counters of [`probe_common::TcpCounters`]: their [`counter_field`] bit, their
/// `struct tcp_sock` members and sizes (see `docs/kernel-facts.md §7`).
const COUNTERS: [(u8, &str, &[&str], u32); 8] = [
    (counter_field::BYTES_SENT, "bytes_sent", &["bytes_sent"], 8),
    (
        counter_field::BYTES_ACKED,
        "bytes_acked",
        &["bytes_acked"],
        8,
    ),
    (
        counter_field::BYTES_RECEIVED,
        "bytes_received",
        &["bytes_received"],
        8,
    ),
    (counter_field::SEGS, "segs_in", &["segs_in"], 4),
    (counter_field::SEGS, "segs_out", &["segs_out"], 4),
    (
        counter_field::RETRANS,
        "total_retrans",
        &["total_retrans"],
        4,
    ),
    (counter_field::SRTT, "srtt_us", &["srtt_us"], 4),
    (
        counter_field::PEER_FIN,
        "sk_flags",
        &["inet_conn", "icsk_inet", "sk", "__sk_common", "skc_flags"],
        8,
    ),
];

/// Resolves the `struct tcp_sock` counters one by one: a member this kernel lacks (or
/// has with another size) leaves only that counter unknown.
pub fn counter_offsets(btf: &Btf) -> (CounterOffsets, Vec<String>) {
    let mut offsets = CounterOffsets::UNKNOWN;
    let mut known = u8::MAX;
    let mut missing = Vec::new();
    let mut resolved = [0u32; COUNTERS.len()];
    for (slot, (bit, _, path, size)) in resolved.iter_mut().zip(COUNTERS) {
        match integer(btf, "tcp_sock", path, size) {
            Ok(offset) => *slot = offset,
            Err(err) => {
                // segs_in and segs_out are read together: one missing drops both.
                known &= !bit;
                missing.push(format!("byte counters: {err}"));
            }
        }
    }
    // `SOCK_DONE`'s bit in `sk_flags` (1 since the flags exist; read, not assumed).
    let sock_done = btf
        .enum_value("sock_flags", "SOCK_DONE")
        .filter(|&bit| bit < 64);
    if sock_done.is_none() {
        known &= !counter_field::PEER_FIN;
        missing.push("byte counters: enum sock_flags has no SOCK_DONE".to_owned());
    }
    let [
        sent,
        acked,
        received,
        segs_in,
        segs_out,
        retrans,
        srtt,
        flags,
    ] = resolved;
    offsets.bytes_sent = sent;
    offsets.bytes_acked = acked;
    offsets.bytes_received = received;
    offsets.segs_in = segs_in;
    offsets.segs_out = segs_out;
    offsets.total_retrans = retrans;
    offsets.srtt_us = srtt;
    offsets.sk_flags = flags;
    offsets.sock_done = sock_done.map_or(0, |bit| bit as u32);
    offsets.known = u32::from(known & counter_field::ALL);
    (offsets, missing)
}

/// The names of the counters whose [`counter_field`] bits are in `known`.
fn counter_names(known: u32) -> Vec<String> {
    COUNTERS
        .iter()
        .filter(|(bit, ..)| known & u32::from(*bit) != 0)
        .map(|(_, name, ..)| (*name).to_owned())
        .collect()
}

/// Resolves the offsets of the `tp_btf` state-change program, or says why it cannot
/// be used (the classic tracepoint program then records state changes).
pub fn btf_state_offsets(btf: &Btf) -> Result<BtfStateOffsets, Vec<String>> {
    let common = |name: &'static str, size: u32| integer(btf, "sock", &["__sk_common", name], size);
    let parts = [
        common("skc_family", 2),
        integer(btf, "sock", &["sk_protocol"], 2),
        common("skc_dport", 2),
        common("skc_rcv_saddr", 4),
        common("skc_daddr", 4),
        integer(
            btf,
            "tcp_sock",
            &["inet_conn", "icsk_inet", "inet_sport"],
            2,
        ),
        integer(btf, "task_struct", &["comm"], 16),
    ];
    let [family, protocol, dport, saddr, daddr, sport, task_comm] = all_of(parts)?;
    // Without CONFIG_IPV6 the tracepoint writes v4-mapped addresses only.
    let ipv6 = all_of([common("skc_v6_rcv_saddr", 16), common("skc_v6_daddr", 16)]).ok();
    Ok(BtfStateOffsets {
        valid: 1,
        ipv6: u32::from(ipv6.is_some()),
        family,
        protocol,
        dport,
        saddr,
        daddr,
        saddr_v6: ipv6.map_or(0, |[saddr_v6, _]| saddr_v6),
        daddr_v6: ipv6.map_or(0, |[_, daddr_v6]| daddr_v6),
        sport,
        task_comm,
        // Only the error-report program needs it: without it, that one falls back.
        sk_err: integer(btf, "sock", &["sk_err"], 4).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::btf::{VMLINUX, tests::kernel_like};

    #[test]
    fn sock_offsets_reports_what_is_missing() {
        let report = sock_offsets(&Btf::parse(&kernel_like()).unwrap());
        assert_eq!(report.offsets.netns_valid, 1);
        assert_eq!(report.offsets.sk_net, 48);
        assert_eq!(report.offsets.net_inum, 144);
        // The miniature's `struct net` has no `net_cookie`: no cache, every event loads
        // the inode number itself.
        assert_eq!(report.offsets.net_cookie, 0);
        assert_eq!(report.offsets.cgroup_valid, 1);
        assert_eq!(
            (
                report.offsets.sk_cgroup,
                report.offsets.cgroup_kn,
                report.offsets.kn_id
            ),
            (5000, 256, 80)
        );
        // The miniature has no sk_buff: that part is reported, not guessed.
        assert_eq!(report.offsets.skb_valid, 0);
        assert!(
            report.missing.iter().any(|m| m.contains("sk_buff")),
            "{:?}",
            report.missing
        );
    }

    #[test]
    fn only_a_regular_file_of_a_sane_size_is_read() {
        let wrong = |path: &str| KernelBtf::read(Path::new(path)).unwrap_err().to_string();
        assert_eq!(wrong("/dev/zero"), "--btf /dev/zero: not a regular file");
        assert_eq!(wrong("/"), "--btf /: not a regular file");
        let big = std::env::temp_dir().join(format!("tcpchurn-big-btf-{}", std::process::id()));
        let file = std::fs::File::create(&big).unwrap();
        file.set_len(btf::MAX_BTF_BYTES + 1).unwrap();
        assert!(wrong(big.to_str().unwrap()).contains("too large"));
        std::fs::remove_file(&big).unwrap();
        // A FIFO nobody writes to: refused at once, never opened (opening it would block).
        let fifo = std::ffi::CString::new(big.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert!(wrong(big.to_str().unwrap()).ends_with("not a regular file"));
        std::fs::remove_file(&big).unwrap();
        // A missing file is no BTF, not an error: the recording goes on without it.
        let missing = KernelBtf::read(Path::new("/nonexistent/vmlinux")).unwrap();
        assert!(missing.state.is_err() && !missing.info.netns);
    }

    #[test]
    fn reads_this_kernels_btf_when_present() {
        let path = Path::new(VMLINUX);
        if !path.exists() {
            eprintln!("skipping: {VMLINUX} not present");
            return;
        }
        let btf = Btf::parse(&btf::read_file(path).unwrap()).unwrap();
        let report = sock_offsets(&btf);
        assert_eq!(report.offsets.netns_valid, 1, "{:?}", report.missing);
        assert_eq!(report.offsets.cgroup_valid, 1, "{:?}", report.missing);
        assert_eq!(report.offsets.skb_valid, 1, "{:?}", report.missing);
        // The lock follows sock_common (its spinlock first); skc_state is in sock_common.
        let sock = report.offsets;
        // `net_cookie` (the namespace cache's key) is an 8-byte member of its own.
        assert!(
            sock.net_cookie != 0 && sock.net_cookie.is_multiple_of(8),
            "{sock:?}"
        );
        assert!(sock.sk_lock_owned > sock.sk_state, "{sock:?}");
        assert!(sock.sk_state > 0 && sock.sk_state < 32, "{sock:?}");
        let state = btf_state_offsets(&btf).unwrap();
        assert_eq!((state.valid, state.ipv6), (1, 1));
        let (counters, missing) = counter_offsets(&btf);
        assert_eq!(counters.known, u32::from(counter_field::ALL), "{missing:?}");
        // `struct tcp_sock` begins with `struct sock`, so the offset of `sk_flags` is
        // the same from either.
        assert_eq!(
            Some(counters.sk_flags),
            btf.member_offset("sock", &["__sk_common", "skc_flags"])
                .map(|m| m.offset)
        );
        assert_eq!(counters.sock_done, 1);
        // skc_daddr and skc_rcv_saddr share an 8-byte union member, in this order.
        assert_eq!(state.saddr, state.daddr + 4);
    }

    #[test]
    fn a_kernel_without_tcp_sock_has_no_counters() {
        let (counters, missing) = counter_offsets(&Btf::parse(&kernel_like()).unwrap());
        assert_eq!(counters.known, 0);
        assert_eq!(missing.len(), COUNTERS.len(), "{missing:?}");
        assert!(counter_names(counters.known).is_empty());
        assert_eq!(
            counter_names(u32::from(counter_field::SEGS | counter_field::SRTT)),
            ["segs_in", "segs_out", "srtt_us"]
        );
    }

    #[test]
    fn btf_state_offsets_say_what_is_missing() {
        // The miniature has no sk_protocol, tcp_sock or task_struct.
        let missing = btf_state_offsets(&Btf::parse(&kernel_like()).unwrap()).unwrap_err();
        assert!(
            missing.iter().any(|m| m.contains("sk_protocol")),
            "{missing:?}"
        );
        assert!(
            missing.iter().any(|m| m.contains("struct tcp_sock")),
            "{missing:?}"
        );
        assert!(
            missing.iter().any(|m| m.contains("task_struct")),
            "{missing:?}"
        );
    }
}
