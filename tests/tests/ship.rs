//! What ships, tested as a user gets it (`cargo xtask test` runs `cargo xtask dist`
//! first and passes its output in `TCPCHURN_DIST`):
//! - the static binary has no dynamic section, records real traffic and replays it;
//! - the tarball holds exactly the documented files and matches its SHA-256 file;
//! - the man pages render with `man -l`; the bash completion loads and completes;
//! - the .deb installs the binary, man pages and completions;
//! - the container image (deploy/Containerfile, podman) records host traffic with the
//!   capabilities docs/kubernetes.md documents, and the trace replays;
//! - deploy/daemonset.yaml passes a Kubernetes schema validator (offline);
//! - `tcpchurn doctor` reports a namespace's TIME_WAIT and CLOSE_WAIT sockets with their
//!   owners, its sysctls that differ, and a recorder's programs on the tracepoints.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test loudly"
)]

use std::{
    collections::BTreeSet,
    fs,
    io::Read as _,
    net::{Ipv4Addr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;
use tcpchurn_tests::{
    Peer, Scratch, netns,
    podman::{podman_command, write_conf},
    record, require_root,
};

const TARGET: &str = "x86_64-linux-musl";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Skips (or fails, in CI) when something the test needs is missing.
fn require(test: &str, what: &str, present: bool) -> bool {
    if !present {
        assert!(!in_ci(), "{test}: {what} is missing, and CI=true");
        eprintln!("SKIPPED {test}: {what} is missing; run `cargo xtask test`");
    }
    present
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `target/dist/tcpchurn-VERSION-x86_64-linux-musl` (`TCPCHURN_DIST`).
fn dist_dir() -> PathBuf {
    std::env::var_os("TCPCHURN_DIST").map_or_else(
        || {
            root().join(format!(
                "target/dist/tcpchurn-{}-{TARGET}",
                env!("CARGO_PKG_VERSION")
            ))
        },
        PathBuf::from,
    )
}

fn static_bin() -> PathBuf {
    dist_dir().join("tcpchurn")
}

fn have_dist(test: &str) -> bool {
    require(test, "`cargo xtask dist` output", static_bin().exists())
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout).unwrap()
}

/// The program headers' types of a 64-bit little-endian ELF file.
fn elf_program_header_types(data: &[u8]) -> Vec<u32> {
    assert_eq!(&data[..4], b"\x7fELF", "not ELF");
    assert_eq!((data[4], data[5]), (2, 1), "not 64-bit little-endian");
    let u16_at = |at: usize| usize::from(u16::from_le_bytes([data[at], data[at + 1]]));
    let phoff = usize::try_from(u64::from_le_bytes(data[32..40].try_into().unwrap())).unwrap();
    let (entsize, count) = (u16_at(54), u16_at(56));
    (0..count)
        .map(|i| {
            let at = phoff + i * entsize;
            u32::from_le_bytes(data[at..at + 4].try_into().unwrap())
        })
        .collect()
}

const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;

/// A loopback server in this process, and a client connecting to it every 50 ms until
/// stopped: traffic whose owner (this process) the test knows.
struct LoopbackTraffic {
    port: u16,
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl LoopbackTraffic {
    fn start() -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let accept_stop = Arc::clone(&stop);
        let server = thread::spawn(move || {
            while !accept_stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    // Read to the client's FIN, then close: the client closes first.
                    Ok((mut stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        let _read = stream.read_to_end(&mut Vec::new());
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        let client_stop = Arc::clone(&stop);
        let client = thread::spawn(move || {
            while !client_stop.load(Ordering::Relaxed) {
                drop(TcpStream::connect((Ipv4Addr::LOCALHOST, port)));
                thread::sleep(Duration::from_millis(50));
            }
        });
        Self {
            port,
            stop,
            threads: vec![server, client],
        }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
    }
}

/// Transitions of connections to `port` in a trace, replayed by the static binary.
fn transitions_on_port(trace: &Path, port: u16) -> Vec<Value> {
    let out = stdout(
        Command::new(static_bin())
            .args(["replay", "--events", "--json"])
            .arg(trace),
    );
    out.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["kind"] == "transition" && (e["lport"] == port || e["rport"] == port))
        .collect()
}

fn assert_recorded_our_traffic(trace: &Path, port: u16) {
    let events = transitions_on_port(trace, port);
    assert!(
        !events.is_empty(),
        "no transition on port {port} in {}",
        trace.display()
    );
    let own = std::process::id();
    assert!(
        events
            .iter()
            .any(|e| e["new"] == "SYN_SENT" && e["pid"] == own),
        "connect() of this process (pid {own}) not recorded as its own: {events:?}"
    );
}

#[test]
fn static_binary_has_no_dynamic_section_and_records_and_replays() {
    if !require_root("static_binary_records") || !have_dist("static_binary_records") {
        return;
    }
    let data = fs::read(static_bin()).unwrap();
    let types = elf_program_header_types(&data);
    assert!(
        !types.contains(&PT_DYNAMIC) && !types.contains(&PT_INTERP),
        "the shipped binary must be fully static: {types:?}"
    );
    let size = data.len();
    eprintln!("static binary: {size} bytes");
    // 9 MiB: the binary is 8.05 MiB (8,438,424 bytes) with the dist profile's size
    // settings (Cargo.toml). Its bytes: the embedded eBPF object (about 1 MB, three
    // quarters of it DWARF the loader does not read: `llvm-strip --strip-debug` takes it
    // to 244 KB), the export's Parquet writer with Arrow and zstd's C library (2.8 MB of
    // code in a release build, less at the dist profile's opt-level z), and the
    // recorder, replay, live views and CLI.
    assert!(size < 9 << 20, "{size} bytes: over 9 MiB");

    let version = stdout(Command::new(static_bin()).arg("--version"));
    assert!(version.starts_with(&format!("tcpchurn {}\n", env!("CARGO_PKG_VERSION"))));
    assert!(
        version.contains("target   x86_64-unknown-linux-musl"),
        "{version}"
    );
    assert!(
        version.contains("tracepoint  inet_sk_error_report, inet_sock_set_state"),
        "{version}"
    );

    let scratch = Scratch::new("static");
    let trace = scratch.path("static.trace");
    let traffic = LoopbackTraffic::start();
    let port = traffic.port;
    let recorded = Command::new(static_bin())
        .args(["record", "-d", "2s", "-o"])
        .arg(&trace)
        .output()
        .unwrap();
    traffic.stop();
    assert!(
        recorded.status.success(),
        "{}",
        String::from_utf8_lossy(&recorded.stderr)
    );
    assert_recorded_our_traffic(&trace, port);
}

#[test]
fn tarball_holds_the_documented_files_and_matches_its_checksum() {
    if !have_dist("tarball") {
        return;
    }
    let dir = dist_dir();
    let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
    let dist = dir.parent().unwrap();
    let archive = format!("{name}.tar.gz");
    let checked = stdout(
        Command::new("sha256sum")
            .current_dir(dist)
            .args(["-c", &format!("{archive}.sha256")]),
    );
    assert_eq!(checked.trim(), format!("{archive}: OK"));

    let listing = stdout(
        Command::new("tar")
            .current_dir(dist)
            .args(["tzvf", &archive]),
    );
    let files: BTreeSet<String> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(|p| p.trim_start_matches(&format!("{name}/")).to_owned())
        .filter(|p| !p.is_empty() && !p.ends_with('/'))
        .collect();
    let expected: BTreeSet<String> = [
        "tcpchurn",
        "README.md",
        "LICENSE-MIT",
        "LICENSE-APACHE",
        "man/tcpchurn.1",
        "man/tcpchurn-record.1",
        "man/tcpchurn-replay.1",
        "man/tcpchurn-doctor.1",
        "man/tcpchurn-export.1",
        "completions/tcpchurn.bash",
        "completions/_tcpchurn",
        "completions/tcpchurn.fish",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(files, expected, "{listing}");
    for line in listing.lines() {
        assert!(line.contains(" 0/0 "), "not owned by root: {line}");
        if line.ends_with("/tcpchurn") {
            assert!(line.starts_with("-rwxr-xr-x"), "{line}");
        }
    }
    // The archived binary is the staged one.
    let scratch = Scratch::new("tarball");
    run(Command::new("tar")
        .args(["xzf"])
        .arg(dist.join(&archive))
        .arg("-C")
        .arg(&scratch.0));
    let unpacked = fs::read(scratch.0.join(&name).join("tcpchurn")).unwrap();
    assert!(unpacked == fs::read(static_bin()).unwrap());
}

#[test]
fn man_pages_render() {
    if !have_dist("man_pages_render") || !require("man_pages_render", "man", which("man")) {
        return;
    }
    for page in [
        "tcpchurn",
        "tcpchurn-record",
        "tcpchurn-replay",
        "tcpchurn-doctor",
    ] {
        let path = dist_dir().join("man").join(format!("{page}.1"));
        let out = run(Command::new("man")
            .arg("-l")
            .arg(&path)
            .env("MANWIDTH", "100")
            .env_remove("MAN_KEEP_FORMATTING")
            .env("PAGER", "cat"));
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("NAME"), "{page}: {text}");
        assert!(text.contains("SYNOPSIS"), "{page}: {text}");
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("warning"),
            "{page}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let doctor = dist_dir().join("man/tcpchurn-doctor.1");
    let text = stdout(
        Command::new("man")
            .arg("-l")
            .arg(&doctor)
            .env("MANWIDTH", "100")
            .env("PAGER", "cat"),
    );
    assert!(text.contains("--json"), "{text}");
}

fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn bash_completion_loads_and_completes_subcommands_and_options() {
    if !have_dist("bash_completion") {
        return;
    }
    let script = dist_dir().join("completions/tcpchurn.bash");
    let complete = |words: &str, cword: usize| {
        stdout(Command::new("bash").arg("--norc").arg("-c").arg(format!(
            "source '{}' && complete -p tcpchurn >/dev/null && COMP_WORDS=({words}) && \
             COMP_CWORD={cword} && _tcpchurn tcpchurn && echo \"${{COMPREPLY[@]}}\"",
            script.display()
        )))
    };
    let subcommands = complete("tcpchurn ''", 1);
    for sub in ["record", "replay", "doctor"] {
        assert!(
            subcommands.split_whitespace().any(|w| w == sub),
            "{subcommands}"
        );
    }
    assert!(
        !subcommands.contains("generate"),
        "hidden command offered: {subcommands}"
    );
    let doctor = complete("tcpchurn doctor --", 2);
    assert!(doctor.split_whitespace().any(|w| w == "--json"), "{doctor}");
}

#[test]
fn deb_installs_the_binary_man_pages_and_completions() {
    let deb = dist_dir().parent().unwrap().join(format!(
        "tcpchurn_{}-1_amd64.deb",
        env!("CARGO_PKG_VERSION")
    ));
    if !require("deb", "the .deb from `cargo xtask dist`", deb.exists()) {
        return;
    }
    let info = stdout(
        Command::new("dpkg-deb")
            .arg("-f")
            .arg(&deb)
            .args(["Package", "Architecture"]),
    );
    assert_eq!(info, "Package: tcpchurn\nArchitecture: amd64\n");
    let scratch = Scratch::new("deb");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&scratch.0));
    for file in [
        "usr/bin/tcpchurn",
        "usr/share/man/man1/tcpchurn.1.gz",
        "usr/share/man/man1/tcpchurn-record.1.gz",
        "usr/share/man/man1/tcpchurn-replay.1.gz",
        "usr/share/man/man1/tcpchurn-doctor.1.gz",
        "usr/share/man/man1/tcpchurn-export.1.gz",
        "usr/share/bash-completion/completions/tcpchurn",
        "usr/share/zsh/vendor-completions/_tcpchurn",
        "usr/share/fish/vendor_completions.d/tcpchurn.fish",
        "usr/share/doc/tcpchurn/copyright",
    ] {
        assert!(
            scratch.0.join(file).is_file(),
            "{file} missing from the .deb"
        );
    }
    let installed = fs::read(scratch.0.join("usr/bin/tcpchurn")).unwrap();
    assert!(
        installed == fs::read(static_bin()).unwrap(),
        "the .deb ships another binary"
    );
}

#[test]
fn daemonset_manifest_passes_the_kubernetes_schema() {
    let validator = std::env::var_os("TCPCHURN_KUBE_VALIDATE").map_or_else(
        || root().join("target/venv/bin/kubernetes-validate"),
        PathBuf::from,
    );
    if !require(
        "daemonset",
        "kubernetes-validate (`cargo xtask setup`)",
        validator.exists(),
    ) {
        return;
    }
    let out = stdout(
        Command::new(&validator)
            .arg("--strict")
            .arg(root().join("deploy/daemonset.yaml")),
    );
    assert!(
        out.contains("passed for resource daemonset/tcpchurn"),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------
// The container image
// ---------------------------------------------------------------------------------

/// The privileges docs/kubernetes.md documents for recording in a container: exactly
/// these capabilities, the host's PID and network namespaces, the host's tracefs (and
/// on kernels before 5.11 an unlimited memlock, which this one does not use).
const CONTAINER_PRIVILEGES: [&str; 6] = [
    "--cap-drop=all",
    "--cap-add=CAP_BPF,CAP_PERFMON,CAP_SYS_ADMIN,CAP_SYS_PTRACE,CAP_DAC_READ_SEARCH",
    "--pid=host",
    "--network=host",
    "-v",
    "/sys/kernel/tracing:/sys/kernel/tracing",
];

struct Image<'a> {
    conf: &'a Path,
    tag: String,
}

impl Drop for Image<'_> {
    fn drop(&mut self) {
        let _status = podman_command(self.conf)
            .args(["rmi", "-f", &self.tag])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn container_image_builds_and_records_host_traffic() {
    if !require_root("container_image")
        || !have_dist("container_image")
        || !require("container_image", "podman", which("podman"))
    {
        return;
    }
    let scratch = Scratch::new("image");
    let conf = write_conf(&scratch.0);
    // The tracefs the container binds must be mounted on the host.
    ensure_tracefs();
    let image = Image {
        conf: &conf,
        tag: format!("localhost/tcpchurn-test:{}", std::process::id()),
    };
    let started = Instant::now();
    run(podman_command(&conf).current_dir(root()).args([
        "build",
        "-q",
        "-f",
        "deploy/Containerfile",
        "-t",
        &image.tag,
        ".",
    ]));
    eprintln!("image built in {:?}", started.elapsed());
    let size =
        stdout(podman_command(&conf).args(["image", "inspect", "-f", "{{.Size}}", &image.tag]));
    eprintln!("image size: {} bytes", size.trim());
    assert!(size.trim().parse::<u64>().unwrap() < 8 << 20, "{size}");

    let out_dir = scratch.path("out");
    fs::create_dir_all(&out_dir).unwrap();
    let traffic = LoopbackTraffic::start();
    let port = traffic.port;
    let recorded = podman_command(&conf)
        .args(["run", "--rm"])
        .args(CONTAINER_PRIVILEGES)
        .arg("-v")
        .arg(format!("{}:/out", out_dir.display()))
        .args([
            &image.tag,
            "record",
            "-d",
            "2s",
            "-o",
            "/out/container.trace",
        ])
        .output()
        .unwrap();
    traffic.stop();
    let stderr = String::from_utf8_lossy(&recorded.stderr);
    // Other traffic on the host is recorded too (and may have its own gaps): the test
    // checks that its own connections are there, owned by this process.
    assert!(recorded.status.success(), "{stderr}");
    // The trace is replayed outside the container; pids are the host's (hostPID).
    assert_recorded_our_traffic(&out_dir.join("container.trace"), port);
}

/// Mounts tracefs on the host if it is not (the container binds it).
fn ensure_tracefs() {
    if !Path::new("/sys/kernel/tracing/events").is_dir() {
        run(Command::new("mount").args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"]));
    }
}

// ---------------------------------------------------------------------------------
// tcpchurn doctor
// ---------------------------------------------------------------------------------

fn doctor_json() -> Value {
    let out = run(Command::new(static_bin()).args(["doctor", "--json"]));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn doctor_reports_time_wait_and_close_wait_holders_in_another_namespace() {
    if !require_root("doctor") || !have_dist("doctor") {
        return;
    }
    let ns = netns("doctor");
    ns.run("sysctl", &["-q", "-w", "net.ipv4.tcp_fin_timeout=17"])
        .unwrap();
    // A server that closes first: its side of each connection goes to TIME_WAIT, which
    // no process holds; the listener's owner is whose they were.
    let closer = Peer::server(
        Some(&ns),
        &[
            "--listen",
            "127.0.0.1:7301",
            "--count",
            "0",
            "--behaviour",
            "close",
        ],
    );
    Peer::client(
        Some(&ns),
        &[
            "--connect",
            "127.0.0.1:7301",
            "--count",
            "5",
            "--behaviour",
            "wait-peer",
        ],
    )
    .wait();
    // A server that never closes: after the client's FIN its sockets sit in CLOSE_WAIT.
    let leaker = Peer::server(
        Some(&ns),
        &[
            "--listen",
            "127.0.0.1:7302",
            "--count",
            "0",
            "--behaviour",
            "hold",
        ],
    );
    Peer::client(
        Some(&ns),
        &[
            "--connect",
            "127.0.0.1:7302",
            "--count",
            "3",
            "--behaviour",
            "close",
        ],
    )
    .wait();
    // A recorder, whose programs the doctor must list on the tracepoints.
    let scratch = Scratch::new("doctor");
    let recorder = record(&scratch.path("r.trace"), ["--no-snapshot"]);
    thread::sleep(Duration::from_millis(200));

    let started = Instant::now();
    let report = doctor_json();
    eprintln!("doctor took {:?}", started.elapsed());
    let text = stdout(Command::new(static_bin()).arg("doctor"));
    let recorder_pid = recorder.pid();
    recorder.stop().unwrap().ensure_success().unwrap();

    assert_eq!(report["can_record"], true, "{report:#}");
    let namespace = report["sockets"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["inode"] == ns.inode)
        .unwrap_or_else(|| panic!("namespace {} not reached: {report:#}", ns.inode));
    assert_eq!(namespace["counts"]["TIME_WAIT"], 5, "{namespace:#}");
    assert_eq!(namespace["counts"]["CLOSE_WAIT"], 3, "{namespace:#}");
    assert_eq!(namespace["counts"]["LISTEN"], 2, "{namespace:#}");
    assert_eq!(
        namespace["sysctl_differences"]["net.ipv4.tcp_fin_timeout"], "17",
        "{namespace:#}"
    );

    let holders = report["sockets"]["holders"].as_array().unwrap();
    let held = |state: &str| {
        holders
            .iter()
            .find(|h| h["state"] == state && h["netns"] == ns.inode)
            .unwrap_or_else(|| panic!("no {state} holder in {}: {holders:#?}", ns.inode))
    };
    let time_wait = held("TIME_WAIT");
    assert_eq!(time_wait["count"], 5);
    assert_eq!(time_wait["local"], "127.0.0.1:7301");
    assert_eq!(time_wait["peer"], "127.0.0.1");
    assert_eq!(time_wait["owner"]["pid"], closer.pid());
    assert_eq!(time_wait["owner"]["source"], "listener");
    let close_wait = held("CLOSE_WAIT");
    assert_eq!(close_wait["count"], 3);
    assert_eq!(close_wait["local"], "127.0.0.1:7302");
    assert_eq!(close_wait["owner"]["pid"], leaker.pid());
    assert_eq!(close_wait["owner"]["comm"], "tcpchurn-peer");
    assert_eq!(close_wait["owner"]["source"], "fd");

    let programs = report["attached_programs"].as_array().unwrap();
    assert!(
        programs
            .iter()
            .any(|p| p["pid"] == recorder_pid && p["tracepoint"] == "inet_sock_set_state"),
        "the recorder's state-change program is not listed: {programs:#?}"
    );
    let recycle = report["sysctls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "net.ipv4.tcp_tw_recycle")
        .unwrap();
    assert!(recycle["value"].is_null(), "{recycle}");

    for needle in [
        "CAN TCPCHURN RECORD HERE? yes",
        "does NOT shorten TIME_WAIT",
        "gone since Linux 4.12",
        "TOP TIME_WAIT",
        "TOP CLOSE_WAIT",
        &format!("{} tcpchurn-peer (listener)", closer.pid()),
        &format!("{} tcpchurn-peer", leaker.pid()),
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}
