//! Who owns a socket at each event: correct, or explicitly unknown.
//!
//! The rule (see `docs/attribution.md` and `docs/kernel-facts.md §2`):
//! 1. An event that ran in task context (the kernel program saw no softirq in progress
//!    on that CPU) ran in a syscall on the socket, or in the socket-lock owner
//!    processing its backlog: that task is the owner, and it is remembered for the
//!    socket.
//! 2. On a CPU whose softirq state was not yet known (the first instants after
//!    attach), only transitions the kernel performs exclusively inside syscalls
//!    (connect, listen, close, shutdown) are trusted.
//! 3. Everything else (softirq: handshakes, received FINs and RSTs, timers) gets the
//!    socket's remembered owner; a passively opened socket that has not yet made a
//!    syscall gets the owner of the listener it came from ([`listeners`]: by
//!    namespace, address and port, with the kernel's wildcard and dual-stack
//!    fallbacks). When several processes hold that listener (shared by `fork()`,
//!    `SO_REUSEPORT` listeners of several processes), the owner is their
//!    [`Candidates`], never one of them picked.
//! 4. Otherwise the owner is unknown. The task that happened to be interrupted
//!    (ksoftirqd, swapper, the peer process on loopback) is never reported.

mod candidates;
mod listeners;

use std::collections::VecDeque;

pub use self::candidates::Candidates;
use self::listeners::{ListenerKey, Listeners, netns_of};
use crate::{
    idmap::ConnIdMap,
    model::{
        Conn, ConnKey, ExecContext, SnapshotSocket, SocketRef, Task, TcpState, TraceEvent,
        Transition,
    },
};

/// How an owner was determined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OwnerSource {
    /// The task ran this transition itself (a syscall on the socket).
    Task,
    /// Carried from an earlier syscall on the same socket.
    Socket,
    /// Inherited from the listening socket, before the accepted socket's own first
    /// syscall.
    Listener,
    /// From `/proc/*/fd` when the start snapshot was taken.
    Snapshot,
}

impl OwnerSource {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Task => "task",
            Self::Socket => "socket",
            Self::Listener => "listener",
            Self::Snapshot => "snapshot",
        }
    }
}

/// The process a socket belongs to, or the processes it may belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    Task(Task),
    /// Several processes hold the listener (or the snapshot socket), and which one
    /// owns this socket is not known.
    Candidates(Candidates),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub who: Who,
    pub source: OwnerSource,
}

impl Owner {
    /// The owning task, when it is known.
    pub fn task(&self) -> Option<&Task> {
        match &self.who {
            Who::Task(task) => Some(task),
            Who::Candidates(_) => None,
        }
    }

    /// The processes it may belong to, when it is not known which.
    pub fn candidates(&self) -> Option<&Candidates> {
        match &self.who {
            Who::Task(_) => None,
            Who::Candidates(candidates) => Some(candidates),
        }
    }
}

/// How long a closed socket's owner is kept for resets and errors that follow it.
const CLOSED_RETENTION_NS: u64 = 5_000_000_000;

/// A socket's known owner, as remembered (the common case, kept small: the map holds
/// every socket closed in the last [`CLOSED_RETENTION_NS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Known {
    task: Task,
    source: OwnerSource,
}

impl Known {
    fn owner(self) -> Owner {
        Owner {
            who: Who::Task(self.task),
            source: self.source,
        }
    }
}

#[derive(Debug, Default)]
pub struct OwnerTracker {
    // Keys are connection ids chosen by the recorder, not by a remote party: a fast
    // non-cryptographic hash is safe, and replay speed depends on it.
    sockets: ConnIdMap<Known>,
    listeners: Listeners,
    /// Accepted sockets that have made no syscall yet, and the listeners they came
    /// from: their first syscall shows a process that holds those listeners, and until
    /// then they belong to those listeners' holders (the candidates when several).
    children: ConnIdMap<ListenerKey>,
    /// Sockets several processes may hold (rare): of the start snapshot, or accepted
    /// children that closed before their first syscall.
    shared: ConnIdMap<Candidates>,
    closed: VecDeque<(u64, ConnKey)>,
}

impl OwnerTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sockets whose owner is currently remembered.
    pub fn tracked(&self) -> usize {
        self.sockets.len()
    }

    /// Learns owners from the start snapshot (`/proc/*/fd`), notably the listeners of
    /// servers that were running before the recording, with every process that holds
    /// them.
    pub fn on_snapshot(&mut self, socket: &SnapshotSocket) {
        if socket.at_end {
            return;
        }
        if socket.state == TcpState::Listen {
            self.listeners
                .open(&socket.conn, socket.owner, &socket.shared_with);
        }
        match socket.owner {
            Some(task) if socket.shared_with.is_empty() => {
                self.sockets.insert(
                    socket.conn.key(),
                    Known {
                        task,
                        source: OwnerSource::Snapshot,
                    },
                );
            }
            Some(task) => {
                let holders = Candidates::holders_of(&task, &socket.shared_with);
                self.shared.insert(socket.conn.key(), holders);
            }
            None => {}
        }
    }

    fn trusted(context: ExecContext, task: Option<Task>, syscall_only: bool) -> Option<Task> {
        match context {
            ExecContext::Task => task,
            ExecContext::Unknown if syscall_only => task,
            _ => None,
        }
    }

    /// The owner for a transition, updating what is known about the socket.
    pub fn on_transition(&mut self, t: &Transition) -> Option<Owner> {
        self.expire(t.ts_ns);
        let syscall_only = TcpState::is_syscall_only(t.old, t.new);
        let owner = if let Some(task) = Self::trusted(t.context, t.task, syscall_only) {
            // An accepted socket's first syscall shows a holder of its listener. (Not an
            // abort: `ss -K` closes sockets from its own task.)
            if let Some(key) = self.children.remove(&t.conn.key())
                && syscall_only
            {
                self.listeners.learn(key, task);
            }
            if !self.shared.is_empty() {
                self.shared.remove(&t.conn.key());
            }
            self.sockets.insert(
                t.conn.key(),
                Known {
                    task,
                    source: OwnerSource::Socket,
                },
            );
            Some(Owner {
                who: Who::Task(task),
                source: OwnerSource::Task,
            })
        } else if t.old == TcpState::Listen && t.new == TcpState::SynRecv {
            self.on_child(&t.conn)
        } else {
            self.remembered(t.conn.key())
        };

        match (t.old, t.new) {
            (_, TcpState::Listen) => {
                let task = owner.as_ref().and_then(Owner::task).copied();
                self.listeners.open(&t.conn, task, &Default::default());
            }
            (TcpState::Listen, TcpState::Close) => self.listeners.close(&t.conn),
            _ => {}
        }
        if t.new == TcpState::Close {
            self.closed.push_back((t.ts_ns, t.conn.key()));
            // A child closed before any syscall keeps its candidates for the resets
            // and errors that follow, even once its listener is gone.
            if let Some(key) = self.children.remove(&t.conn.key())
                && let Some(Who::Candidates(candidates)) = self.listeners.owner_of_children(key)
            {
                self.shared.insert(t.conn.key(), candidates);
            }
        }
        owner
    }

    /// A new child socket: it belongs to whoever holds its listener, until it makes a
    /// syscall.
    fn on_child(&mut self, conn: &Conn) -> Option<Owner> {
        self.sockets.remove(&conn.key());
        self.shared.remove(&conn.key());
        let key = self.listeners.find(netns_of(conn), conn.tuple.local);
        match key {
            Some(key) => self.children.insert(conn.key(), key),
            None => self.children.remove(&conn.key()),
        };
        let who = key.and_then(|key| self.listeners.owner_of_children(key));
        // One holder: remembered as the socket's owner (even if its listener closes).
        if let Some(Who::Task(task)) = who {
            let source = OwnerSource::Listener;
            self.sockets.insert(conn.key(), Known { task, source });
        }
        who.map(|who| Owner {
            who,
            source: OwnerSource::Listener,
        })
    }

    /// What is known of a socket's owner without an event of its own: its remembered
    /// owner, or, for an accepted socket before its first syscall, its listener's
    /// holders.
    fn remembered(&self, id: ConnKey) -> Option<Owner> {
        if let Some(known) = self.sockets.get(&id) {
            return Some(known.owner());
        }
        if let Some(key) = self.children.get(&id) {
            return self.listeners.owner_of_children(*key).map(|who| Owner {
                who,
                source: OwnerSource::Listener,
            });
        }
        self.shared.get(&id).map(|candidates| Owner {
            who: Who::Candidates(*candidates),
            source: OwnerSource::Snapshot,
        })
    }

    /// The owner for a reset or error event on a known connection.
    pub fn on_socket_event(
        &mut self,
        conn: &Conn,
        context: ExecContext,
        task: Option<Task>,
    ) -> Option<Owner> {
        match Self::trusted(context, task, false) {
            Some(task) => Some(Owner {
                who: Who::Task(task),
                source: OwnerSource::Task,
            }),
            None => self.remembered(conn.key()),
        }
    }

    /// The owner of the socket an event is about; learns from every event, so feed it
    /// all of them, filtered or not, for owners to stay right.
    pub fn attribute(&mut self, event: &TraceEvent) -> Option<Owner> {
        match event {
            TraceEvent::Transition(t) => self.on_transition(t),
            TraceEvent::Snapshot(s) => {
                self.on_snapshot(s);
                None
            }
            TraceEvent::ResetReceived(r) => self.on_socket_event(&r.conn, r.context, r.task),
            TraceEvent::ResetSent(r) => match &r.socket {
                SocketRef::Conn(conn) => self.on_socket_event(conn, r.context, r.task),
                SocketRef::Unmatched { .. } => None,
            },
            TraceEvent::SocketError(e) => match &e.socket {
                SocketRef::Conn(conn) => self.on_socket_event(conn, e.context, e.task),
                SocketRef::Unmatched { .. } => None,
            },
            TraceEvent::Lost(_) => None,
        }
    }

    /// The owner a connection is known to have, without an event.
    pub fn owner_of(&self, conn: ConnKey) -> Option<Owner> {
        self.remembered(conn)
    }

    fn expire(&mut self, now_ns: u64) {
        while let Some(&(closed_at, id)) = self.closed.front() {
            if now_ns.saturating_sub(closed_at) < CLOSED_RETENTION_NS {
                break;
            }
            self.closed.pop_front();
            self.sockets.remove(&id);
            self.shared.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Comm, ConnId, Scope, SocketTuple};

    fn task(pid: u32, comm: &str) -> Task {
        Task {
            pid,
            tid: pid,
            comm: Comm::from_str_lossy(comm),
        }
    }

    fn conn(id: ConnId, local: &str, remote: &str) -> Conn {
        Conn {
            id,
            scope: Scope::new(1, 0),
            tuple: SocketTuple {
                local: local.parse().unwrap(),
                remote: remote.parse().unwrap(),
            },
        }
    }

    fn step(
        tracker: &mut OwnerTracker,
        ts_ns: u64,
        conn: Conn,
        (old, new): (TcpState, TcpState),
        context: ExecContext,
        task: Option<Task>,
    ) -> Option<Owner> {
        tracker.on_transition(&Transition {
            ts_ns,
            conn,
            old,
            new,
            context,
            task,
            counters: None,
        })
    }

    #[test]
    fn loopback_bystanders_are_never_owners() {
        use ExecContext::*;
        use TcpState::*;
        let mut tracker = OwnerTracker::new();
        let server = task(100, "server");
        let client = task(200, "client");
        let listener = conn(1, "127.0.0.1:80", "0.0.0.0:0");
        let active = conn(2, "127.0.0.1:40000", "127.0.0.1:80");
        let child = conn(3, "127.0.0.1:80", "127.0.0.1:40000");

        let o = step(
            &mut tracker,
            1,
            listener,
            (Close, Listen),
            Task,
            Some(server),
        )
        .unwrap();
        assert_eq!((o.task().unwrap().pid, o.source), (100, OwnerSource::Task));
        let o = step(
            &mut tracker,
            2,
            active,
            (Close, SynSent),
            Task,
            Some(client),
        )
        .unwrap();
        assert_eq!((o.task().unwrap().pid, o.source), (200, OwnerSource::Task));
        // On loopback the server child's handshake runs in the client's softirq: the
        // kernel program reported softirq, so the child inherits the listener's owner.
        let o = step(&mut tracker, 3, child, (Listen, SynRecv), Softirq, None).unwrap();
        assert_eq!(
            (o.task().unwrap().pid, o.source),
            (100, OwnerSource::Listener)
        );
        let o = step(
            &mut tracker,
            4,
            child,
            (SynRecv, Established),
            Softirq,
            None,
        )
        .unwrap();
        assert_eq!(o.task().unwrap().pid, 100);
        let o = step(
            &mut tracker,
            5,
            active,
            (SynSent, Established),
            Softirq,
            None,
        )
        .unwrap();
        assert_eq!(
            (o.task().unwrap().pid, o.source),
            (200, OwnerSource::Socket)
        );
        // The server closes in its own syscall...
        let o = step(
            &mut tracker,
            6,
            child,
            (Established, FinWait1),
            Task,
            Some(server),
        )
        .unwrap();
        assert_eq!((o.task().unwrap().pid, o.source), (100, OwnerSource::Task));
        // ...and the client's CLOSE_WAIT runs in the server's context on loopback.
        let o = step(
            &mut tracker,
            7,
            active,
            (Established, CloseWait),
            Softirq,
            None,
        )
        .unwrap();
        assert_eq!(o.task().unwrap().pid, 200);
    }

    #[test]
    fn unknown_context_trusts_only_syscall_transitions() {
        use ExecContext::*;
        use TcpState::*;
        let mut tracker = OwnerTracker::new();
        let c = conn(1, "10.0.0.2:40000", "10.0.0.1:80");
        let bystander = Some(task(7, "ksoftirqd/0"));
        assert_eq!(
            step(
                &mut tracker,
                1,
                c,
                (SynSent, Established),
                Unknown,
                bystander
            ),
            None
        );
        let o = step(
            &mut tracker,
            2,
            c,
            (Established, FinWait1),
            Unknown,
            Some(task(300, "app")),
        )
        .unwrap();
        assert_eq!(o.task().unwrap().pid, 300);
        let o = step(&mut tracker, 3, c, (FinWait1, FinWait2), Unknown, bystander).unwrap();
        assert_eq!(
            (o.task().unwrap().pid, o.source),
            (300, OwnerSource::Socket)
        );
    }

    #[test]
    fn listeners_of_several_processes_give_their_candidates_not_an_owner() {
        use ExecContext::*;
        use TcpState::*;
        let mut tracker = OwnerTracker::new();
        step(
            &mut tracker,
            1,
            conn(1, "0.0.0.0:80", "0.0.0.0:0"),
            (Close, Listen),
            Task,
            Some(task(1, "a")),
        );
        step(
            &mut tracker,
            2,
            conn(2, "0.0.0.0:80", "0.0.0.0:0"),
            (Close, Listen),
            Task,
            Some(task(2, "b")),
        );
        let child = conn(3, "10.0.0.1:80", "10.0.0.2:5000");
        let o = step(&mut tracker, 3, child, (Listen, SynRecv), Softirq, None).unwrap();
        assert_eq!((o.task(), o.source), (None, OwnerSource::Listener));
        assert_eq!(o.candidates().unwrap().pids(), [1, 2]);
        assert_eq!(o.candidates().unwrap().comm(), None, "a and b");
        // Its own first syscall says which one accepted it.
        let o = step(
            &mut tracker,
            4,
            child,
            (Established, FinWait1),
            Task,
            Some(task(2, "b")),
        )
        .unwrap();
        assert_eq!(o.task().unwrap().pid, 2);
        // One of them closes: the other is now the only listener.
        step(
            &mut tracker,
            4,
            conn(1, "0.0.0.0:80", "0.0.0.0:0"),
            (Listen, Close),
            Task,
            Some(task(1, "a")),
        );
        let child = conn(4, "10.0.0.1:80", "10.0.0.2:5001");
        assert_eq!(
            step(&mut tracker, 5, child, (Listen, SynRecv), Softirq, None)
                .unwrap()
                .task()
                .unwrap()
                .pid,
            2
        );
    }

    #[test]
    fn a_child_closed_before_its_first_syscall_keeps_its_candidates() {
        use ExecContext::*;
        use TcpState::*;
        let mut tracker = OwnerTracker::new();
        let listeners = [1, 2].map(|id| conn(id, "0.0.0.0:80", "0.0.0.0:0"));
        for (n, listener) in (1..).zip(listeners) {
            let holder = Some(task(n, "srv"));
            step(&mut tracker, 1, listener, (Close, Listen), Task, holder);
        }
        let child = conn(3, "10.0.0.1:80", "10.0.0.2:5000");
        step(&mut tracker, 2, child, (Listen, SynRecv), Softirq, None);
        step(&mut tracker, 3, child, (SynRecv, Close), Softirq, None);
        for (n, listener) in (1..).zip(listeners) {
            let holder = Some(task(n, "srv"));
            step(&mut tracker, 4, listener, (Listen, Close), Task, holder);
        }
        let owner = tracker.owner_of(child.key()).expect("its candidates");
        let candidates = owner.candidates().expect("not one process");
        assert_eq!(candidates.pids(), [1, 2]);
        assert_eq!(candidates.comm(), Some(&Comm::from_str_lossy("srv")));
    }

    #[test]
    fn snapshot_listeners_give_owners_to_later_children() {
        use TcpState::*;
        let mut tracker = OwnerTracker::new();
        let listener = conn(1, "0.0.0.0:2181", "0.0.0.0:0");
        tracker.on_snapshot(&SnapshotSocket {
            ts_ns: 0,
            conn: listener,
            state: Listen,
            owner: Some(task(42, "java")),
            inode: 1,
            uid: 0,
            timer_ms: None,
            at_end: false,
            shared_with: Default::default(),
        });
        let child = conn(2, "10.0.0.1:2181", "10.0.0.2:5000");
        let o = step(
            &mut tracker,
            1,
            child,
            (Listen, SynRecv),
            ExecContext::Softirq,
            None,
        )
        .unwrap();
        assert_eq!(
            (o.task().unwrap().comm.as_str().as_ref(), o.source),
            ("java", OwnerSource::Listener)
        );
    }

    #[test]
    fn closed_sockets_are_forgotten_after_a_while() {
        use ExecContext::*;
        use TcpState::*;
        let mut tracker = OwnerTracker::new();
        let c = conn(1, "10.0.0.2:40000", "10.0.0.1:80");
        step(
            &mut tracker,
            1,
            c,
            (Close, SynSent),
            Task,
            Some(task(1, "a")),
        );
        step(&mut tracker, 2, c, (SynSent, Close), Softirq, None);
        assert_eq!(tracker.tracked(), 1);
        step(
            &mut tracker,
            10_000_000_000,
            conn(2, "10.0.0.2:1", "10.0.0.1:80"),
            (Close, SynSent),
            Task,
            Some(task(1, "a")),
        );
        assert_eq!(tracker.owner_of(ConnKey::first_host(1)), None);
    }

    #[test]
    fn resets_and_errors_get_their_sockets_owner_and_unmatched_ones_none() {
        use crate::model::{ResetReason, ResetSent, SocketError};
        let mut tracker = OwnerTracker::new();
        let c = conn(1, "10.0.0.2:40000", "10.0.0.1:80");
        let app = task(7, "app");
        let connect = TraceEvent::Transition(Transition {
            ts_ns: 1,
            conn: c,
            old: TcpState::Close,
            new: TcpState::SynSent,
            context: ExecContext::Task,
            task: Some(app),
            counters: None,
        });
        assert_eq!(
            tracker.attribute(&connect).and_then(|o| o.task().copied()),
            Some(app)
        );
        let error = |socket| {
            TraceEvent::SocketError(SocketError {
                ts_ns: 2,
                socket,
                errno: 111,
                context: ExecContext::Softirq,
                task: Some(task(99, "ksoftirqd/0")),
            })
        };
        let owner = tracker.attribute(&error(SocketRef::Conn(c)));
        assert_eq!(
            owner.map(|o| (*o.task().unwrap(), o.source)),
            Some((app, OwnerSource::Socket))
        );
        let unmatched = SocketRef::Unmatched {
            scope: c.scope,
            tuple: c.tuple,
        };
        assert_eq!(tracker.attribute(&error(unmatched)), None);
        let reset = TraceEvent::ResetSent(ResetSent {
            ts_ns: 3,
            socket: unmatched,
            state: None,
            reason: Some(ResetReason::NO_SOCKET),
            context: ExecContext::Task,
            task: Some(app),
        });
        assert_eq!(tracker.attribute(&reset), None);
    }
}
