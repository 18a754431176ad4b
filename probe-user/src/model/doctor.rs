//! What `tcpchurn doctor` found on a node: whether tcpchurn can record there, the TCP
//! settings that decide TIME_WAIT and reconnect behaviour, and the sockets per state
//! with the holders of TIME_WAIT and CLOSE_WAIT. Rendered as text and as JSON (these
//! field names are the JSON keys).

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DoctorReport {
    pub host: DoctorHost,
    /// No check failed: `tcpchurn record` can run here as this process runs.
    pub can_record: bool,
    pub checks: Vec<Check>,
    /// Programs other processes keep on the tracepoints tcpchurn uses.
    pub attached_programs: Vec<AttachedProgram>,
    /// The doctor's own network namespace's settings.
    pub sysctls: Vec<Sysctl>,
    pub sockets: SocketCensus,
    /// What could not be read (namespaces, `/proc` entries).
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DoctorHost {
    pub hostname: String,
    pub kernel: String,
    pub machine: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "FAIL",
        }
    }
}

/// One "can it record here" check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// `kernel`, `privileges`, `btf`, `tracefs`, `tracepoints`, `memlock`, `lockdown`,
    /// `other_programs`.
    pub name: &'static str,
    pub status: Status,
    /// What was found.
    pub found: String,
    /// Why it matters, or what to do.
    pub note: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachKind {
    /// A classic tracepoint (perf event).
    Tracepoint,
    RawTracepoint,
    /// A BTF-enabled raw tracepoint.
    TpBtf,
}

impl AttachKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Tracepoint => "tracepoint",
            Self::RawTracepoint => "raw_tracepoint",
            Self::TpBtf => "tp_btf",
        }
    }
}

/// A BPF program another process keeps attached to a tracepoint tcpchurn uses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AttachedProgram {
    pub pid: u32,
    pub comm: String,
    pub program_id: u32,
    /// The program's name as loaded (unknown without CAP_SYS_ADMIN).
    pub program_name: Option<String>,
    pub kind: AttachKind,
    pub tracepoint: String,
}

/// A sysctl, its value here, and what it does and does not do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Sysctl {
    /// Dotted name, e.g. `net.ipv4.tcp_tw_reuse`.
    pub name: &'static str,
    /// `None`: this kernel has no such sysctl.
    pub value: Option<String>,
    pub status: Status,
    pub notes: Vec<String>,
}

/// Sockets per state in every network namespace the doctor could reach.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SocketCensus {
    /// State name (`TIME_WAIT`) → sockets, over all namespaces.
    pub totals: BTreeMap<&'static str, u64>,
    pub namespaces: Vec<NamespaceCensus>,
    /// The largest groups of TIME_WAIT sockets, then of CLOSE_WAIT sockets.
    pub holders: Vec<Holder>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NamespaceCensus {
    pub inode: u32,
    /// How the doctor reached it: `/proc/PID/ns/net` or `/run/netns/NAME`.
    pub path: String,
    /// A process in it (`pid 1234 (java)`), or the `ip netns` name.
    pub label: Option<String>,
    /// The doctor's own namespace.
    pub own: bool,
    pub counts: BTreeMap<&'static str, u64>,
    /// Sysctls whose value differs from the doctor's own namespace.
    pub sysctl_differences: BTreeMap<&'static str, Option<String>>,
}

/// Where a holder's owner comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HolderSource {
    /// The process has the socket open (`/proc/PID/fd`).
    Fd,
    /// The socket was accepted on a port this process listens on: a TIME_WAIT socket
    /// has no file descriptor, and its local port is the listener's.
    Listener,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct HolderOwner {
    pub pid: u32,
    pub comm: String,
    pub source: HolderSource,
}

/// Sockets in one state grouped by namespace, owner and endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Holder {
    pub state: &'static str,
    pub netns: u32,
    pub count: u64,
    /// Unknown for a client's TIME_WAIT: no process holds it, and which one closed is
    /// only in a recording.
    pub owner: Option<HolderOwner>,
    /// The listening address for server-side sockets; `None` on the client side (where
    /// local ports are ephemeral).
    pub local: Option<String>,
    /// The client's address for server-side sockets, the server's address and port on
    /// the client side.
    pub peer: String,
}
