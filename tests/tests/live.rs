//! The live views on a recording in progress, with real connections in network
//! namespaces: `record --live` in a real terminal (tmux), `replay --follow` across a
//! rotation, `record --metrics` scraped by curl, checked by promtool and by a real
//! Prometheus, and a scraper that never reads. Each time, what the live view says at
//! the end is what a replay of the file says.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test loudly"
)]

use std::{
    collections::BTreeMap,
    io::Write as _,
    net::{SocketAddr, TcpListener, TcpStream},
    os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;
use tcpchurn_harness::{
    Spawn,
    churn::{ChurnLoad, CloseMode},
    prometheus::{self, promtool_check, scrape},
    replay,
    tmux::Tmux,
};
use tcpchurn_tests::{
    Layout, Peer, Recorder, Scratch, netns, privileged_tests, record, replay_verdict, tcpchurn_bin,
    verdict_pair,
};

/// A reconnect loop: a server that keeps one connection and resets every other one at
/// once (ZooKeeper over `maxClientCnxns`), a client that reconnects every 100 ms.
struct Loop {
    layout: Layout,
    port: u16,
}

impl Loop {
    fn new(tag: &str, port: u16) -> Self {
        Self {
            layout: Layout::new(true, tag),
            port,
        }
    }

    fn server_addr(&self, port: u16) -> String {
        SocketAddr::new(self.layout.addrs(false).0, port).to_string()
    }

    fn client_ip(&self) -> String {
        self.layout.addrs(false).1.to_string()
    }

    /// Starts the server and `count` attempts of the client.
    fn run(&self, count: u32) -> (Peer, Peer) {
        let addr = self.server_addr(self.port);
        let server = Peer::server(
            Some(self.layout.server_ns()),
            &[
                "--listen",
                &addr,
                "--count",
                "0",
                "--limit",
                "1",
                "--behaviour",
                "hold",
            ],
        );
        let client = Peer::client(
            Some(self.layout.client_ns()),
            &[
                "--connect",
                &addr,
                "--count",
                &count.to_string(),
                "--behaviour",
                "hold",
                "--interval-ms",
                "100",
            ],
        );
        (server, client)
    }

    /// A well-behaved pair beside the loop: the client closes each connection first.
    fn polite(&self, count: u32) -> (Peer, Peer) {
        let addr = self.server_addr(self.port + 1);
        let count = count.to_string();
        let server = Peer::server(
            Some(self.layout.server_ns()),
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
            Some(self.layout.client_ns()),
            &[
                "--connect",
                &addr,
                "--count",
                &count,
                "--behaviour",
                "close",
            ],
        );
        (server, client)
    }
}

/// `tcpchurn replay --color never TRACE`: the text verdict.
fn replay_text(trace: &Path) -> String {
    let out = Command::new(tcpchurn_bin())
        .args(["replay", "--color", "never"])
        .arg(trace)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Waits until `path` holds a line starting with `prefix`.
fn wait_for_file_line(path: &Path, prefix: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.starts_with(prefix)) {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no {prefix:?} in {}: {text}",
            path.display()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// The text after the last `--- recording stopped` line of the live view, up to the
/// next blank-line-separated status block or the end.
fn last_block(output: &str) -> String {
    let start = output
        .rfind("--- recording stopped")
        .unwrap_or_else(|| panic!("no last block in:\n{output}"));
    let block = &output[start..];
    let body = block.split_once('\n').map_or("", |(_, body)| body);
    // tmux says so when the command has exited.
    let lines: Vec<&str> = body
        .lines()
        .map(str::trim_end)
        .take_while(|l| !l.starts_with("Pane is dead"))
        .collect();
    let end = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(0, |i| i + 1);
    lines[..end].join("\n") + "\n"
}

fn live_screen_shows_the_loop_and_q_stops_it() {
    let scenario = Loop::new("lv", 5301);
    let scratch = Scratch::new("live");
    let trace = scratch.path("t.trace");
    let (err, status) = (scratch.path("err"), scratch.path("status"));
    let command = format!(
        "'{}' record --force -o '{}' {} --live 2>'{}'; echo $? >'{}'",
        tcpchurn_bin().display(),
        trace.display(),
        scenario.layout.netns_args().join(" "),
        err.display(),
        status.display(),
    );
    let tmux = Tmux::start("live", 120, 40, &command).unwrap();
    wait_for_file_line(&err, "tcpchurn: recording to", Duration::from_secs(60));
    let (server, mut client) = scenario.run(40);
    let label = format!(
        "{} -> {}",
        scenario.client_ip(),
        scenario.server_addr(scenario.port)
    );
    let verdict_line = format!("  {label}: reconnect loop, ");
    let screen = tmux
        .wait_for("the loop", Duration::from_secs(40), |screen| {
            screen.contains(&verdict_line)
                && screen
                    .lines()
                    .map(str::trim_end)
                    .any(|l| l.starts_with(&label) && (l.ends_with(" s") || l.ends_with("new")))
        })
        .unwrap();
    assert!(screen.contains("tcpchurn record --live"), "{screen}");
    assert!(screen.contains("flagged because"), "{screen}");
    assert!(screen.contains("q stop recording"), "{screen}");
    eprintln!("the live screen:\n{screen}");
    keys_sort_and_pause(&tmux);
    client.wait_for("done", Duration::from_secs(30));
    tmux.keys("q").unwrap();
    let code = wait_for_file_line(&status, "", Duration::from_secs(30));
    assert_eq!(code, "0", "{}", std::fs::read_to_string(&err).unwrap());
    server.kill();
    client.kill();
    let history = tmux.history().unwrap();
    assert!(
        history.contains("--- recording stopped (interrupted)"),
        "{history}"
    );
    // The last screen is the replay's verdict, word for word.
    assert_eq!(last_block(&history), replay_text(&trace), "{history}");
    let verdict = replay_verdict(&trace, &[]);
    let pair = verdict_pair(
        &verdict,
        &scenario.client_ip(),
        &scenario.server_addr(scenario.port),
    );
    assert_eq!(pair["reconnect_loop"], true, "{pair:#}");
    assert_eq!(verdict["trace"]["stop_reason"], "interrupted");
}

/// `n` sorts by connections, `s` goes on to the next order; `p` freezes the screen
/// (its clock stops while the recording goes on) and `p` again lets it move.
fn keys_sort_and_pause(tmux: &Tmux) {
    let wait = |what: &str, ready: &dyn Fn(&str) -> bool| {
        tmux.wait_for(what, Duration::from_secs(10), ready).unwrap()
    };
    tmux.keys("n").unwrap();
    wait("sorted by connections", &|s| {
        s.contains("s sort (connections)")
    });
    tmux.keys("s").unwrap();
    wait("the next order", &|s| {
        s.contains("s sort (") && !s.contains("s sort (connections)")
    });
    tmux.keys("p").unwrap();
    let paused = wait("paused", &|s| s.contains("PAUSED (the recording goes on)"));
    // Two refreshes: a screen that was not paused would show another time.
    thread::sleep(Duration::from_millis(2500));
    assert_eq!(tmux.screen().unwrap(), paused, "the paused screen moved");
    tmux.keys("p").unwrap();
    wait("moving again", &|s| !s.contains("PAUSED") && s != paused);
}

/// The trace and its rotated parts, in order.
fn parts(trace: &Path) -> Vec<PathBuf> {
    let mut parts = vec![trace.to_path_buf()];
    for i in 1.. {
        let mut name = trace.as_os_str().to_owned();
        name.push(format!(".{i}"));
        let part = PathBuf::from(name);
        if !part.exists() {
            break;
        }
        parts.push(part);
    }
    parts
}

/// `setpriv` arguments that make a command user nobody's, holding `caps` (`,+cap...`,
/// or none) and nothing else.
fn as_nobody(caps: &str) -> Vec<String> {
    vec![
        "--reuid=65534".into(),
        "--regid=65534".into(),
        "--clear-groups".into(),
        format!("--inh-caps=-all{caps}"),
        format!("--ambient-caps=-all{caps}"),
    ]
}

/// A recorder run by user nobody with the capabilities docs/privileges.md gives, so
/// that another process of that user, with no capability, can read its files.
fn record_as_nobody(scratch: &Scratch, trace: &Path, args: Vec<String>) -> Recorder {
    let caps = ",+bpf,+perfmon,+dac_read_search,+sys_admin,+sys_ptrace";
    let wrapper = scratch.path("as-nobody");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec setpriv {} '{}' \"$@\"\n",
            as_nobody(caps).join(" "),
            tcpchurn_bin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    Recorder::start(&wrapper, trace, args).unwrap()
}

/// The recording and both followers are user nobody's, and the followers hold no
/// capability: following needs nothing but read access to the files.
fn follow_a_rotating_recording() {
    let ns = netns("fw");
    let scratch = Scratch::new("follow");
    std::fs::set_permissions(&scratch.0, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let trace = scratch.path("t.trace");
    let mut args = ns.netns_args();
    args.extend([
        "-C".into(),
        "24K".into(),
        "--flush-interval".into(),
        "200ms".into(),
    ]);
    let recorder = record_as_nobody(&scratch, &trace, args);
    let follow = |extra: &[&str], out: &Path| {
        let mut cmd = Command::new("setpriv");
        cmd.args(as_nobody(""))
            .arg("--bounding-set=-all")
            .arg(tcpchurn_bin())
            .args(["replay", "--follow"])
            .arg(&trace)
            .args(extra);
        Spawn::new("tcpchurn replay --follow", cmd)
            .stdout_to(out)
            .start()
            .unwrap()
    };
    let (events_out, verdicts_out) = (scratch.path("events.jsonl"), scratch.path("verdicts.txt"));
    let mut events = follow(&["--events", "--json"], &events_out);
    let mut verdicts = follow(&["--interval", "500ms", "--color", "never"], &verdicts_out);
    // Three seconds of churn: a dozen flushes, each past the file size.
    let load = ChurnLoad {
        pairs: 2,
        duration_s: 3.0,
        close: CloseMode::Client,
        payload: true,
        port: 25_100,
        count: None,
    };
    let report = load
        .run(Path::new(env!("CARGO_BIN_EXE_tcpchurn-churn")), &ns)
        .unwrap();
    assert_eq!(report.failures(), 0, "{report:?}");
    // While the recording goes on, the verdict follows it.
    wait_for_file_line(&verdicts_out, "--- recording for", Duration::from_secs(10));
    recorder.stop().unwrap().ensure_success().unwrap();
    // Both end with the recording, on their own.
    for follower in [&mut events, &mut verdicts] {
        let exit = follower.wait_timeout(Duration::from_secs(30)).unwrap();
        assert!(exit.status.success(), "{exit:?}");
    }
    let parts = parts(&trace);
    assert!(parts.len() >= 3, "the recording must rotate: {parts:?}");
    for part in &parts {
        let meta = std::fs::metadata(part).unwrap();
        assert_eq!(
            (meta.uid(), meta.mode() & 0o777),
            (65534, 0o600),
            "{part:?}"
        );
    }
    // Every event of every part, in order, as it landed.
    let followed: Vec<Value> = std::fs::read_to_string(&events_out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut expected = Vec::new();
    for part in &parts {
        expected.extend(replay::events(&tcpchurn_bin(), part).unwrap().events);
    }
    assert_eq!(followed.len(), expected.len());
    for (i, (followed, part)) in followed.iter().zip(&expected).enumerate() {
        assert!(
            same_event(followed, part),
            "event {i} differs: followed {followed} but the part says {part}"
        );
    }
    let text = std::fs::read_to_string(&verdicts_out).unwrap();
    let blocks = text.matches("--- recording for").count();
    assert!(blocks >= 2, "{text}");
    let last = text.rsplit("--- ").next().unwrap();
    assert!(
        last.starts_with("recording stopped (interrupted)"),
        "{text}"
    );
    assert!(
        last.contains(&format!("in {} files", parts.len())),
        "{last}"
    );
}

/// The same event. The follower may know an owner that the part alone does not: the
/// listener's, learnt in an earlier part. It never says another.
///
/// A connect's SYN_SENT has no source port from the kernel; a whole file completes it
/// from the blocks after it, while following shows what is written so far: the
/// followed event may have no port (null, never 0) where the part has the port
/// (docs/trace-format.md).
fn same_event(followed: &Value, part: &Value) -> bool {
    const OWNER: [&str; 4] = ["pid", "tid", "comm", "owner_source"];
    assert_ne!(
        followed["lport"], 0,
        "an unknown port shown as 0: {followed}"
    );
    let completed_later = followed["new"] == "SYN_SENT" && followed["lport"].is_null();
    let strip = |event: &Value| {
        let mut event = event.clone();
        for key in OWNER {
            event.as_object_mut().unwrap().remove(key);
        }
        if completed_later {
            event.as_object_mut().unwrap().remove("lport");
        }
        event
    };
    strip(followed) == strip(part)
        && (part["pid"].is_null() || OWNER.iter().all(|k| followed[k] == part[k]))
}

/// A free port on 127.0.0.1 (taken back at once: the recorder binds it next).
fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The samples of an exposition: (metric name, labels) -> value.
fn samples(text: &str) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let mut samples = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split(',')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap();
                (k.to_owned(), v.trim_matches('"').to_owned())
            })
            .collect();
        samples.insert((name.to_owned(), labels), value.parse().unwrap());
    }
    samples
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Every pair counter of the verdict document is the metric's.
fn assert_metrics_match(
    samples: &BTreeMap<(String, BTreeMap<String, String>), f64>,
    verdict: &Value,
) {
    let get = |name: &str, l: &[(&str, &str)]| {
        samples
            .get(&(name.to_owned(), labels(l)))
            .copied()
            .unwrap_or(0.0)
    };
    for pair in verdict["pairs"].as_array().unwrap() {
        let (client, server) = (
            pair["client"].as_str().unwrap(),
            pair["server"].as_str().unwrap(),
        );
        // A pod the trace does not name is the empty label value.
        let pod = |side: &str| {
            pair[format!("{side}_pod")]
                .as_str()
                .unwrap_or("")
                .to_owned()
        };
        let (client_pod, server_pod) = (pod("client"), pod("server"));
        let pl = [
            ("client", client),
            ("server", server),
            ("client_pod", client_pod.as_str()),
            ("server_pod", server_pod.as_str()),
        ];

        assert_eq!(
            get("tcpchurn_connections_total", &pl),
            pair["connections"].as_f64().unwrap(),
            "{pair:#}"
        );
        let looping = if pair["reconnect_loop"] == true {
            1.0
        } else {
            0.0
        };
        assert_eq!(get("tcpchurn_reconnect_loop", &pl), looping, "{pair:#}");
        for side in ["client", "server", "simultaneous"] {
            for (how, count) in pair["closed_by"][side].as_object().unwrap() {
                let l = [pl.as_slice(), &[("side", side), ("how", how)]].concat();
                assert_eq!(
                    get("tcpchurn_closed_first_total", &l),
                    count.as_f64().unwrap(),
                    "{side} {how}: {pair:#}"
                );
            }
        }
        for side in ["client", "server"] {
            let l = [pl.as_slice(), &[("side", side)]].concat();
            assert_eq!(
                get("tcpchurn_time_wait", &l),
                pair["time_wait"][side].as_f64().unwrap(),
                "{pair:#}"
            );
            assert_eq!(
                get("tcpchurn_resets_total", &l),
                pair["resets"][side].as_f64().unwrap(),
                "{pair:#}"
            );
        }
    }
}

fn metrics_match_the_replay_and_prometheus_reads_them() {
    let scenario = Loop::new("mx", 5311);
    let scratch = Scratch::new("metrics");
    let trace = scratch.path("t.trace");
    let endpoint = free_port();
    let mut args = scenario.layout.netns_args();
    args.extend(["--metrics".into(), endpoint.to_string()]);
    let recorder = record(&trace, args);
    let prometheus_dir = scratch.path("prometheus");
    std::fs::create_dir_all(&prometheus_dir).unwrap();
    let prometheus = prometheus::Server::start(&prometheus_dir, free_port(), endpoint).unwrap();
    let (server, mut client) = scenario.run(12);
    let (polite_server, polite_client) = scenario.polite(5);
    client.wait_for("done", Duration::from_secs(30));
    polite_client.wait();
    polite_server.wait();
    // A real Prometheus scrapes it and answers for the loop.
    let query = format!(
        "tcpchurn_reconnect_loop{{client=\"{}\",server=\"{}\"}}",
        scenario.client_ip(),
        scenario.server_addr(scenario.port)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let result = prometheus.query(&query).unwrap();
        if let Some(sample) = result.first()
            && sample["value"][1] == "1"
        {
            break sample.clone();
        }
        assert!(Instant::now() < deadline, "prometheus: {result:?}");
        thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(answer["metric"]["job"], "tcpchurn", "{answer}");
    drop(prometheus);
    // Two refreshes since the last connection: the analysis has taken everything in.
    thread::sleep(Duration::from_millis(2500));
    let text = scrape(endpoint).unwrap();
    promtool_check(&text).unwrap();
    recorder.stop().unwrap().ensure_success().unwrap();
    server.kill();
    client.kill();
    let verdict = replay_verdict(&trace, &[]);
    let samples = samples(&text);
    assert_metrics_match(&samples, &verdict);
    // Losses are counted for the whole machine (a busy one has some: another program
    // on the CPU makes the kernel skip ours), and some may be counted after the scrape.
    let lost: f64 = samples
        .iter()
        .filter(|((name, _), _)| name == "tcpchurn_lost_events_total")
        .map(|(_, v)| v)
        .sum();
    assert!(lost <= verdict["trace"]["lost"].as_f64().unwrap(), "{text}");
    let polite = verdict_pair(
        &verdict,
        &scenario.client_ip(),
        &scenario.server_addr(scenario.port + 1),
    );
    assert_eq!(polite["closed_by"]["client"]["fin"], 5, "{polite:#}");
}

fn a_stuck_scraper_does_not_slow_the_recording() {
    let ns = netns("st");
    let scratch = Scratch::new("stuck");
    let trace = scratch.path("t.trace");
    let endpoint = free_port();
    let mut args = ns.netns_args();
    args.extend([
        "--metrics".into(),
        endpoint.to_string(),
        "--refresh".into(),
        "200ms".into(),
    ]);
    let recorder = record(&trace, args);
    // Asks and never reads; and a few that say nothing at all.
    let mut stuck = TcpStream::connect(endpoint).unwrap();
    stuck.set_nonblocking(true).unwrap();
    stuck.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    let silent: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(endpoint).unwrap())
        .collect();
    let load = ChurnLoad {
        pairs: 2,
        duration_s: 30.0,
        close: CloseMode::Server,
        payload: true,
        port: 26_100,
        count: Some(2000),
    };
    let churn = load
        .start(Path::new(env!("CARGO_BIN_EXE_tcpchurn-churn")), &ns, None)
        .unwrap();
    // Scrapes keep being answered meanwhile (after the first refresh).
    thread::sleep(Duration::from_millis(600));
    for _ in 0..5 {
        assert!(scrape(endpoint).unwrap().contains("tcpchurn_events_total"));
        thread::sleep(Duration::from_millis(200));
    }
    let report = churn.finish().unwrap();
    assert_eq!(report.failures(), 0, "{report:?}");
    let recording = recorder.stop().unwrap();
    recording.ensure_success().unwrap();
    // A recorder held up by the metrics would fill the ring: no event may be lost so.
    // (The kernel also skips programs while another runs on the CPU, which a busy
    // machine's other tracers cause: those losses say nothing about the scraper.)
    let lost = recording.summary("lost events").unwrap_or_default();
    assert!(
        lost == "0" || !lost.contains("ring buffer full"),
        "{:?}",
        recording.stderr
    );
    drop((stuck, silent));
    let verdict = replay_verdict(&trace, &[]);
    let ring_full = verdict["trace"]["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["cause"] == "ring_full")
        .count();
    assert_eq!(ring_full, 0, "{:#}", verdict["trace"]);
    let counted: u64 = verdict["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["connections"].as_u64().unwrap())
        .sum();
    assert!(
        counted >= report.completed,
        "{counted} < {}",
        report.completed
    );
}

/// `-o /dev/null --metrics --live` with stdout not a terminal (a DaemonSet that only
/// exports metrics): no file is kept, the metrics name the loop, and stdout gets a text
/// block per refresh, the last one the verdict of all that was recorded.
fn metrics_only_with_text_blocks() {
    let scenario = Loop::new("mo", 5321);
    let scratch = Scratch::new("metrics-only");
    let out = scratch.path("stdout");
    // The recorder's stdout goes to a file: not a terminal.
    let wrapper = scratch.path("to-file");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec '{}' \"$@\" >'{}'\n",
            tcpchurn_bin().display(),
            out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let endpoint = free_port();
    let mut args = scenario.layout.netns_args();
    args.extend(["--metrics".into(), endpoint.to_string(), "--live".into()]);
    let recorder = Recorder::start(&wrapper, Path::new("/dev/null"), args).unwrap();
    let (server, mut client) = scenario.run(12);
    client.wait_for("done", Duration::from_secs(30));
    let (client_ip, server_addr) = (scenario.client_ip(), scenario.server_addr(scenario.port));
    let looping = (
        "tcpchurn_reconnect_loop".to_owned(),
        labels(&[
            ("client", &client_ip),
            ("server", &server_addr),
            ("client_pod", ""),
            ("server_pod", ""),
        ]),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = scrape(endpoint).unwrap();
        if samples(&text).get(&looping) == Some(&1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "no loop in:\n{text}");
        thread::sleep(Duration::from_millis(300));
    }
    let recording = recorder.stop().unwrap();
    recording.ensure_success().unwrap();
    server.kill();
    client.kill();
    let null = std::fs::metadata("/dev/null").unwrap();
    assert!(null.file_type().is_char_device(), "/dev/null was replaced");
    assert!(!Path::new("/dev/null.1").exists());
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        !text.contains('\u{1b}'),
        "no escape without a terminal: {text}"
    );
    assert!(text.matches("--- recording for").count() >= 2, "{text}");
    let last = text.rsplit("--- ").next().unwrap();
    assert!(
        last.starts_with("recording stopped (interrupted)") && last.contains("no file kept"),
        "{text}"
    );
    assert!(
        last.contains(&format!("  {client_ip} -> {server_addr}: reconnect loop, ")),
        "{text}"
    );
}

privileged_tests! {
    metrics_only_keep_no_file_and_print_text_blocks: metrics_only_with_text_blocks();
    live_screen_in_a_terminal_shows_the_loop_and_q_stops_it: live_screen_shows_the_loop_and_q_stops_it();
    replay_follow_follows_a_rotating_recording: follow_a_rotating_recording();
    metrics_match_the_replay_pass_promtool_and_prometheus_reads_them: metrics_match_the_replay_and_prometheus_reads_them();
    a_stuck_scraper_loses_no_events: a_stuck_scraper_does_not_slow_the_recording();
}
