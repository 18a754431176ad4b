//! The guest side: the script a guest runs, and what its report lines say about one
//! kernel.

use std::{
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::Value;

use super::{
    images::KernelImage,
    vm::{Ending, GuestRun},
};

/// Runs inside each guest (see the script's own comments).
const GUEST_SCRIPT: &str = include_str!("guest.sh");

/// Writes the guest script where the guest finds it (the host's file system).
pub fn write_script(cache: &Path) -> anyhow::Result<PathBuf> {
    let path = cache.join("guest.sh");
    std::fs::write(&path, GUEST_SCRIPT)?;
    Ok(path)
}

/// One privileged test executable (`tests/tests/NAME.rs`), built on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suite {
    pub name: String,
    pub executable: PathBuf,
    /// The tests it runs in the guests (libtest filters); empty: all.
    pub tests: Vec<String>,
}

/// The integration-test executables in `cargo test --no-run --message-format=json`.
pub fn test_executables(messages: &str) -> Vec<Suite> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["profile"]["test"] == true)
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "test"))
        })
        .filter_map(|m| {
            Some(Suite {
                name: m["target"]["name"].as_str()?.to_owned(),
                executable: PathBuf::from(m["executable"].as_str()?),
                tests: Vec::new(),
            })
        })
        .collect()
}

/// How one suite went in a guest.
#[derive(Clone, Debug, PartialEq)]
pub enum SuiteOutcome {
    Passed(f64),
    /// The test executable's exit status (124: killed at the suite timeout).
    Failed(i32, f64),
}

/// Why a guest did not run to its end: not a test failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The guest kernel crashed (the console lines).
    Crash(String),
    /// The guest hung (killed at a timeout).
    Hang(String),
    /// The guest ended before the script did.
    Died(String),
    /// The recorder could not attach in the guest.
    Attach(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Crash(oops) => write!(f, "guest kernel crash:\n{oops}"),
            Self::Hang(how) => write!(f, "guest hung: {how}"),
            Self::Died(how) => write!(f, "guest died: {how}"),
            Self::Attach(why) => write!(f, "the recorder did not attach: {why}"),
        }
    }
}

/// What attached, from the guest's short recording (`replay --json`'s trace header).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attachments {
    /// `tp_btf` or `classic` for state changes.
    pub state_changes: String,
    /// `raw`, `classic`, or `-` for error reports.
    pub error_reports: String,
    /// Tracepoints that did not attach.
    pub missing: Vec<String>,
}

fn how(detail: Option<&str>, attached: bool) -> String {
    match detail {
        _ if !attached => "-".into(),
        Some(d) if d.starts_with("tp_btf") => "tp_btf".into(),
        Some(d) if d.starts_with("raw tracepoint") => "raw".into(),
        _ => "classic".into(),
    }
}

impl Attachments {
    fn from_replay(json: &str) -> Option<Self> {
        let doc: Value = serde_json::from_str(json).ok()?;
        let trace = &doc["trace"];
        let find = |name: &str| {
            trace["tracepoints"]
                .as_array()
                .and_then(|t| t.iter().find(|t| t["name"] == name))
                .map(|t| how(t["detail"].as_str(), t["attached"] == true))
                .unwrap_or_else(|| "?".into())
        };
        Some(Self {
            state_changes: find("sock:inet_sock_set_state"),
            error_reports: find("sock:inet_sk_error_report"),
            missing: trace["missing_tracepoints"]
                .as_array()
                .map(|m| {
                    m.iter()
                        .filter_map(|t| t.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

/// One kernel's row of the table.
#[derive(Clone, Debug)]
pub struct KernelResult {
    pub name: String,
    /// `uname -r` in the guest (the package's release until the guest says).
    pub release: String,
    pub version: String,
    pub preempt: String,
    /// `yes`, `no`, or `hidden`.
    pub btf: String,
    /// The guest's CPUs (`nproc` there), `?` until it says.
    pub cpus: String,
    pub attachments: Option<Attachments>,
    pub suites: Vec<(String, SuiteOutcome)>,
    pub elapsed: Duration,
    pub attempts: u32,
    pub problem: Option<Problem>,
    pub log: PathBuf,
}

impl KernelResult {
    pub fn from_guest(image: &KernelImage, guest: &GuestRun, attempts: u32, log: &Path) -> Self {
        let mut result = Self {
            name: image.spec.name.to_owned(),
            release: image.package.trim_start_matches("linux-image-").to_owned(),
            version: image.version.clone(),
            preempt: String::new(),
            btf: "?".into(),
            cpus: "?".into(),
            attachments: None,
            suites: Vec::new(),
            elapsed: guest.elapsed,
            attempts,
            problem: None,
            log: log.to_path_buf(),
        };
        let mut done = false;
        for report in guest.reports() {
            let (what, rest) = report.split_once(' ').unwrap_or((report, ""));
            match what {
                "kernel" => result.release = rest.trim().to_owned(),
                "preempt" => result.preempt = rest.trim().to_owned(),
                "btf" => result.btf = rest.trim().to_owned(),
                "cpus" => result.cpus = rest.trim().to_owned(),
                "attach" => result.attachments = Attachments::from_replay(rest),
                "attach-failed" => result.problem = Some(Problem::Attach(rest.to_owned())),
                "suite" => {
                    let mut parts = rest.split_whitespace();
                    let (Some(name), Some(rc), Some(secs)) =
                        (parts.next(), parts.next(), parts.next())
                    else {
                        continue;
                    };
                    let secs = secs.parse().unwrap_or(0.0);
                    let outcome = match rc.parse::<i32>() {
                        Ok(0) => SuiteOutcome::Passed(secs),
                        Ok(rc) => SuiteOutcome::Failed(rc, secs),
                        Err(_) => SuiteOutcome::Failed(-1, secs),
                    };
                    result.suites.push((name.to_owned(), outcome));
                }
                "done" => done = true,
                _ => {}
            }
        }
        if let Some(oops) = guest.crash() {
            result.problem = Some(Problem::Crash(oops));
        } else if !done {
            let last = guest
                .reports()
                .filter(|r| r.starts_with("suite-start"))
                .last()
                .map_or("before the suites".to_owned(), |r| {
                    format!("in suite {}", r.trim_start_matches("suite-start "))
                });
            result.problem = Some(match &guest.ending {
                Ending::TimedOut => Problem::Hang(format!("killed at the timeout, {last}")),
                Ending::Silent => Problem::Hang(format!("silent for minutes, {last}")),
                Ending::Exited(code) => Problem::Died(format!("vng exited with {code:?}, {last}")),
            });
        }
        result
    }

    pub fn passed(&self) -> bool {
        self.problem.is_none()
            && !self.suites.is_empty()
            && self
                .suites
                .iter()
                .all(|(_, o)| matches!(o, SuiteOutcome::Passed(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_executables_come_from_cargo_messages() {
        let messages = r#"{"reason":"compiler-artifact","profile":{"test":true},"target":{"name":"lifecycle","kind":["test"]},"executable":"/t/lifecycle-1"}
{"reason":"compiler-artifact","profile":{"test":false},"target":{"name":"tcpchurn-peer","kind":["bin"]},"executable":"/t/tcpchurn-peer"}
{"reason":"compiler-artifact","profile":{"test":true},"target":{"name":"tcpchurn_tests","kind":["lib"]},"executable":"/t/lib-1"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            test_executables(messages),
            [Suite {
                name: "lifecycle".into(),
                executable: "/t/lifecycle-1".into(),
                tests: Vec::new(),
            }]
        );
    }

    #[test]
    fn attachments_come_from_the_replayed_header() {
        let json = r#"{"trace":{"tracepoints":[
            {"name":"sock:inet_sock_set_state","attached":true,"detail":"tp_btf"},
            {"name":"sock:inet_sk_error_report","attached":true,"detail":"classic tracepoint (raw tracepoint: no kernel BTF)"}],
            "missing_tracepoints":["tcp:tcp_receive_reset (not available on this kernel)"]}}"#;
        let a = Attachments::from_replay(json).unwrap();
        assert_eq!(a.state_changes, "tp_btf");
        assert_eq!(a.error_reports, "classic");
        assert_eq!(a.missing.len(), 1);
        let json = r#"{"trace":{"tracepoints":[
            {"name":"sock:inet_sock_set_state","attached":true,"detail":"classic tracepoint (tp_btf: no kernel BTF)"},
            {"name":"sock:inet_sk_error_report","attached":true,"detail":"raw tracepoint"}]}}"#;
        let a = Attachments::from_replay(json).unwrap();
        assert_eq!(a.state_changes, "classic");
        assert_eq!(a.error_reports, "raw");
    }
}
