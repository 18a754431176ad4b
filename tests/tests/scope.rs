//! Both state-change programs (classic tracepoint with probe reads, `tp_btf` with
//! direct loads) read each socket's netns and cgroup from the socket on every event.
//! Addresses are reused within milliseconds, across namespaces and cgroups: two
//! namespaces churning at once, one of them in its own cgroup, must still see every
//! transition tagged with its own namespace and cgroup, on both paths.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test loudly"
)]

use std::{
    path::PathBuf,
    process::{Command, Stdio},
};

use tcpchurn_tests::{
    Netns, Recorder, Scratch, replay_events, require_root, state_change_attachment,
};

const CONNECTIONS_PER_PAIR: u32 = 3000;

/// Where cgroup v2 is mounted, if anywhere.
fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(fields[1]))
    })
}

/// A cgroup v2 directory, removed on drop.
struct Cgroup(PathBuf);

impl Drop for Cgroup {
    fn drop(&mut self) {
        // The churn process has exited by now; its cgroup empties asynchronously.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

fn inode(path: &std::path::Path) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).unwrap())
}

/// Runs the churn generator in `ns` (optionally inside a cgroup) and returns the
/// transitions it says a tracer must see.
fn churn(ns: &Netns, port: u16, close: &str, cgroup: Option<&Cgroup>) -> std::process::Child {
    let churn = env!("CARGO_BIN_EXE_tcpchurn-churn");
    let args = format!(
        "--pairs 2 --duration 30 --count {CONNECTIONS_PER_PAIR} --close {close} --port {port}"
    );
    let script = match cgroup {
        Some(cg) => format!(
            "echo $$ > {}/cgroup.procs && exec ip netns exec {} {churn} {args}",
            cg.0.display(),
            ns.name
        ),
        None => format!("exec ip netns exec {} {churn} {args}", ns.name),
    };
    Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

fn expected(child: std::process::Child) -> u64 {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["expected_transitions"].as_u64().unwrap()
}

#[test]
fn reused_socket_addresses_keep_their_own_namespace_and_cgroup() {
    if !require_root("reused_socket_addresses_keep_their_own_namespace_and_cgroup") {
        return;
    }
    // This kernel has BTF: the BTF-enabled raw tracepoint is used.
    assert_eq!(check_scopes(("sca", "scb"), &[]), "tp_btf");
}

#[test]
fn reused_socket_addresses_keep_their_own_namespace_and_cgroup_classic_tracepoint() {
    if !require_root("reused_socket_addresses_keep_their_own_namespace_and_cgroup_classic") {
        return;
    }
    let how = check_scopes(("scc", "scd"), &["--no-tp-btf".into()]);
    assert!(how.starts_with("classic tracepoint"), "{how}");
}

/// Churns two namespaces at once under one recorder started with `args`, and checks
/// every transition's namespace and cgroup. Returns how state changes were recorded.
fn check_scopes(names: (&str, &str), args: &[String]) -> String {
    let (a, b) = (Netns::new(names.0), Netns::new(names.1));
    let cgroup = cgroup2_root().map(|root| {
        let dir = root.join(format!("tcpchurn-scope-{}-{}", names.0, std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        Cgroup(dir)
    });
    let scratch = Scratch::new(&format!("scope-{}", names.0));
    let mut recorder_args = vec![
        "--netns".into(),
        a.name.clone(),
        "--netns".into(),
        b.name.clone(),
        "--no-snapshot".into(),
    ];
    recorder_args.extend_from_slice(args);
    let recorder = Recorder::start(&scratch.path("t.trace"), &recorder_args);
    let in_a = churn(&a, 23_100, "client", None);
    let in_b = churn(&b, 24_100, "server", cgroup.as_ref());
    let expected = expected(in_a) + expected(in_b);
    let recorded = recorder.stop();
    assert!(recorded.status.success(), "{:?}", recorded.stderr);

    // The churn in `a` runs in this test's cgroup, the one in `b` in its own.
    let own_cgroup = own_cgroup();
    // Without cgroup v2 only namespaces are checked: say so, and in CI that is a
    // skipped check, which fails.
    if cgroup.is_none() || own_cgroup.is_none() {
        eprintln!("scope: no cgroup v2 hierarchy here: cgroup ids are not checked");
        assert!(
            std::env::var_os("CI").is_none(),
            "CI: cgroup ids must be checked (cgroup v2 is not mounted)"
        );
    }
    let b_cgroup = cgroup.as_ref().map_or(own_cgroup, |cg| Some(inode(&cg.0)));
    let events = replay_events(&recorded.path);
    let mut checked = 0u64;
    for event in events.iter().filter(|e| e["kind"] == "transition") {
        let ports = [
            event["lport"].as_u64().unwrap(),
            event["rport"].as_u64().unwrap(),
        ];
        let (netns, cgroup) = if ports.iter().any(|p| (23_100..23_102).contains(p)) {
            (a.inode, own_cgroup)
        } else if ports.iter().any(|p| (24_100..24_102).contains(p)) {
            (b.inode, b_cgroup)
        } else {
            panic!("a transition of neither churn: {event}");
        };
        assert_eq!(event["netns"], netns, "{event}");
        if cgroup.is_some() {
            assert_eq!(event["cgroup"].as_u64(), cgroup, "{event}");
        }
        checked += 1;
    }
    assert_eq!(checked, expected);
    state_change_attachment(&recorded.path)
}

/// The cgroup v2 id (directory inode) of this test process, when cgroup v2 is
/// mounted.
fn own_cgroup() -> Option<u64> {
    let root = cgroup2_root()?;
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(inode(&root.join(path.trim_start_matches('/'))))
}
