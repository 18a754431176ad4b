//! Hostile conditions: signals, kills, full disks, missing privileges, missing tracefs
//! or BTF, bad output paths, tiny ring buffers. The recorder must never lose what it
//! wrote, never panic, and never leave kernel state behind.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test loudly"
)]

use std::{
    fs::{self, File},
    io::Write as _,
    os::unix::fs::PermissionsExt as _,
    path::Path,
    process::{Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use tcpchurn_harness::{bpftool, procfs, recorder};
use tcpchurn_tests::{
    Netns, Peer, Scratch, count_kind, lost_total, netns, open_trace, record, replay_events,
    replay_with_warnings, require_root, state_change_attachment, tcpchurn, tcpchurn_bin,
};

const PORT: u16 = 5181;
/// How long a signalled recorder may take to exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `count` loopback connections in `ns` (client closes, server waits for it):
/// ten transitions each, plus the listener's CLOSE->LISTEN and LISTEN->CLOSE.
fn churn(ns: &Netns, count: u32) {
    let addr = format!("127.0.0.1:{PORT}");
    let server = Peer::server(
        Some(ns),
        &[
            "--listen",
            &addr,
            "--count",
            &count.to_string(),
            "--behaviour",
            "wait-peer",
        ],
    );
    let client = Peer::client(
        Some(ns),
        &[
            "--connect",
            &addr,
            "--count",
            &count.to_string(),
            "--behaviour",
            "close",
        ],
    );
    client.wait();
    server.wait();
}

fn transitions_for(connections: u32) -> usize {
    10 * connections as usize + 2
}

fn netns_args(ns: &Netns, extra: &[&str]) -> Vec<String> {
    let mut args = ns.netns_args();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Programs of ours that are still loaded but held by no process: that would be
/// leftover kernel state (pinned or leaked). Programs held by a live process are
/// other recorders (other tests, other users) and do not count.
fn orphaned_programs() -> Vec<String> {
    let names = [
        "inet_sock_set_state",
        "tcp_send_reset",
        "tcp_receive_reset",
        "inet_sk_error_report",
        "softirq_entry",
        "softirq_exit",
    ];
    let held: Vec<u32> = procfs::pids()
        .into_iter()
        .flat_map(procfs::bpf_prog_ids)
        .collect();
    bpftool::loaded_programs()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| {
            let name = p.name.as_deref().unwrap_or("");
            // The kernel truncates program names to 15 characters.
            names
                .iter()
                .any(|n| n.starts_with(name) && !name.is_empty())
                && !held.contains(&p.id)
        })
        .map(|p| format!("{p:?}"))
        .collect()
}

fn assert_no_leftovers() {
    // Programs are freed after an RCU grace period once the last fd is gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = orphaned_programs();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "leftover BPF programs: {left:?}");
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sigterm_stops_cleanly_and_leaves_nothing_behind() {
    if !require_root("sigterm_stops_cleanly_and_leaves_nothing_behind") {
        return;
    }
    let ns = netns("term");
    let scratch = Scratch::new("term");
    let path = scratch.path("t.trace");
    let recorder = record(&path, netns_args(&ns, &[]));
    churn(&ns, 3);
    thread::sleep(Duration::from_millis(300));
    recorder.signal(libc::SIGTERM);
    let recorded = recorder.wait(STOP_TIMEOUT).unwrap();
    let stderr = recorded.stderr.join("\n");
    assert!(recorded.status.success(), "{stderr}");
    assert!(
        stderr.contains("recording stopped (terminated)"),
        "{stderr}"
    );
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (events, warnings) = replay_with_warnings(&path);
    assert_eq!(
        count_kind(&events, "transition"),
        transitions_for(3),
        "{events:?}"
    );
    assert!(
        warnings.is_empty(),
        "a clean stop must not look cut: {warnings}"
    );
    assert_no_leftovers();
}

#[test]
fn a_second_signal_exits_at_once_with_a_readable_file() {
    if !require_root("a_second_signal_exits_at_once_with_a_readable_file") {
        return;
    }
    let ns = netns("twice");
    let scratch = Scratch::new("twice");
    let path = scratch.path("t.trace");
    let recorder = record(&path, netns_args(&ns, &["--flush-interval", "100ms"]));
    churn(&ns, 3);
    thread::sleep(Duration::from_millis(400));
    // Two different signals, so the kernel cannot merge them into one.
    recorder.signal(libc::SIGINT);
    recorder.signal(libc::SIGTERM);
    let recorded = recorder.wait(STOP_TIMEOUT).unwrap();
    let (status, stderr) = (recorded.status, recorded.stderr.join("\n"));
    assert!(
        status.code() == Some(130) || status.success(),
        "unexpected exit {status:?}: {stderr}"
    );
    let (events, _) = replay_with_warnings(&path);
    assert_eq!(
        count_kind(&events, "transition"),
        transitions_for(3),
        "flushed events must survive"
    );
    assert_no_leftovers();
}

#[test]
fn sigkill_leaves_a_trace_that_replays_and_says_it_is_cut() {
    if !require_root("sigkill_leaves_a_trace_that_replays_and_says_it_is_cut") {
        return;
    }
    let ns = netns("kill");
    let scratch = Scratch::new("kill");
    let path = scratch.path("t.trace");
    let recorder = record(&path, netns_args(&ns, &["--flush-interval", "100ms"]));
    churn(&ns, 5);
    // Past a flush, so the events are on disk.
    thread::sleep(Duration::from_millis(600));
    let killed = recorder.kill().unwrap();
    assert!(!killed.status.success());
    let (events, warnings) = replay_with_warnings(&path);
    assert_eq!(count_kind(&events, "transition"), transitions_for(5));
    assert!(warnings.contains("cut at byte"), "{warnings}");
    assert_no_leftovers();
}

#[test]
fn a_full_disk_stops_recording_with_an_error_and_the_file_replays() {
    if !require_root("a_full_disk_stops_recording_with_an_error_and_the_file_replays") {
        return;
    }
    let ns = netns("full");
    let scratch = Scratch::new("full");
    let mount = scratch.path("small");
    fs::create_dir(&mount).unwrap();
    let status = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=256k",
            "tcpchurn-test",
            mount.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _status = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&mount);
    let path = mount.join("t.trace");
    let recorder = record(
        &path,
        netns_args(&ns, &["--flush-interval", "50ms", "--no-snapshot"]),
    );
    churn(&ns, 5);
    // Past a flush, so these events are on disk before the disk fills up.
    thread::sleep(Duration::from_millis(400));
    // Fill what is left in 4 KiB writes, as a log file growing elsewhere would: the
    // point where the recorder's next write fails no longer depends on how fast this
    // machine churns.
    let mut filler = File::create(mount.join("filler")).unwrap();
    let page = [0u8; 4096];
    while filler.write_all(&page).is_ok() {}
    drop(filler);
    // Several pages of events, so they cannot all land in the trace's last page.
    churn(&ns, 300);
    let recorded = recorder
        .wait(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("the recorder kept running on a full disk: {e:#}"));
    let stderr = recorded.stderr.join("\n");
    assert_eq!(recorded.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    let (events, warnings) = replay_with_warnings(&path);
    assert!(
        count_kind(&events, "transition") >= transitions_for(5),
        "only {} transitions; replay said: {warnings}",
        count_kind(&events, "transition")
    );
    assert!(warnings.contains("cut"), "{warnings}");
    assert_no_leftovers();
}

#[test]
fn rotation_keeps_the_newest_files_and_each_replays_alone() {
    if !require_root("rotation_keeps_the_newest_files_and_each_replays_alone") {
        return;
    }
    let ns = netns("rot");
    let scratch = Scratch::new("rot");
    let path = scratch.path("t.trace");
    let recorder = record(
        &path,
        netns_args(
            &ns,
            &[
                "--flush-interval",
                "50ms",
                "--max-size",
                "16K",
                "--rotate",
                "3",
            ],
        ),
    );
    for _ in 0..4 {
        churn(&ns, 400);
        thread::sleep(Duration::from_millis(150));
    }
    recorder.stop().unwrap().ensure_success().unwrap();
    let mut parts: Vec<_> = fs::read_dir(&scratch.0)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("t.trace")
        })
        .collect();
    parts.sort();
    assert!(parts.len() <= 3, "more files than --rotate 3: {parts:?}");
    assert!(parts.len() >= 2, "no rotation happened: {parts:?}");
    let mut transitions = 0;
    for part in &parts {
        assert_eq!(
            fs::metadata(part).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (events, warnings) = replay_with_warnings(part);
        transitions += count_kind(&events, "transition");
        assert!(warnings.is_empty(), "{}: {warnings}", part.display());
    }
    assert!(transitions > 0);
}

#[test]
fn a_tiny_ring_reports_every_lost_event() {
    if !require_root("a_tiny_ring_reports_every_lost_event") {
        return;
    }
    let ns = netns("ring");
    let scratch = Scratch::new("ring");
    let path = scratch.path("t.trace");
    // 4 KiB holds 30 events; the reader wakes up only once a second.
    let recorder = record(
        &path,
        netns_args(
            &ns,
            &[
                "--ring-size",
                "4K",
                "--poll-interval",
                "1s",
                "--wakeup-bytes",
                "1G",
                "--no-snapshot",
            ],
        ),
    );
    let connections = 300;
    churn(&ns, connections);
    let recorded = recorder.stop().unwrap();
    let summary = recorded.stderr.join("\n");
    assert!(recorded.status.success(), "{summary}");
    let reported: u64 = recorded
        .summary("lost events")
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(reported > 0, "{summary}");
    let events = replay_events(&path);
    let transitions = count_kind(&events, "transition") as u64;
    let lost = lost_total(&events);
    assert_eq!(lost, reported, "every lost event is in the trace as a gap");
    assert!(
        events
            .iter()
            .filter(|e| e["kind"] == "lost" && e["cause"] != "recursion")
            .all(|e| e["cause"] == "ring_full" && e["cpu"].is_u64())
    );
    // The end block's accounting: everything the kernel program submitted is in the
    // file (the recorder dropped nothing), and the gaps add up to its loss counters.
    let mut reader = open_trace(&path).unwrap();
    let in_file = reader
        .collect_events()
        .unwrap()
        .iter()
        .filter(|e| {
            !matches!(
                e,
                tcpchurn::model::TraceEvent::Snapshot(_) | tcpchurn::model::TraceEvent::Lost(_)
            )
        })
        .count() as u64;
    let end = reader.end().unwrap();
    assert_eq!(in_file, end.kernel_submitted);
    assert_eq!(lost, end.lost());
    // Every transition the churn made is in the file or among the lost events. (The
    // lost ones can also include the occasional RST the namespace produced, e.g. a
    // listener answering a stray segment: only the bound is exact.)
    let expected = transitions_for(connections) as u64;
    assert!(
        transitions <= expected && expected <= transitions + lost,
        "{transitions} recorded + {lost} lost for {expected} transitions"
    );
}

fn as_nobody(args: &[&str]) -> Output {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(tcpchurn_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn without_privileges_record_says_what_is_missing_in_one_line() {
    if !require_root("without_privileges_record_says_what_is_missing_in_one_line") {
        return;
    }
    let scratch = Scratch::new("noroot");
    fs::set_permissions(&scratch.0, fs::Permissions::from_mode(0o777)).unwrap();
    let path = scratch.path("x.trace");
    let out = as_nobody(&["record", "-o", path.to_str().unwrap()]);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("needs root, or CAP_BPF and CAP_PERFMON"),
        "{stderr}"
    );
    assert!(!path.exists(), "nothing may be created without privileges");
}

#[test]
fn replay_runs_as_any_user() {
    if !require_root("replay_runs_as_any_user") {
        return;
    }
    let ns = netns("anyuser");
    let scratch = Scratch::new("anyuser");
    fs::set_permissions(&scratch.0, fs::Permissions::from_mode(0o755)).unwrap();
    let path = scratch.path("t.trace");
    let recorder = record(&path, netns_args(&ns, &[]));
    churn(&ns, 2);
    recorder.stop().unwrap();
    // The trace is 0600 root: a user who was handed a copy replays it.
    let copy = scratch.path("copy.trace");
    fs::copy(&path, &copy).unwrap();
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o644)).unwrap();
    let out = as_nobody(&["replay", "--events", copy.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("LISTEN -> SYN_RECV"));
}

#[test]
fn an_unmounted_tracefs_is_mounted() {
    if !require_root("an_unmounted_tracefs_is_mounted") {
        return;
    }
    let scratch = Scratch::new("tracefs");
    let path = scratch.path("t.trace");
    // A private mount namespace without tracefs (and without debugfs).
    let script = format!(
        "umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug 2>/dev/null; \
         test ! -e /sys/kernel/tracing/events || exit 9; exec {} record -d 1 --no-snapshot -o {}",
        tcpchurn_bin().display(),
        path.display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("recording stopped (duration)"));
    assert!(path.exists());
}

#[test]
fn without_btf_it_records_the_rest_and_says_what_is_missing() {
    if !require_root("without_btf_it_records_the_rest_and_says_what_is_missing") {
        return;
    }
    let ns = netns("nobtf");
    let scratch = Scratch::new("nobtf");
    let path = scratch.path("t.trace");
    let recorder = record(
        &path,
        [
            "--btf".into(),
            "/nonexistent/vmlinux".into(),
            "--port".into(),
            PORT.to_string(),
        ],
    );
    churn(&ns, 2);
    let recorded = recorder.stop().unwrap();
    let stderr = recorded.stderr.join("\n");
    assert!(recorded.status.success(), "{stderr}");
    assert!(stderr.contains("no kernel BTF"), "{stderr}");
    // Without BTF, state changes come from the classic tracepoint.
    assert_eq!(
        state_change_attachment(&path),
        "classic tracepoint (tp_btf: no kernel BTF)"
    );
    let events = replay_events(&path);
    let transitions: Vec<_> = events
        .iter()
        .filter(|e| e["kind"] == "transition")
        .collect();
    assert!(transitions.len() >= 20, "{}", transitions.len());
    assert!(
        transitions.iter().all(|e| e["netns"] == 0),
        "netns must be unknown (0), not guessed"
    );

    // --netns cannot work without the socket's namespace: refuse, clearly.
    let out = tcpchurn(&[
        "record",
        "-o",
        scratch.path("n.trace").to_str().unwrap(),
        "--btf",
        "/nonexistent/vmlinux",
        "--netns",
        &ns.name,
    ]);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--netns needs each socket's network namespace"),
        "{stderr}"
    );
    assert!(!scratch.path("n.trace").exists());
    assert_no_leftovers();
}

#[test]
fn output_path_problems_are_caught_before_attaching() {
    if !require_root("output_path_problems_are_caught_before_attaching") {
        return;
    }
    let scratch = Scratch::new("paths");
    let existing = scratch.path("exists.trace");
    fs::write(&existing, b"precious").unwrap();
    let target = scratch.path("target");
    let link = scratch.path("link.trace");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let missing = scratch.path("no/such/dir/x.trace");
    for (path, force, expected) in [
        (&missing, false, "does not exist"),
        (&existing, false, "already exists; pass --force"),
        (&link, false, "symbolic link"),
        (&link, true, "symbolic link"),
    ] {
        let mut args = vec!["record", "-o", path.to_str().unwrap()];
        if force {
            args.push("--force");
        }
        let out = tcpchurn(&args);
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(
            !recorder::says_ready(&stderr),
            "attached before checking the path: {stderr}"
        );
    }
    assert_eq!(fs::read(&existing).unwrap(), b"precious");
    assert!(!target.exists(), "wrote through a planted symlink");
    assert_no_leftovers();
}

#[test]
fn bad_input_files_give_one_line_errors() {
    let scratch = Scratch::new("badfiles");
    let cases: [(&str, &[u8], &str); 5] = [
        ("empty", b"", "the file is empty"),
        ("png", b"\x89PNG\r\n\x1a\n....", "not a tcpchurn trace"),
        ("short", b"TCPCHURN\x01", "ends inside its header"),
        (
            "newer",
            b"TCPCHURN\x07\x00\x02\x00\x00\x00\x00\x00",
            "trace format 7.2 is newer than this tcpchurn reads",
        ),
        (
            "text",
            b"hello, I am not a trace at all\n",
            "not a tcpchurn trace",
        ),
    ];
    for (name, bytes, expected) in cases {
        let path = scratch.path(name);
        fs::write(&path, bytes).unwrap();
        for extra in [&[][..], &["--events"][..], &["--json"][..]] {
            let mut args = vec!["replay", path.to_str().unwrap()];
            args.extend_from_slice(extra);
            let out = tcpchurn(&args);
            let stderr = stderr_of(&out);
            assert_eq!(out.status.code(), Some(2), "{name} {extra:?}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
            assert!(stderr.contains(expected), "{name}: {stderr}");
        }
    }
    let out = tcpchurn(&["replay", scratch.path("missing").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("No such file"));
    let out = tcpchurn(&["replay", scratch.0.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr_of(&out).lines().count(), 1, "{}", stderr_of(&out));
    let out = tcpchurn(&["record", "--bogus-flag"]);
    assert_eq!(out.status.code(), Some(2));
}
