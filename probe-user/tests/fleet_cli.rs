//! Several traces and `tcpchurn export` as a user runs them, on synthetic traces: a
//! directory or a pattern replays like the files in it; NDJSON tables hold the objects
//! `replay --events --json` and `replay --connections --json` print, the tables are
//! private, and an existing table is replaced only when asked.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test loudly"
)]

mod common;

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::Path,
    process::{Command, Output},
};

use common::{Scratch, churn_trace, tcpchurn_bin};
use serde_json::Value;

fn run(args: &[&str]) -> Output {
    let out = Command::new(tcpchurn_bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn ndjson_tables_hold_what_replay_prints() {
    let scratch = Scratch::new("export-ndjson");
    let trace = churn_trace(&scratch.0, 50);
    let trace = trace.to_str().unwrap();
    let dir = scratch.0.join("tables/new");
    let dir_arg = dir.to_str().unwrap();
    run(&["export", trace, "--format", "ndjson", "-o", dir_arg]);

    let events = fs::read_to_string(dir.join("events.ndjson")).unwrap();
    let replayed = run(&["replay", trace, "--events", "--json"]).stdout;
    let replayed = json_lines(&String::from_utf8(replayed).unwrap());
    assert!(replayed.len() > 50, "{} events", replayed.len());
    assert_eq!(json_lines(&events), replayed);

    let connections = fs::read_to_string(dir.join("connections.ndjson")).unwrap();
    let verdict = run(&["replay", trace, "--json", "--connections"]).stdout;
    let verdict: Value = serde_json::from_slice(&verdict).unwrap();
    let rows = verdict["connections"].as_array().unwrap();
    assert_eq!(rows.len(), 50);
    assert_eq!(&json_lines(&connections), rows);

    for table in ["events.ndjson", "connections.ndjson"] {
        let mode = fs::metadata(dir.join(table)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{table}");
    }
    let mode = fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);

    // An existing table stays unless --force.
    let again = Command::new(tcpchurn_bin())
        .args(["export", trace, "--format", "ndjson", "-o", dir_arg])
        .output()
        .unwrap();
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already exists; pass --force"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(
        fs::read_to_string(dir.join("events.ndjson")).unwrap(),
        events
    );
    run(&[
        "export", trace, "--format", "ndjson", "-o", dir_arg, "--force",
    ]);
    assert_eq!(
        fs::read_to_string(dir.join("events.ndjson")).unwrap(),
        events
    );
}

#[test]
fn a_directory_or_a_pattern_replays_like_its_files() {
    let scratch = Scratch::new("fleet-dir");
    let trace = churn_trace(&scratch.0, 20);
    fs::write(scratch.0.join("notes.txt"), "not a trace").unwrap();
    let verdict = |arg: &Path| -> (Value, String) {
        let out = run(&["replay", arg.to_str().unwrap(), "--json"]);
        let mut doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        // The file as named differs: the path given, or found.
        doc["trace"]["file"] = Value::Null;
        doc["trace"]["hosts"][0]["files"] = Value::Null;
        (doc, String::from_utf8(out.stderr).unwrap())
    };
    let (expected, quiet) = verdict(&trace);
    assert!(quiet.is_empty(), "{quiet}");
    assert_eq!(expected["connections_counted"], 20);
    let (from_dir, notes) = verdict(&scratch.0);
    assert_eq!(from_dir, expected);
    assert!(
        notes.contains("notes.txt: not a tcpchurn trace, skipped"),
        "{notes}"
    );
    // A pipe is read once, from the header on.
    let script = format!(
        "cat {} | {} replay /dev/stdin --json",
        trace.display(),
        tcpchurn_bin().display()
    );
    let piped = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert!(
        piped.status.success(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    let mut piped: Value = serde_json::from_slice(&piped.stdout).unwrap();
    piped["trace"]["file"] = Value::Null;
    piped["trace"]["hosts"][0]["files"] = Value::Null;
    assert_eq!(piped, expected);
    // A pattern the shell did not expand.
    let (from_pattern, _) = verdict(&scratch.0.join("*.trace"));
    assert_eq!(from_pattern, expected);
    let none = Command::new(tcpchurn_bin())
        .args(["replay", scratch.0.join("*.nothing").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!none.status.success());
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("no file matches"),
        "{}",
        String::from_utf8_lossy(&none.stderr)
    );
}
