//! `tcpchurn replay` as a program: the verdict document, and the event stream.

use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::Command,
};

use anyhow::{Context as _, bail};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{exec, lines::LineReader, spawn::Spawn};

/// `tcpchurn replay --json TRACE EXTRA...`: the verdict document.
pub fn verdict(tcpchurn: &Path, trace: &Path, extra: &[&str]) -> anyhow::Result<Value> {
    let out = exec::stdout(
        Command::new(tcpchurn)
            .args(["replay", "--json"])
            .arg(trace)
            .args(extra),
    )?;
    serde_json::from_str(&out).context("the verdict is not JSON")
}

/// Every event of a trace, and the replay's warnings (its stderr: damage, a cut end).
#[derive(Debug)]
pub struct Events {
    pub events: Vec<Value>,
    pub warnings: String,
}

/// `tcpchurn replay --events --json TRACE`, parsed.
pub fn events(tcpchurn: &Path, trace: &Path) -> anyhow::Result<Events> {
    let mut events = Vec::new();
    let warnings = each_event(tcpchurn, trace, |event: Value| events.push(event))?;
    Ok(Events { events, warnings })
}

/// `tcpchurn replay --events --json TRACE`, one event at a time as `T` (a struct with
/// the fields the caller needs: a long trace need not be held in memory). Returns the
/// replay's warnings.
pub fn each_event<T: DeserializeOwned>(
    tcpchurn: &Path,
    trace: &Path,
    mut on_event: impl FnMut(T),
) -> anyhow::Result<String> {
    let mut cmd = Command::new(tcpchurn);
    cmd.args(["replay", "--events", "--json"]).arg(trace);
    let mut process = Spawn::new("tcpchurn replay", cmd)
        .stdout_piped()
        .stderr_piped()
        .start()?;
    let mut stderr = LineReader::spawn(process.take_stderr().context("replay's stderr")?);
    let stdout = process.take_stdout().context("replay's stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading replay's output")?;
        let event = serde_json::from_str(&line)
            .with_context(|| format!("replay of {}: bad JSON line {line:?}", trace.display()))?;
        on_event(event);
    }
    let exit = process.wait()?;
    let warnings = stderr.rest().join("\n");
    if !exit.status.success() {
        bail!(
            "replay of {} failed ({}): {warnings}",
            trace.display(),
            exit.status
        );
    }
    Ok(warnings)
}
