//! [`Churn`]: large synthetic churn traces, streamed into a [`TraceWriter`].

use std::{
    io::{self, Write},
    net::{IpAddr, Ipv4Addr, SocketAddr},
};

use crate::{
    model::{Comm, Conn, ConnId, Scope, SocketTuple, Task, TcpCounters, TcpState, TraceEvent},
    synth::transition,
    trace::TraceWriter,
};

/// Which side of a connection closes first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Closer {
    /// The clients of even pairs, the servers of odd pairs.
    #[default]
    Alternate,
    Client,
    Server,
}

/// Client/server pairs churning over loopback: both ends of every connection traced,
/// ten transitions per connection (five per end, `docs/kernel-facts.md §1.2`) with the
/// contexts and owners a recording has (the syscalls in task context, the rest in
/// softirq); each pair's listener opens first and closes last. Pairs take turns,
/// connection by connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Churn {
    pub connections: u64,
    /// Pair `i` listens on 127.0.0.1:(23100 + i).
    pub pairs: u16,
    /// Client addresses per pair: 127.0.0.1 alone, or 127.1.0.1, 127.1.0.2, ... in
    /// turn; the client port moves on once every address has used it.
    pub clients: u16,
    pub closer: Closer,
    /// Mean trace time between two events; each gap varies by ±50%.
    pub gap_ns: u64,
}

/// What [`Churn::write`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Churned {
    pub transitions: u64,
    /// The highest connection id handed out (listeners and sockets count).
    pub last_conn: ConnId,
    pub last_ts_ns: u64,
}

const NETNS: u32 = 4_026_532_177;
const PID: u32 = 4242;

/// One loopback pair: its threads, its listener and the next client port.
struct Pair {
    server_port: u16,
    next_client_port: u16,
    next_client: u16,
    client: Task,
    server: Task,
    listener: Conn,
    client_closes: bool,
}

impl Default for Churn {
    fn default() -> Self {
        Self {
            connections: 1_000,
            pairs: 2,
            clients: 1,
            closer: Closer::Alternate,
            gap_ns: 3_333,
        }
    }
}

fn addr(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(ip), port)
}

/// Appends transitions with a clock that advances by about `gap_ns` each time.
struct Clocked<'a, W: Write> {
    writer: &'a mut TraceWriter<W>,
    ts: u64,
    gap_ns: u64,
    written: u64,
}

impl<W: Write> Clocked<'_, W> {
    fn push(
        &mut self,
        conn: Conn,
        old: TcpState,
        new: TcpState,
        by: Option<Task>,
    ) -> io::Result<()> {
        // Half to one and a half mean gaps apart.
        self.ts += self.gap_ns / 2 + (self.ts * 7919) % self.gap_ns.max(1);
        self.written += 1;
        let mut event = transition(self.ts, conn, old, new, by);
        if let TraceEvent::Transition(t) = &mut event {
            t.counters = churn_counters(old, new);
        }
        self.writer.push(&event)
    }
}

/// What the recorder writes for the churn's 16-byte request and answer where a side
/// starts closing and where a socket ends (as many counters as a recording has).
fn churn_counters(old: TcpState, new: TcpState) -> Option<TcpCounters> {
    probe_common::carries_counters(old as u32, new as u32).then(|| {
        let peer_fin = matches!(
            (old, new),
            (_, TcpState::CloseWait) | (TcpState::LastAck | TcpState::FinWait2, _)
        );
        TcpCounters::builder()
            .bytes_sent(16)
            .bytes_acked(17 + u64::from(new == TcpState::Close))
            .bytes_received(16 + u64::from(peer_fin))
            .segs(4, 5)
            .retransmits(0)
            .srtt_us(30)
            .peer_fin(peer_fin)
            .build()
    })
}

impl Churn {
    fn pair(&self, i: u16, id: ConnId) -> Pair {
        let comm = Comm::from_str_lossy("tcpchurn-churn");
        let server_port = 23_100 + i;
        Pair {
            server_port,
            next_client_port: 10_000 + i * 997,
            next_client: 0,
            client: Task {
                pid: PID,
                tid: PID + 1 + u32::from(i),
                comm,
            },
            server: Task {
                pid: PID,
                tid: PID + 1000 + u32::from(i),
                comm,
            },
            listener: Conn {
                id,
                scope: scope(),
                tuple: SocketTuple {
                    local: addr(Ipv4Addr::LOCALHOST, server_port),
                    remote: addr(Ipv4Addr::UNSPECIFIED, 0),
                },
            },
            client_closes: match self.closer {
                Closer::Alternate => i.is_multiple_of(2),
                Closer::Client => true,
                Closer::Server => false,
            },
        }
    }

    fn client_ip(&self, n: u16) -> Ipv4Addr {
        if self.clients <= 1 {
            return Ipv4Addr::LOCALHOST;
        }
        let [high, low] = (n + 1).to_be_bytes();
        Ipv4Addr::new(127, 1, high, low)
    }

    /// Writes the listeners' opening, the connections, and the listeners' closing.
    pub fn write<W: Write>(&self, writer: &mut TraceWriter<W>) -> io::Result<Churned> {
        let main_task = Task {
            pid: PID,
            tid: PID,
            comm: Comm::from_str_lossy("tcpchurn-churn"),
        };
        let mut pairs: Vec<Pair> = (0..self.pairs.max(1))
            .map(|i| self.pair(i, ConnId::from(i) + 1))
            .collect();
        let mut next_id = pairs.len() as ConnId + 1;
        let mut out = Clocked {
            writer,
            ts: 1_000_000,
            gap_ns: self.gap_ns,
            written: 0,
        };
        for pair in &pairs {
            out.push(
                pair.listener,
                TcpState::Close,
                TcpState::Listen,
                Some(main_task),
            )?;
        }
        for n in 0..self.connections {
            let count = pairs.len() as u64;
            let pair = &mut pairs[usize::try_from(n % count).unwrap_or(0)];
            self.connection(&mut out, pair, next_id)?;
            next_id += 2;
        }
        for pair in &pairs {
            out.push(
                pair.listener,
                TcpState::Listen,
                TcpState::Close,
                Some(main_task),
            )?;
        }
        Ok(Churned {
            transitions: out.written,
            last_conn: next_id - 1,
            last_ts_ns: out.ts,
        })
    }

    /// One connection of `pair`, its client socket `id` and its server socket `id + 1`.
    fn connection<W: Write>(
        &self,
        out: &mut Clocked<'_, W>,
        pair: &mut Pair,
        id: ConnId,
    ) -> io::Result<()> {
        use TcpState::*;
        let (ip, port) = (self.client_ip(pair.next_client), pair.next_client_port);
        pair.next_client += 1;
        if pair.next_client >= self.clients.max(1) {
            pair.next_client = 0;
            pair.next_client_port = if port >= 64_999 { 10_000 } else { port + 1 };
        }
        let server_addr = addr(Ipv4Addr::LOCALHOST, pair.server_port);
        let client = Conn {
            id,
            scope: scope(),
            tuple: SocketTuple {
                local: addr(ip, port),
                remote: server_addr,
            },
        };
        let server = Conn {
            id: id + 1,
            scope: scope(),
            tuple: client.tuple.reversed(),
        };
        // The connect's first transition comes before the local port is chosen.
        let connecting = Conn {
            tuple: SocketTuple {
                local: addr(ip, 0),
                remote: server_addr,
            },
            ..client
        };
        let (c, s) = (Some(pair.client), Some(pair.server));
        out.push(connecting, Close, SynSent, c)?;
        out.push(client, SynSent, Established, None)?;
        out.push(server, Listen, SynRecv, None)?;
        out.push(server, SynRecv, Established, None)?;
        let (closer, closer_task, other, other_task) = if pair.client_closes {
            (client, c, server, s)
        } else {
            (server, s, client, c)
        };
        out.push(closer, Established, FinWait1, closer_task)?;
        out.push(other, Established, CloseWait, None)?;
        out.push(other, CloseWait, LastAck, other_task)?;
        out.push(closer, FinWait1, FinWait2, None)?;
        out.push(closer, FinWait2, Close, None)?;
        out.push(other, LastAck, Close, None)
    }
}

fn scope() -> Scope {
    Scope::new(NETNS, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        model::TraceEvent,
        trace::{TraceEnd, TraceMeta, TraceReader},
    };

    fn churn(churn: &Churn) -> (Churned, Vec<TraceEvent>) {
        let mut writer = TraceWriter::new(Vec::new(), &TraceMeta::default()).unwrap();
        let churned = churn.write(&mut writer).unwrap();
        let bytes = writer.finish(&TraceEnd::default()).unwrap();
        let events = TraceReader::open(&bytes[..])
            .unwrap()
            .collect_events()
            .unwrap();
        (churned, events)
    }

    #[test]
    fn ten_transitions_per_connection_and_two_per_listener() {
        let (churned, events) = churn(&Churn {
            connections: 7,
            pairs: 3,
            ..Churn::default()
        });
        assert_eq!(churned.transitions, 7 * 10 + 3 * 2);
        assert_eq!(events.len() as u64, churned.transitions);
        assert_eq!(churned.last_conn, 3 + 7 * 2);
        assert!(events.windows(2).all(|w| w[0].ts_ns() < w[1].ts_ns()));
        assert_eq!(
            events.last().map(TraceEvent::ts_ns),
            Some(churned.last_ts_ns)
        );
    }

    #[test]
    fn clients_take_turns_and_the_chosen_side_closes() {
        let (_, events) = churn(&Churn {
            connections: 4,
            pairs: 1,
            clients: 3,
            closer: Closer::Server,
            ..Churn::default()
        });
        let clients: Vec<String> = events
            .iter()
            .filter_map(|e| match e {
                TraceEvent::Transition(t) if t.old == TcpState::SynSent => {
                    Some(t.conn.tuple.local.to_string())
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            clients,
            [
                "127.1.0.1:10000",
                "127.1.0.2:10000",
                "127.1.0.3:10000",
                "127.1.0.1:10001"
            ]
        );
        let first_fins: Vec<u16> = events
            .iter()
            .filter_map(|e| match e {
                TraceEvent::Transition(t) if t.new == TcpState::FinWait1 => {
                    Some(t.conn.tuple.local.port())
                }
                _ => None,
            })
            .collect();
        assert_eq!(first_fins, [23_100; 4]);
    }
}

/// Writes a large churn trace for measuring replay speed and memory:
/// `TCPCHURN_BENCH_TRACE=/tmp/churn.trace cargo test --release -p probe-user --lib --
/// --ignored bench_trace`, then `time tcpchurn replay /tmp/churn.trace`. A million
/// connections between 50 clients and 12 servers at 100 000 per second, each client
/// closing first: a million TIME_WAIT entries alive at the end.
#[cfg(test)]
mod bench {
    use std::{fs::File, io::BufWriter};

    use super::*;
    use crate::trace::{TraceEnd, TraceMeta};

    #[test]
    #[ignore = "writes a 10-million-event trace; run by hand to measure replay speed"]
    fn bench_trace() {
        let Some(path) = std::env::var_os("TCPCHURN_BENCH_TRACE") else {
            return;
        };
        let meta = TraceMeta {
            tool: "tcpchurn".into(),
            hostname: "bench".into(),
            ..TraceMeta::default()
        };
        let file = BufWriter::new(File::create(path).unwrap());
        let mut writer = TraceWriter::new(file, &meta).unwrap();
        let churned = Churn {
            connections: 1_000_000,
            pairs: 12,
            clients: 50,
            closer: Closer::Client,
            gap_ns: 1_000,
        }
        .write(&mut writer)
        .unwrap();
        writer
            .finish(&TraceEnd {
                end_ns: churned.last_ts_ns + 1,
                stop_reason: "interrupted".into(),
                ..TraceEnd::default()
            })
            .unwrap();
    }
}
