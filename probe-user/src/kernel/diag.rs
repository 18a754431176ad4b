//! Snapshot of existing TCP sockets in every network namespace the recorder can reach,
//! through `sock_diag` netlink, with owners found through `/proc/*/fd`.
//!
//! The tracepoints only show changes: without this, a replay would not know about
//! connections opened before the recording, nor about TIME_WAIT sockets (which no
//! tracepoint reports, docs/kernel-facts.md §1.3).

use std::{
    collections::{HashMap, HashSet},
    fs, io,
    net::{IpAddr, SocketAddr},
    os::{
        fd::AsRawFd as _,
        unix::fs::{MetadataExt as _, OpenOptionsExt as _},
    },
    path::{Path, PathBuf},
};

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload, Nla as _,
};
use netlink_packet_sock_diag::{
    SockDiagMessage,
    constants::{AF_INET, AF_INET6, IPPROTO_TCP},
    inet::{ExtensionFlags, InetRequest, InetResponse, SocketId, StateFlags, Timer, nlas::Nla},
};
use netlink_sys::{Socket, SocketAddr as NetlinkAddr, protocols::NETLINK_SOCK_DIAG};

use crate::model::{Comm, Scope, SharedWith, SocketTuple, Task, TcpState};

/// A socket found by `sock_diag` when recording started (or stopped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiagSocket {
    pub scope: Scope,
    pub tuple: SocketTuple,
    pub state: TcpState,
    pub inode: u32,
    pub uid: u32,
    pub timer_ms: Option<u32>,
    /// The process holding it (the lowest pid when several do; the others are in
    /// [`Snapshot::shared_with`]).
    pub owner: Option<Task>,
}

/// A network namespace and a path that opens it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    pub inode: u32,
    pub path: PathBuf,
}

/// Every network namespace reachable through `/proc/*/ns/net` and `/run/netns/*`.
pub fn namespaces() -> Vec<Namespace> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut add = |path: PathBuf| {
        if let Ok(meta) = fs::metadata(&path)
            && let Ok(inode) = u32::try_from(meta.ino())
            && seen.insert(inode)
        {
            out.push(Namespace { inode, path });
        }
    };
    add(PathBuf::from("/proc/self/ns/net"));
    if let Ok(entries) = fs::read_dir("/run/netns") {
        for entry in entries.flatten() {
            add(entry.path());
        }
    }
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
            {
                add(entry.path().join("ns/net"));
            }
        }
    }
    out
}

/// Resolves `--netns` arguments: the inode number of a network namespace that exists, a
/// name under `/run/netns` (as `ip netns` creates), or a path such as
/// `/proc/1234/ns/net`. Anything else (a file that is not a network namespace, an inode
/// no namespace has) is refused: it would record nothing.
pub fn resolve_namespace(spec: &str) -> io::Result<u32> {
    if let Ok(inode) = spec.parse::<u32>() {
        if namespaces().iter().any(|ns| ns.inode == inode) {
            return Ok(inode);
        }
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no network namespace has inode {inode} (none of /proc/*/ns/net and \
                 /run/netns/* is it; `lsns -t net` lists them)"
            ),
        ));
    }
    let path = if spec.contains('/') {
        PathBuf::from(spec)
    } else {
        Path::new("/run/netns").join(spec)
    };
    network_namespace_inode(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// `NSFS_MAGIC`: the file system of namespace files.
const NSFS_MAGIC: libc::c_long = 0x6e73_6673;
/// `NS_GET_NSTYPE` (`_IO(0xb7, 0x3)`, Linux 4.11): the `CLONE_NEW*` kind of a namespace.
const NS_GET_NSTYPE: libc::Ioctl = 0xb703;

/// The inode of the network namespace `path` opens, or why it is not one. The file is
/// first opened `O_PATH`: a FIFO or a device is never really opened.
fn network_namespace_inode(path: &Path) -> io::Result<u32> {
    let not_netns = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a network namespace (expected /proc/PID/ns/net, /run/netns/NAME or an inode)",
        )
    };
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(path)?;
    // SAFETY: statfs is plain data, filled by fstatfs on a valid fd.
    let mut statfs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and buffer.
    if unsafe { libc::fstatfs(file.as_raw_fd(), &raw mut statfs) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(
        clippy::useless_conversion,
        reason = "f_type is i64 or u32 depending on the target"
    )]
    let is_nsfs = libc::c_long::try_from(statfs.f_type).is_ok_and(|t| t == NSFS_MAGIC);
    if !is_nsfs {
        return Err(not_netns());
    }
    // A namespace file, safe to open for real, says which kind it is.
    let namespace = fs::File::open(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    // SAFETY: an ioctl without argument on a valid fd.
    let kind = unsafe { libc::ioctl(namespace.as_raw_fd(), NS_GET_NSTYPE) };
    if kind != libc::CLONE_NEWNET {
        return Err(not_netns());
    }
    u32::try_from(namespace.metadata()?.ino())
        .map_err(|_| io::Error::other("namespace inode does not fit 32 bits"))
}

/// The inode of the recorder's own network namespace.
pub fn own_namespace() -> Option<u32> {
    fs::metadata("/proc/self/ns/net")
        .ok()
        .and_then(|m| u32::try_from(m.ino()).ok())
}

fn state(raw: u8) -> Option<TcpState> {
    TcpState::from_kernel(u32::from(raw))
}

fn canonical(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip.to_canonical(), port)
}

/// `INET_DIAG_CGROUP_ID` (`include/uapi/linux/inet_diag.h`): the socket's cgroup v2
/// id, which kernels since 5.7 send with every full socket (not with TIME_WAIT or
/// request sockets).
const INET_DIAG_CGROUP_ID: u16 = 21;

/// The cgroup v2 id of a dumped socket; 0 when the kernel did not send one.
fn cgroup_id(response: &InetResponse) -> u64 {
    response
        .nlas
        .iter()
        .find_map(|nla| match nla {
            Nla::Other(attr) if attr.kind() == INET_DIAG_CGROUP_ID && attr.value_len() == 8 => {
                let mut raw = [0u8; 8];
                attr.emit_value(&mut raw);
                Some(u64::from_ne_bytes(raw))
            }
            _ => None,
        })
        .unwrap_or(0)
}

/// The length of a netlink message header.
const NLMSG_HDRLEN: usize = 16;
/// Offsets in `struct inet_diag_msg`: `idiag_timer`, and `idiag_expires` after the
/// 48-byte `inet_diag_sockid`.
const IDIAG_TIMER: usize = 2;
const IDIAG_EXPIRES: usize = 52;
/// `idiag_timer` of a TIME_WAIT socket.
const TIMER_TIME_WAIT: u8 = 3;

/// A TIME_WAIT socket's milliseconds left, from the raw reply `message` (netlink header
/// included). The sock_diag crate parses `idiag_expires` for every timer but this one,
/// and without it a replay assumes 60 s from the start.
fn time_wait_left_ms(message: &[u8]) -> Option<u32> {
    let msg = message.get(NLMSG_HDRLEN..)?;
    if *msg.get(IDIAG_TIMER)? != TIMER_TIME_WAIT {
        return None;
    }
    let expires = msg.get(IDIAG_EXPIRES..IDIAG_EXPIRES + 4)?;
    Some(u32::from_ne_bytes(expires.try_into().ok()?))
}

fn to_diag_socket(
    netns: u32,
    response: &InetResponse,
    time_wait_left_ms: Option<u32>,
) -> Option<DiagSocket> {
    let header = &response.header;
    let id = &header.socket_id;
    let timer_ms = match header.timer {
        Some(Timer::Retransmit(d, _) | Timer::KeepAlive(d) | Timer::Probe(d)) => {
            u32::try_from(d.as_millis()).ok()
        }
        Some(Timer::TimeWait) => time_wait_left_ms,
        None => None,
    };
    Some(DiagSocket {
        scope: Scope {
            cgroup: cgroup_id(response),
            ..Scope::new(netns, 0)
        },
        tuple: SocketTuple {
            local: canonical(id.source_address, id.source_port),
            remote: canonical(id.destination_address, id.destination_port),
        },
        state: state(header.state)?,
        inode: header.inode,
        uid: header.uid,
        timer_ms,
        owner: None,
    })
}

/// Hands every TCP socket of the calling thread's network namespace to `each`.
fn dump_current_namespace(netns: u32, each: &mut dyn FnMut(DiagSocket)) -> io::Result<()> {
    let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
    socket.bind_auto()?;
    socket.connect(&NetlinkAddr::new(0, 0))?;
    for family in [AF_INET, AF_INET6] {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let mut request = NetlinkMessage::new(
            header,
            SockDiagMessage::InetRequest(InetRequest {
                family,
                protocol: IPPROTO_TCP,
                extensions: ExtensionFlags::empty(),
                states: StateFlags::all(),
                socket_id: if family == AF_INET {
                    SocketId::new_v4()
                } else {
                    SocketId::new_v6()
                },
            })
            .into(),
        );
        request.finalize();
        let mut buf = vec![0u8; request.buffer_len()];
        request.serialize(&mut buf);
        socket.send(&buf, 0)?;

        let mut receive = vec![0u8; 1 << 16];
        loop {
            let size = socket.recv(&mut &mut receive[..], 0)?;
            if size == 0 || read_reply(netns, &receive[..size], each)? {
                break;
            }
        }
    }
    Ok(())
}

/// The sockets of one `recv` of a dump reply, to `each`; true once the dump is done.
fn read_reply(netns: u32, reply: &[u8], each: &mut dyn FnMut(DiagSocket)) -> io::Result<bool> {
    let mut offset = 0;
    while offset < reply.len() {
        let raw = &reply[offset..];
        let message = NetlinkMessage::<SockDiagMessage>::deserialize(raw)
            .map_err(|e| io::Error::other(format!("sock_diag reply: {e}")))?;
        let len = message.header.length as usize;
        match message.payload {
            NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response)) => {
                let left = time_wait_left_ms(&raw[..len.min(raw.len())]);
                if let Some(socket) = to_diag_socket(netns, &response, left) {
                    each(socket);
                }
            }
            NetlinkPayload::Done(_) => return Ok(true),
            NetlinkPayload::Error(err) => {
                return Err(io::Error::other(format!("sock_diag error: {err:?}")));
            }
            _ => {}
        }
        if len == 0 {
            break;
        }
        offset += len;
    }
    Ok(false)
}

/// Runs `work` in a helper thread that joins `ns`, so the caller's own namespace is
/// never changed (what a thread reads under `/proc/sys/net` is its namespace's).
pub fn in_namespace<T: Send>(
    ns: &Namespace,
    work: impl FnOnce() -> io::Result<T> + Send,
) -> io::Result<T> {
    let file = fs::File::open(&ns.path)?;
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                // SAFETY: setns on a valid namespace fd, in a thread that exits afterwards.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                work()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")))
    })
}

/// Hands one namespace's TCP sockets to `each`. Its own namespace needs no setns (nor
/// the CAP_SYS_ADMIN setns takes).
fn dump_namespace(ns: &Namespace, each: &mut (dyn FnMut(DiagSocket) + Send)) -> io::Result<()> {
    let inode = ns.inode;
    if own_namespace() == Some(inode) {
        return dump_current_namespace(inode, each);
    }
    in_namespace(ns, move || dump_current_namespace(inode, each))
}

/// Every process's pid and `/proc/PID` directory.
pub fn processes() -> impl Iterator<Item = (u32, PathBuf)> {
    fs::read_dir("/proc")
        .into_iter()
        .flat_map(|entries| entries.flatten())
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((pid, entry.path()))
        })
}

/// Maps socket inodes to every process holding them, scanning `/proc/*/fd`: a listener
/// shared by `fork()` (a pre-forking server, nginx's master and workers) is held by
/// several, and which of them will accept a connection is not known.
fn socket_owners(wanted: &HashSet<u32>) -> HashMap<u32, Vec<Task>> {
    let mut owners: HashMap<u32, Vec<Task>> = HashMap::new();
    if wanted.is_empty() {
        return owners;
    }
    for (pid, proc_dir) in processes() {
        let Ok(fds) = fs::read_dir(proc_dir.join("fd")) else {
            continue;
        };
        let mut comm = None;
        for fd in fds.flatten() {
            let Ok(target) = fs::read_link(fd.path()) else {
                continue;
            };
            let Some(inode) = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u32>().ok())
            else {
                continue;
            };
            if !wanted.contains(&inode) {
                continue;
            }
            let holders = owners.entry(inode).or_default();
            if holders.iter().any(|t| t.pid == pid) {
                continue;
            }
            let comm = *comm.get_or_insert_with(|| {
                let name = fs::read_to_string(proc_dir.join("comm")).unwrap_or_default();
                Comm::from_str_lossy(name.trim_end())
            });
            holders.push(Task {
                pid,
                tid: pid,
                comm,
            });
        }
    }
    owners
}

/// The first owner (lowest pid) and the other holders of a socket.
fn owner_and_others(holders: &[Task]) -> Option<(Task, SharedWith)> {
    let first = holders.iter().min_by_key(|t| t.pid)?;
    Some((*first, SharedWith::of(first, holders)))
}

/// The result of a snapshot: sockets, and the namespaces that could not be read.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub sockets: Vec<DiagSocket>,
    /// By socket inode: the other processes holding a socket that several hold (a
    /// listener shared by `fork()`). Apart from the sockets, which are nearly all held
    /// by one process or none, and can be a million at the end.
    pub shared_with: HashMap<u32, SharedWith>,
    pub warnings: Vec<String>,
}

/// Hands the TCP sockets of every reachable namespace (or only of `netns`, if not
/// empty) to `each`; returns the namespaces that could not be read.
fn snapshot_each(netns: &[u32], each: &mut (dyn FnMut(DiagSocket) + Send)) -> Vec<String> {
    let mut warnings = Vec::new();
    for ns in namespaces() {
        if !netns.is_empty() && !netns.contains(&ns.inode) {
            continue;
        }
        if let Err(err) = dump_namespace(&ns, each) {
            warnings.push(format!(
                "network namespace {} ({}): {err}",
                ns.inode,
                ns.path.display()
            ));
        }
    }
    warnings
}

/// Sockets in flight between the dumping thread and the consumer of
/// [`snapshot_streamed`]: what bounds its memory.
const STREAM_CHUNK: usize = 4096;

/// Snapshots like [`snapshot`] without owners, handing the sockets to `consume` as
/// they are read instead of collecting them: a namespace after heavy churn holds a
/// TIME_WAIT socket for every connection of the last minute (131,072 by default).
/// Returns what `consume` returned and the namespaces that could not be read.
pub fn snapshot_streamed<R>(
    netns: &[u32],
    consume: impl FnOnce(&mut dyn Iterator<Item = DiagSocket>) -> R,
) -> (R, Vec<String>) {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<DiagSocket>>(2);
    std::thread::scope(|scope| {
        let dumper = scope.spawn(move || {
            let mut chunk = Vec::with_capacity(STREAM_CHUNK);
            let mut receiver_gone = false;
            let warnings = snapshot_each(netns, &mut |socket| {
                chunk.push(socket);
                if chunk.len() == STREAM_CHUNK && !receiver_gone {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(STREAM_CHUNK));
                    receiver_gone = tx.send(full).is_err();
                }
            });
            if !receiver_gone {
                let _sent = tx.send(chunk);
            }
            warnings
        });
        let result = consume(&mut rx.into_iter().flatten());
        let warnings = dumper
            .join()
            .unwrap_or_else(|_| vec!["the snapshot thread panicked".to_owned()]);
        (result, warnings)
    })
}

/// Snapshots every reachable namespace (or only `netns`, if not empty).
pub fn snapshot(netns: &[u32], with_owners: bool) -> Snapshot {
    let mut sockets = Vec::new();
    let warnings = snapshot_each(netns, &mut |socket| sockets.push(socket));
    let mut snapshot = Snapshot {
        sockets,
        shared_with: HashMap::new(),
        warnings,
    };
    if with_owners {
        let wanted: HashSet<u32> = snapshot
            .sockets
            .iter()
            .map(|s| s.inode)
            .filter(|&i| i != 0)
            .collect();
        let owners = socket_owners(&wanted);
        for socket in &mut snapshot.sockets {
            let Some((owner, others)) = owners.get(&socket.inode).and_then(|h| owner_and_others(h))
            else {
                continue;
            };
            socket.owner = Some(owner);
            if !others.is_empty() {
                snapshot.shared_with.insert(socket.inode, others);
            }
        }
    }
    snapshot
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sock_diag reply holding one TIME_WAIT socket with `left_ms` to live, as the
    /// kernel sends it.
    fn time_wait_reply(left_ms: u32) -> Vec<u8> {
        let mut msg = vec![0u8; 72];
        msg[0] = AF_INET;
        msg[1] = 6; // TCP_TIME_WAIT
        msg[2] = TIMER_TIME_WAIT;
        msg[4..6].copy_from_slice(&2181u16.to_be_bytes());
        msg[6..8].copy_from_slice(&40000u16.to_be_bytes());
        msg[8..12].copy_from_slice(&[10, 0, 0, 1]);
        msg[24..28].copy_from_slice(&[10, 0, 0, 2]);
        msg[IDIAG_EXPIRES..IDIAG_EXPIRES + 4].copy_from_slice(&left_ms.to_ne_bytes());
        let mut reply = Vec::new();
        reply.extend_from_slice(&(NLMSG_HDRLEN as u32 + 72).to_ne_bytes());
        reply.extend_from_slice(&20u16.to_ne_bytes()); // SOCK_DIAG_BY_FAMILY
        reply.extend_from_slice(&2u16.to_ne_bytes()); // NLM_F_MULTI
        reply.extend_from_slice(&[0; 8]);
        reply.extend_from_slice(&msg);
        reply
    }

    #[test]
    fn a_time_wait_socket_keeps_the_time_it_has_left() {
        let mut out = Vec::new();
        assert!(!read_reply(7, &time_wait_reply(11_500), &mut |s| out.push(s)).unwrap());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].state, TcpState::TimeWait);
        assert_eq!(out[0].timer_ms, Some(11_500));
        assert_eq!(out[0].tuple.local, "10.0.0.1:2181".parse().unwrap());
        // Another timer type is the crate's to read; no timer is no time.
        let mut other = time_wait_reply(11_500);
        other[NLMSG_HDRLEN + IDIAG_TIMER] = 0;
        assert_eq!(time_wait_left_ms(&other), None);
        assert_eq!(time_wait_left_ms(&other[..20]), None);
    }

    #[test]
    fn netns_arguments_must_name_a_network_namespace() {
        let own = own_namespace().unwrap();
        assert_eq!(resolve_namespace("/proc/self/ns/net").unwrap(), own);
        assert_eq!(resolve_namespace(&own.to_string()).unwrap(), own);
        for (spec, expected) in [
            ("/etc/passwd", "not a network namespace"),
            ("/proc/self/ns/uts", "not a network namespace"),
            ("12345", "no network namespace has inode 12345"),
            ("no-such-name", "No such file"),
        ] {
            let err = resolve_namespace(spec).unwrap_err().to_string();
            assert!(err.contains(expected), "{spec}: {err}");
        }
    }
}
