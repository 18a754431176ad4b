//! The churn load generator (`tcpchurn-churn`, tests crate): how it is run, and the
//! report it prints, which says what a tracer must have seen.

use std::path::Path;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use crate::{netns::Netns, process::Process, spawn::Spawn};

/// How every connection ends: which side closes first, or a reset.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum CloseMode {
    /// The client closes first (active close on the client, TIME_WAIT there).
    Client,
    /// The server closes first, right after its response.
    Server,
    /// The server aborts (`SO_LINGER {1, 0}`, then `close()`): an RST instead of a FIN,
    /// no TIME_WAIT on either side.
    Reset,
}

impl CloseMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Server => "server",
            Self::Reset => "reset",
        }
    }

    /// The transitions one completed loopback connection makes (docs/kernel-facts.md
    /// §1.2): five per end for a close, three per end for a reset (connect or
    /// handshake, ESTABLISHED, ESTABLISHED->CLOSE).
    pub const fn transitions_per_connection(self) -> u64 {
        match self {
            Self::Client | Self::Server => 10,
            Self::Reset => 6,
        }
    }
}

impl std::fmt::Display for CloseMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `tcpchurn-churn` did: its one line of JSON on stdout.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChurnReport {
    pub pairs: u16,
    pub close: CloseMode,
    /// Whether every connection carried a request and a response.
    #[serde(default = "yes")]
    pub payload: bool,
    pub port: u16,
    pub elapsed_s: f64,
    /// Connections opened, exchanged and closed.
    pub completed: u64,
    pub connect_failed: u64,
    pub exchange_failed: u64,
    pub accepted: u64,
    pub server_failed: u64,
    pub conn_per_s: f64,
    pub per_pair: Vec<u64>,
    /// What a tracer must see: [`CloseMode::transitions_per_connection`] per completed
    /// loopback connection, two per listener (CLOSE->LISTEN, LISTEN->CLOSE).
    pub expected_transitions: u64,
}

const fn yes() -> bool {
    true
}

impl ChurnReport {
    /// Connections that failed on either side.
    pub fn failures(&self) -> u64 {
        self.connect_failed + self.exchange_failed + self.server_failed
    }
}

/// One run of the generator: `pairs` loopback client/server pairs on ports `port`,
/// `port + 1`, ..., churning for `duration_s` or until every client made `count`
/// connections.
#[derive(Clone, Copy, Debug)]
pub struct ChurnLoad {
    pub pairs: u16,
    pub duration_s: f64,
    pub close: CloseMode,
    /// A 16-byte request and response on every connection (else: connect and close).
    pub payload: bool,
    pub port: u16,
    pub count: Option<u64>,
}

/// A generator running in a namespace.
#[derive(Debug)]
pub struct RunningChurn {
    process: Process,
}

impl ChurnLoad {
    /// Starts the generator `churn` inside `netns`, in the cgroup `cgroup` if given.
    pub fn start(
        &self,
        churn: &Path,
        netns: &Netns,
        cgroup: Option<&Path>,
    ) -> anyhow::Result<RunningChurn> {
        let mut cmd = netns.command(churn);
        cmd.args(["--pairs", &self.pairs.to_string()])
            .args(["--duration", &self.duration_s.to_string()])
            .args(["--close", self.close.as_str()])
            .args(["--port", &self.port.to_string()]);
        if !self.payload {
            cmd.arg("--no-payload");
        }
        if let Some(count) = self.count {
            cmd.args(["--count", &count.to_string()]);
        }
        let mut spawn = Spawn::new("tcpchurn-churn", cmd).stdout_piped();
        if let Some(dir) = cgroup {
            spawn = spawn.in_cgroup(dir);
        }
        Ok(RunningChurn {
            process: spawn.start()?,
        })
    }

    /// Runs the generator to its end.
    pub fn run(&self, churn: &Path, netns: &Netns) -> anyhow::Result<ChurnReport> {
        self.start(churn, netns, None)?.finish()
    }
}

impl RunningChurn {
    /// Waits for the generator's end and returns its report.
    pub fn finish(mut self) -> anyhow::Result<ChurnReport> {
        let mut stdout = self.process.take_stdout().context("the churn's stdout")?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text)
            .context("reading the churn's report")?;
        let exit = self.process.wait()?;
        if !exit.status.success() {
            bail!("tcpchurn-churn failed ({})", exit.status);
        }
        serde_json::from_str(text.trim()).with_context(|| format!("churn report {text:?}"))
    }
}
