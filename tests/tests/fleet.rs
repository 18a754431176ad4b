//! Several traces replayed and exported as one: a rotated recording joined back, two
//! recorders (one per network namespace, as two hosts would record) merged into the
//! connections a single recording of both namespaces sees, a clock offset put into one
//! header measured back, and the export read back with DuckDB giving the answers of
//! `replay --json` (with the SQL of docs/fleet.md).
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test loudly"
)]

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    thread,
    time::Duration,
};

use serde_json::Value;
use tcpchurn_harness::workspace;
use tcpchurn_tests::{
    DuckDb, Netns, Peer, Scratch, Topology, kernel_has_btf, netns, privileged_tests, record,
    replay_events, replay_verdict, rewrite_meta, tcpchurn, topology,
};

/// The verdict's pairs, by "client -> server", with what both replays must agree on.
fn pairs(verdict: &Value) -> BTreeMap<String, Value> {
    verdict["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let key = format!("{} -> {}", p["client"], p["server"]);
            let kept = serde_json::json!({
                "connections": p["connections"],
                "closed_first": p["closed_first"],
                "closed_by": p["closed_by"],
                "resets": p["resets"],
                "refused": p["refused"],
                "time_wait": p["time_wait"],
                "time_wait_kernel": p["time_wait_kernel"],
                "reconnect_loop": p["reconnect_loop"],
            });
            (key, kept)
        })
        .collect()
}

/// `replay --json ARGS...` of several files.
fn replay_files(files: &[&Path], extra: &[&str]) -> Value {
    let mut args = vec!["replay", "--json"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    args.extend_from_slice(extra);
    let out = tcpchurn(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs `count` loopback connections in `ns`, the client closing first.
fn loopback_churn(ns: &Netns, port: u16, count: u32) {
    let addr = format!("127.0.0.1:{port}");
    let count = count.to_string();
    let server = Peer::server(
        Some(ns),
        &[
            "--listen",
            &addr,
            "--count",
            &count,
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
            &count,
            "--behaviour",
            "close",
        ],
    );
    client.wait();
    server.wait();
}

fn rotation_join() {
    let ns = netns("rot2");
    let scratch = Scratch::new("rotjoin");
    let rotated_dir = scratch.path("rotated");
    std::fs::create_dir(&rotated_dir).unwrap();
    let mut args = ns.netns_args();
    args.extend(["--flush-interval", "50ms"].map(String::from));
    let whole = record(&scratch.path("whole.trace"), &args);
    args.extend(["--max-size", "16K"].map(String::from));
    let rotated = record(&rotated_dir.join("t.trace"), &args);
    for _ in 0..4 {
        loopback_churn(&ns, 5291, 300);
        thread::sleep(Duration::from_millis(100));
    }
    rotated.stop().unwrap().ensure_success().unwrap();
    whole.stop().unwrap().ensure_success().unwrap();
    let parts = std::fs::read_dir(&rotated_dir).unwrap().count();
    assert!(parts >= 3, "only {parts} parts: no rotation to join");
    let expected = replay_verdict(&scratch.path("whole.trace"), &[]);
    // The directory, as `tcpchurn replay traces/` takes it.
    let joined = replay_files(&[&rotated_dir], &[]);
    assert_eq!(
        joined["trace"]["damage"],
        serde_json::json!([]),
        "{joined:#}"
    );
    assert_eq!(joined["trace"]["lost"], 0);
    assert_eq!(joined["trace"]["hosts"].as_array().unwrap().len(), 1);
    assert_eq!(
        joined["trace"]["hosts"][0]["files"]
            .as_array()
            .unwrap()
            .len(),
        parts
    );
    assert_eq!(pairs(&joined), pairs(&expected));
    assert_eq!(
        joined["connections_counted"], expected["connections_counted"],
        "{joined:#}"
    );
    let counted = joined["connections_counted"].as_u64().unwrap();
    assert!(counted >= 1200, "{counted} connections");

    // A part left out is a hole the verdict names, not a silent one.
    let mut files: Vec<PathBuf> = std::fs::read_dir(&rotated_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort_by_key(|p| {
        p.extension()
            .and_then(|e| e.to_str())
            .and_then(|e| e.parse::<u32>().ok())
            .unwrap_or(0)
    });
    files.remove(1);
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let holed = replay_files(&refs, &[]);
    let damage = holed["trace"]["damage"].to_string();
    assert!(
        damage.contains("part 1 of the recording not given"),
        "{damage}"
    );
    assert_eq!(holed["incomplete"], true);
}

/// Where the peers run (two namespaces over veth), what each recorder wrote, and who
/// the peers were.
struct TwoHosts {
    scratch: Scratch,
    client_pids: Vec<u32>,
    server_pids: Vec<u32>,
    _topology: Topology,
}

impl TwoHosts {
    fn trace(&self, name: &str) -> PathBuf {
        self.scratch.path(name)
    }
}

/// Three kinds of connections between the namespaces, recorded by three recorders at
/// once: one per namespace (`client.trace`, `server.trace`: the two hosts) and one of
/// both (`both.trace`).
fn two_hosts(tag: &str) -> TwoHosts {
    let topology = topology(tag);
    let scratch = Scratch::new(tag);
    let recorders = [
        record(&scratch.path("client.trace"), topology.client.netns_args()),
        record(&scratch.path("server.trace"), topology.server.netns_args()),
        record(&scratch.path("both.trace"), topology.netns_args()),
    ];
    let (mut client_pids, mut server_pids) = (Vec::new(), Vec::new());
    // (port, server behaviour, client behaviour, connections)
    let phases = [
        (5301, "close", "wait-peer", "6"),
        (5302, "wait-peer", "close", "6"),
        (5303, "reset", "wait-peer", "8"),
    ];
    for (port, server_does, client_does, count) in phases {
        let addr = format!("{}:{port}", topology.server_v4);
        let server = Peer::server(
            Some(&topology.server),
            &[
                "--listen",
                &addr,
                "--count",
                count,
                "--behaviour",
                server_does,
            ],
        );
        let client = Peer::client(
            Some(&topology.client),
            &[
                "--connect",
                &addr,
                "--count",
                count,
                "--behaviour",
                client_does,
                "--interval-ms",
                "30",
            ],
        );
        server_pids.push(server.pid());
        client_pids.push(client.pid());
        client.wait();
        server.wait();
    }
    thread::sleep(Duration::from_millis(200));
    for recorder in recorders {
        recorder.stop().unwrap().ensure_success().unwrap();
    }
    TwoHosts {
        scratch,
        client_pids,
        server_pids,
        _topology: topology,
    }
}

fn our_connections(verdict: &Value) -> Vec<&Value> {
    verdict["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            let server = c["server"].as_str().unwrap();
            ["5301", "5302", "5303"]
                .iter()
                .any(|port| server.ends_with(&format!(":{port}")))
        })
        .collect()
}

fn two_recorders() {
    let hosts = two_hosts("fl2");
    let (client, server) = (hosts.trace("client.trace"), hosts.trace("server.trace"));
    let expected = replay_verdict(&hosts.trace("both.trace"), &["--connections"]);
    let merged = replay_files(&[&client, &server], &["--connections"]);
    assert_eq!(pairs(&merged), pairs(&expected));
    let rows = our_connections(&merged);
    assert_eq!(rows.len(), 20, "{merged:#}");
    let names: Vec<&str> = merged["trace"]["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    for row in &rows {
        assert!(
            !row["client_conn"].is_null() && !row["server_conn"].is_null(),
            "both ends merged: {row}"
        );
        let (client_pid, server_pid) = (row["client_pid"].as_u64(), row["server_pid"].as_u64());
        assert!(
            hosts
                .client_pids
                .iter()
                .any(|&p| Some(u64::from(p)) == client_pid),
            "client owner from the client's host: {row}"
        );
        assert!(
            hosts
                .server_pids
                .iter()
                .any(|&p| Some(u64::from(p)) == server_pid),
            "server owner from the server's host: {row}"
        );
        assert_eq!(row["client_host"], names[0], "{row}");
        assert_eq!(row["server_host"], names[1], "{row}");
    }
    // One boot: the offset is exact, from the headers.
    assert_eq!(merged["trace"]["hosts"][1]["clock_basis"], "same_boot");

    // The server's recording as another host with a clock 250 ms ahead would have
    // written it.
    let shifted = hosts.trace("server-other-host.trace");
    rewrite_meta(&server, &shifted, |meta| {
        meta.start_unix_ns += 250_000_000;
        meta.boot_id = "another-boot".into();
        meta.hostname = "zk-host".into();
    });
    let merged = replay_files(&[&client, &shifted], &["--connections"]);
    let zk = &merged["trace"]["hosts"][1];
    assert_eq!(zk["name"], "zk-host");
    assert_eq!(zk["clock_basis"], "connections", "{zk}");
    let offset_ms = zk["clock_offset_ms"].as_f64().unwrap();
    let uncertainty_ms = zk["clock_uncertainty_ms"].as_f64().unwrap();
    eprintln!(
        "clock offset put in: 250 ms; measured: {offset_ms:.3} ms ± {uncertainty_ms:.3} ms \
         (error {:.3} ms, {} of the messages agreeing)",
        offset_ms - 250.0,
        zk["clock_exchanges"]
    );
    assert!((offset_ms - 250.0).abs() < 3.0, "{zk}");
    assert!(uncertainty_ms < 3.0, "{zk}");
    assert_eq!(pairs(&merged), pairs(&expected));
    assert!(
        our_connections(&merged)
            .iter()
            .all(|row| row["server_host"] == "zk-host" && !row["client_conn"].is_null()),
        "{merged:#}"
    );
}

/// The named SQL queries of docs/fleet.md: each `sql` block starts with `-- name`.
fn doc_queries() -> BTreeMap<String, String> {
    let doc = std::fs::read_to_string(workspace::root().join("docs/fleet.md")).unwrap();
    doc.split("```sql\n")
        .skip(1)
        .map(|block| {
            let sql = block.split("```").next().unwrap();
            let name = sql
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("-- "))
                .unwrap_or_else(|| panic!("a query without a name: {sql}"));
            (name.to_owned(), sql.to_owned())
        })
        .collect()
}

/// A doc query over the exports under `dir` (the doc reads `exports/*/...`).
fn run_doc_query(
    duckdb: &DuckDb,
    queries: &BTreeMap<String, String>,
    name: &str,
    dir: &Path,
) -> Vec<Value> {
    let sql = queries
        .get(name)
        .unwrap_or_else(|| panic!("docs/fleet.md has no query `{name}`"))
        .replace("'exports/", &format!("'{}/", dir.display()));
    duckdb.query(&sql)
}

fn export(files: &[&Path], dir: &Path) {
    let mut args = vec!["export", "-o", dir.to_str().unwrap()];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let out = tcpchurn(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn u(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_f64().map(|f| f as u64))
        .unwrap_or_else(|| panic!("not a count: {v}"))
}

fn duckdb_reads_the_exports() {
    let duckdb = DuckDb::get();
    let hosts = two_hosts("fl3");
    let (client, server) = (hosts.trace("client.trace"), hosts.trace("server.trace"));
    let verdict = replay_files(&[&client, &server], &["--connections"]);
    let exports = hosts.trace("exports");
    // Every node's trace exported on its own, as a fleet would; and both together.
    export(&[&client], &exports.join("node"));
    export(&[&server], &exports.join("zk"));
    let together = hosts.trace("together");
    export(&[&client, &server], &together.join("both"));

    let schema = duckdb.schema(&together.join("both/events.parquet"));
    assert_eq!(schema["time"], "timestamp[ns, tz=UTC]");
    assert_eq!(schema["lport"], "uint16");
    assert_eq!(schema["laddr"], "string");
    assert_eq!(
        schema["new"],
        "dictionary<values=string, indices=int32, ordered=0>"
    );
    assert_eq!(
        schema["host"],
        "dictionary<values=string, indices=int32, ordered=0>"
    );
    let schema = duckdb.schema(&together.join("both/connections.parquet"));
    assert_eq!(schema["server_port"], "uint16");
    assert_eq!(schema["start_time"], "timestamp[ns, tz=UTC]");

    let events: u64 = verdict["trace"]["events"].as_u64().unwrap();
    let rows = duckdb.query(&format!(
        "SELECT count(*) AS n FROM '{}/both/events.parquet'",
        together.display()
    ));
    assert_eq!(u(&rows[0]["n"]), events);
    // The counters the transitions carry: as many, and the same sum, as in the JSON.
    let (mut carried, mut acked) = (0u64, 0u64);
    for trace in [&client, &server] {
        for acked_here in replay_events(trace)
            .iter()
            .filter_map(|e| e["bytes_acked"].as_u64())
        {
            carried += 1;
            acked += acked_here;
        }
    }
    if kernel_has_btf() {
        assert!(carried > 0, "no transition carried counters");
    }
    let rows = duckdb.query(&format!(
        "SELECT count(bytes_acked) AS c, CAST(coalesce(sum(bytes_acked), 0) AS BIGINT) AS s \
         FROM '{}/both/events.parquet'",
        together.display()
    ));
    assert_eq!((u(&rows[0]["c"]), u(&rows[0]["s"])), (carried, acked));

    let queries = doc_queries();
    assert!(queries.len() >= 4, "{:?}", queries.keys());
    for dir in [&exports, &together] {
        for name in queries.keys() {
            assert!(
                !run_doc_query(duckdb, &queries, name, dir).is_empty(),
                "{name}"
            );
        }
        let per_pair = run_doc_query(duckdb, &queries, "closes per pair", dir);
        let loops = run_doc_query(duckdb, &queries, "reconnect loops", dir);
        let time_wait = run_doc_query(duckdb, &queries, "time_wait per server per minute", dir);
        for pair in verdict["pairs"].as_array().unwrap() {
            let (c, s) = (
                pair["client"].as_str().unwrap(),
                pair["server"].as_str().unwrap(),
            );
            let row = per_pair
                .iter()
                .find(|r| r["client"] == c && r["server"] == s)
                .unwrap_or_else(|| panic!("{c} -> {s} not in {per_pair:?}"));
            assert_eq!(u(&row["connections"]), u(&pair["connections"]), "{row}");
            for side in ["client", "server", "simultaneous", "unknown", "open"] {
                assert_eq!(
                    u(&row[&format!("closed_{side}")]),
                    u(&pair["closed_first"][side]),
                    "{side}: {row} vs {pair}"
                );
            }
            let looping = loops.iter().any(|r| r["server"] == s && r["client"] == c);
            assert_eq!(
                looping,
                pair["reconnect_loop"] == true,
                "{loops:?} vs {pair}"
            );
            let held: u64 = time_wait
                .iter()
                .filter(|r| r["server"] == s)
                .map(|r| u(&r["entered"]))
                .sum();
            assert_eq!(
                held,
                u(&pair["time_wait"]["server"]),
                "{time_wait:?} vs {pair}"
            );
        }
    }
}

privileged_tests! {
    rotated_recording_replays_as_the_unrotated_one: rotation_join();
    two_recorders_merge_like_one_recording_of_both: two_recorders();
    exports_read_back_with_duckdb_answer_like_replay: duckdb_reads_the_exports();
}
