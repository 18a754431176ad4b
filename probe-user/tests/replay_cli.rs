//! `tcpchurn replay` as a user runs it, on synthetic traces: it writes nothing but its
//! output, refuses options that contradict each other or would be ignored, says when
//! the window is past the trace, and ends quietly when its reader goes away.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test loudly"
)]

mod common;

use std::{
    fs,
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Command, Output, Stdio},
};

use common::{Scratch, churn_trace, tcpchurn_bin};

fn tcpchurn(args: &[&str]) -> Command {
    let mut cmd = Command::new(tcpchurn_bin());
    cmd.args(args);
    cmd
}

fn run(args: &[&str]) -> Output {
    tcpchurn(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_connections_table_writes_no_file() {
    let scratch = Scratch::new("tmp");
    let trace = churn_trace(&scratch.0, 200);
    let tmp = scratch.0.join("tmp");
    fs::create_dir(&tmp).unwrap();
    for tmpdir in [tmp.as_path(), Path::new("/nonexistent")] {
        let out = tcpchurn(&["replay", trace.to_str().unwrap(), "--connections"])
            .env("TMPDIR", tmpdir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "TMPDIR={}: {}",
            tmpdir.display(),
            stderr(&out)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let table = text.split("\nCONN   CLIENT").nth(1).unwrap();
        assert_eq!(
            table.lines().count(),
            1 + 200,
            "a row per connection: {text}"
        );
    }
    assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
    // A pipe cannot be read twice: refused before anything is written.
    let script = format!(
        "cat {} | {} replay /dev/stdin --connections",
        trace.display(),
        tcpchurn_bin().display()
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains("use --json --connections"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn contradicting_or_ignored_options_are_refused() {
    let scratch = Scratch::new("opts");
    let trace = churn_trace(&scratch.0, 10);
    let file = trace.to_str().unwrap();
    for (args, expected) in [
        (
            &["--since", "5s", "--until", "2s"][..],
            "--since 5s is after --until 2s",
        ),
        (
            &["--server", "[fd88::1"],
            "--server: `[fd88::1` is not an address",
        ),
        (
            &["--client", "fd88::1]"],
            "--client: `fd88::1]` is not an IP address",
        ),
        (&["-r"], "--events"),
        (&["--events", "--connections"], "cannot be used with"),
    ] {
        let mut full = vec!["replay", file];
        full.extend_from_slice(args);
        let out = run(&full);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn a_window_past_the_end_of_the_trace_is_said() {
    let scratch = Scratch::new("past");
    let trace = churn_trace(&scratch.0, 10);
    for extra in [&[][..], &["--events"], &["--json"]] {
        let mut args = vec!["replay", trace.to_str().unwrap(), "--since", "1m30s"];
        args.extend_from_slice(extra);
        let out = run(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("--since 90.0 s is past the end of the trace (0.0 s)"),
            "{extra:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn a_reader_that_goes_away_ends_the_replay_quietly() {
    let scratch = Scratch::new("pipe");
    let trace = churn_trace(&scratch.0, 20_000);
    let file = trace.to_str().unwrap();
    for extra in [
        &[][..],
        &["--connections"],
        &["--json", "--connections"],
        &["--events"],
        &["--events", "--json"],
    ] {
        let mut args = vec!["replay", file];
        args.extend_from_slice(extra);
        // `| head -1`
        let mut child = tcpchurn(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{extra:?}: {:?}", out.status);
        assert!(out.stderr.is_empty(), "{extra:?}: {}", stderr(&out));
    }
}
