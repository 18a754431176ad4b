//! Churn load generator for `cargo xtask bench`: N client/server pairs over loopback,
//! each connection opened, one small request/response exchange (none with
//! `--no-payload`), closed, as fast as possible for a fixed time.
//!
//! Every pair has its own listening port (`--port`, `--port + 1`, ...), one server
//! thread and one client thread. With `--close client` the client closes first (it
//! holds TIME_WAIT; without payload it shuts down its side and waits for the server's
//! FIN, so that it cannot outrun the server's `accept()`); with `--close server` the
//! server closes first; with `--close reset` the server aborts every connection with an
//! RST (`SO_LINGER {1, 0}`).
//!
//! On loopback each completed connection makes exactly ten `inet_sock_set_state`
//! transitions when it closes (docs/kernel-facts.md §1.2), five per end:
//! - the closing end: CLOSE->SYN_SENT or LISTEN->SYN_RECV, ->ESTABLISHED,
//!   ESTABLISHED->FIN_WAIT1, FIN_WAIT1->FIN_WAIT2, FIN_WAIT2->CLOSE;
//! - the other end: ..., ->ESTABLISHED, ESTABLISHED->CLOSE_WAIT, CLOSE_WAIT->LAST_ACK,
//!   LAST_ACK->CLOSE;
//!
//! and six when the server resets it, three per end: ..., ->ESTABLISHED,
//! ESTABLISHED->CLOSE (plus the RST sent and received, and an error report on each
//! side). Each listener adds CLOSE->LISTEN and LISTEN->CLOSE. The generator prints one
//! JSON object on stdout when it is done, with what it did, so that a tracer's output
//! can be checked against it.

use std::{
    io::{self, Read as _, Write as _},
    net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream},
    os::fd::AsRawFd as _,
    sync::Arc,
    thread,
    time::{Duration, Instant},
};

use clap::Parser;
use tcpchurn_harness::{
    churn::{ChurnReport, CloseMode},
    load_args,
    sockopt::set_linger_zero,
};

#[derive(Debug, Parser)]
#[command(about = "TCP churn load generator (loopback client/server pairs)")]
struct Cli {
    /// Client/server pairs (one listening port and two threads each).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    pairs: u16,
    /// How long to churn, in seconds (fractions allowed).
    #[arg(long, default_value_t = 5.0, value_parser = load_args::positive_seconds)]
    duration: f64,
    /// Which side closes first, or `reset`: the server aborts with an RST.
    #[arg(long, value_enum, default_value_t = CloseMode::Client)]
    close: CloseMode,
    /// Connect and close: no request and response.
    #[arg(long)]
    no_payload: bool,
    /// First listening port; pair i listens on PORT + i.
    #[arg(long, default_value_t = 23_100)]
    port: u16,
    /// Stop each client after this many connections (0: only the duration counts).
    #[arg(long, default_value_t = 0)]
    count: u64,
}

const REQUEST: &[u8; 16] = b"churn request..\n";
const RESPONSE: &[u8; 16] = b"churn response.\n";

#[derive(Clone, Copy, Debug, Default)]
struct ClientStats {
    completed: u64,
    connect_failed: u64,
    exchange_failed: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct ServerStats {
    accepted: u64,
    failed: u64,
}

fn read_exact_or_eof(stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Reads until the peer's FIN.
fn wait_eof(stream: &mut TcpStream) -> io::Result<()> {
    io::copy(stream, &mut io::sink()).map(drop)
}

/// What every connection does.
#[derive(Clone, Copy, Debug)]
struct Shape {
    close: CloseMode,
    payload: bool,
}

fn serve_one(mut stream: TcpStream, shape: Shape) -> io::Result<()> {
    if shape.payload {
        let mut request = [0u8; REQUEST.len()];
        if !read_exact_or_eof(&mut stream, &mut request)? {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "no request"));
        }
    }
    match shape.close {
        CloseMode::Reset => set_linger_zero(&stream)?,
        CloseMode::Client | CloseMode::Server if shape.payload => stream.write_all(RESPONSE)?,
        CloseMode::Client | CloseMode::Server => {}
    }
    if shape.close == CloseMode::Client {
        wait_eof(&mut stream)?;
    }
    drop(stream);
    Ok(())
}

fn server(listener: &TcpListener, shape: Shape) -> ServerStats {
    let mut stats = ServerStats::default();
    // The main thread shuts the listener down when the clients are done, which makes
    // accept() fail and ends the loop.
    while let Ok((stream, _)) = listener.accept() {
        stats.accepted += 1;
        if serve_one(stream, shape).is_err() {
            stats.failed += 1;
        }
    }
    stats
}

/// Waits for the server's RST: the connection must end in ECONNRESET, not a FIN.
fn wait_reset(stream: &mut TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 64];
    loop {
        match stream.read(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "a FIN instead of a reset",
                ));
            }
            Ok(_) => {}
        }
    }
}

fn exchange(mut stream: TcpStream, shape: Shape) -> io::Result<()> {
    if shape.payload {
        stream.write_all(REQUEST)?;
        if shape.close != CloseMode::Reset {
            let mut response = [0u8; RESPONSE.len()];
            if !read_exact_or_eof(&mut stream, &mut response)? {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "no response"));
            }
        }
    }
    match shape.close {
        CloseMode::Server => wait_eof(&mut stream)?,
        CloseMode::Reset => wait_reset(&mut stream)?,
        // Without a response to wait for, the client would outrun the server's
        // accept() and overflow its queue: send the FIN, then wait for the server's.
        CloseMode::Client if !shape.payload => {
            stream.shutdown(Shutdown::Write)?;
            wait_eof(&mut stream)?;
        }
        CloseMode::Client => {}
    }
    drop(stream);
    Ok(())
}

fn client(target: SocketAddr, shape: Shape, count: u64, deadline: Instant) -> ClientStats {
    let mut stats = ClientStats::default();
    loop {
        if count > 0 && stats.completed >= count {
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        match TcpStream::connect(target) {
            Ok(stream) => match exchange(stream, shape) {
                Ok(()) => stats.completed += 1,
                Err(_) => stats.exchange_failed += 1,
            },
            // The server accepted and reset the connection before connect() returned:
            // it went through every transition of a reset connection.
            Err(e)
                if shape.close == CloseMode::Reset
                    && e.kind() == io::ErrorKind::ConnectionReset =>
            {
                stats.completed += 1;
            }
            Err(_) => {
                stats.connect_failed += 1;
                if stats.connect_failed > 1000 && stats.completed == 0 {
                    break;
                }
            }
        }
    }
    stats
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let shape = Shape {
        close: cli.close,
        payload: !cli.no_payload,
    };
    let listeners = (0..cli.pairs)
        .map(|i| {
            let port = cli
                .port
                .checked_add(i)
                .ok_or_else(|| anyhow::anyhow!("port range overflows"))?;
            let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
                .map_err(|e| anyhow::anyhow!("listening on port {port}: {e}"))?;
            Ok(Arc::new(listener))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    let servers: Vec<_> = listeners
        .iter()
        .map(|listener| {
            let listener = Arc::clone(listener);
            thread::spawn(move || server(&listener, shape))
        })
        .collect();

    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(cli.duration);
    let clients: Vec<_> = listeners
        .iter()
        .map(|listener| {
            let target = listener.local_addr();
            let count = cli.count;
            thread::spawn(move || match target {
                Ok(target) => client(target, shape, count, deadline),
                Err(_) => ClientStats::default(),
            })
        })
        .collect();
    let clients: Vec<ClientStats> = clients
        .into_iter()
        .map(|h| h.join().unwrap_or_default())
        .collect();
    let elapsed = started.elapsed();

    // The clients are done; a server may still be closing its last connection. Then
    // wake the accept() calls: shutdown() of a listener moves it LISTEN->CLOSE.
    for listener in &listeners {
        // SAFETY: shutdown on a valid listening fd.
        unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RDWR) };
    }
    let servers: Vec<ServerStats> = servers
        .into_iter()
        .map(|h| h.join().unwrap_or_default())
        .collect();
    drop(listeners);

    let report = report(&cli, &clients, &servers, elapsed.as_secs_f64());
    let mut out = io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string(&report)?)?;
    Ok(())
}

/// What the generator did, for the tracer's results to be checked against.
fn report(cli: &Cli, clients: &[ClientStats], servers: &[ServerStats], secs: f64) -> ChurnReport {
    let completed: u64 = clients.iter().map(|c| c.completed).sum();
    ChurnReport {
        pairs: cli.pairs,
        close: cli.close,
        payload: !cli.no_payload,
        port: cli.port,
        elapsed_s: secs,
        completed,
        connect_failed: clients.iter().map(|c| c.connect_failed).sum(),
        exchange_failed: clients.iter().map(|c| c.exchange_failed).sum(),
        accepted: servers.iter().map(|s| s.accepted).sum(),
        server_failed: servers.iter().map(|s| s.failed).sum(),
        conn_per_s: if secs > 0.0 {
            completed as f64 / secs
        } else {
            0.0
        },
        per_pair: clients.iter().map(|c| c.completed).collect(),
        // What a tracer should see: the transitions of every completed connection, two
        // per listener (CLOSE->LISTEN, LISTEN->CLOSE).
        expected_transitions: completed * cli.close.transitions_per_connection()
            + 2 * u64::from(cli.pairs),
    }
}
