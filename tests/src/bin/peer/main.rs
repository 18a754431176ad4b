//! A TCP peer for the integration tests and demos: a server or a client that behaves
//! in one chosen way (closes first, waits for the peer, resets, never closes...), in
//! its own process so that tests know its pid.
//!
//! It prints one line per step on stdout (`listening`, `worker PID`, `accepted PEER
//! pid PID`, `connected`, `received N`, `refused`, `closed`, `done`) so that tests can
//! synchronise with it.

mod exchange;
mod listen;

use std::{
    io::{self, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    thread,
    time::Duration,
};

use clap::{Parser, Subcommand, ValueEnum};
use tcpchurn_harness::sockopt::set_linger_zero;

use crate::{
    exchange::{ERROR_LINE, read_bytes, read_to_end, write_bytes},
    listen::{ListenOptions, listen},
};

#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    role: Role,
    /// The process name to take (`prctl(PR_SET_NAME)`), as any process can.
    #[arg(long, global = true)]
    comm: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Behaviour {
    /// Wait for the peer to close (read to EOF), then close.
    WaitPeer,
    /// Close right away (sends FIN first).
    Close,
    /// Abort with SO_LINGER {1, 0}: an RST instead of a FIN.
    Reset,
    /// Never close: the socket stays open until the process exits (a CLOSE_WAIT leak
    /// once the peer closes).
    Hold,
    /// ZooKeeper's `fastCloseSock` (3.5+): SO_LINGER {1, 0}, `shutdown(SHUT_WR)` (a
    /// FIN), 100 ms for the peer's ACK (the socket is then in FIN_WAIT2), then
    /// `close()`: an RST, and no TIME_WAIT.
    FastClose,
    /// `shutdown(SHUT_RDWR)` (a FIN), keep the socket 300 ms, then close. Data that
    /// arrives meanwhile is answered with an RST (TCP_ABORT_ON_DATA), as ZooKeeper's
    /// `shutdownInput()` makes happen to a client request that arrives late.
    Shutdown,
    /// Send a few bytes, then wait for the peer to close (an RST ends it too).
    Send,
    /// Server: read the request (`--request-bytes`), write `--answer-bytes` bytes,
    /// close (HTTP/1.0 style; 0 answer bytes: close without a byte).
    Answer,
    /// Server: read the request, write a short error line (25 bytes), close.
    ErrorLine,
    /// Client: write `--request-bytes` bytes, read until the server closes (`received
    /// N`), close.
    Request,
}

/// Sizes of the exchanges `answer`, `error-line` and `request` make.
#[derive(Clone, Copy, Debug, clap::Args)]
struct Sizes {
    /// Bytes of each request.
    #[arg(long, default_value_t = 18)]
    request_bytes: u64,
    /// Bytes of each answer.
    #[arg(long, default_value_t = 2000)]
    answer_bytes: u64,
}

#[derive(Debug, Subcommand)]
enum Role {
    Server {
        #[arg(long)]
        listen: SocketAddr,
        /// Connections to accept before exiting (0: forever).
        #[arg(long, default_value_t = 1)]
        count: u32,
        #[arg(long, value_enum, default_value_t = Behaviour::WaitPeer)]
        behaviour: Behaviour,
        /// Keep at most this many connections open; reset the rest at once (like
        /// ZooKeeper's maxClientCnxns).
        #[arg(long)]
        limit: Option<usize>,
        /// Milliseconds to wait after accepting before acting.
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
        /// With --limit: what to do with a connection over the limit. ZooKeeper 3.5+
        /// resets (`reset`, the default); ZooKeeper 3.4 closed it (`close`, a FIN, so
        /// the server keeps the TIME_WAIT).
        #[arg(long, value_enum, default_value_t = Behaviour::Reset)]
        over_limit: Behaviour,
        /// Fork this many workers after listening, each accepting on the shared
        /// listener too (a pre-forking server).
        #[arg(long, default_value_t = 0)]
        workers: u32,
        /// Listen with SO_REUSEPORT (several processes on one address and port).
        #[arg(long)]
        reuseport: bool,
        /// Listen with IPV6_V6ONLY (an IPv6 wildcard leaving IPv4 to another socket).
        #[arg(long)]
        v6only: bool,
        /// The listen backlog. With 0 the accept queue holds one connection: the kernel
        /// drops the SYNs that come while it is there, and the clients retransmit them.
        #[arg(long, default_value_t = 128)]
        backlog: i32,
        /// Milliseconds to wait after listening before the first accept.
        #[arg(long, default_value_t = 0)]
        first_accept_after_ms: u64,
        #[command(flatten)]
        sizes: Sizes,
    },
    Client {
        #[arg(long)]
        connect: SocketAddr,
        #[arg(long, default_value_t = 1)]
        count: u32,
        #[arg(long, value_enum, default_value_t = Behaviour::Close)]
        behaviour: Behaviour,
        /// Milliseconds between connections.
        #[arg(long, default_value_t = 0)]
        interval_ms: u64,
        /// Milliseconds to wait after connecting before acting.
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
        /// Reconnect forever, like a ZooKeeper client: wait until the server closes the
        /// connection, sleep a random 0..=--reconnect-jitter-ms, connect again.
        /// `--count` and `--behaviour` do not apply.
        #[arg(long)]
        reconnect: bool,
        /// With --reconnect: the largest random pause before reconnecting (the ZooKeeper
        /// client sleeps up to 1000 ms, `ClientCnxn.SendThread.startConnect`).
        #[arg(long, default_value_t = 1000)]
        reconnect_jitter_ms: u64,
        #[command(flatten)]
        sizes: Sizes,
    },
}

fn say(line: &str) {
    let mut out = io::stdout().lock();
    let _written = writeln!(out, "{line}");
    let _flushed = out.flush();
}

fn read_to_eof(stream: &mut TcpStream) -> io::Result<()> {
    io::copy(stream, &mut io::sink()).map(drop)
}

/// Shuts the socket down (`how`), keeps it for `pause`, then closes it.
fn shut_down_then_close(stream: TcpStream, how: std::net::Shutdown, pause: Duration) {
    if let Err(e) = stream.shutdown(how) {
        say(&format!("error shutdown {e}"));
    }
    thread::sleep(pause);
    drop(stream);
    say("closed");
}

/// Says an I/O error of an exchange and closes.
fn failed(e: &io::Error) {
    say(&format!("error {}", e.raw_os_error().unwrap_or(0)));
}

/// Acts on one connected socket; returns a socket to keep alive, if any.
fn act(mut stream: TcpStream, behaviour: Behaviour, sizes: Sizes) -> Option<TcpStream> {
    match behaviour {
        Behaviour::WaitPeer => {
            if let Err(e) = read_to_eof(&mut stream) {
                say(&format!("error {}", e.raw_os_error().unwrap_or(0)));
            }
            drop(stream);
            say("closed");
            None
        }
        Behaviour::Close => {
            drop(stream);
            say("closed");
            None
        }
        Behaviour::Reset => {
            if let Err(e) = set_linger_zero(&stream) {
                say(&format!("error linger {e}"));
            }
            drop(stream);
            say("closed");
            None
        }
        Behaviour::Hold => Some(stream),
        Behaviour::FastClose => {
            if let Err(e) = set_linger_zero(&stream) {
                say(&format!("error linger {e}"));
            }
            let pause = Duration::from_millis(100);
            shut_down_then_close(stream, std::net::Shutdown::Write, pause);
            None
        }
        Behaviour::Shutdown => {
            let pause = Duration::from_millis(300);
            shut_down_then_close(stream, std::net::Shutdown::Both, pause);
            None
        }
        Behaviour::Send => {
            if let Err(e) = stream.write_all(b"tcpchurn request\n") {
                say(&format!("error {}", e.raw_os_error().unwrap_or(0)));
            }
            act(stream, Behaviour::WaitPeer, sizes)
        }
        Behaviour::Answer | Behaviour::ErrorLine => {
            let answered = read_bytes(&mut stream, sizes.request_bytes).and_then(|_| {
                if behaviour == Behaviour::ErrorLine {
                    stream.write_all(ERROR_LINE)
                } else {
                    write_bytes(&mut stream, sizes.answer_bytes)
                }
            });
            if let Err(e) = answered {
                failed(&e);
            }
            drop(stream);
            say("closed");
            None
        }
        Behaviour::Request => {
            match write_bytes(&mut stream, sizes.request_bytes)
                .and_then(|()| read_to_end(&mut stream))
            {
                Ok(received) => say(&format!("received {received}")),
                Err(e) => failed(&e),
            }
            drop(stream);
            say("closed");
            None
        }
    }
}

/// What a server does with each connection.
#[derive(Clone, Copy, Debug)]
struct Serving {
    count: u32,
    behaviour: Behaviour,
    limit: Option<usize>,
    delay: Duration,
    first_accept_after: Duration,
    over_limit: Behaviour,
    sizes: Sizes,
}

fn server(
    listen_on: SocketAddr,
    options: ListenOptions,
    workers: u32,
    serving: Serving,
) -> io::Result<()> {
    let listener = listen(listen_on, options)?;
    say(&format!("listening {}", listener.local_addr()?));
    thread::sleep(serving.first_accept_after);
    for _ in 0..workers {
        // SAFETY: the peer is single-threaded here; the child only runs the accept loop.
        match unsafe { libc::fork() } {
            -1 => return Err(io::Error::last_os_error()),
            // The worker: accept on the shared listener like its parent, and go when the
            // parent goes (tests stop the process they started).
            0 => {
                // SAFETY: prctl with plain integer arguments.
                unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
                return accept_loop(&listener, serving);
            }
            child => say(&format!("worker {child}")),
        }
    }
    accept_loop(&listener, serving)
}

fn accept_loop(listener: &TcpListener, serving: Serving) -> io::Result<()> {
    let Serving {
        count,
        behaviour,
        limit,
        delay,
        over_limit,
        sizes,
        ..
    } = serving;
    let mut held: Vec<TcpStream> = Vec::new();
    let mut accepted = 0;
    while count == 0 || accepted < count {
        let (stream, peer) = listener.accept()?;
        accepted += 1;
        say(&format!("accepted {peer} pid {}", std::process::id()));
        if let Some(limit) = limit {
            // A well-behaved limited server closes connections its clients left, which
            // frees their slots; without a limit, `hold` leaks them on purpose.
            held.retain(|s| !peer_closed(s));
            if held.len() < limit {
                thread::sleep(delay);
                held.extend(act(stream, behaviour, sizes));
                continue;
            }
            // Over the limit: accept, then reset (or close) at once, as ZooKeeper does.
            let _none = act(stream, over_limit, sizes);
            continue;
        }
        thread::sleep(delay);
        if let Some(stream) = act(stream, behaviour, sizes) {
            held.push(stream);
        }
    }
    say("done");
    if behaviour == Behaviour::Hold {
        // Keep the leaked sockets until killed.
        loop {
            thread::sleep(Duration::from_secs(3600));
        }
    }
    Ok(())
}

/// True when the peer has closed its side (a non-blocking read returns 0).
fn peer_closed(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let closed = matches!(stream.peek(&mut [0u8; 1]), Ok(0));
    let _restored = stream.set_nonblocking(false);
    closed
}

fn client(
    connect: SocketAddr,
    count: u32,
    behaviour: Behaviour,
    (interval, delay): (Duration, Duration),
    sizes: Sizes,
) {
    let mut held = Vec::new();
    for i in 0..count {
        if i > 0 {
            thread::sleep(interval);
        }
        match TcpStream::connect(connect) {
            Ok(stream) => {
                let local = stream
                    .local_addr()
                    .map_or_else(|_| "?".to_owned(), |a| a.to_string());
                say(&format!("connected {local}"));
                thread::sleep(delay);
                held.extend(act(stream, behaviour, sizes));
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => say("refused"),
            Err(e) => say(&format!("error {}", e.raw_os_error().unwrap_or(0))),
        }
    }
    say("done");
    if behaviour == Behaviour::Hold {
        loop {
            thread::sleep(Duration::from_secs(3600));
        }
    }
}

/// A small pseudo-random generator (xorshift64*), seeded per process: the pauses only
/// need to differ between clients, as the ZooKeeper client's do.
struct Jitter(u64);

impl Jitter {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Self((u64::from(std::process::id()) << 32 | u64::from(nanos)) | 1)
    }

    /// A duration in `0..=max`.
    fn upto(&mut self, max: Duration) -> Duration {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let random = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(random % max_ms.saturating_add(1))
    }
}

/// A client that stays connected as long as the server lets it, and reconnects after a
/// random pause whenever the server closes or resets the connection (or refuses it).
/// Runs until killed.
fn reconnect_forever(connect: SocketAddr, jitter: Duration) {
    let mut random = Jitter::new();
    loop {
        match TcpStream::connect(connect) {
            Ok(mut stream) => {
                let local = stream
                    .local_addr()
                    .map_or_else(|_| "?".to_owned(), |a| a.to_string());
                say(&format!("connected {local}"));
                match read_to_eof(&mut stream) {
                    Ok(()) => say("closed by server"),
                    Err(e) => say(&format!("error {}", e.raw_os_error().unwrap_or(0))),
                }
                drop(stream);
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => say("refused"),
            Err(e) => say(&format!("error {}", e.raw_os_error().unwrap_or(0))),
        }
        thread::sleep(random.upto(jitter));
    }
}

/// Takes `name` as this process's name (what `/proc/PID/comm` and the kernel show).
fn set_comm(name: &str) {
    let Ok(name) = std::ffi::CString::new(name) else {
        say("error comm");
        std::process::exit(1);
    };
    // SAFETY: PR_SET_NAME reads a NUL-terminated string (the kernel keeps 15 bytes).
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
}

fn main() {
    let cli = Cli::parse();
    if let Some(comm) = &cli.comm {
        set_comm(comm);
    }
    match cli.role {
        Role::Server {
            listen,
            count,
            behaviour,
            limit,
            delay_ms,
            over_limit,
            workers,
            reuseport,
            v6only,
            backlog,
            first_accept_after_ms,
            sizes,
        } => {
            let serving = Serving {
                count,
                behaviour,
                limit,
                delay: Duration::from_millis(delay_ms),
                first_accept_after: Duration::from_millis(first_accept_after_ms),
                over_limit,
                sizes,
            };
            let options = ListenOptions {
                reuseport,
                v6only,
                backlog,
            };
            if let Err(e) = server(listen, options, workers, serving) {
                say(&format!("error {e}"));
                std::process::exit(1);
            }
        }
        Role::Client {
            connect,
            reconnect: true,
            reconnect_jitter_ms,
            ..
        } => reconnect_forever(connect, Duration::from_millis(reconnect_jitter_ms)),
        Role::Client {
            connect,
            count,
            behaviour,
            interval_ms,
            delay_ms,
            reconnect: false,
            sizes,
            ..
        } => client(
            connect,
            count,
            behaviour,
            (
                Duration::from_millis(interval_ms),
                Duration::from_millis(delay_ms),
            ),
            sizes,
        ),
    }
}
