//! UDP flood for `cargo xtask bench`: N sender/receiver pairs over loopback, each
//! sender sending 64-byte datagrams as fast as it can for a fixed time.
//!
//! It is softirq work without any TCP: on loopback every datagram is delivered in a
//! NET_RX softirq, run by the sender when its `sendto()` re-enables bottom halves. A
//! TCP tracer should cost it nothing; one that runs a program on every softirq does not.
//! The flood prints one JSON object on stdout when it is done.

use std::{
    io::{self, Write as _},
    net::{Ipv4Addr, SocketAddrV4, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use clap::Parser;
use tcpchurn_harness::{load_args, udp_flood::UdpFloodReport};

#[derive(Debug, Parser)]
#[command(about = "UDP flood over loopback (softirq load without TCP)")]
struct Cli {
    /// Sender/receiver pairs (two threads each).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    pairs: u16,
    /// How long to send, in seconds (fractions allowed).
    #[arg(long, default_value_t = 5.0, value_parser = load_args::positive_seconds)]
    duration: f64,
    /// First receiving port; pair i receives on PORT + i.
    #[arg(long, default_value_t = 23_300)]
    port: u16,
}

const DATAGRAM: [u8; 64] = [0x55; 64];

/// Sends until the deadline; returns the datagrams sent.
fn send(socket: &UdpSocket, deadline: Instant) -> u64 {
    let mut sent = 0u64;
    loop {
        // The clock is read once per 256 datagrams: it would cost as much as a send.
        for _ in 0..256 {
            if socket.send(&DATAGRAM).is_ok() {
                sent += 1;
            }
        }
        if Instant::now() >= deadline {
            return sent;
        }
    }
}

/// Receives until `done` is set and the socket is quiet; returns the datagrams received.
fn receive(socket: &UdpSocket, done: &AtomicBool) -> u64 {
    let mut buf = [0u8; 256];
    let mut received = 0u64;
    loop {
        match socket.recv(&mut buf) {
            Ok(_) => received += 1,
            Err(_) if done.load(Ordering::Relaxed) => return received,
            Err(_) => {}
        }
    }
}

/// NET_RX softirqs so far, summed over CPUs.
fn net_rx_softirqs() -> u64 {
    std::fs::read_to_string("/proc/softirqs")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("NET_RX:"))
        .map_or(0, |counts| {
            counts
                .split_whitespace()
                .filter_map(|c| c.parse::<u64>().ok())
                .sum()
        })
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut pairs = Vec::new();
    for i in 0..cli.pairs {
        let port = cli
            .port
            .checked_add(i)
            .ok_or_else(|| anyhow::anyhow!("port range overflows"))?;
        let receiver = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
            .map_err(|e| anyhow::anyhow!("binding port {port}: {e}"))?;
        receiver.set_read_timeout(Some(Duration::from_millis(50)))?;
        let sender = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?;
        sender.connect(receiver.local_addr()?)?;
        pairs.push((sender, receiver));
    }

    let done = Arc::new(AtomicBool::new(false));
    let softirqs_before = net_rx_softirqs();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(cli.duration);
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for (sender, receiver) in pairs {
        senders.push(thread::spawn(move || send(&sender, deadline)));
        let done = Arc::clone(&done);
        receivers.push(thread::spawn(move || receive(&receiver, &done)));
    }
    let sent: u64 = senders.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    let elapsed = started.elapsed().as_secs_f64();
    let net_rx = net_rx_softirqs().saturating_sub(softirqs_before);
    done.store(true, Ordering::Relaxed);
    let received: u64 = receivers.into_iter().map(|h| h.join().unwrap_or(0)).sum();

    let report = UdpFloodReport {
        pairs: cli.pairs,
        elapsed_s: elapsed,
        sent,
        received,
        sent_per_s: if elapsed > 0.0 {
            sent as f64 / elapsed
        } else {
            0.0
        },
        net_rx_softirqs: net_rx,
    };
    let mut out = io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string(&report)?)?;
    Ok(())
}
