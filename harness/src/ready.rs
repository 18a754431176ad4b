//! Waiting until a started server is ready: a socket listening, or a line in its log.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::bail;

use crate::{
    interrupt::{check_interrupted, sleep},
    netns::Netns,
    process::Process,
};

const POLL: Duration = Duration::from_millis(100);

/// Waits until something listens on TCP `port` in `netns`, while `process` runs.
pub fn wait_listening(
    netns: &Netns,
    port: u16,
    process: &mut Process,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let filter = format!("sport = :{port}");
    loop {
        check_interrupted()?;
        process.check_running()?;
        if !netns.run("ss", &["-Htln", &filter])?.trim().is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not listen on port {port} within {timeout:?}",
                process.name()
            );
        }
        sleep(POLL)?;
    }
}

/// Waits until a line of the file `path` (a process's output) starts with `prefix`,
/// while `process` runs.
pub fn wait_for_line(
    path: &Path,
    prefix: &str,
    process: &mut Process,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        check_interrupted()?;
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().any(|line| line.starts_with(prefix)) {
            return Ok(());
        }
        process.check_running()?;
        if Instant::now() > deadline {
            bail!(
                "{} did not print `{prefix}` within {timeout:?} (see {})",
                process.name(),
                path.display()
            );
        }
        sleep(POLL)?;
    }
}
