//! Hostile conditions: signals, kills, full disks, missing privileges, missing tracefs
//! or BTF, bad output paths, tiny ring buffers. The recorder must never lose what it
//! wrote, never panic, and never leave kernel state behind.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test loudly"
)]

use std::{
    fs::{self, File},
    io::{Read as _, Write as _},
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::Path,
    process::{Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use tcpchurn_harness::{bpftool, procfs, recorder};
use tcpchurn_tests::{
    Netns, Peer, Scratch, count_kind, lost_total, netns, open_trace, record, replay_events,
    replay_with_warnings, require_root, ss, state_change_attachment, tcpchurn, tcpchurn_bin,
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

// ---- Files the recorder creates, inputs it reads, privileges it keeps. ----

/// `tcpchurn` with a command line of space-separated words, which must end within
/// `secs` (killed otherwise: a hang is a failure).
fn tcpchurn_within(secs: u64, line: &str) -> Output {
    let mut child = Command::new(tcpchurn_bin())
        .args(line.split_whitespace())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _killed = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("tcpchurn {line} hung; stderr: {}", stderr_of(&out));
        }
        thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

/// Refused with one line saying `expected`, nothing attached.
fn assert_refused(out: &Output, expected: &str) {
    let stderr = stderr_of(out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(expected), "wanted {expected:?}: {stderr}");
}

fn assert_success(out: &Output) -> String {
    let stderr = stderr_of(out);
    assert!(out.status.success(), "{stderr}");
    stderr
}

/// A directory like /tmp: everyone writes, only owners remove.
fn sticky_scratch(tag: &str) -> Scratch {
    let scratch = Scratch::new(tag);
    fs::set_permissions(&scratch.0, fs::Permissions::from_mode(0o1777)).unwrap();
    scratch
}

/// Runs a shell command as user nobody.
fn nobody_sh(script: &str) {
    let status = Command::new("setpriv")
        .args(words("--reuid=65534 --regid=65534 --clear-groups sh -c"))
        .arg(script)
        .status()
        .unwrap();
    assert!(status.success(), "{script}");
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn owner_and_mode(path: &Path) -> (u32, u32) {
    let meta = fs::symlink_metadata(path).unwrap();
    (meta.uid(), meta.permissions().mode() & 0o777)
}

#[test]
fn a_second_recording_never_truncates_the_first_ones_rotated_files() {
    if !require_root("a_second_recording_never_truncates_the_first_ones_rotated_files") {
        return;
    }
    let scratch = Scratch::new("again");
    let path = scratch.path("inc.trace");
    // The header alone exceeds 512 bytes: every flush starts a new file.
    let line = format!(
        "record -o {} -C 512 -W 2 -d 1 --flush-interval 50ms --no-snapshot --port 1",
        path.display()
    );
    assert_success(&tcpchurn_within(60, &line));
    let first = names_in(&scratch.0);
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(!path.exists(), "-W 2 removed the first file");
    let read = |names: &[String]| -> Vec<Vec<u8>> {
        names
            .iter()
            .map(|n| fs::read(scratch.path(n)).unwrap())
            .collect()
    };
    let contents = read(&first);
    assert_refused(&tcpchurn_within(60, &line), "of an earlier recording exist");
    assert_eq!(names_in(&scratch.0), first);
    assert_eq!(
        read(&first),
        contents,
        "the first recording's files changed"
    );
    // --force replaces a file when rotation reaches its name, never writes into it:
    // the first recording's files, held open, keep what they held.
    let held: Vec<File> = first
        .iter()
        .map(|n| File::open(scratch.path(n)).unwrap())
        .collect();
    assert_success(&tcpchurn_within(60, &format!("{line} --force")));
    for ((name, content), mut file) in first.iter().zip(&contents).zip(held) {
        let mut kept = Vec::new();
        file.read_to_end(&mut kept).unwrap();
        assert_eq!(&kept, content, "{name}");
    }
}

#[test]
fn rotation_never_writes_into_a_file_or_link_another_user_planted() {
    if !require_root("rotation_never_writes_into_a_file_or_link_another_user_planted") {
        return;
    }
    let scratch = sticky_scratch("planted");
    let dir = scratch.0.display().to_string();
    // Planted before the recording: refused at once, the file untouched.
    nobody_sh(&format!("umask 0; : > {dir}/early.trace.1"));
    let line = format!("record -o {dir}/early.trace -C 512 -d 1");
    assert_refused(&tcpchurn_within(60, &line), "earlier recording exists (");
    assert_eq!(
        fs::metadata(scratch.path("early.trace.1")).unwrap().len(),
        0
    );
    // Planted while it records (a file every 50 ms, these at about 1 s): stepped over.
    let path = scratch.path("x.trace");
    let args = words("-C 512 --flush-interval 50ms --no-snapshot --port 1");
    let recorder = record(&path, &args);
    nobody_sh(&format!(
        "umask 0; : > {dir}/x.trace.20; ln -s {dir}/victim {dir}/x.trace.21"
    ));
    thread::sleep(Duration::from_millis(2000));
    let recorded = recorder.stop().unwrap();
    let stderr = recorded.stderr.join("\n");
    assert!(recorded.status.success(), "{stderr}");
    assert_eq!(fs::metadata(scratch.path("x.trace.20")).unwrap().len(), 0);
    assert_eq!(owner_and_mode(&scratch.path("x.trace.20")), (65534, 0o666));
    assert!(
        !scratch.path("victim").exists(),
        "wrote through a planted link"
    );
    for taken in ["x.trace.20 exists", "x.trace.21 exists"] {
        assert!(stderr.contains(taken), "not said: {taken}: {stderr}");
    }
    assert!(
        scratch.path("x.trace.23").exists(),
        "stopped at the planted names"
    );
    for name in names_in(&scratch.0) {
        if name.starts_with("x.trace") && !name.ends_with(".20") && !name.ends_with(".21") {
            assert_eq!(owner_and_mode(&scratch.path(&name)), (0, 0o600), "{name}");
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap()
}

/// `count` loopback connections in `ns` that the server closes first: the server side
/// holds `count` TIME_WAIT sockets for 60 s.
fn server_time_waits(ns: &Netns, count: u32) {
    let (addr, n) = (format!("127.0.0.1:{PORT}"), count.to_string());
    let server = Peer::server(
        Some(ns),
        &["--listen", &addr, "--count", &n, "--behaviour", "close"],
    );
    let client = Peer::client(
        Some(ns),
        &[
            "--connect",
            &addr,
            "--count",
            &n,
            "--behaviour",
            "wait-peer",
        ],
    );
    client.wait();
    server.wait();
}

#[test]
fn time_wait_sockets_older_than_the_recording_expire_when_the_kernel_says() {
    if !require_root("time_wait_sockets_older_than_the_recording_expire_when_the_kernel_says") {
        return;
    }
    let ns = netns("twage");
    let scratch = Scratch::new("twage");
    let path = scratch.path("t.trace");
    let first_made = Instant::now();
    server_time_waits(&ns, 200);
    let last_made = Instant::now();
    // 47 s old when recording starts; the kernel drops them at 60 s.
    thread::sleep(Duration::from_secs(47).saturating_sub(last_made.elapsed()));
    // A listener, so that the end snapshot is not empty (an empty one is not told apart
    // from none).
    let listen = format!("127.0.0.1:{}", PORT + 1);
    let _listener = Peer::server(Some(&ns), &["--listen", &listen, "--count", "1"]);
    // The start snapshot is taken between these two instants, so each socket's time
    // left lies between these bounds.
    // A client port used again takes its 4-tuple from the server's TIME_WAIT socket
    // (docs/kernel-facts.md §1.3 point 4), so the kernel may hold fewer than 200: what
    // `ss` counts now is what the start snapshot must find.
    let held = ss(&ns).iter().filter(|s| s.state == "TIME-WAIT").count();
    assert!(held > 190, "{held} TIME_WAIT sockets");
    let youngest_at_start = millis(last_made.elapsed());
    let recorder = record(&path, netns_args(&ns, &[]));
    let oldest_at_ready = millis(first_made.elapsed());
    // The timer wheel may drop a socket up to 2.05 s after its 60 s
    // (docs/kernel-facts.md §1.3): the end snapshot is taken past that.
    thread::sleep(Duration::from_secs(65).saturating_sub(last_made.elapsed()));
    let recorded = recorder.stop().unwrap();
    assert!(recorded.status.success(), "{:?}", recorded.stderr);
    let events = replay_events(&path);
    let left: Vec<u64> = events
        .iter()
        .filter(|e| e["kind"] == "snapshot" && e["state"] == "TIME_WAIT")
        .map(|e| e["timer_ms"].as_u64().expect("the time left is known"))
        .collect();
    assert_eq!(left.len(), held, "none is left at the end");
    let (low, high) = (60_000 - oldest_at_ready, 60_000 - youngest_at_start);
    assert!(
        left.iter().all(|&ms| ms + 100 >= low && ms <= high + 100),
        "between {low} and {high} ms expected, got {left:?}"
    );
    let verdict = tcpchurn_tests::replay_verdict(&path, &[]);
    for pair in verdict["pairs"].as_array().unwrap() {
        assert_eq!(pair["time_wait"]["server"], 0, "{pair}");
        assert_eq!(pair["time_wait_kernel"]["server"], 0, "{pair}");
    }
}

#[test]
fn btf_must_be_a_regular_file_of_a_sane_size_and_is_checked_before_the_output() {
    if !require_root("btf_must_be_a_regular_file_of_a_sane_size_and_is_checked_before_the_output") {
        return;
    }
    let scratch = Scratch::new("btfin");
    let out_path = scratch.path("old.trace");
    fs::write(&out_path, b"the previous outage").unwrap();
    let fifo = scratch.path("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let big = scratch.path("big");
    File::create(&big).unwrap().set_len(1 << 30).unwrap();
    for (btf, expected) in [
        (Path::new("/dev/zero"), "not a regular file"),
        (&fifo, "not a regular file"),
        (&big, "too large"),
    ] {
        let line = format!(
            "record -f -d 1 -o {} --btf {}",
            out_path.display(),
            btf.display()
        );
        assert_refused(&tcpchurn_within(20, &line), expected);
        assert_eq!(fs::read(&out_path).unwrap(), b"the previous outage");
    }
}

#[test]
fn the_recorder_creates_no_other_file_than_its_trace() {
    if !require_root("the_recorder_creates_no_other_file_than_its_trace") {
        return;
    }
    let scratch = sticky_scratch("probefile");
    // In a pid namespace of its own the recorder is pid 1: its old write-check name.
    nobody_sh(&format!(
        "umask 0; : > {}/.tcpchurn-probe-1",
        scratch.0.display()
    ));
    let script = format!(
        "exec {} record -d 1 --no-snapshot --port 1 -o {}",
        tcpchurn_bin().display(),
        scratch.path("t.trace").display()
    );
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "sh", "-c", &script])
        .output()
        .unwrap();
    assert_success(&out);
    assert_eq!(names_in(&scratch.0), [".tcpchurn-probe-1", "t.trace"]);
}

#[test]
fn bad_record_options_are_refused_in_one_line() {
    if !require_root("bad_record_options_are_refused_in_one_line") {
        return;
    }
    let scratch = Scratch::new("badopts");
    let out = scratch.path("x.trace");
    for (args, expected) in [
        ("-n /etc/passwd", "not a network namespace"),
        ("-n 12345", "no network namespace has inode 12345"),
        ("-C 1K -W 0", "--rotate must keep at least 1 file"),
        ("-p 0", "--port 0 matches no connection"),
        ("-d 0", "--duration must be longer than 0"),
        ("-C 0", "--max-size must be at least 1 byte"),
        ("--ring-size 4G", "--ring-size must be below 4 GiB"),
    ] {
        let line = format!("record -o {} {args}", out.display());
        assert_refused(&tcpchurn_within(20, &line), expected);
        assert!(!out.exists(), "{args} created the output");
    }
    // Sums of units are durations: the error is about the directory, not `-d`.
    let line = format!("record -d 1m30s -o {}/no/x.trace", scratch.0.display());
    assert_refused(&tcpchurn_within(20, &line), "does not exist");
}

#[test]
fn os_errors_are_said_once_and_a_full_stderr_fails_nothing() {
    if !require_root("os_errors_are_said_once_and_a_full_stderr_fails_nothing") {
        return;
    }
    let scratch = Scratch::new("oserr");
    let ro = scratch.path("ro");
    fs::create_dir(&ro).unwrap();
    let mount = format!("-t tmpfs -o ro,size=64k tcpchurn-test {}", ro.display());
    assert!(
        Command::new("mount")
            .args(words(&mount))
            .status()
            .unwrap()
            .success()
    );
    let out = tcpchurn_within(20, &format!("record -o {}/x.trace", ro.display()));
    let _unmounted = Command::new("umount").arg(&ro).status();
    assert_refused(&out, "Read-only file system (os error 30)");
    assert_eq!(stderr_of(&out).matches("os error 30").count(), 1);
    // The summary cannot be shown: the recording still succeeded.
    let path = scratch.path("t.trace");
    let status = Command::new(tcpchurn_bin())
        .args(words("record -d 1 --no-snapshot --port 1 -o"))
        .arg(&path)
        .stderr(File::create("/dev/full").unwrap())
        .status()
        .unwrap();
    assert!(status.success(), "{status:?}");
    replay_events(&path);
}

#[test]
fn the_end_snapshot_starts_a_new_file_instead_of_overfilling_one() {
    if !require_root("the_end_snapshot_starts_a_new_file_instead_of_overfilling_one") {
        return;
    }
    let ns = netns("endsnap");
    let scratch = Scratch::new("endsnap");
    server_time_waits(&ns, 300);
    // A client port used again ends a server TIME_WAIT early (docs/kernel-facts.md §1.3
    // point 4): what `ss` holds now is what each end snapshot must find.
    let held = ss(&ns).len();
    assert!(held > 290, "{held} sockets");
    // Without rotation: the header, the start snapshot and the end snapshot.
    let line = format!("record -d 1 -n {} -o {}", ns.name, scratch.0.display());
    assert_success(&tcpchurn_within(60, &format!("{line}/whole.trace")));
    // Room for the header and one snapshot, not two.
    let max = fs::metadata(scratch.path("whole.trace")).unwrap().len() * 3 / 4;
    assert_success(&tcpchurn_within(60, &format!("{line}/t.trace -C {max}")));
    let parts: Vec<String> = names_in(&scratch.0)
        .into_iter()
        .filter(|n| n.starts_with("t.trace"))
        .collect();
    assert_eq!(parts, ["t.trace", "t.trace.1"]);
    for name in &parts {
        let size = fs::metadata(scratch.path(name)).unwrap().len();
        assert!(size <= max, "{name}: {size} bytes, -C {max}");
    }
    let last = replay_events(&scratch.path("t.trace.1"));
    let at_end = last.iter().filter(|e| e["at_end"] == true).count();
    assert_eq!(at_end, held, "the end snapshot is whole in the last file");
}

#[test]
fn the_summary_counts_only_connections_the_filters_keep() {
    if !require_root("the_summary_counts_only_connections_the_filters_keep") {
        return;
    }
    let ns = netns("sumfilter");
    let scratch = Scratch::new("sumfilter");
    let listen = format!("127.0.0.1:{PORT}");
    let _listener = Peer::server(Some(&ns), &["--listen", &listen, "--count", "1"]);
    let line = format!(
        "record -d 1 -n {} -p 1 -o {}/t.trace",
        ns.name,
        scratch.0.display()
    );
    let stderr = assert_success(&tcpchurn_within(60, &line));
    let count = stderr
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("connections"))
        .unwrap();
    assert_eq!(count.trim(), "0", "{stderr}");
}

/// `(thread name, CapEff, CapPrm, CapBnd)` of each thread of `pid`.
fn thread_capabilities(pid: u32) -> Vec<(String, [u64; 3])> {
    let field = |status: &str, name: &str| {
        let hex = status.lines().find_map(|l| l.strip_prefix(name)).unwrap();
        u64::from_str_radix(hex.trim(), 16).unwrap()
    };
    fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|task| {
            let task = task.unwrap().path();
            let status = fs::read_to_string(task.join("status")).unwrap();
            let comm = fs::read_to_string(task.join("comm")).unwrap();
            let caps = ["CapEff:", "CapPrm:", "CapBnd:"].map(|name| field(&status, name));
            (comm.trim().to_owned(), caps)
        })
        .collect()
}

/// `(thread name, nice value)` of each thread of `pid` (`proc_pid_stat(5)`: the 19th
/// field; the name in parentheses may hold spaces).
fn thread_nice(pid: u32) -> Vec<(String, i32)> {
    let mut threads: Vec<(String, i32)> = fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|task| {
            let stat = fs::read_to_string(task.unwrap().path().join("stat")).unwrap();
            let (head, tail) = stat.rsplit_once(") ").unwrap();
            let name = head.split_once(" (").unwrap().1.to_owned();
            let nice = tail.split_whitespace().nth(16).unwrap().parse().unwrap();
            (name, nice)
        })
        .collect();
    threads.sort();
    threads
}

#[test]
fn the_threads_that_drain_and_write_run_at_a_raised_priority() {
    if !require_root("the_threads_that_drain_and_write_run_at_a_raised_priority") {
        return;
    }
    let ns = netns("nice");
    let scratch = Scratch::new("nice");
    // The default, and one asked for; the live view's analysis keeps the default
    // priority (it may fall behind without losing anything).
    for (extra, raised) in [(&["--live"][..], -10), (&["--live", "--nice", "3"][..], 3)] {
        let recorder = record(&scratch.path("t.trace"), netns_args(&ns, extra));
        let threads = thread_nice(recorder.pid());
        recorder.stop().unwrap().ensure_success().unwrap();
        let expected = [
            ("tcpchurn".to_owned(), raised),
            ("tcpchurn-live".to_owned(), 0),
            ("tcpchurn-writer".to_owned(), raised),
        ];
        assert_eq!(threads, expected, "{extra:?}");
    }
}

/// Whether the trace's end snapshot holds a listening socket.
fn listens_at_end(path: &Path) -> bool {
    replay_events(path)
        .iter()
        .any(|e| e["at_end"] == true && e["state"] == "LISTEN")
}

#[test]
fn once_attached_the_recorder_keeps_only_what_the_end_snapshot_needs() {
    if !require_root("once_attached_the_recorder_keeps_only_what_the_end_snapshot_needs") {
        return;
    }
    const SYS_PTRACE_AND_SYS_ADMIN: u64 = (1 << 19) | (1 << 21);
    let ns = netns("caps");
    let scratch = Scratch::new("caps");
    let listen = format!("127.0.0.1:{PORT}");
    for (extra, main_keeps) in [
        (&[][..], SYS_PTRACE_AND_SYS_ADMIN),
        (&["--no-snapshot"][..], 0),
    ] {
        let path = scratch.path("t.trace");
        let recorder = record(&path, netns_args(&ns, extra));
        let threads = thread_capabilities(recorder.pid());
        assert_eq!(threads.len(), 2, "{threads:?}");
        for (name, caps) in &threads {
            let keeps = if name == "tcpchurn-writer" {
                0
            } else {
                main_keeps
            };
            assert_eq!(*caps, [keeps; 3], "{name}: effective, permitted, bounding");
        }
        // What it kept is enough: the end snapshot sees the namespace's listener, the
        // kernel's counters are read without a warning.
        let server = Peer::server(Some(&ns), &["--listen", &listen, "--count", "1"]);
        let recorded = recorder.stop().unwrap();
        drop(server);
        let stderr = recorded.stderr.join("\n");
        assert!(
            recorded.status.success() && !stderr.contains("WARN"),
            "{stderr}"
        );
        assert_eq!(listens_at_end(&path), extra.is_empty());
    }
}

#[test]
fn with_only_its_documented_capabilities_a_non_root_user_records() {
    if !require_root("with_only_its_documented_capabilities_a_non_root_user_records") {
        return;
    }
    let ns = netns("capsonly");
    let scratch = sticky_scratch("capsonly");
    let path = scratch.path("t.trace");
    let listen = format!("127.0.0.1:{PORT}");
    let server = Peer::server(Some(&ns), &["--listen", &listen, "--count", "1"]);
    // The set docs/privileges.md gives.
    let caps = "+bpf,+perfmon,+dac_read_search,+sys_admin,+sys_ptrace";
    let out = Command::new("setpriv")
        .args(words("--reuid=65534 --regid=65534 --clear-groups"))
        .args([
            format!("--inh-caps=-all,{caps}"),
            format!("--ambient-caps=-all,{caps}"),
        ])
        .arg(tcpchurn_bin())
        .args(words(&format!("record -d 1 -n {} -o", ns.name)))
        .arg(&path)
        .output()
        .unwrap();
    drop(server);
    let stderr = assert_success(&out);
    assert!(!stderr.contains("WARN"), "{stderr}");
    assert_eq!(owner_and_mode(&path), (65534, 0o600));
    assert!(listens_at_end(&path));
}

#[test]
fn names_from_the_trace_cannot_drive_the_terminal() {
    if !require_root("names_from_the_trace_cannot_drive_the_terminal") {
        return;
    }
    let evil = "\x1b[2J\x1b]0;PWN\x07";
    let ns = netns("evilname");
    let scratch = Scratch::new("evilname");
    let path = scratch.path("t.trace");
    let listen = format!("127.0.0.1:{PORT}");
    // Any local process can take such a name; root can give the host such a name.
    let _server = Peer::server(Some(&ns), &["--comm", evil, "--listen", &listen]);
    let script = format!(
        "printf '{}' > /proc/sys/kernel/hostname && exec {} record -d 1 -n {} -o {}",
        evil.replace('\x1b', "\\033").replace('\x07', "\\007"),
        tcpchurn_bin().display(),
        ns.name,
        path.display()
    );
    let out = Command::new("unshare")
        .args(["--uts", "sh", "-c", &script])
        .output()
        .unwrap();
    assert_success(&out);
    let file = path.to_str().unwrap();
    for args in [
        &["replay", file][..],
        &["replay", file, "--connections"],
        &["replay", file, "--events"],
    ] {
        let out = tcpchurn(args);
        assert!(out.status.success(), "{args:?}: {}", stderr_of(&out));
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(!stdout.contains(['\x1b', '\x07']), "{args:?}: {stdout:?}");
        assert!(stdout.contains(r"\x1b]0;PWN\x07"), "{args:?}: {stdout}");
    }
    // JSON keeps the names, escaped its own way.
    let events = replay_events(&path);
    assert!(events.iter().any(|e| e["comm"] == evil), "{events:?}");
}
