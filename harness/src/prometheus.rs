//! Prometheus for tests, from Debian's `prometheus` package: scraping an endpoint with
//! curl, `promtool check metrics`, and a Prometheus server on loopback that scrapes
//! one target and answers queries. It reaches nothing beyond loopback.

use std::{
    io::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::{exec, interrupt::check_interrupted, process::Process, spawn::Spawn};

/// The Debian packages: Prometheus (with promtool), and curl to talk to it.
pub const PACKAGES: [&str; 2] = ["prometheus", "curl"];

/// `GET http://ADDR/metrics` with curl: the body.
pub fn scrape(addr: SocketAddr) -> anyhow::Result<String> {
    exec::stdout(Command::new("curl").args([
        "-sS",
        "--fail",
        "--max-time",
        "10",
        &format!("http://{addr}/metrics"),
    ]))
}

/// `promtool check metrics` on an exposition: fails with what promtool said.
pub fn promtool_check(exposition: &str) -> anyhow::Result<()> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting promtool")?;
    child
        .stdin
        .take()
        .context("promtool's stdin")?
        .write_all(exposition.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "promtool check metrics failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A Prometheus server on `127.0.0.1`, scraping one target every second; killed when
/// dropped.
#[derive(Debug)]
pub struct Server {
    _process: Process,
    listen: SocketAddr,
}

impl Server {
    /// Starts Prometheus with its data in `dir`, listening on `listen`, scraping
    /// `target`'s `/metrics`; returns once it is ready.
    pub fn start(dir: &Path, listen: SocketAddr, target: SocketAddr) -> anyhow::Result<Self> {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: tcpchurn\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        )?;
        let mut cmd = Command::new("prometheus");
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"));
        let log: PathBuf = dir.join("prometheus.log");
        let process = Spawn::new("prometheus", cmd).log_to(&log).start()?;
        let server = Self {
            _process: process,
            listen,
        };
        server.wait_ready(&log)?;
        Ok(server)
    }

    fn wait_ready(&self, log: &Path) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = format!("http://{}/-/ready", self.listen);
        while exec::stdout(Command::new("curl").args(["-sS", "--fail", "--max-time", "2", &url]))
            .is_err()
        {
            check_interrupted()?;
            if Instant::now() > deadline {
                bail!(
                    "prometheus was not ready within 60 s:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// The result of an instant query (`data.result` of `/api/v1/query`).
    pub fn query(&self, promql: &str) -> anyhow::Result<Vec<Value>> {
        let out = exec::stdout(Command::new("curl").args([
            "-sS",
            "--fail",
            "--max-time",
            "10",
            "-G",
            "--data-urlencode",
            &format!("query={promql}"),
            &format!("http://{}/api/v1/query", self.listen),
        ]))?;
        let answer: Value = serde_json::from_str(&out).context("prometheus's answer")?;
        match answer["data"]["result"].as_array() {
            Some(result) if answer["status"] == "success" => Ok(result.clone()),
            _ => bail!("query {promql:?} failed: {answer}"),
        }
    }
}
