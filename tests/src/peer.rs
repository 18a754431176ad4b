//! `tcpchurn-peer`: a server or client process with a known pid, whose steps (one line
//! each on stdout) a test can wait for.

use std::{path::Path, process::Command, time::Duration};

use tcpchurn_harness::{LineReader, Netns, Process, Spawn};

use crate::binaries::peer_bin;

const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// A running peer, killed when dropped.
#[derive(Debug)]
pub struct Peer {
    process: Process,
    out: LineReader,
}

impl Peer {
    /// `tcpchurn-peer ARGS...`, in `netns` if given.
    pub fn spawn(netns: Option<&Netns>, args: &[&str]) -> Self {
        Self::spawn_in(netns, None, args)
    }

    /// `tcpchurn-peer ARGS...`, in `netns` and the cgroup v2 directory `cgroup` if
    /// given.
    pub fn spawn_in(netns: Option<&Netns>, cgroup: Option<&Path>, args: &[&str]) -> Self {
        let mut cmd = match netns {
            Some(ns) => ns.command(peer_bin()),
            None => Command::new(peer_bin()),
        };
        cmd.args(args);
        let mut spawn = Spawn::new("tcpchurn-peer", cmd).stdout_piped();
        if let Some(dir) = cgroup {
            spawn = spawn.in_cgroup(dir);
        }
        let mut process = spawn.start().unwrap();
        let out = LineReader::spawn(process.take_stdout().unwrap());
        Self { process, out }
    }

    /// A server that has printed `listening`.
    pub fn server(netns: Option<&Netns>, args: &[&str]) -> Self {
        Self::server_in(netns, None, args)
    }

    /// A server in a cgroup that has printed `listening`.
    pub fn server_in(netns: Option<&Netns>, cgroup: Option<&Path>, args: &[&str]) -> Self {
        let mut full = vec!["server"];
        full.extend_from_slice(args);
        let mut peer = Self::spawn_in(netns, cgroup, &full);
        peer.wait_for("listening", LISTEN_TIMEOUT);
        peer
    }

    pub fn client(netns: Option<&Netns>, args: &[&str]) -> Self {
        let mut full = vec!["client"];
        full.extend_from_slice(args);
        Self::spawn(netns, &full)
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn signal(&self, signal: libc::c_int) {
        self.process.signal(signal);
    }

    /// Waits for a line starting with `prefix` and returns it.
    pub fn wait_for(&mut self, prefix: &str, timeout: Duration) -> String {
        self.out.wait_for(prefix, timeout).unwrap()
    }

    /// Waits for a line starting with `prefix`; `None` when none comes within `timeout`.
    pub fn try_wait_for(&mut self, prefix: &str, timeout: Duration) -> Option<String> {
        self.out.wait_for(prefix, timeout).ok()
    }

    /// Waits for the process to exit and returns every line it printed.
    pub fn wait(mut self) -> Vec<String> {
        self.process
            .wait_timeout(EXIT_TIMEOUT)
            .unwrap_or_else(|e| panic!("peer {}: {e:#}", self.pid()));
        self.out.rest()
    }

    pub fn kill(mut self) {
        let _exit = self.process.kill();
    }
}
