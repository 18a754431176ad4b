//! The payload of a `Records` block: small per-block dictionaries, then one compact
//! record per event.
//!
//! ```text
//! payload  := defs_len:u32le defs records
//! defs     := n:var scope{n}   n:var task{n}   n:var conn{n}
//! scope    := netns:var cgroup:var
//! task     := pid:var tid:var comm_len:u8 comm
//! conn     := id_delta:zigzag scope_index:var tuple
//! tuple    := family:u8(4|6) local_addr(4|16) local_port:u16be remote_addr remote_port:u16be
//! record   := tag:u8 dt:zigzag ...          (dt: ns since the previous record's time)
//! ```
//!
//! Since format 1.1 the definitions may end with sections about some of the records
//! (a transition's counters, a snapshot socket's other holders, the connections a block
//! leaves open): [`super::sections`].
//!
//! Each block is self-contained: a connection that appears in several blocks is
//! defined again in each (with its latest tuple), so a damaged block loses only its own
//! events, and a reader needs only its dictionaries (and, for the connections it leaves
//! open, the next blocks' definitions).
//! Because the definitions are written when the block is closed, a connect whose
//! `SYN_SENT` event carried source port 0 gets its real port in the same block. When
//! the block closes first, the block says which of its connections are still open
//! (a section): the reader completes them from the next blocks' definitions
//! ([`RecordsDecoder::complete_from`]) before it hands out their events.

use std::net::{IpAddr, SocketAddr};

use bytes::{BufMut, BytesMut};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::{
    model::{
        Comm, Conn, ConnId, ExecContext, Gap, GapCause, ResetReason, ResetReceived, ResetSent,
        Scope, SnapshotSocket, SocketError, SocketRef, SocketTuple, Task, TcpState, TraceEvent,
        Transition,
    },
    trace::{
        block::{BLOCK_HEADER_LEN, BlockKind, seal},
        sections::{Sections, SectionsEncoder},
        varint::{Cursor, put_i64, put_u64},
    },
};

const TAG_TRANSITION: u8 = 1;
const TAG_RESET_SENT: u8 = 2;
const TAG_RESET_RECEIVED: u8 = 3;
const TAG_SOCKET_ERROR: u8 = 4;
const TAG_GAP: u8 = 5;
const TAG_SNAPSHOT: u8 = 6;

const SNAPSHOT_AT_END: u8 = 1;
/// Remote addresses of unmatched sockets kept per block for naming (a flood of
/// refused connects from one address needs one).
const MAX_UNMATCHED_REMOTES: usize = 4096;

/// What the records pending in a block refer to: the keys a recorder names in the
/// `Workloads` block written before it.
#[derive(Clone, Copy, Debug)]
pub struct BlockKeys<'a> {
    pub scopes: &'a [Scope],
    pub tasks: &'a [Task],
    pub conns: &'a [Conn],
    /// The remote addresses of sockets the recorder could not match (refused connects).
    pub unmatched_remotes: &'a [IpAddr],
}

/// Collects events into one `Records` block.
#[derive(Debug, Default)]
pub struct RecordsEncoder {
    scopes: FxHashMap<Scope, u32>,
    scope_list: Vec<Scope>,
    tasks: FxHashMap<Task, u32>,
    task_list: Vec<Task>,
    conns: FxHashMap<ConnId, u32>,
    conn_list: Vec<Conn>,
    /// Connections whose latest event left their tuple open: a connect before its
    /// source port, a child socket before its peer.
    open: FxHashSet<ConnId>,
    unmatched_remotes: Vec<IpAddr>,
    body: Vec<u8>,
    sections: SectionsEncoder,
    first_ts: Option<u64>,
    last_ts: u64,
    records: u32,
}

impl RecordsEncoder {
    pub fn records(&self) -> u32 {
        self.records
    }

    /// The time of the first pending record.
    pub fn first_ts(&self) -> Option<u64> {
        self.first_ts
    }

    /// The keys of the pending records.
    pub fn keys(&self) -> BlockKeys<'_> {
        BlockKeys {
            scopes: &self.scope_list,
            tasks: &self.task_list,
            conns: &self.conn_list,
            unmatched_remotes: &self.unmatched_remotes,
        }
    }

    /// Approximate encoded size so far.
    pub fn encoded_len(&self) -> usize {
        self.body.len()
            + self.conn_list.len() * 20
            + self.task_list.len() * 24
            + self.sections.encoded_len()
    }

    fn scope_index(&mut self, scope: Scope) -> u32 {
        let next = u32::try_from(self.scope_list.len()).unwrap_or(u32::MAX);
        *self.scopes.entry(scope).or_insert_with(|| {
            self.scope_list.push(scope);
            next
        })
    }

    fn conn_index(&mut self, conn: &Conn) -> u32 {
        if !self.open.is_empty() && is_complete(&conn.tuple) {
            self.open.remove(&conn.id);
        }
        if let Some(&index) = self.conns.get(&conn.id) {
            // The latest tuple wins: it fixes the source port of a SYN_SENT seen earlier.
            // A complete one with the same scope can only be the same again.
            if let Some(known) = self.conn_list.get_mut(index as usize)
                && !(known.tuple.known_parts() == 4 && known.scope == conn.scope)
            {
                *known = *conn;
            }
            return index;
        }
        let index = u32::try_from(self.conn_list.len()).unwrap_or(u32::MAX);
        self.conns.insert(conn.id, index);
        self.conn_list.push(*conn);
        index
    }

    /// `(task index + 1) << 2 | context`, 0 task meaning none.
    fn actor(&mut self, context: ExecContext, task: Option<&Task>) -> u64 {
        let task_ref = match task {
            Some(task) => {
                let next = u32::try_from(self.task_list.len()).unwrap_or(u32::MAX);
                let index = *self.tasks.entry(*task).or_insert_with(|| {
                    self.task_list.push(*task);
                    next
                });
                u64::from(index) + 1
            }
            None => 0,
        };
        (task_ref << 2) | context as u64
    }

    fn begin(&mut self, tag: u8, ts_ns: u64) {
        if self.first_ts.is_none() {
            self.first_ts = Some(ts_ns);
            self.last_ts = ts_ns;
        }
        self.body.push(tag);
        put_i64(&mut self.body, ts_ns.wrapping_sub(self.last_ts) as i64);
        self.last_ts = ts_ns;
        self.records += 1;
    }

    fn socket_ref(&mut self, socket: &SocketRef) {
        match socket {
            SocketRef::Conn(conn) => {
                let index = self.conn_index(conn);
                put_u64(&mut self.body, u64::from(index) + 1);
            }
            SocketRef::Unmatched { scope, tuple } => {
                let scope = self.scope_index(*scope);
                if self.unmatched_remotes.len() < MAX_UNMATCHED_REMOTES {
                    self.unmatched_remotes.push(tuple.remote.ip());
                }
                put_u64(&mut self.body, 0);
                put_u64(&mut self.body, u64::from(scope));
                put_tuple(&mut self.body, tuple);
            }
        }
    }

    pub fn push(&mut self, event: &TraceEvent) {
        match event {
            TraceEvent::Transition(t) => {
                self.begin(TAG_TRANSITION, t.ts_ns);
                let conn = self.conn_index(&t.conn);
                // Only the start of a connection has a tuple the kernel completes
                // later; a socket that ends without it never gets one.
                // (`conn_index` already took a complete tuple out of `open`.)
                if !is_complete(&t.conn.tuple) {
                    if matches!(t.new, TcpState::SynSent | TcpState::SynRecv) {
                        self.open.insert(t.conn.id);
                    } else {
                        self.open.remove(&t.conn.id);
                    }
                }
                put_u64(&mut self.body, u64::from(conn));
                self.body.push(((t.old as u8) << 4) | t.new as u8);
                let actor = self.actor(t.context, t.task.as_ref());
                put_u64(&mut self.body, actor);
                if let Some(counters) = &t.counters {
                    self.sections.counters(self.records - 1, counters);
                }
            }
            TraceEvent::ResetSent(r) => {
                self.begin(TAG_RESET_SENT, r.ts_ns);
                self.socket_ref(&r.socket);
                self.body.push(r.state.map_or(0, |s| s as u8));
                let reason = r.reason.map_or(ResetReason::WIRE_UNKNOWN, |r| r.0);
                put_u64(&mut self.body, u64::from(reason));
                let actor = self.actor(r.context, r.task.as_ref());
                put_u64(&mut self.body, actor);
            }
            TraceEvent::ResetReceived(r) => {
                self.begin(TAG_RESET_RECEIVED, r.ts_ns);
                let conn = self.conn_index(&r.conn);
                put_u64(&mut self.body, u64::from(conn));
                let actor = self.actor(r.context, r.task.as_ref());
                put_u64(&mut self.body, actor);
            }
            TraceEvent::SocketError(e) => {
                self.begin(TAG_SOCKET_ERROR, e.ts_ns);
                self.socket_ref(&e.socket);
                put_i64(&mut self.body, i64::from(e.errno));
                let actor = self.actor(e.context, e.task.as_ref());
                put_u64(&mut self.body, actor);
            }
            TraceEvent::Lost(gap) => {
                self.begin(TAG_GAP, gap.to_ns);
                put_u64(&mut self.body, gap.to_ns.saturating_sub(gap.from_ns));
                put_u64(&mut self.body, gap.lost);
                put_u64(&mut self.body, gap.cpu.map_or(0, |c| u64::from(c) + 1));
                self.body.push(match gap.cause {
                    GapCause::RingFull => 1,
                    GapCause::ReadFailed => 2,
                    GapCause::DecodeFailed => 3,
                    GapCause::CorruptBlock => 4,
                    GapCause::Recursion => 5,
                    GapCause::Unreported => 6,
                    GapCause::MissingPart => 7,
                });
            }
            TraceEvent::Snapshot(s) => {
                self.begin(TAG_SNAPSHOT, s.ts_ns);
                let conn = self.conn_index(&s.conn);
                put_u64(&mut self.body, u64::from(conn));
                self.body.push(s.state as u8);
                self.body.push(if s.at_end { SNAPSHOT_AT_END } else { 0 });
                let owner = self.actor(ExecContext::Task, s.owner.as_ref());
                put_u64(&mut self.body, owner);
                put_u64(&mut self.body, u64::from(s.inode));
                put_u64(&mut self.body, u64::from(s.uid));
                put_u64(&mut self.body, s.timer_ms.map_or(0, |ms| u64::from(ms) + 1));
                self.sections.holders(self.records - 1, &s.shared_with);
            }
        }
    }

    /// Appends the pending records to `out` as one framed `Records` block, and resets
    /// the encoder for the next block. Returns false when nothing is pending.
    pub fn finish_into(&mut self, out: &mut BytesMut) -> bool {
        if self.records == 0 {
            return false;
        }
        // Scopes referenced only by connections are added now.
        let conns = std::mem::take(&mut self.conn_list);
        let conn_scopes: Vec<u32> = conns.iter().map(|c| self.scope_index(c.scope)).collect();

        let start = out.len();
        out.reserve(
            BLOCK_HEADER_LEN
                + 4
                + conns.len() * 20
                + self.task_list.len() * 24
                + self.sections.encoded_len()
                + self.body.len(),
        );
        out.put_bytes(0, BLOCK_HEADER_LEN);
        let defs_at = out.len();
        out.put_u32_le(0);
        let defs = &mut *out;
        put_u64(defs, self.scope_list.len() as u64);
        for scope in &self.scope_list {
            put_u64(defs, u64::from(scope.netns));
            put_u64(defs, scope.cgroup);
        }
        put_u64(defs, self.task_list.len() as u64);
        for task in &self.task_list {
            put_u64(defs, u64::from(task.pid));
            put_u64(defs, u64::from(task.tid));
            let comm = task.comm.as_bytes();
            defs.put_u8(u8::try_from(comm.len()).unwrap_or(0));
            defs.put_slice(comm);
        }
        put_u64(defs, conns.len() as u64);
        let mut previous: ConnId = 0;
        for (index, (conn, scope)) in (0u32..).zip(conns.iter().zip(conn_scopes)) {
            put_i64(defs, conn.id.wrapping_sub(previous) as i64);
            previous = conn.id;
            put_u64(defs, u64::from(scope));
            put_tuple(defs, &conn.tuple);
            if self.open.contains(&conn.id) {
                self.sections.open_connection(index);
            }
        }
        self.sections.finish_into(defs);
        let defs_len = u32::try_from(out.len() - defs_at - 4).unwrap_or(u32::MAX);
        out[defs_at..defs_at + 4].copy_from_slice(&defs_len.to_le_bytes());
        out.put_slice(&self.body);
        seal(
            &mut out[start..],
            BlockKind::Records,
            self.records,
            self.first_ts.unwrap_or(0),
        );
        *self = Self {
            body: Vec::with_capacity(self.body.capacity()),
            ..Self::default()
        };
        true
    }

    /// The pending records as a bare payload: `(payload, records, first_ts_ns)`.
    #[cfg(test)]
    pub fn finish(&mut self) -> Option<(Vec<u8>, u32, u64)> {
        let (records, first_ts) = (self.records, self.first_ts.unwrap_or(0));
        let mut out = BytesMut::new();
        self.finish_into(&mut out)
            .then(|| (out[BLOCK_HEADER_LEN..].to_vec(), records, first_ts))
    }
}

/// Both ports known: what the kernel completes later is always a port (with its
/// address, for a child's peer).
fn is_complete(tuple: &SocketTuple) -> bool {
    tuple.local.port() != 0 && tuple.remote.port() != 0
}

fn put_tuple(out: &mut impl BufMut, tuple: &SocketTuple) {
    match (tuple.local.ip(), tuple.remote.ip()) {
        (IpAddr::V4(local), IpAddr::V4(remote)) => {
            out.put_u8(4);
            out.put_slice(&local.octets());
            out.put_u16(tuple.local.port());
            out.put_slice(&remote.octets());
            out.put_u16(tuple.remote.port());
        }
        (local, remote) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.put_u8(6);
            out.put_slice(&v6(local).octets());
            out.put_u16(tuple.local.port());
            out.put_slice(&v6(remote).octets());
            out.put_u16(tuple.remote.port());
        }
    }
}

/// Why a `Records` payload could not be decoded (the reader turns this into a gap).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("undecodable record data at payload byte {offset}: {reason}")]
pub struct RecordsError {
    pub offset: usize,
    pub reason: &'static str,
}

/// Decodes one `Records` payload, one event at a time.
#[derive(Debug)]
pub struct RecordsDecoder {
    payload: Vec<u8>,
    pos: usize,
    scopes: Vec<Scope>,
    tasks: Vec<Task>,
    conns: Vec<Conn>,
    /// Indices of connections still to complete from later blocks.
    open: Vec<u32>,
    sections: Sections,
    /// Position in the block of the next record.
    record: u32,
    ts: u64,
}

fn get_tuple(cursor: &mut Cursor<'_>) -> Option<SocketTuple> {
    /// One end: an address of `N` bytes, then the port.
    fn end<const N: usize>(cursor: &mut Cursor<'_>) -> Option<(IpAddr, u16)>
    where
        IpAddr: From<[u8; N]>,
    {
        Some((IpAddr::from(cursor.array::<N>()?), cursor.u16_be()?))
    }
    let ((local, local_port), (remote, remote_port)) = match cursor.u8()? {
        4 => (end::<4>(cursor)?, end::<4>(cursor)?),
        6 => (end::<16>(cursor)?, end::<16>(cursor)?),
        _ => return None,
    };
    Some(SocketTuple {
        local: SocketAddr::new(local, local_port),
        remote: SocketAddr::new(remote, remote_port),
    })
}

/// Bounds a count read from the file by what the remaining bytes could hold, so a
/// corrupt count cannot trigger a huge allocation.
fn bounded_count(cursor: &mut Cursor<'_>, remaining: usize, min_entry: usize) -> Option<usize> {
    let count = usize::try_from(cursor.var_u64()?).ok()?;
    (count <= remaining / min_entry.max(1)).then_some(count)
}

/// A `Records` block's definitions: what its records name by index.
#[derive(Debug)]
pub struct Definitions {
    scopes: Vec<Scope>,
    tasks: Vec<Task>,
    conns: Vec<Conn>,
    sections: Sections,
    /// Where the records start in the payload.
    body_start: usize,
}

impl Definitions {
    pub fn parse(payload: &[u8]) -> Result<Self, RecordsError> {
        let fail = |offset, reason| RecordsError { offset, reason };
        let mut cursor = Cursor::new(payload);
        let defs_len = cursor.u32_le().ok_or(fail(0, "short payload"))? as usize;
        let defs = cursor
            .bytes(defs_len)
            .ok_or(fail(4, "definitions run past the block"))?;
        let body_start = 4 + defs_len;
        let mut defs = Cursor::new(defs);

        let n = bounded_count(&mut defs, defs_len, 2).ok_or(fail(4, "bad scope count"))?;
        let mut scopes = Vec::with_capacity(n);
        for _ in 0..n {
            let netns = defs
                .var_u32()
                .ok_or(fail(4 + defs.position(), "bad scope"))?;
            let cgroup = defs
                .var_u64()
                .ok_or(fail(4 + defs.position(), "bad scope"))?;
            scopes.push(Scope::new(netns, cgroup));
        }
        let n = bounded_count(&mut defs, defs_len, 3)
            .ok_or(fail(4 + defs.position(), "bad task count"))?;
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let at = 4 + defs.position();
            let pid = defs.var_u32().ok_or(fail(at, "bad task"))?;
            let tid = defs.var_u32().ok_or(fail(at, "bad task"))?;
            let len = defs.u8().ok_or(fail(at, "bad task"))? as usize;
            let name = defs.bytes(len).ok_or(fail(at, "bad task name"))?;
            if len > 16 {
                return Err(fail(at, "task name longer than 16 bytes"));
            }
            let mut raw = [0u8; 16];
            raw[..len].copy_from_slice(name);
            tasks.push(Task {
                pid,
                tid,
                comm: Comm::new(raw),
            });
        }
        let n = bounded_count(&mut defs, defs_len, 14)
            .ok_or(fail(4 + defs.position(), "bad connection count"))?;
        let mut conns = Vec::with_capacity(n);
        let mut previous: ConnId = 0;
        for _ in 0..n {
            let at = 4 + defs.position();
            let delta = defs.var_i64().ok_or(fail(at, "bad connection"))?;
            let id = previous.wrapping_add(delta as u64);
            previous = id;
            let scope = defs.var_u32().ok_or(fail(at, "bad connection"))?;
            let scope = *scopes
                .get(scope as usize)
                .ok_or(fail(at, "connection names an unknown scope"))?;
            let tuple = get_tuple(&mut defs).ok_or(fail(at, "bad connection addresses"))?;
            conns.push(Conn { id, scope, tuple });
        }
        let sections_at = 4 + defs.position();
        let sections = Sections::parse(payload, (sections_at, body_start))
            .ok_or(fail(sections_at, "bad definition sections"))?;
        if sections
            .open_connections()
            .iter()
            .any(|&index| index as usize >= conns.len())
        {
            return Err(fail(sections_at, "an open connection that is not defined"));
        }
        Ok(Self {
            scopes,
            tasks,
            conns,
            sections,
            body_start,
        })
    }
}

impl RecordsDecoder {
    pub fn new(payload: Vec<u8>, first_ts_ns: u64) -> Result<Self, RecordsError> {
        let Definitions {
            scopes,
            tasks,
            conns,
            sections,
            body_start,
        } = Definitions::parse(&payload)?;
        let open = sections.open_connections().to_vec();
        Ok(Self {
            payload,
            pos: body_start,
            scopes,
            tasks,
            conns,
            open,
            sections,
            record: 0,
            ts: first_ts_ns,
        })
    }

    /// Whether some of the block's connections had a tuple that was not complete when
    /// it was written, and may be completed from later blocks.
    pub fn has_open(&self) -> bool {
        !self.open.is_empty()
    }

    /// Completes the open connections from a later block's definitions of the same
    /// ids: the recorder only ever learns more of a tuple. A connection stays open
    /// while the later block still has it open (or does not define it).
    pub fn complete_from(&mut self, later: &Definitions) {
        if self.open.is_empty() {
            return;
        }
        let wanted: FxHashMap<ConnId, u32> = self
            .open
            .iter()
            .filter_map(|&index| Some((self.conns.get(index as usize)?.id, index)))
            .collect();
        let still_open: FxHashSet<u32> =
            later.sections.open_connections().iter().copied().collect();
        let mut completed = FxHashSet::default();
        for (later_index, found) in (0u32..).zip(&later.conns) {
            let Some(&index) = wanted.get(&found.id) else {
                continue;
            };
            let conn = &mut self.conns[index as usize];
            if found.tuple.known_parts() > conn.tuple.known_parts() {
                conn.tuple = found.tuple;
            }
            if !still_open.contains(&later_index) {
                completed.insert(index);
            }
        }
        self.open.retain(|index| !completed.contains(index));
    }

    /// Stops completing: what is still open stays as the block wrote it.
    pub fn stop_completing(&mut self) {
        self.open.clear();
    }

    fn actor(&self, raw: u64) -> Option<(ExecContext, Option<Task>)> {
        let context = ExecContext::from_u8((raw & 3) as u8);
        let task = match raw >> 2 {
            0 => None,
            n => Some(*self.tasks.get(usize::try_from(n - 1).ok()?)?),
        };
        Some((context, task))
    }

    fn conn(&self, index: u64) -> Option<Conn> {
        self.conns.get(usize::try_from(index).ok()?).copied()
    }

    fn socket_ref(&self, cursor: &mut Cursor<'_>) -> Option<SocketRef> {
        match cursor.var_u64()? {
            0 => {
                let scope = *self.scopes.get(cursor.var_u32()? as usize)?;
                let tuple = get_tuple(cursor)?;
                Some(SocketRef::Unmatched { scope, tuple })
            }
            n => Some(SocketRef::Conn(self.conn(n - 1)?)),
        }
    }

    /// The next event, `None` at the end of the block.
    #[cfg(test)]
    pub fn next(&mut self) -> Option<Result<TraceEvent, RecordsError>> {
        let mut slot = None;
        Some(self.next_into(&mut slot)?.and_then(|()| {
            slot.ok_or(RecordsError {
                offset: self.pos,
                reason: "truncated or malformed record",
            })
        }))
    }

    /// Decodes the next event into `slot` (events are large: the reader keeps one and
    /// decodes every event into it); `None` at the end of the block. After an error
    /// `slot` is `None`.
    pub fn next_into(&mut self, slot: &mut Option<TraceEvent>) -> Option<Result<(), RecordsError>> {
        if self.pos >= self.payload.len() {
            return None;
        }
        let start = self.pos;
        let mut cursor = Cursor::new(&self.payload[start..]);
        *slot = self.decode_one(&mut cursor);
        let consumed = cursor.position();
        let reason = match slot {
            None => "truncated or malformed record",
            Some(event) => {
                if self.sections.is_done() || self.attach_sections(event).is_ok() {
                    self.pos = start + consumed;
                    self.ts = event.ts_ns();
                    self.record = self.record.saturating_add(1);
                    return Some(Ok(()));
                }
                "malformed section entry for this record"
            }
        };
        // Nothing after a bad record can be trusted: stop this block.
        *slot = None;
        self.pos = self.payload.len();
        Some(Err(RecordsError {
            offset: start,
            reason,
        }))
    }

    /// Adds to the event what the block's sections say about its record.
    fn attach_sections(&mut self, event: &mut TraceEvent) -> Result<(), ()> {
        let Self {
            sections,
            payload,
            record,
            ..
        } = self;
        match event {
            TraceEvent::Transition(t) => t.counters = sections.counters_of(payload, *record)?,
            TraceEvent::Snapshot(s) => s.shared_with = sections.holders_of(payload, *record)?,
            _ => {}
        }
        Ok(())
    }

    fn decode_one(&self, cursor: &mut Cursor<'_>) -> Option<TraceEvent> {
        let tag = cursor.u8()?;
        let dt = cursor.var_i64()?;
        let ts_ns = self.ts.wrapping_add(dt as u64);
        let event = match tag {
            TAG_TRANSITION => {
                let conn = self.conn(cursor.var_u64()?)?;
                let states = cursor.u8()?;
                let old = TcpState::from_kernel(u32::from(states >> 4))?;
                let new = TcpState::from_kernel(u32::from(states & 0xf))?;
                let (context, task) = self.actor(cursor.var_u64()?)?;
                TraceEvent::Transition(Transition {
                    ts_ns,
                    conn,
                    old,
                    new,
                    context,
                    task,
                    counters: None,
                })
            }
            TAG_RESET_SENT => {
                let socket = self.socket_ref(cursor)?;
                let state = match cursor.u8()? {
                    0 => None,
                    s => Some(TcpState::from_kernel(u32::from(s))?),
                };
                let reason = match cursor.var_u32()? {
                    ResetReason::WIRE_UNKNOWN => None,
                    reason => Some(ResetReason(reason)),
                };
                let (context, task) = self.actor(cursor.var_u64()?)?;
                TraceEvent::ResetSent(ResetSent {
                    ts_ns,
                    socket,
                    state,
                    reason,
                    context,
                    task,
                })
            }
            TAG_RESET_RECEIVED => {
                let conn = self.conn(cursor.var_u64()?)?;
                let (context, task) = self.actor(cursor.var_u64()?)?;
                TraceEvent::ResetReceived(ResetReceived {
                    ts_ns,
                    conn,
                    context,
                    task,
                })
            }
            TAG_SOCKET_ERROR => {
                let socket = self.socket_ref(cursor)?;
                let errno = i32::try_from(cursor.var_i64()?).ok()?;
                let (context, task) = self.actor(cursor.var_u64()?)?;
                TraceEvent::SocketError(SocketError {
                    ts_ns,
                    socket,
                    errno,
                    context,
                    task,
                })
            }
            TAG_GAP => TraceEvent::Lost(decode_gap(cursor, ts_ns)?),
            TAG_SNAPSHOT => TraceEvent::Snapshot(self.decode_snapshot(cursor, ts_ns)?),
            _ => return None,
        };
        Some(event)
    }

    fn decode_snapshot(&self, cursor: &mut Cursor<'_>, ts_ns: u64) -> Option<SnapshotSocket> {
        let conn = self.conn(cursor.var_u64()?)?;
        let state = TcpState::from_kernel(u32::from(cursor.u8()?))?;
        let flags = cursor.u8()?;
        let (_, owner) = self.actor(cursor.var_u64()?)?;
        let inode = cursor.var_u32()?;
        let uid = cursor.var_u32()?;
        let timer_ms = match cursor.var_u64()? {
            0 => None,
            n => Some(u32::try_from(n - 1).ok()?),
        };
        Some(SnapshotSocket {
            ts_ns,
            conn,
            state,
            owner,
            inode,
            uid,
            timer_ms,
            at_end: flags & SNAPSHOT_AT_END != 0,
            shared_with: Default::default(),
        })
    }
}

fn decode_gap(cursor: &mut Cursor<'_>, ts_ns: u64) -> Option<Gap> {
    let span = cursor.var_u64()?;
    let lost = cursor.var_u64()?;
    let cpu = match cursor.var_u64()? {
        0 => None,
        n => Some(u32::try_from(n - 1).ok()?),
    };
    let cause = match cursor.u8()? {
        1 => GapCause::RingFull,
        2 => GapCause::ReadFailed,
        3 => GapCause::DecodeFailed,
        4 => GapCause::CorruptBlock,
        5 => GapCause::Recursion,
        6 => GapCause::Unreported,
        7 => GapCause::MissingPart,
        _ => return None,
    };
    Some(Gap {
        from_ns: ts_ns.saturating_sub(span),
        to_ns: ts_ns,
        lost,
        cpu,
        cause,
        host: crate::model::HostId::FIRST,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PidList, SharedWith, TcpCounters};

    pub(crate) fn v4(local: &str, remote: &str) -> SocketTuple {
        SocketTuple {
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
        }
    }

    fn task(pid: u32, comm: &str) -> Task {
        Task {
            pid,
            tid: pid + 1,
            comm: Comm::from_str_lossy(comm),
        }
    }

    fn sample_events() -> Vec<TraceEvent> {
        let scope = Scope::new(4_026_532_177, 25);
        let client = Conn {
            id: 7,
            scope,
            tuple: v4("10.0.0.2:40001", "10.0.0.1:2181"),
        };
        let server = Conn {
            id: 8,
            scope: Scope::new(4_026_532_300, 1),
            tuple: v4("10.0.0.1:2181", "10.0.0.2:40001"),
        };
        let v6 = Conn {
            id: 1_000_000,
            scope,
            tuple: SocketTuple {
                local: "[fd00::2]:5000".parse().unwrap(),
                remote: "[fd00::1]:80".parse().unwrap(),
            },
        };
        vec![
            TraceEvent::Snapshot(SnapshotSocket {
                ts_ns: 0,
                conn: v6,
                state: TcpState::Established,
                owner: Some(task(42, "nginx")),
                inode: 123,
                uid: 0,
                timer_ms: None,
                at_end: false,
                shared_with: SharedWith::new(PidList::new(&[43, 44], 0), true),
            }),
            TraceEvent::Transition(Transition {
                ts_ns: 1_000,
                conn: client,
                old: TcpState::Close,
                new: TcpState::SynSent,
                context: ExecContext::Task,
                task: Some(task(100, "zkCli")),
                counters: None,
            }),
            TraceEvent::Transition(Transition {
                ts_ns: 900,
                conn: server,
                old: TcpState::Listen,
                new: TcpState::SynRecv,
                context: ExecContext::Softirq,
                task: None,
                counters: None,
            }),
            TraceEvent::Transition(Transition {
                ts_ns: 4_900,
                conn: server,
                old: TcpState::Established,
                new: TcpState::Close,
                context: ExecContext::Task,
                task: Some(task(200, "java")),
                counters: Some(
                    TcpCounters::builder()
                        .bytes_sent(0)
                        .bytes_acked(0)
                        .bytes_received(48)
                        .segs(3, 2)
                        .retransmits(0)
                        .srtt_us(61)
                        .peer_fin(false)
                        .build(),
                ),
            }),
            TraceEvent::ResetSent(ResetSent {
                ts_ns: 5_000,
                socket: SocketRef::Conn(server),
                state: Some(TcpState::Close),
                reason: Some(ResetReason::TCP_ABORT_ON_CLOSE),
                context: ExecContext::Task,
                task: Some(task(200, "java")),
            }),
            TraceEvent::ResetReceived(ResetReceived {
                ts_ns: 5_100,
                conn: client,
                context: ExecContext::Softirq,
                task: None,
            }),
            TraceEvent::SocketError(SocketError {
                ts_ns: 5_200,
                socket: SocketRef::Unmatched {
                    scope: Scope::default(),
                    tuple: v4("10.0.0.2:40001", "10.0.0.1:2181"),
                },
                errno: 104,
                context: ExecContext::Unknown,
                task: Some(task(100, "zkCli")),
            }),
            TraceEvent::Lost(Gap {
                from_ns: 4_000,
                to_ns: 6_000,
                lost: 17,
                cpu: Some(1),
                cause: GapCause::RingFull,
                host: crate::model::HostId::FIRST,
            }),
            TraceEvent::Lost(Gap {
                from_ns: 1_000,
                to_ns: 6_000,
                lost: 2,
                cpu: None,
                cause: GapCause::Unreported,
                host: crate::model::HostId::FIRST,
            }),
            TraceEvent::Snapshot(SnapshotSocket {
                ts_ns: 9_000,
                conn: server,
                state: TcpState::TimeWait,
                owner: None,
                inode: 0,
                uid: 0,
                timer_ms: Some(59_000),
                at_end: true,
                shared_with: Default::default(),
            }),
        ]
    }

    fn round_trip(events: &[TraceEvent]) -> Vec<TraceEvent> {
        let mut encoder = RecordsEncoder::default();
        for event in events {
            encoder.push(event);
        }
        let (payload, records, first_ts) = encoder.finish().unwrap();
        assert_eq!(records as usize, events.len());
        let mut decoder = RecordsDecoder::new(payload, first_ts).unwrap();
        let mut out = Vec::new();
        while let Some(event) = decoder.next() {
            out.push(event.unwrap());
        }
        out
    }

    #[test]
    fn every_record_kind_round_trips() {
        let events = sample_events();
        assert_eq!(round_trip(&events), events);
    }

    /// A kernel without a reset reason (before 6.10): the trace keeps it unknown,
    /// written as `WIRE_UNKNOWN`, which a reader from before `Option` names UNKNOWN.
    #[test]
    fn an_unknown_reset_reason_stays_unknown() {
        let mut events = sample_events();
        for event in &mut events {
            if let TraceEvent::ResetSent(r) = event {
                r.reason = None;
            }
        }
        assert_eq!(round_trip(&events), events);
        assert_eq!(ResetReason(ResetReason::WIRE_UNKNOWN).name(), "UNKNOWN");
    }

    #[test]
    fn the_latest_tuple_of_a_connection_wins_within_a_block() {
        let scope = Scope::default();
        let syn_sent = Conn {
            id: 1,
            scope,
            tuple: v4("10.0.0.2:0", "10.0.0.1:80"),
        };
        let established = Conn {
            tuple: v4("10.0.0.2:53970", "10.0.0.1:80"),
            ..syn_sent
        };
        let events = [
            TraceEvent::Transition(Transition {
                ts_ns: 1,
                conn: syn_sent,
                old: TcpState::Close,
                new: TcpState::SynSent,
                context: ExecContext::Task,
                task: None,
                counters: None,
            }),
            TraceEvent::Transition(Transition {
                ts_ns: 2,
                conn: established,
                old: TcpState::SynSent,
                new: TcpState::Established,
                context: ExecContext::Softirq,
                task: None,
                counters: None,
            }),
        ];
        for event in round_trip(&events) {
            let TraceEvent::Transition(t) = event else {
                unreachable!()
            };
            assert_eq!(t.conn.tuple.local.port(), 53970);
        }
    }

    /// A block closed between a connect's SYN_SENT and its next event says the
    /// connection is open; a listener (no peer, ever) and a completed connect are not.
    #[test]
    fn a_block_names_the_connections_it_leaves_open() {
        let transition = |id, tuple, old, new| {
            TraceEvent::Transition(Transition {
                ts_ns: id,
                conn: Conn {
                    id,
                    scope: Scope::default(),
                    tuple,
                },
                old,
                new,
                context: ExecContext::Task,
                task: None,
                counters: None,
            })
        };
        use TcpState::*;
        let mut encoder = RecordsEncoder::default();
        let listener = v4("10.0.0.1:80", "0.0.0.0:0");
        encoder.push(&transition(1, listener, Close, Listen));
        encoder.push(&transition(
            2,
            v4("10.0.0.2:0", "10.0.0.1:80"),
            Close,
            SynSent,
        ));
        encoder.push(&transition(
            3,
            v4("10.0.0.2:0", "10.0.0.1:81"),
            Close,
            SynSent,
        ));
        let done = v4("10.0.0.2:41000", "10.0.0.1:81");
        encoder.push(&transition(3, done, SynSent, Established));
        let (payload, _, _) = encoder.finish().unwrap();
        let definitions = Definitions::parse(&payload).unwrap();
        assert_eq!(definitions.sections.open_connections(), [1]);
        // Nothing open: no section at all.
        encoder.push(&transition(4, done, Established, FinWait1));
        let (payload, _, _) = encoder.finish().unwrap();
        let definitions = Definitions::parse(&payload).unwrap();
        assert!(definitions.sections.open_connections().is_empty());
    }

    #[test]
    fn encoder_resets_between_blocks() {
        let mut encoder = RecordsEncoder::default();
        assert!(encoder.finish().is_none());
        for event in sample_events() {
            encoder.push(&event);
        }
        assert!(encoder.finish().is_some());
        assert_eq!(encoder.records(), 0);
        assert!(encoder.finish().is_none());
    }

    #[test]
    fn every_truncation_fails_cleanly() {
        let mut encoder = RecordsEncoder::default();
        for event in sample_events() {
            encoder.push(&event);
        }
        let (payload, _, first_ts) = encoder.finish().unwrap();
        for len in 0..payload.len() {
            if let Ok(mut decoder) = RecordsDecoder::new(payload[..len].to_vec(), first_ts) {
                while let Some(event) = decoder.next() {
                    if event.is_err() {
                        break;
                    }
                }
            }
        }
    }

    #[test]
    fn a_churned_connection_costs_few_bytes_per_event() {
        // Ten transitions per connection, the loopback pattern of client + server.
        let mut encoder = RecordsEncoder::default();
        let scope = Scope::new(4_026_531_840, 1);
        let mut ts = 0;
        let mut events = 0u32;
        for i in 0..1000u64 {
            let port = 30_000 + u16::try_from(i).unwrap();
            let client = Conn {
                id: 2 * i,
                scope,
                tuple: v4(&format!("127.0.0.1:{port}"), "127.0.0.1:8080"),
            };
            let server = Conn {
                id: 2 * i + 1,
                scope,
                tuple: client.tuple.reversed(),
            };
            use TcpState::*;
            for (conn, old, new) in [
                (client, Close, SynSent),
                (server, Listen, SynRecv),
                (server, SynRecv, Established),
                (client, SynSent, Established),
                (client, Established, FinWait1),
                (server, Established, CloseWait),
                (client, FinWait1, FinWait2),
                (server, CloseWait, LastAck),
                (client, FinWait2, Close),
                (server, LastAck, Close),
            ] {
                ts += 2_000;
                events += 1;
                // The churn's 16-byte request and answer, as the kernel counts them.
                let counters = probe_common::carries_counters(old as u32, new as u32).then(|| {
                    TcpCounters::builder()
                        .bytes_sent(16)
                        .bytes_acked(18)
                        .bytes_received(17)
                        .segs(5, 5)
                        .retransmits(0)
                        .srtt_us(40)
                        .peer_fin(true)
                        .build()
                });
                encoder.push(&TraceEvent::Transition(Transition {
                    ts_ns: ts,
                    conn,
                    old,
                    new,
                    context: ExecContext::Softirq,
                    task: None,
                    counters,
                }));
            }
        }
        let (payload, _, _) = encoder.finish().unwrap();
        let per_event = payload.len() as f64 / f64::from(events);
        // 9 bytes of counters on 4 transitions of 10 (a side starts closing, a socket
        // ends): the trace stays under the 16 bytes per event of docs/bench.md.
        assert!(per_event < 14.0, "{per_event} bytes per event");
    }
}
