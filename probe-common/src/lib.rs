//! The one wire type between the tcpchurn kernel program and its recorder, and the
//! load-time configuration the recorder hands to the kernel program.
//!
//! The kernel program does not decode tracepoint records: it copies the raw record
//! bytes and lets userspace decode them with the offsets read from tracefs. That keeps
//! the kernel side independent of the record layout (which changed in 5.6 and in 6.10)
//! and keeps every decoding decision in unit-tested userspace code.
#![no_std]

/// Bytes of the tracepoint record copied into each event, starting at record offset 8.
///
/// Bytes 0-7 of a BPF tracepoint context are a `pt_regs` pointer, not the common
/// header (docs/kernel-facts.md §4.1), so the copy starts after them. 80 bytes cover the largest
/// record we read (`tcp:tcp_send_reset` ends at offset 88 on 6.18).
pub const RECORD_BYTES: usize = 80;

/// An `inet_sk_error_report` (which names no socket) is paired with the last socket
/// event on the same CPU only if it comes this soon after it: the report and its
/// socket's state change come from one kernel call, microseconds apart, while another
/// socket's report with the same ports can come at any later time.
pub const ERROR_PAIRING_NS: u64 = 1_000_000;

/// Offset of the first copied byte within the tracepoint record.
pub const RECORD_START: usize = 8;

/// [`RECORD_BYTES`] as 8-byte words: the kernel program copies the record with one
/// aligned load and one store per word.
pub const RECORD_WORDS: usize = RECORD_BYTES / 8;

const _: () = assert!(RECORD_BYTES.is_multiple_of(8) && RECORD_START.is_multiple_of(8));

/// Which tracepoint produced a [`KernelEvent`].
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// `sock:inet_sock_set_state`.
    StateChange = 1,
    /// `tcp:tcp_send_reset`.
    SendReset = 2,
    /// `tcp:tcp_receive_reset`.
    ReceiveReset = 3,
    /// `sock:inet_sk_error_report`.
    ErrorReport = 4,
}

impl EventKind {
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            1 => Some(Self::StateChange),
            2 => Some(Self::SendReset),
            3 => Some(Self::ReceiveReset),
            4 => Some(Self::ErrorReport),
            _ => None,
        }
    }
}

/// Whether an event ran in its socket owner's context: from the socket lock's `owned`
/// flag when kernel BTF gives its offset, else from the softirq tracepoints.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecContext {
    /// Cannot tell: the event names no socket and the softirq tracepoints are not used,
    /// or the CPU has not passed a softirq boundary since attach.
    Unknown = 0,
    /// The owner's context: `current` is the task whose syscall (or lock release) ran
    /// this (the socket was owned, or no softirq was in progress).
    Task = 1,
    /// Not the owner's context: softirq (the socket was not owned, or a softirq was in
    /// progress), where `current` is whatever task was interrupted.
    Softirq = 2,
}

impl ExecContext {
    pub const fn from_u8(value: u8) -> Self {
        match value {
            1 => Self::Task,
            2 => Self::Softirq,
            _ => Self::Unknown,
        }
    }
}

/// One tracepoint hit, as the kernel program writes it into the ring buffer.
///
/// Fixed size and 8-byte aligned so `bpf_ringbuf_reserve` can hand it out directly.
/// `pid_tgid` and `comm` are filled only when `context` is not [`ExecContext::Softirq`]:
/// in softirq they belong to a bystander and must never reach the trace as an owner.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KernelEvent {
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC.
    pub ts_ns: u64,
    /// `bpf_get_current_pid_tgid()`, or 0 in softirq.
    pub pid_tgid: u64,
    /// cgroup v2 id of the socket (`sk->sk_cgrp_data.cgroup->kn->id`), 0 if unknown.
    pub cgroup_id: u64,
    /// Network namespace inode of the socket (`sk->__sk_common.skc_net.net->ns.inum`),
    /// 0 if unknown.
    pub netns: u32,
    /// CPU that ran the program; lets userspace pair an error report with the state
    /// change that preceded it on the same CPU.
    pub cpu: u16,
    /// An [`EventKind`].
    pub kind: u8,
    /// An [`ExecContext`].
    pub context: u8,
    /// The current task's `comm` (`bpf_get_current_comm()`, or `current->comm` read
    /// directly by the `tp_btf` program), or zeroes in softirq.
    pub comm: [u8; 16],
    /// Tracepoint record bytes `[RECORD_START, RECORD_START + RECORD_BYTES)`.
    pub record: [u8; RECORD_BYTES],
}

const _: () = assert!(size_of::<KernelEvent>() == 128);
const _: () = assert!(align_of::<KernelEvent>() == 8);

/// Which [`TcpCounters`] fields the kernel program read (bits of [`TcpCounters::known`]).
/// A field whose member this kernel's BTF lacks, or whose read failed, is unknown:
/// never a zero standing in for it.
pub mod counter_field {
    /// `bytes_sent` (Linux 4.19+).
    pub const BYTES_SENT: u8 = 1;
    pub const BYTES_ACKED: u8 = 1 << 1;
    pub const BYTES_RECEIVED: u8 = 1 << 2;
    /// `segs_in` and `segs_out` (read together).
    pub const SEGS: u8 = 1 << 3;
    pub const RETRANS: u8 = 1 << 4;
    pub const SRTT: u8 = 1 << 5;
    /// `sk_flags`' `SOCK_DONE` bit: whether the peer's FIN was processed.
    pub const PEER_FIN: u8 = 1 << 6;
    /// Every field.
    pub const ALL: u8 = (1 << 7) - 1;
}

/// A socket's `struct tcp_sock` counters, read by the kernel program at the state
/// changes where they matter ([`carries_counters`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpCounters {
    /// `bytes_sent`: payload bytes sent, retransmissions included.
    pub bytes_sent: u64,
    /// `bytes_acked`: sequence space the peer acknowledged (the SYN of a connecting
    /// socket and an acknowledged FIN count one each).
    pub bytes_acked: u64,
    /// `bytes_received`: sequence space received in order (the peer's FIN counts one).
    pub bytes_received: u64,
    /// `segs_in`, `segs_out`: segments received and sent, pure ACKs included.
    pub segs_in: u32,
    pub segs_out: u32,
    /// `total_retrans`: segments retransmitted.
    pub total_retrans: u32,
    /// `srtt_us`: the smoothed round-trip time in microseconds, shifted left by 3 as
    /// the kernel keeps it (0 until the first RTT sample).
    pub srtt_us8: u32,
    /// [`counter_field`] bits: which fields were read.
    pub known: u8,
    /// 1 when `sk_flags` has `SOCK_DONE`: the peer's FIN was processed (`tcp_fin()`
    /// sets it, right after the FIN's sequence number entered `bytes_received`).
    pub peer_fin: u8,
    pub reserved: [u8; 6],
}

impl TcpCounters {
    pub const UNKNOWN: Self = Self {
        bytes_sent: 0,
        bytes_acked: 0,
        bytes_received: 0,
        segs_in: 0,
        segs_out: 0,
        total_retrans: 0,
        srtt_us8: 0,
        known: 0,
        peer_fin: 0,
        reserved: [0; 6],
    };
}

/// A state change that carries its socket's counters: the event, then the counters.
/// The ring entry's length tells the recorder which of the two it got.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CountedEvent {
    pub event: KernelEvent,
    pub counters: TcpCounters,
}

const _: () = assert!(size_of::<TcpCounters>() == 48);
const _: () = assert!(size_of::<CountedEvent>() == 176);
const _: () = assert!(align_of::<CountedEvent>() == 8);

/// Whether a state change carries its socket's counters: when a side starts closing
/// (→FIN_WAIT1: it sent its FIN; →CLOSE_WAIT: the peer's FIN arrived) and when the
/// socket ends (→CLOSE, except a listener's). Only these pay for the longer entry.
pub const fn carries_counters(old: u32, new: u32) -> bool {
    const FIN_WAIT1: u32 = 4;
    const CLOSE: u32 = 7;
    const CLOSE_WAIT: u32 = 8;
    const LISTEN: u32 = 10;
    match new {
        FIN_WAIT1 | CLOSE_WAIT => true,
        CLOSE => old != LISTEN && old != CLOSE,
        _ => false,
    }
}

/// Per-CPU counters the kernel program keeps in its `COUNTERS` map.
///
/// The counters are plain (non-atomic) per-CPU increments, so no two runs that can
/// interrupt each other on a CPU may share one: each program family has its own slot
/// of [`SUBMITTED`](counter::SUBMITTED) and [`RING_FULL`](counter::RING_FULL) (slot
/// `base + family`). Runs of one family never nest on a CPU: the kernel skips them
/// (classic tracepoints all share `bpf_prog_active`; a raw tracepoint program its own
/// `prog->active`), so each slot has one writer at a time.
pub mod counter {
    /// The classic tracepoint programs (one family: `bpf_prog_active` keeps them from
    /// nesting with each other).
    pub const CLASSIC: u32 = 0;
    /// The `tp_btf` state-change program.
    pub const BTF_MAIN: u32 = 1;
    /// The `tp_btf` rescue program.
    pub const BTF_RESCUE: u32 = 2;
    /// The raw tracepoint error-report program.
    pub const ERROR_RAW: u32 = 3;
    pub const FAMILIES: u32 = 4;
    /// Events written to the ring buffer: slots `SUBMITTED + family`.
    pub const SUBMITTED: u32 = 0;
    /// Events lost because the ring buffer had no room (`bpf_ringbuf_reserve` failed):
    /// slots `RING_FULL + family`.
    pub const RING_FULL: u32 = SUBMITTED + FAMILIES;
    /// State changes the `tp_btf` rescue program took over because the main program
    /// could not run (it was interrupted on this CPU by the softirq that fired them):
    /// each is one of the main program's `recursion_misses`, not a loss.
    pub const RESCUED: u32 = RING_FULL + FAMILIES;
    /// Number of counters.
    pub const COUNT: u32 = RESCUED + 1;
}

/// Where one field sits in the copied record bytes (tracefs offset minus
/// [`RECORD_START`]), and how wide it is. A size of 0 means "this kernel has no such
/// field".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FieldSpec {
    pub offset: u16,
    pub size: u8,
    /// 1 when the field is in network byte order (ports inside a `sockaddr`).
    pub big_endian: u8,
}

impl FieldSpec {
    pub const ABSENT: Self = Self {
        offset: 0,
        size: 0,
        big_endian: 0,
    };

    pub const fn is_present(self) -> bool {
        self.size != 0
    }
}

/// The handful of record fields the kernel program itself must read to filter and to
/// find the socket. Everything else is decoded in userspace.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelFields {
    /// The socket pointer (`skaddr`); absent for `inet_sk_error_report`.
    pub skaddr: FieldSpec,
    /// The packet pointer (`skbaddr`); only `tcp:tcp_send_reset` has one.
    pub skbaddr: FieldSpec,
    /// `protocol` (1 byte before 5.6, 2 bytes since); absent in `tcp:*` events.
    pub protocol: FieldSpec,
    /// Host-order source port, for the `--port` filter.
    pub sport: FieldSpec,
    /// Host-order destination port, for the `--port` filter.
    pub dport: FieldSpec,
    /// `oldstate` and `newstate` of `inet_sock_set_state`: which state changes carry
    /// the socket's counters ([`carries_counters`]).
    pub oldstate: FieldSpec,
    pub newstate: FieldSpec,
    /// `error` of `inet_sk_error_report`: reports of error 0 are dropped in the kernel
    /// (a failed `connect()` emits one after the real error, docs/kernel-facts.md §3).
    pub error: FieldSpec,
    /// Record bytes (from [`RECORD_START`]) the kernel program copies: the end of the
    /// last field the decoder reads, at most [`RECORD_BYTES`]. The program reads its
    /// context directly, and the kernel refuses to attach a program that reads past
    /// the end of a tracepoint's record; the rest of the event's record is zeroed.
    pub copy_len: u16,
    pub reserved: u16,
}

impl KernelFields {
    pub const ABSENT: Self = Self {
        skaddr: FieldSpec::ABSENT,
        skbaddr: FieldSpec::ABSENT,
        protocol: FieldSpec::ABSENT,
        sport: FieldSpec::ABSENT,
        dport: FieldSpec::ABSENT,
        oldstate: FieldSpec::ABSENT,
        newstate: FieldSpec::ABSENT,
        error: FieldSpec::ABSENT,
        copy_len: 0,
        reserved: 0,
    };
}

/// Offsets into kernel structures, read from `/sys/kernel/btf/vmlinux` at load time
/// because Rust BPF programs have no CO-RE relocations. A zero `valid` means "unknown":
/// the program then reports netns/cgroup as 0 instead of reading wrong memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockOffsets {
    /// 1 when the offsets below were resolved.
    pub netns_valid: u32,
    /// 1 when the cgroup offsets below were resolved.
    pub cgroup_valid: u32,
    /// `offsetof(struct sock, __sk_common.skc_net)`.
    pub sk_net: u32,
    /// `offsetof(struct net, ns.inum)`.
    pub net_inum: u32,
    /// `offsetof(struct sock, sk_cgrp_data.cgroup)`.
    pub sk_cgroup: u32,
    /// `offsetof(struct cgroup, kn)`.
    pub cgroup_kn: u32,
    /// `offsetof(struct kernfs_node, id)`.
    pub kn_id: u32,
    /// `offsetof(struct sk_buff, dev)`, for the netns of resets sent without a socket.
    pub skb_dev: u32,
    /// `offsetof(struct net_device, nd_net)`.
    pub dev_net: u32,
    /// 1 when `skb_dev`/`dev_net` were resolved.
    pub skb_valid: u32,
    /// `offsetof(struct sock, sk_lock.owned)` (an `int`), 0 if unknown: whether the
    /// socket's owner runs this event (`docs/attribution.md` §5).
    pub sk_lock_owned: u32,
    /// `offsetof(struct sock, __sk_common.skc_state)` (1 byte), resolved with
    /// `sk_lock_owned`: a reset's socket may be a listener, which softirq processes
    /// without the lock, or a TIME_WAIT or request socket, which has none.
    pub sk_state: u32,
    /// `offsetof(struct net, net_cookie)` (8 bytes, set once, never reused in a boot),
    /// 0 if unknown: the key under which each CPU remembers the namespaces it saw
    /// (`docs/kernel-facts.md` §4.6).
    pub net_cookie: u32,
    /// Keeps the size a multiple of 8 (no implicit padding in `ProbeConfig`).
    pub reserved: u32,
}

impl SockOffsets {
    pub const UNKNOWN: Self = Self {
        netns_valid: 0,
        cgroup_valid: 0,
        sk_net: 0,
        net_inum: 0,
        sk_cgroup: 0,
        cgroup_kn: 0,
        kn_id: 0,
        skb_dev: 0,
        dev_net: 0,
        skb_valid: 0,
        sk_lock_owned: 0,
        sk_state: 0,
        net_cookie: 0,
        reserved: 0,
    };
}

/// Offsets the `tp_btf` state-change program and the raw-tracepoint error-report program
/// read the socket (and the task) with, from BTF (`offsetof` in bytes). With `valid` 0
/// neither is used: the classic tracepoint programs record instead.
///
/// The `tp_btf` program gets the socket as a BTF pointer, so it loads these members
/// directly (the verifier checks every load against BTF when the program is loaded);
/// the raw-tracepoint program reads them with `bpf_probe_read_kernel`, so it needs no
/// kernel BTF (the offsets may come from a `--btf` file). Both write the event's record
/// in the fixed [`state_record`] layout.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BtfStateOffsets {
    /// 1 when every offset below but the IPv6 ones was resolved.
    pub valid: u32,
    /// 1 when the kernel has IPv6 socket addresses (`CONFIG_IPV6`).
    pub ipv6: u32,
    /// `struct sock`: `__sk_common.skc_family` (2 bytes).
    pub family: u32,
    /// `struct sock`: `sk_protocol` (2 bytes).
    pub protocol: u32,
    /// `struct sock`: `__sk_common.skc_dport` (2 bytes, network order).
    pub dport: u32,
    /// `struct sock`: `__sk_common.skc_rcv_saddr` (4 bytes).
    pub saddr: u32,
    /// `struct sock`: `__sk_common.skc_daddr` (4 bytes).
    pub daddr: u32,
    /// `struct sock`: `__sk_common.skc_v6_rcv_saddr` (16 bytes).
    pub saddr_v6: u32,
    /// `struct sock`: `__sk_common.skc_v6_daddr` (16 bytes).
    pub daddr_v6: u32,
    /// `struct tcp_sock`: `inet_conn.icsk_inet.inet_sport` (2 bytes, network order); past
    /// the end of `struct sock`, so it is read through `bpf_skc_to_tcp_sock`.
    pub sport: u32,
    /// `struct task_struct`: `comm` (16 bytes).
    pub task_comm: u32,
    /// `struct sock`: `sk_err` (4 bytes), for the raw-tracepoint error-report program;
    /// 0 when unresolved (then error reports come from the classic tracepoint).
    pub sk_err: u32,
}

impl BtfStateOffsets {
    pub const UNKNOWN: Self = Self {
        valid: 0,
        ipv6: 0,
        family: 0,
        protocol: 0,
        dport: 0,
        saddr: 0,
        daddr: 0,
        saddr_v6: 0,
        daddr_v6: 0,
        sport: 0,
        task_comm: 0,
        sk_err: 0,
    };
}

/// Offsets of the [`TcpCounters`] members, from kernel BTF (`offsetof` in bytes from the
/// start of `struct tcp_sock`, which begins with `struct sock`). A member is read only
/// when its [`counter_field`] bit is in `known`: without BTF, or on a kernel whose
/// `tcp_sock` lacks the member, that counter is recorded as unknown.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CounterOffsets {
    /// [`counter_field`] bits of the offsets that were resolved.
    pub known: u32,
    pub bytes_sent: u32,
    pub bytes_acked: u32,
    pub bytes_received: u32,
    pub segs_in: u32,
    pub segs_out: u32,
    pub total_retrans: u32,
    pub srtt_us: u32,
    /// `struct sock`: `__sk_common.skc_flags` (`sk_flags`, 8 bytes).
    pub sk_flags: u32,
    /// The bit of `SOCK_DONE` in `sk_flags` (`enum sock_flags`).
    pub sock_done: u32,
}

impl CounterOffsets {
    pub const UNKNOWN: Self = Self {
        known: 0,
        bytes_sent: 0,
        bytes_acked: 0,
        bytes_received: 0,
        segs_in: 0,
        segs_out: 0,
        total_retrans: 0,
        srtt_us: 0,
        sk_flags: 0,
        sock_done: 0,
    };
}

/// The record layout of state changes recorded by the `tp_btf` program: byte offsets
/// within [`KernelEvent::record`], which is the `sock:inet_sock_set_state` tracefs
/// record since Linux 5.6 (from [`RECORD_START`]), filled the way the tracepoint's
/// `TP_fast_assign` fills it (host-order ports, IPv4 addresses also v4-mapped in the
/// IPv6 fields). The bytes from [`state_record::LEN`] on are zero.
///
/// Error reports recorded by the raw-tracepoint error-report program use the same
/// layout, with `int error` (`sk->sk_err`) at [`state_record::ERROR`] instead of the
/// states: unlike the classic `inet_sk_error_report` record, it names its socket.
pub mod state_record {
    /// `const void *skaddr`.
    pub const SKADDR: usize = 0;
    /// `int oldstate`.
    pub const OLDSTATE: usize = 8;
    /// `int newstate`.
    pub const NEWSTATE: usize = 12;
    /// `int error`, in error reports (where the states are not).
    pub const ERROR: usize = 8;
    /// `__u16 sport`, host order.
    pub const SPORT: usize = 16;
    /// `__u16 dport`, host order.
    pub const DPORT: usize = 18;
    /// `__u16 family`.
    pub const FAMILY: usize = 20;
    /// `__u16 protocol`.
    pub const PROTOCOL: usize = 22;
    /// `__u8 saddr[4]`.
    pub const SADDR: usize = 24;
    /// `__u8 daddr[4]`.
    pub const DADDR: usize = 28;
    /// `__u8 saddr_v6[16]`.
    pub const SADDR_V6: usize = 32;
    /// `__u8 daddr_v6[16]`.
    pub const DADDR_V6: usize = 48;
    /// Bytes written.
    pub const LEN: usize = 64;
}

const _: () = assert!(state_record::LEN <= RECORD_BYTES);

/// Filters applied in the kernel, so uninteresting traffic never costs ring space.
/// Userspace applies the same filters again (some events carry no port or netns).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelFilter {
    /// Keep events whose source or destination port is one of these (0 = unused slot).
    pub ports: [u16; MAX_FILTER_PORTS],
    /// Keep events whose socket lives in one of these network namespaces (0 = unused).
    pub netns: [u32; MAX_FILTER_NETNS],
    /// Number of used entries in `ports`; 0 disables the port filter.
    pub port_count: u32,
    /// Number of used entries in `netns`; 0 disables the netns filter.
    pub netns_count: u32,
}

impl KernelFilter {
    pub const NONE: Self = Self {
        ports: [0; MAX_FILTER_PORTS],
        netns: [0; MAX_FILTER_NETNS],
        port_count: 0,
        netns_count: 0,
    };
}

pub const MAX_FILTER_PORTS: usize = 8;
pub const MAX_FILTER_NETNS: usize = 8;

/// Everything the recorder configures in the kernel program at load time (one
/// `.rodata` global, so the verifier sees every offset as a constant).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeConfig {
    pub state_change: KernelFields,
    pub send_reset: KernelFields,
    pub receive_reset: KernelFields,
    pub error_report: KernelFields,
    pub sock: SockOffsets,
    pub btf_state: BtfStateOffsets,
    pub counters: CounterOffsets,
    pub filter: KernelFilter,
    /// Ring-buffer fill level (bytes) above which an event forces a consumer wake-up.
    /// Below it, events are submitted without wake-ups and the recorder polls on a timer.
    pub wakeup_threshold: u64,
    /// Events go to ring `cpu & ring_mask`: one ring per CPU, or per group of CPUs, up
    /// to [`MAX_RINGS`] (a power of two less one).
    pub ring_mask: u64,
}

/// The most ring buffers events are spread over (`EVENTS`, `EVENTS_1`, ...): two CPUs
/// reserving in one ring contend for its lock (docs/bench.md, "Per-CPU rings").
pub const MAX_RINGS: u32 = 4;

impl ProbeConfig {
    /// The configuration compiled into the object: every event kind disabled.
    pub const DISABLED: Self = Self {
        state_change: KernelFields::ABSENT,
        send_reset: KernelFields::ABSENT,
        receive_reset: KernelFields::ABSENT,
        error_report: KernelFields::ABSENT,
        sock: SockOffsets::UNKNOWN,
        btf_state: BtfStateOffsets::UNKNOWN,
        counters: CounterOffsets::UNKNOWN,
        filter: KernelFilter::NONE,
        wakeup_threshold: 0,
        ring_mask: 0,
    };
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are `#[repr(C)]`, built only from integers and arrays of
    // integers, and have no implicit padding (checked by the size asserts below).
    unsafe impl aya::Pod for super::KernelEvent {}
    unsafe impl aya::Pod for super::CountedEvent {}
    unsafe impl aya::Pod for super::ProbeConfig {}
}

const _: () = assert!(size_of::<FieldSpec>() == 4);
const _: () = assert!(size_of::<KernelFields>() == 36);
const _: () = assert!(size_of::<SockOffsets>() == 56);
const _: () = assert!(size_of::<KernelFilter>() == 16 + 32 + 8);
const _: () = assert!(size_of::<BtfStateOffsets>() == 48);
const _: () = assert!(size_of::<CounterOffsets>() == 40);
const _: () = assert!(size_of::<ProbeConfig>() == 4 * 36 + 56 + 48 + 40 + 56 + 8 + 8);
