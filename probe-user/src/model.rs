//! The plain values that flow from the kernel decoder through the trace file into the
//! analysis. Nothing here knows about aya, files or output formats.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, SocketAddr},
};

pub use probe_common::ExecContext;

pub use self::{
    counters::TcpCounters,
    export::ExportSummary,
    filter::EndpointFilter,
    holders::{LISTED_PIDS, PidList, SharedWith},
    host::{ConnKey, HostId, HostNames},
    recorder::{
        Filters, KernelFeatures, Losses, RecordSummary, SocketOffsetsInfo, TracepointStatus,
    },
    window::{TimeWindow, duration_ns},
    workload::{Identity, Named, Qos, Runtime, Source, Workload},
    workload_filter::{PodSelector, WorkloadFilter},
    workload_table::{WorkloadKey, WorkloadTable, WorkloadTableBuilder},
};

mod counters;
pub mod doctor;
mod export;
mod filter;
mod holders;
mod host;
mod recorder;
mod window;
pub mod workload;
mod workload_filter;
mod workload_table;

/// A TCP state with its Linux number (`include/net/tcp_states.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum TcpState {
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    FinWait1 = 4,
    FinWait2 = 5,
    TimeWait = 6,
    Close = 7,
    CloseWait = 8,
    LastAck = 9,
    Listen = 10,
    Closing = 11,
    NewSynRecv = 12,
}

impl TcpState {
    pub const fn from_kernel(value: u32) -> Option<Self> {
        Some(match value {
            1 => Self::Established,
            2 => Self::SynSent,
            3 => Self::SynRecv,
            4 => Self::FinWait1,
            5 => Self::FinWait2,
            6 => Self::TimeWait,
            7 => Self::Close,
            8 => Self::CloseWait,
            9 => Self::LastAck,
            10 => Self::Listen,
            11 => Self::Closing,
            12 => Self::NewSynRecv,
            _ => return None,
        })
    }

    /// The name `ss`, tcpstates and the kernel's tracepoint print format use (without
    /// the `TCP_` prefix).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Established => "ESTABLISHED",
            Self::SynSent => "SYN_SENT",
            Self::SynRecv => "SYN_RECV",
            Self::FinWait1 => "FIN_WAIT1",
            Self::FinWait2 => "FIN_WAIT2",
            Self::TimeWait => "TIME_WAIT",
            Self::Close => "CLOSE",
            Self::CloseWait => "CLOSE_WAIT",
            Self::LastAck => "LAST_ACK",
            Self::Listen => "LISTEN",
            Self::Closing => "CLOSING",
            Self::NewSynRecv => "NEW_SYN_RECV",
        }
    }

    /// True for transitions that the kernel only ever performs inside a syscall on the
    /// socket (docs/kernel-facts.md §2.1, §2.3 rule 1). Used to attribute events that fired on a
    /// CPU whose softirq state is not yet known.
    pub const fn is_syscall_only(old: Self, new: Self) -> bool {
        matches!(
            (old, new),
            (Self::Close, Self::SynSent)
                | (Self::Close, Self::Listen)
                | (Self::Established, Self::FinWait1)
                | (Self::SynRecv, Self::FinWait1)
                | (Self::CloseWait, Self::LastAck)
                | (Self::FinWait2, Self::FinWait2)
                | (Self::Listen, Self::Close)
        )
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// A process name as the kernel keeps it: at most 15 bytes, NUL padded.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Comm([u8; 16]);

impl Comm {
    /// Keeps the bytes up to the first NUL and zeroes the rest: a name read straight
    /// from `task->comm` (the `tp_btf` program) may hold a longer old name's bytes
    /// after its NUL, which `bpf_get_current_comm` would have cleared.
    pub fn new(raw: [u8; 16]) -> Self {
        // One 16-byte word, not a byte loop and a `memset`: this runs for every event.
        // `(v - 0x01..01) & !v & 0x80..80` marks zero bytes; its lowest mark is exact
        // (only bytes above a zero byte can be marked falsely, by the borrow).
        const LOW: u128 = u128::from_le_bytes([0x01; 16]);
        const HIGH: u128 = u128::from_le_bytes([0x80; 16]);
        let word = u128::from_le_bytes(raw);
        let zeros = word.wrapping_sub(LOW) & !word & HIGH;
        if zeros == 0 {
            return Self(raw);
        }
        let kept_bits = zeros.trailing_zeros() - 7;
        let keep = if kept_bits == 0 {
            0
        } else {
            u128::MAX >> (128 - kept_bits)
        };
        Self((word & keep).to_le_bytes())
    }

    pub fn from_str_lossy(name: &str) -> Self {
        let mut raw = [0u8; 16];
        let bytes = name.as_bytes();
        let len = bytes.len().min(15);
        raw[..len].copy_from_slice(&bytes[..len]);
        Self(raw)
    }

    pub fn as_bytes(&self) -> &[u8] {
        let len = self.0.iter().position(|&b| b == 0).unwrap_or(self.0.len());
        &self.0[..len]
    }

    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.as_bytes())
    }
}

impl fmt::Display for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.as_str())
    }
}

impl fmt::Debug for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// A task as `bpf_get_current_pid_tgid()`/`bpf_get_current_comm()` saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Task {
    /// The process id (kernel tgid).
    pub pid: u32,
    /// The thread id (kernel pid).
    pub tid: u32,
    pub comm: Comm,
}

/// Where a socket lives: its network namespace and cgroup, both read from the socket
/// itself (never from `current`, which is wrong in softirq; 0 means unknown), and the
/// host whose trace it came from when a replay reads several (namespace inodes and
/// cgroup ids of different hosts are unrelated, so they compare only within a host).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Scope {
    pub netns: u32,
    pub cgroup: u64,
    /// Not in the trace file: the replay sets it ([`TraceEvent::set_host`]).
    pub host: HostId,
}

impl Scope {
    /// A socket's namespace and cgroup on the first (or only) host.
    pub const fn new(netns: u32, cgroup: u64) -> Self {
        Self {
            netns,
            cgroup,
            host: HostId::FIRST,
        }
    }
}

/// An address of a tuple, or `None` where the kernel gave none: the unspecified
/// address (`0.0.0.0`, `::`) stands for "not given" (a child socket's peer before 6.15,
/// docs/kernel-facts.md §1.1; a listener's wildcard address or missing peer).
pub fn known_ip(ip: IpAddr) -> Option<IpAddr> {
    (!ip.is_unspecified()).then_some(ip)
}

/// A port of a tuple, or `None` where the kernel gave none: port 0 stands for "not
/// given" (a connect's source port before it is picked, docs/kernel-facts.md §1.1).
pub fn known_port(port: u16) -> Option<u16> {
    (port != 0).then_some(port)
}

/// The local and remote ends of a socket, as that socket sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SocketTuple {
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

impl SocketTuple {
    pub const UNSPECIFIED: Self = Self {
        local: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        remote: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
    };

    pub fn is_ipv6(&self) -> bool {
        self.local.is_ipv6()
    }

    /// How many of the four parts (addresses and ports) are known: the kernel gives
    /// some tuples before they are complete (a connect before its source port is
    /// picked, a child socket before its peer; docs/kernel-facts.md §1.1).
    pub fn known_parts(&self) -> u8 {
        let [local, remote] = [self.local, self.remote];
        u8::from(known_ip(local.ip()).is_some())
            + u8::from(known_port(local.port()).is_some())
            + u8::from(known_ip(remote.ip()).is_some())
            + u8::from(known_port(remote.port()).is_some())
    }

    /// The same connection seen from the other end.
    pub fn reversed(&self) -> Self {
        Self {
            local: self.remote,
            remote: self.local,
        }
    }
}

/// A trace-wide connection id. Socket addresses (`skaddr`) are reused within
/// milliseconds; this id is not: the recorder hands out a new one for every socket
/// lifetime (and for every reconnect on the same socket).
pub type ConnId = u64;

/// One socket lifetime as the trace knows it at the point of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conn {
    pub id: ConnId,
    pub scope: Scope,
    pub tuple: SocketTuple,
}

impl Conn {
    /// The connection among those of every host of the replay.
    pub const fn key(&self) -> ConnKey {
        ConnKey {
            host: self.scope.host,
            id: self.id,
        }
    }
}

/// One TCP state change of one socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// Nanoseconds since the trace started.
    pub ts_ns: u64,
    pub conn: Conn,
    pub old: TcpState,
    pub new: TcpState,
    pub context: ExecContext,
    /// The task that was current, recorded only outside softirq. Whether it owns the
    /// socket is decided by [`crate::owner::OwnerTracker`], not here.
    pub task: Option<Task>,
    /// The socket's counters, on the transitions that carry them (a side starts
    /// closing, the socket ends; [`probe_common::carries_counters`]) in traces that
    /// have them.
    pub counters: Option<TcpCounters>,
}

/// Why the kernel sent an RST (`enum sk_rst_reason`, 6.10+).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResetReason(pub u32);

impl ResetReason {
    pub const NOT_SPECIFIED: Self = Self(0);
    pub const NO_SOCKET: Self = Self(1);
    pub const TCP_ABORT_ON_DATA: Self = Self(8);
    pub const TCP_TIMEWAIT_SOCKET: Self = Self(9);
    pub const TCP_ABORT_ON_CLOSE: Self = Self(11);
    pub const TCP_ABORT_ON_LINGER: Self = Self(12);
    pub const TCP_STATE: Self = Self(14);
    /// How a trace file writes "the kernel gave no reason" (no `reason` field in
    /// `tcp:tcp_send_reset` before 6.10; docs/trace-format.md). Not a kernel value.
    pub const WIRE_UNKNOWN: u32 = u32::MAX;

    /// The kernel's name for the reason (from the 6.18 format file).
    pub fn name(self) -> &'static str {
        const NAMES: [&str; 26] = [
            "NOT_SPECIFIED",
            "NO_SOCKET",
            "TCP_INVALID_ACK_SEQUENCE",
            "TCP_RFC7323_PAWS",
            "TCP_TOO_OLD_ACK",
            "TCP_ACK_UNSENT_DATA",
            "TCP_FLAGS",
            "TCP_OLD_ACK",
            "TCP_ABORT_ON_DATA",
            "TCP_TIMEWAIT_SOCKET",
            "INVALID_SYN",
            "TCP_ABORT_ON_CLOSE",
            "TCP_ABORT_ON_LINGER",
            "TCP_ABORT_ON_MEMORY",
            "TCP_STATE",
            "TCP_KEEPALIVE_TIMEOUT",
            "TCP_DISCONNECT_WITH_DATA",
            "MPTCP_RST_EUNSPEC",
            "MPTCP_RST_EMPTCP",
            "MPTCP_RST_ERESOURCE",
            "MPTCP_RST_EPROHIBIT",
            "MPTCP_RST_EWQ2BIG",
            "MPTCP_RST_EBADPERF",
            "MPTCP_RST_EMIDDLEBOX",
            "ERROR",
            "MAX",
        ];
        NAMES.get(self.0 as usize).copied().unwrap_or("UNKNOWN")
    }
}

/// The socket an RST or error report belongs to: a traced connection when the recorder
/// could match it, otherwise only the addresses the kernel reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketRef {
    Conn(Conn),
    /// No traced socket: for a sent RST, `tuple.local` is our side (the kernel swaps the
    /// packet's addresses); `scope.netns` may still be known from the packet's device.
    Unmatched {
        scope: Scope,
        tuple: SocketTuple,
    },
}

impl SocketRef {
    pub const fn tuple(&self) -> SocketTuple {
        match self {
            Self::Conn(conn) => conn.tuple,
            Self::Unmatched { tuple, .. } => *tuple,
        }
    }

    pub const fn scope(&self) -> Scope {
        match self {
            Self::Conn(conn) => conn.scope,
            Self::Unmatched { scope, .. } => *scope,
        }
    }
}

/// `tcp:tcp_send_reset`: this host sent an RST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResetSent {
    pub ts_ns: u64,
    pub socket: SocketRef,
    /// Socket state when the RST went out (`None` when the kernel reported 0: no
    /// socket). For local aborts the socket is already CLOSE (docs/kernel-facts.md §3).
    pub state: Option<TcpState>,
    /// `None` when the kernel gives no reason (before 6.10): unknown, never a default.
    pub reason: Option<ResetReason>,
    pub context: ExecContext,
    pub task: Option<Task>,
}

/// `tcp:tcp_receive_reset`: the peer reset this socket (fires before the state change).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResetReceived {
    pub ts_ns: u64,
    pub conn: Conn,
    pub context: ExecContext,
    pub task: Option<Task>,
}

/// `sock:inet_sk_error_report`: the errno the application will get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketError {
    pub ts_ns: u64,
    pub socket: SocketRef,
    /// Positive errno: 111 ECONNREFUSED, 110 ETIMEDOUT, 104 ECONNRESET, 32 EPIPE...
    pub errno: i32,
    pub context: ExecContext,
    pub task: Option<Task>,
}

/// Why events were lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GapCause {
    /// The ring buffer was full (`bpf_ringbuf_reserve` failed).
    RingFull,
    /// The kernel program could not read the tracepoint record (older recorders only:
    /// the record is now loaded from the context, which cannot fail).
    ReadFailed,
    /// The recorder could not decode an event it received.
    DecodeFailed,
    /// Part of the trace file was unreadable (replay-side).
    CorruptBlock,
    /// The kernel skipped the program: the tracepoint fired while another BPF program
    /// was running on that CPU (an interrupt's softirq work nested inside it), which
    /// the kernel only counts (`recursion_misses`).
    Recursion,
    /// The kernel neither delivered nor counted these transitions: a socket's next
    /// event did not continue from its last state. `lost` is the fewest transitions
    /// that fit the gap. A classic tracepoint drops its event without a count when its
    /// per-context perf buffer is already in use (`perf_trace_buf_alloc`).
    Unreported,
    /// A part of a rotated recording was not given to the replay (replay-side): nothing
    /// is known of its events, not even how many there were (`lost` is 0).
    MissingPart,
}

impl GapCause {
    /// Every cause, in the order of [`Self::index`].
    pub const ALL: [Self; 7] = [
        Self::RingFull,
        Self::ReadFailed,
        Self::DecodeFailed,
        Self::CorruptBlock,
        Self::Recursion,
        Self::Unreported,
        Self::MissingPart,
    ];

    pub const fn index(self) -> usize {
        self as usize
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::RingFull => "ring_full",
            Self::ReadFailed => "read_failed",
            Self::DecodeFailed => "decode_failed",
            Self::CorruptBlock => "corrupt_block",
            Self::Recursion => "recursion",
            Self::Unreported => "unreported",
            Self::MissingPart => "missing_part",
        }
    }
}

/// Events that are missing from the trace, somewhere in `[from_ns, to_ns]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    pub from_ns: u64,
    pub to_ns: u64,
    pub lost: u64,
    /// The CPU whose events were lost, when known.
    pub cpu: Option<u32>,
    pub cause: GapCause,
    /// The host whose trace had the gap (not in the trace file: the replay sets it).
    pub host: HostId,
}

/// A socket that existed when recording started (from `sock_diag`), so a replay knows
/// the state of connections opened before the trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotSocket {
    /// Nanoseconds since trace start at which the snapshot was taken (≤ 0 is folded to 0).
    pub ts_ns: u64,
    pub conn: Conn,
    pub state: TcpState,
    /// The owning process found through `/proc/*/fd`, if any (TIME_WAIT sockets and
    /// sockets held only by the kernel have none); the one with the lowest pid when
    /// several hold it.
    pub owner: Option<Task>,
    /// The other processes that hold the socket (a listener shared by `fork()`).
    pub shared_with: SharedWith,
    /// Socket inode (0 for TIME_WAIT).
    pub inode: u32,
    pub uid: u32,
    /// For TIME_WAIT and sockets with a pending timer: milliseconds until it fires.
    pub timer_ms: Option<u32>,
    /// True when this entry comes from the snapshot taken at the end of the recording
    /// (the ground truth for TIME_WAIT, which no tracepoint reports).
    pub at_end: bool,
}

/// Everything a trace file holds, in file order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceEvent {
    Snapshot(SnapshotSocket),
    Transition(Transition),
    ResetSent(ResetSent),
    ResetReceived(ResetReceived),
    SocketError(SocketError),
    Lost(Gap),
}

impl TraceEvent {
    /// The addresses of the socket the event is about; `None` for a gap.
    pub const fn tuple(&self) -> Option<SocketTuple> {
        Some(match self {
            Self::Transition(t) => t.conn.tuple,
            Self::Snapshot(s) => s.conn.tuple,
            Self::ResetReceived(r) => r.conn.tuple,
            Self::ResetSent(r) => r.socket.tuple(),
            Self::SocketError(e) => e.socket.tuple(),
            Self::Lost(_) => return None,
        })
    }

    /// The scope of the socket the event is about; `None` for a gap.
    pub const fn scope(&self) -> Option<Scope> {
        Some(match self {
            Self::Snapshot(s) => s.conn.scope,
            Self::Transition(t) => t.conn.scope,
            Self::ResetReceived(r) => r.conn.scope,
            Self::ResetSent(r) => r.socket.scope(),
            Self::SocketError(e) => e.socket.scope(),
            Self::Lost(_) => return None,
        })
    }

    pub const fn ts_ns(&self) -> u64 {
        match self {
            Self::Snapshot(s) => s.ts_ns,
            Self::Transition(t) => t.ts_ns,
            Self::ResetSent(r) => r.ts_ns,
            Self::ResetReceived(r) => r.ts_ns,
            Self::SocketError(e) => e.ts_ns,
            Self::Lost(g) => g.to_ns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Comm;

    /// What `Comm::new` must do, one byte at a time.
    fn cut_at_nul(mut raw: [u8; 16]) -> [u8; 16] {
        if let Some(end) = raw.iter().position(|&b| b == 0) {
            raw[end..].fill(0);
        }
        raw
    }

    #[test]
    fn a_name_keeps_the_bytes_before_its_first_nul_and_nothing_after() {
        let mut cases: Vec<[u8; 16]> = vec![
            *b"java\0old-name!!\0",
            *b"\0abcdefghijklmno",
            *b"exactly-16-bytes",
            *b"fifteen-bytes!!\0",
            [0x80; 16],
            [0x01; 16],
            [0; 16],
        ];
        // A NUL at every position, with bytes that trip a careless zero test (0x80,
        // 0x01, 0xff) before and after it.
        for end in 0..16 {
            let mut raw = [0u8; 16];
            for (i, byte) in raw.iter_mut().enumerate() {
                *byte = [0x80, 0x01, 0xff, b'a'][i % 4];
            }
            raw[end] = 0;
            cases.push(raw);
            raw[(end + 1) % 16] = 0;
            cases.push(raw);
        }
        for raw in cases {
            assert_eq!(Comm::new(raw).0, cut_at_nul(raw), "{raw:?}");
        }
    }
}
