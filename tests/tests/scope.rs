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
    path::{Path, PathBuf},
    process::{Child, Command},
    time::{Duration, Instant},
};

use tcpchurn_harness::{
    churn::{ChurnLoad, CloseMode, RunningChurn},
    runner::{in_ci, time_scale},
};
use tcpchurn_tests::{
    Netns, Scratch, kernel_has_btf, lost_by_cause, netns, record, replay_events, require_root,
    state_change_attachment,
};

/// Connections per client. The whole run (2 namespaces x 2 pairs x 10 transitions per
/// connection, about 155 bytes per ring record) fits in the default 16 MiB ring even if
/// the recorder is not scheduled at all while the churn runs: this test checks tags,
/// not a busy machine's ring capacity (the benchmark measures that).
const CONNECTIONS_PER_PAIR: u64 = 1000;

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
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn inode(path: &Path) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).unwrap())
}

/// Starts the churn generator in `ns` (inside a cgroup, if given): two loopback pairs
/// from `port`, `CONNECTIONS_PER_PAIR` connections each.
fn churn(ns: &Netns, port: u16, close: CloseMode, cgroup: Option<&Cgroup>) -> RunningChurn {
    let load = ChurnLoad {
        pairs: 2,
        duration_s: 30.0,
        close,
        payload: true,
        port,
        count: Some(CONNECTIONS_PER_PAIR),
    };
    let bin = Path::new(env!("CARGO_BIN_EXE_tcpchurn-churn"));
    load.start(bin, ns, cgroup.map(|cg| cg.0.as_path()))
        .unwrap()
}

/// The transitions a churn run says a tracer must see.
fn expected(churn: RunningChurn) -> u64 {
    churn.finish().unwrap().expected_transitions
}

#[test]
fn reused_socket_addresses_keep_their_own_namespace_and_cgroup() {
    if !require_root("reused_socket_addresses_keep_their_own_namespace_and_cgroup") {
        return;
    }
    let how = check_scopes(("sca", "scb"), &[]);
    if kernel_has_btf() {
        // The BTF-enabled raw tracepoint is used where the kernel has BTF.
        assert_eq!(how, "tp_btf");
    } else {
        assert!(how.starts_with("classic tracepoint"), "{how}");
    }
}

#[test]
fn reused_socket_addresses_keep_their_own_namespace_and_cgroup_classic_tracepoint() {
    if !require_root("reused_socket_addresses_keep_their_own_namespace_and_cgroup_classic") {
        return;
    }
    let how = check_scopes(("scc", "scd"), &["--no-tp-btf".into()]);
    assert!(how.starts_with("classic tracepoint"), "{how}");
}

// Each CPU remembers the namespaces it saw by their `net_cookie`, not their address
// (docs/kernel-facts.md §4.6): a namespace created after another was deleted often gets
// the deleted one's `struct net` back from the slab, and must still be tagged with its
// own inode number.
#[test]
fn a_namespace_created_where_a_deleted_one_was_keeps_its_own_inode() {
    if !require_root("a_namespace_created_where_a_deleted_one_was_keeps_its_own_inode") {
        return;
    }
    let how = check_successive_namespaces("snb", &[]);
    if kernel_has_btf() {
        assert_eq!(how, "tp_btf");
    }
}

#[test]
fn a_namespace_created_where_a_deleted_one_was_keeps_its_own_inode_classic_tracepoint() {
    if !require_root("a_namespace_created_where_a_deleted_one_was_keeps_its_own_inode_classic") {
        return;
    }
    let how = check_successive_namespaces("snc", &["--no-tp-btf".into()]);
    assert!(how.starts_with("classic tracepoint"), "{how}");
}

/// Namespaces one after another under one recorder started with `args`, each churning a
/// few connections on its own port and deleted before the next is created; checks every
/// transition's namespace. Returns how state changes were recorded.
fn check_successive_namespaces(tag: &str, args: &[String]) -> String {
    const ROUNDS: u16 = 6;
    const FIRST_PORT: u16 = 27_100;
    let scratch = Scratch::new(&format!("successive-{tag}"));
    let mut recorder_args: Vec<String> = (0..ROUNDS)
        .flat_map(|i| ["--port".to_owned(), (FIRST_PORT + i).to_string()])
        .collect();
    recorder_args.push("--no-snapshot".into());
    recorder_args.extend_from_slice(args);
    let trace = scratch.path("t.trace");
    let recorder = record(&trace, recorder_args);
    let mut inodes = Vec::new();
    let mut holders = Vec::new();
    let mut expected = 0;
    for i in 0..ROUNDS {
        let ns = netns(&format!("{tag}{i}"));
        let load = ChurnLoad {
            pairs: 1,
            duration_s: 30.0,
            close: CloseMode::Client,
            payload: false,
            port: FIRST_PORT + i,
            count: Some(50),
        };
        let bin = Path::new(env!("CARGO_BIN_EXE_tcpchurn-churn"));
        expected += load
            .start(bin, &ns, None)
            .unwrap()
            .finish()
            .unwrap()
            .expected_transitions;
        let inode = ns.inode;
        inodes.push(inode);
        drop(ns);
        holders.push(hold_inode_number(inode));
    }
    recorder.stop().unwrap().ensure_success().unwrap();
    drop(holders);
    // Distinct numbers, or a stale number could not be told from the right one.
    let mut distinct = inodes.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), inodes.len(), "{inodes:?}");

    let events = replay_events(&trace);
    let (counted, unreported) = lost_by_cause(&events);
    assert_eq!(counted, 0, "events were lost");
    let mut checked = 0u64;
    for event in events.iter().filter(|e| e["kind"] == "transition") {
        let round = ["lport", "rport"]
            .iter()
            .filter_map(|key| event[*key].as_u64())
            .find_map(|port| {
                let round = port.checked_sub(u64::from(FIRST_PORT))?;
                (round < u64::from(ROUNDS)).then_some(round)
            })
            .unwrap_or_else(|| panic!("a transition of no round: {event}"));
        assert_eq!(event["netns"], inodes[round as usize], "{event}");
        checked += 1;
    }
    assert!(
        checked <= expected && expected - checked <= 5 * unreported,
        "{checked} transitions recorded, {expected} made, {unreported} lost unreported"
    );
    state_change_attachment(&trace)
}

/// Processes in UTS namespaces of their own, killed on drop.
struct Holders(Vec<Child>);

impl Drop for Holders {
    fn drop(&mut self) {
        for child in &mut self.0 {
            // A child that already exited is fine: it holds nothing any more.
            let _killed = child.kill();
            let _reaped = child.wait();
        }
    }
}

/// Once the deleted namespace numbered `inode` is freed, takes its number with a UTS
/// namespace. Every namespace gets its number from one allocator, lowest free first
/// (`proc_alloc_inum()`, fs/proc/generic.c), so the next network namespace gets another
/// number while it likely gets the freed one's memory (`struct net` comes from a slab):
/// a cache keyed by the address would then give the old number. The kernel frees a
/// deleted namespace in a work item, so this retries until the number is free.
fn hold_inode_number(inode: u64) -> Holders {
    let mut holders = Holders(Vec::new());
    let own = std::fs::read_link("/proc/self/ns/uts").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20) * time_scale();
    loop {
        let child = Command::new("unshare")
            .args(["--uts", "sleep", "600"])
            .spawn()
            .unwrap();
        let path = PathBuf::from(format!("/proc/{}/ns/uts", child.id()));
        holders.0.push(child);
        // The child is in this process's namespace until `unshare` has made its own.
        let held = loop {
            let link = std::fs::read_link(&path).unwrap();
            if link != own {
                let text = link.to_str().unwrap();
                let number = text.strip_prefix("uts:[").unwrap().trim_end_matches(']');
                break number.parse::<u64>().unwrap();
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        if held == inode {
            return holders;
        }
        assert!(
            Instant::now() < deadline,
            "namespace number {inode} was not freed in time"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Churns two namespaces at once under one recorder started with `args`, and checks
/// every transition's namespace and cgroup. Returns how state changes were recorded.
fn check_scopes(names: (&str, &str), args: &[String]) -> String {
    let (a, b) = (netns(names.0), netns(names.1));
    let cgroup = cgroup2_root().map(|root| {
        let dir = root.join(format!("tcpchurn-scope-{}-{}", names.0, std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        Cgroup(dir)
    });
    let scratch = Scratch::new(&format!("scope-{}", names.0));
    let mut recorder_args = a.netns_args();
    recorder_args.extend(b.netns_args());
    recorder_args.push("--no-snapshot".into());
    recorder_args.extend_from_slice(args);
    let trace = scratch.path("t.trace");
    let recorder = record(&trace, recorder_args);
    let in_a = churn(&a, 23_100, CloseMode::Client, None);
    let in_b = churn(&b, 24_100, CloseMode::Server, cgroup.as_ref());
    let expected = expected(in_a) + expected(in_b);
    recorder.stop().unwrap().ensure_success().unwrap();

    // The churn in `a` runs in this test's cgroup, the one in `b` in its own.
    let own_cgroup = own_cgroup();
    // Without cgroup v2 only namespaces are checked: say so, and in CI that is a
    // skipped check, which fails.
    if cgroup.is_none() || own_cgroup.is_none() {
        eprintln!("scope: no cgroup v2 hierarchy here: cgroup ids are not checked");
        assert!(
            !in_ci(),
            "CI: cgroup ids must be checked (cgroup v2 is not mounted)"
        );
    }
    let b_cgroup = cgroup.as_ref().map_or(own_cgroup, |cg| Some(inode(&cg.0)));
    let events = replay_events(&trace);
    // Sized to fit the ring: nothing lost to a cause tcpchurn controls. A kernel can
    // keep a few transitions from every program without counting them (a guest kernel
    // here does, in softirqs on one process's threads: docs/kernel-facts.md §4.1); the
    // replay marks each such gap, and each hides at most one socket's transitions.
    let (counted, unreported) = lost_by_cause(&events);
    eprintln!("scope: {counted} events lost to counted causes, {unreported} unreported");
    assert_eq!(counted, 0, "events were lost: the run must fit the ring");
    assert!(
        unreported <= 5,
        "{unreported} transitions lost without a kernel count"
    );
    let mut checked = 0u64;
    for event in events.iter().filter(|e| e["kind"] == "transition") {
        // A listener has no peer port (null).
        let ports: Vec<u64> = ["lport", "rport"]
            .iter()
            .filter_map(|key| event[*key].as_u64())
            .collect();
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
    // A socket has at most five transitions.
    assert!(
        checked <= expected && expected - checked <= 5 * unreported,
        "{checked} transitions recorded, {expected} made, {unreported} lost unreported"
    );
    state_change_attachment(&trace)
}

/// The cgroup v2 id (directory inode) of this test process, when cgroup v2 is
/// mounted.
fn own_cgroup() -> Option<u64> {
    let root = cgroup2_root()?;
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(inode(&root.join(path.trim_start_matches('/'))))
}
