//! [`Script`]: hand-made event sequences, shaped like what the kernel emits
//! (`docs/kernel-facts.md §1.2`), with a running clock.

use std::io::{self, Write};

use crate::{
    model::{
        Conn, ConnId, ExecContext, Gap, GapCause, ResetReason, ResetReceived, ResetSent, Scope,
        SnapshotSocket, SocketError, SocketRef, Task, TcpCounters, TcpState, TraceEvent,
    },
    synth::{context, transition, tuple},
    trace::TraceWriter,
};

/// The namespace of the clients [`Script::ends`] makes.
pub const CLIENT_NS: u32 = 100;
/// The namespace of the servers [`Script::ends`] makes.
pub const SERVER_NS: u32 = 200;

/// The two sockets of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ends {
    pub client: Conn,
    pub server: Conn,
}

/// Builds an event sequence; every step happens at the clock's time ([`Script::at`]).
#[derive(Clone, Debug, Default)]
pub struct Script {
    pub events: Vec<TraceEvent>,
    ts: u64,
    next_id: ConnId,
}

impl Script {
    /// A script holding `events` (a clock at 0, connection ids from 1).
    pub fn from_events(events: Vec<TraceEvent>) -> Self {
        Self {
            events,
            ..Self::default()
        }
    }

    /// Sets the clock.
    pub fn at(&mut self, ts_ns: u64) -> &mut Self {
        self.ts = ts_ns;
        self
    }

    /// A new socket (a fresh connection id) in `netns`.
    pub fn socket(&mut self, netns: u32, local: &str, remote: &str) -> Conn {
        self.next_id += 1;
        Conn {
            id: self.next_id,
            scope: Scope::new(netns, 0),
            tuple: tuple(local, remote),
        }
    }

    /// The two sockets of a connection from `client` to `server` (`ADDR:PORT`), in
    /// [`CLIENT_NS`] and [`SERVER_NS`].
    pub fn ends(&mut self, client: &str, server: &str) -> Ends {
        Ends {
            client: self.socket(CLIENT_NS, client, server),
            server: self.socket(SERVER_NS, server, client),
        }
    }

    /// A state change, in `by`'s syscall, or in softirq without one.
    pub fn tr(&mut self, conn: Conn, old: TcpState, new: TcpState, by: Option<Task>) -> &mut Self {
        self.events.push(transition(self.ts, conn, old, new, by));
        self
    }

    /// Gives the last transition these counters.
    pub fn counted(&mut self, counters: TcpCounters) -> &mut Self {
        if let Some(TraceEvent::Transition(t)) = self.events.last_mut() {
            t.counters = Some(counters);
        }
        self
    }

    /// An HTTP/1.0-style exchange on an open connection: the client sends `request`
    /// bytes, the server answers `answer` bytes and closes first (its socket, already
    /// closed by the application, hands over to TIME_WAIT before the client's FIN), and
    /// the client closes a millisecond later. Counters as the kernel keeps them: the
    /// client's SYN and each acknowledged FIN count one in `bytes_acked`, a received FIN
    /// one in `bytes_received` (`docs/kernel-facts.md §7`).
    pub fn answered_then_closed(
        &mut self,
        e: Ends,
        (request, answer): (u64, u64),
        client: Task,
        server: Task,
    ) -> &mut Self {
        use TcpState::*;
        let counters = |sent: u64, acked: u64, received: u64, fin: bool| {
            TcpCounters::builder()
                .bytes_sent(sent)
                .bytes_acked(acked)
                .bytes_received(received)
                .segs(4, 4)
                .retransmits(0)
                .srtt_us(50)
                .peer_fin(fin)
                .build()
        };
        let t = self.ts;
        self.tr(e.server, Established, FinWait1, Some(server))
            .counted(counters(answer, answer, request, false))
            .tr(e.client, Established, CloseWait, None)
            .counted(counters(request, request + 1, answer + 1, true))
            .tr(e.server, FinWait1, FinWait2, None)
            .tr(e.server, FinWait2, Close, None)
            .counted(counters(answer, answer + 1, request, false))
            .at(t + 1_000_000)
            .tr(e.client, CloseWait, LastAck, Some(client))
            .tr(e.client, LastAck, Close, None)
            .counted(counters(request, request + 2, answer + 1, true))
    }

    /// An RST this host sent, from a socket that is already CLOSE.
    pub fn rst_sent(
        &mut self,
        socket: SocketRef,
        reason: impl Into<Option<ResetReason>>,
        by: Option<Task>,
    ) -> &mut Self {
        self.events.push(TraceEvent::ResetSent(ResetSent {
            ts_ns: self.ts,
            socket,
            state: Some(TcpState::Close),
            reason: reason.into(),
            context: context(by),
            task: by,
        }));
        self
    }

    /// An RST the peer sent to `conn`.
    pub fn rst_received(&mut self, conn: Conn) -> &mut Self {
        self.events.push(TraceEvent::ResetReceived(ResetReceived {
            ts_ns: self.ts,
            conn,
            context: ExecContext::Softirq,
            task: None,
        }));
        self
    }

    /// The errno the application of `conn` gets.
    pub fn error(&mut self, conn: Conn, errno: i32) -> &mut Self {
        self.socket_error(SocketRef::Conn(conn), errno)
    }

    /// An error report, possibly for a socket the recorder could not match.
    pub fn socket_error(&mut self, socket: SocketRef, errno: i32) -> &mut Self {
        self.events.push(TraceEvent::SocketError(SocketError {
            ts_ns: self.ts,
            socket,
            errno,
            context: ExecContext::Softirq,
            task: None,
        }));
        self
    }

    /// A socket in the start (or, `at_end`, the end) snapshot.
    pub fn snapshot(
        &mut self,
        conn: Conn,
        state: TcpState,
        owner: Option<Task>,
        at_end: bool,
    ) -> &mut Self {
        self.events.push(TraceEvent::Snapshot(SnapshotSocket {
            ts_ns: self.ts,
            conn,
            state,
            owner,
            inode: 1,
            uid: 0,
            timer_ms: None,
            at_end,
            shared_with: Default::default(),
        }));
        self
    }

    /// `lost` events missing between `from_ns` and `to_ns` (the ring buffer was full).
    pub fn lost(&mut self, from_ns: u64, to_ns: u64, lost: u64) -> &mut Self {
        self.events.push(TraceEvent::Lost(Gap {
            from_ns,
            to_ns,
            lost,
            cpu: Some(0),
            cause: GapCause::RingFull,
            host: crate::model::HostId::FIRST,
        }));
        self
    }

    /// A handshake: the client connects, the server's child is born and established.
    pub fn open(&mut self, e: Ends, client: Task) -> &mut Self {
        use TcpState::*;
        self.tr(e.client, Close, SynSent, Some(client))
            .tr(e.server, Listen, SynRecv, None)
            .tr(e.server, SynRecv, Established, None)
            .tr(e.client, SynSent, Established, None)
    }

    /// `first` closes with a FIN, the other end follows a millisecond later; `first`
    /// holds TIME_WAIT.
    pub fn fin_close(
        &mut self,
        first: Conn,
        second: Conn,
        first_task: Task,
        second_task: Task,
    ) -> &mut Self {
        use TcpState::*;
        let t = self.ts;
        self.tr(first, Established, FinWait1, Some(first_task))
            .tr(second, Established, CloseWait, None)
            .tr(first, FinWait1, FinWait2, None)
            .at(t + 1_000_000)
            .tr(second, CloseWait, LastAck, Some(second_task))
            .tr(first, FinWait2, Close, None)
            .tr(second, LastAck, Close, None)
    }

    /// The server aborts an accepted connection (linger 0: ZooKeeper 3.5+ over
    /// `maxClientCnxns`); the client gets the RST and ECONNRESET.
    pub fn reset_by_server(&mut self, e: Ends, server: Task) -> &mut Self {
        use TcpState::*;
        self.tr(e.server, Established, Close, Some(server))
            .rst_sent(
                SocketRef::Conn(e.server),
                ResetReason::TCP_STATE,
                Some(server),
            )
            .rst_received(e.client)
            .tr(e.client, Established, Close, None)
            .error(e.client, 104)
    }

    /// A listening socket on `addr`, opened by `owner`.
    pub fn listener(&mut self, netns: u32, addr: &str, owner: Task) -> &mut Self {
        let listener = self.socket(netns, addr, "0.0.0.0:0");
        self.tr(listener, TcpState::Close, TcpState::Listen, Some(owner))
    }

    /// A connect from `client:port` (by `by`) refused by the traced host of `server`.
    pub fn refused_at(&mut self, client: &str, port: u16, server: &str, by: Task) -> &mut Self {
        use TcpState::*;
        let client_addr = format!("{client}:{port}");
        let conn = self.socket(CLIENT_NS, &client_addr, server);
        let server_host = Scope::new(SERVER_NS, 0);
        self.tr(conn, Close, SynSent, Some(by))
            .rst_sent(
                SocketRef::Unmatched {
                    scope: server_host,
                    tuple: conn.tuple.reversed(),
                },
                ResetReason::NO_SOCKET,
                None,
            )
            .rst_received(conn)
            .tr(conn, SynSent, Close, None)
            .error(conn, 111)
    }

    /// Writes the events into a trace.
    pub fn write<W: Write>(&self, writer: &mut TraceWriter<W>) -> io::Result<()> {
        self.events.iter().try_for_each(|event| writer.push(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        synth::task,
        trace::{TraceEnd, TraceMeta, TraceReader},
    };

    #[test]
    fn a_script_reads_back_from_its_trace() {
        let mut s = Script::default();
        let e = s.ends("10.0.0.2:40000", "10.0.0.1:80");
        s.at(5)
            .open(e, task(7, "app"))
            .at(9)
            .reset_by_server(e, task(42, "java"));
        s.refused_at("10.0.0.3", 41000, "10.0.0.1:81", task(7, "app"));
        assert_eq!(s.events.len(), 4 + 5 + 5);
        assert_eq!(e.server.tuple, e.client.tuple.reversed());
        let mut writer = TraceWriter::new(Vec::new(), &TraceMeta::default()).unwrap();
        s.write(&mut writer).unwrap();
        let bytes = writer.finish(&TraceEnd::default()).unwrap();
        let events = TraceReader::open(&bytes[..])
            .unwrap()
            .collect_events()
            .unwrap();
        assert_eq!(events, s.events);
    }
}
