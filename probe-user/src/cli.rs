//! Command-line arguments, and their conversion into validated options.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{
    kernel::diag,
    model::{Filters, WorkloadFilter},
    record::{RecordOptions, options::DEFAULT_METRICS_PAIRS},
};

#[derive(Debug, Parser)]
#[command(
    name = "tcpchurn",
    version,
    long_version = include_str!(concat!(env!("OUT_DIR"), "/long_version.txt")),
    about = "Record TCP state transitions with eBPF; replay them to see who closes first, who loops, \
             who holds TIME_WAIT and who leaks CLOSE_WAIT",
    after_help = "Record during an outage (root):   tcpchurn record -o incident.trace\n\
                  Replay anywhere (no root):       tcpchurn replay incident.trace"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Attach to the kernel and record every TCP state transition into a trace file
    /// (needs root, or the capabilities in docs/privileges.md). Stop with Ctrl-C. --live
    /// shows the verdict as it forms; --metrics serves it to Prometheus.
    Record(RecordArgs),
    /// Read trace files and print verdicts per connection and per client/server pair,
    /// or every event (--events). Several files replay as one: the parts of a rotated
    /// recording in order, the recordings of several hosts merged on wall-clock time;
    /// --follow a recording in progress (one file). Needs no privileges, only read
    /// access to the files.
    Replay(ReplayArgs),
    /// Write the events and connections of trace files as tables for query engines
    /// (DuckDB, Spark, Trino, ClickHouse): DIR/events.parquet and
    /// DIR/connections.parquet. Several files export as one replay. Needs no privileges.
    Export(ExportArgs),
    /// Check this node in about a second: can tcpchurn record here, the TCP settings
    /// behind TIME_WAIT and reconnect loops (and the myths about them), and the sockets
    /// per state in every network namespace, with who holds TIME_WAIT and CLOSE_WAIT.
    Doctor(DoctorArgs),
    /// Write the man pages or the shell completions into a directory (used to package
    /// tcpchurn).
    #[command(hide = true)]
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// One JSON document instead of text.
    #[arg(short = 'j', long)]
    pub json: bool,
    /// How many holders of TIME_WAIT and of CLOSE_WAIT to list.
    #[arg(long, value_name = "N", default_value = "10")]
    pub top: usize,
    /// Kernel BTF to check (as `record --btf` would read it).
    #[arg(long, value_name = "FILE", default_value = "/sys/kernel/btf/vmlinux")]
    pub btf: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Generated {
    /// tcpchurn.1 and one page per subcommand (tcpchurn-record.1, ...).
    Man,
    /// tcpchurn.bash, _tcpchurn (zsh) and tcpchurn.fish.
    Completions,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[arg(value_enum)]
    pub what: Generated,
    /// Directory to write into (must exist).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Trace file to write: always created new, mode 0600 (docs/files.md). `-o
    /// /dev/null` keeps no trace, for a recorder that only serves --metrics (or shows
    /// --live).
    #[arg(
        short = 'o',
        long = "output",
        value_name = "FILE",
        default_value = "tcpchurn.trace"
    )]
    pub output: PathBuf,
    /// Replace FILE if it exists (with --max-size, also an earlier recording's FILE.N
    /// files, each when rotation reaches it).
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Stop after this long (e.g. 30, 30s, 5m, 1m30s); default: until Ctrl-C.
    #[arg(short = 'd', long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Record only connections with this port at either end (repeatable, up to 8).
    #[arg(short = 'p', long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,
    /// Record only sockets in this network namespace: a name from `ip netns`, an inode
    /// number, or a path like /proc/PID/ns/net (repeatable, up to 8).
    #[arg(short = 'n', long = "netns", value_name = "NETNS")]
    pub netns: Vec<String>,
    /// Record only the sockets of this pod: NAMESPACE/NAME, or NAME in any namespace
    /// (repeatable; named from the node's files, docs/workloads.md).
    #[arg(long = "pod", value_name = "NAMESPACE/NAME")]
    pub pods: Vec<String>,
    /// Record only the sockets of this container: its name or an id prefix
    /// (repeatable).
    #[arg(long = "container", value_name = "ID-OR-NAME")]
    pub containers: Vec<String>,
    /// Where the node's `/` is (its /proc, cgroups, runtime state and kubelet logs),
    /// to name containers and pods: `/`, or the host's root mounted into tcpchurn's own
    /// container.
    #[arg(long = "host-root", value_name = "DIR", default_value = "/")]
    pub host_root: PathBuf,
    /// Kernel ring-buffer size in all (power of two; K/M suffixes), split into one ring
    /// per CPU, or per group of CPUs past four.
    #[arg(long = "ring-size", value_name = "BYTES", default_value = "16M", value_parser = parse_size)]
    pub ring_size: u64,
    /// How often recorded events are written and synced to disk.
    #[arg(long = "flush-interval", value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub flush_interval: Duration,
    /// Do not snapshot existing sockets (sock_diag) at start and end.
    #[arg(long = "no-snapshot")]
    pub no_snapshot: bool,
    /// Start a new file (FILE.1, FILE.2, ...) when the current one reaches this size.
    #[arg(short = 'C', long = "max-size", value_name = "BYTES", value_parser = parse_size)]
    pub max_size: Option<u64>,
    /// With --max-size: keep only the newest N files.
    #[arg(short = 'W', long = "rotate", value_name = "N", requires = "max_size")]
    pub rotate: Option<u32>,
    /// Kernel BTF to read struct offsets from (e.g. a file from BTFHub on a kernel
    /// without /sys/kernel/btf/vmlinux).
    #[arg(long, value_name = "FILE", default_value = "/sys/kernel/btf/vmlinux")]
    pub btf: PathBuf,
    /// Nice value (-20 to 19) of the threads that drain the ring buffer and write the
    /// trace: on a saturated machine a recorder at the default priority waits behind
    /// the load while the kernel fills the ring and drops what does not fit. Default:
    /// -10, unless tcpchurn was started with a nice value of its own (nice(1)), which it
    /// keeps. They take only the CPU the events need.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = clap::value_parser!(i32).range(-20..=19))]
    pub nice: Option<i32>,
    /// How often the ring buffer is drained when no wake-up came (testing knob).
    #[arg(long = "poll-interval", value_name = "DURATION", default_value = "20ms", value_parser = parse_duration, hide = true)]
    pub poll_interval: Duration,
    /// Ring fill level in bytes that wakes the reader early; 0 = a quarter of the ring
    /// (testing knob).
    #[arg(long = "wakeup-bytes", value_name = "BYTES", default_value = "0", value_parser = parse_size, hide = true)]
    pub wakeup_bytes: u64,
    /// Record state changes through the classic tracepoint even when kernel BTF allows
    /// the BTF-enabled raw tracepoint (testing and benchmark knob).
    #[arg(long = "no-tp-btf", hide = true)]
    pub no_tp_btf: bool,
    /// Show the verdict as it forms, refreshed every second, while the trace is
    /// written as without --live. On a terminal, a full screen: the verdict lines, the
    /// pairs by connects/s with who closed first, resets, refusals, TIME_WAIT and
    /// reconnect loops, the CLOSE_WAIT leaks; q stops the recording (like Ctrl-C), s
    /// changes the order, p pauses the screen (not the recording). Otherwise a text
    /// block per second on stdout. The last one is the verdict a replay of the file
    /// gives.
    #[arg(long)]
    pub live: bool,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics while recording (text
    /// format 0.0.4): connections, who closed first and how, TIME_WAIT per side,
    /// CLOSE_WAIT per process, reconnect loops, events and lost events. The metrics
    /// name hosts, ports and processes: keep ADDR on localhost or a node-internal
    /// address. A slow or stuck scraper never slows the recording.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,
    /// With --metrics: at most N client/server pairs get their own labels, the most
    /// active first (reconnect loops, then by connections); the others are summed under
    /// client="other", server="other". Bounds the number of series.
    #[arg(
        long = "metrics-pairs",
        value_name = "N",
        default_value_t = DEFAULT_METRICS_PAIRS,
        requires = "metrics"
    )]
    pub metrics_pairs: usize,
    /// How often --live and --metrics compute the verdict (testing knob).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration, hide = true)]
    pub refresh: Duration,
}

impl RecordArgs {
    /// The options these arguments ask for, with `--netns` names resolved (checked by
    /// [`crate::record::record`]).
    pub fn options(&self) -> anyhow::Result<RecordOptions> {
        let netns = self
            .netns
            .iter()
            .map(|spec| diag::resolve_namespace(spec).with_context(|| format!("--netns {spec}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let workloads =
            WorkloadFilter::parse(&self.pods, &self.containers).map_err(anyhow::Error::msg)?;
        let (pods, containers) = workloads.describe();
        Ok(RecordOptions {
            output: self.output.clone(),
            force: self.force,
            duration: self.duration,
            filters: Filters {
                ports: self.ports.clone(),
                netns,
                pods,
                containers,
            },
            workloads,
            host_root: self.host_root.clone(),
            ring_bytes: self.ring_size,
            flush_interval: self.flush_interval,
            snapshot: !self.no_snapshot,
            max_size: self.max_size,
            rotate: self.rotate,
            btf: self.btf.clone(),
            poll_interval: self.poll_interval,
            wakeup_bytes: self.wakeup_bytes,
            nice: self.nice,
            tp_btf: !self.no_tp_btf,
            live: self.live,
            metrics: self.metrics,
            metrics_pairs: self.metrics_pairs,
            refresh: self.refresh,
        })
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

impl From<ColorChoice> for crate::render::style::ColorChoice {
    fn from(choice: ColorChoice) -> Self {
        match choice {
            ColorChoice::Auto => Self::Auto,
            ColorChoice::Always => Self::Always,
            ColorChoice::Never => Self::Never,
        }
    }
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Trace files written by `tcpchurn record`, directories of them, or patterns
    /// (`traces/*.trace*`).
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Print every event in order (like tcpstates, with owners and connection ids).
    #[arg(short = 'e', long)]
    pub events: bool,
    /// JSON output: one document for the verdict, one object per line with --events.
    #[arg(short = 'j', long)]
    pub json: bool,
    /// Include every connection in the verdict (a trace can hold millions); not with
    /// --events, which shows every event.
    #[arg(long, conflicts_with = "events")]
    pub connections: bool,
    /// Only connections to this server: ADDR or ADDR:PORT.
    #[arg(long, value_name = "ADDR[:PORT]")]
    pub server: Option<String>,
    /// Only connections from this client address.
    #[arg(long, value_name = "ADDR")]
    pub client: Option<String>,
    /// Only connections with this pod at either end: NAMESPACE/NAME, or NAME in any
    /// namespace (repeatable; from the names the trace recorded).
    #[arg(long = "pod", value_name = "NAMESPACE/NAME")]
    pub pods: Vec<String>,
    /// Only connections with this container at either end: its name or an id prefix
    /// (repeatable).
    #[arg(long = "container", value_name = "ID-OR-NAME")]
    pub containers: Vec<String>,
    /// Start at this offset into the trace (e.g. 10s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// Stop at this offset into the trace.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub until: Option<Duration>,
    /// A socket in CLOSE_WAIT for longer than this is reported as a leak.
    #[arg(long = "close-wait", value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub close_wait: Duration,
    /// Colors in text output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// With --events: show seconds since the start instead of wall-clock time (UTC).
    #[arg(short = 'r', long, requires = "events")]
    pub relative: bool,
    /// Follow a trace that is still being written, like tail -f, and into the next
    /// file when the recorder rotates (FILE.1, FILE.2...): print the verdict every
    /// --interval (and once more at the end), or with --events each event as it lands.
    /// Ends when the recording does, or with Ctrl-C.
    #[arg(long, conflicts_with = "connections")]
    pub follow: bool,
    /// With --follow: how often the verdict is printed.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "1s",
        value_parser = parse_duration,
        requires = "follow",
        conflicts_with = "events"
    )]
    pub interval: Duration,
}

/// The tables' format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    #[default]
    Parquet,
    Ndjson,
}

impl From<ExportFormat> for crate::export::ExportFormat {
    fn from(format: ExportFormat) -> Self {
        match format {
            ExportFormat::Parquet => Self::Parquet,
            ExportFormat::Ndjson => Self::Ndjson,
        }
    }
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Trace files written by `tcpchurn record`, directories of them, or patterns.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Directory for the tables (created with its parents, mode 0700, if missing).
    #[arg(short = 'o', long = "output", value_name = "DIR", required = true)]
    pub output: PathBuf,
    /// Parquet (zstd), or NDJSON: the objects of `replay --events --json` and of
    /// `replay --connections --json`, one per line.
    #[arg(long, value_enum, default_value_t = ExportFormat::Parquet)]
    pub format: ExportFormat,
    /// Overwrite tables that exist in DIR.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// A socket in CLOSE_WAIT for longer than this is a leak (as in `replay`).
    #[arg(long = "close-wait", value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub close_wait: Duration,
}

/// `30`, `30s`, `1.5s`, `250ms`, `5m`, `1h`, and sums of them like `1m30s` or `1h5m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let not_a_duration = || format!("`{text}` is not a duration (try 30s, 250ms, 5m, 1m30s)");
    let is_number = |c: char| c.is_ascii_digit() || c == '.';
    let mut secs = 0.0;
    let mut rest = text;
    if rest.is_empty() {
        return Err(not_a_duration());
    }
    while !rest.is_empty() {
        let (number, tail) = rest.split_at(rest.find(|c| !is_number(c)).unwrap_or(rest.len()));
        let (unit, tail) = tail.split_at(tail.find(is_number).unwrap_or(tail.len()));
        let value: f64 = number.parse().map_err(|_| not_a_duration())?;
        let scale = match unit.trim() {
            // A bare number is seconds, alone; in a sum every part has its unit.
            "" if number.len() == text.len() => 1.0,
            "s" | "sec" | "secs" => 1.0,
            "ms" => 1e-3,
            "us" => 1e-6,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "" => return Err(not_a_duration()),
            other => {
                return Err(format!(
                    "unknown duration unit `{other}` (use ms, s, m or h)"
                ));
            }
        };
        secs += value * scale;
        rest = tail;
    }
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("`{text}` is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `4096`, `64K`, `16M`, `1G`, `16MiB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size (try 16M, 512K)"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit `{other}` (use K, M or G)")),
    };
    value
        .checked_mul(scale)
        .ok_or_else(|| format!("`{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(
            parse_duration("1h2m3.5s"),
            Ok(Duration::from_millis(3_723_500))
        );
        assert_eq!(
            parse_duration("2m 500ms"),
            Ok(Duration::from_millis(120_500))
        );
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("1m30").is_err(), "30 what?");
        assert!(parse_duration("1..5s").is_err());
        assert!(parse_duration("9999999999h").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999999G").is_err());
    }

    #[test]
    fn record_and_replay_parse() {
        let cli = Cli::try_parse_from([
            "tcpchurn", "record", "-o", "x.trace", "--port", "2181", "-d", "20s",
        ])
        .unwrap();
        let Command::Record(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.ports, vec![2181]);
        assert_eq!(args.duration, Some(Duration::from_secs(20)));
        assert_eq!(args.ring_size, 16 << 20);
        let cli =
            Cli::try_parse_from(["tcpchurn", "replay", "x.trace", "--events", "--json"]).unwrap();
        let Command::Replay(args) = cli.command else {
            panic!()
        };
        assert!(args.events && args.json);
        assert!(Cli::try_parse_from(["tcpchurn", "record", "--rotate", "3"]).is_err());
        let cli = Cli::try_parse_from([
            "tcpchurn",
            "record",
            "-o",
            "/dev/null",
            "--metrics",
            "127.0.0.1:9464",
            "--live",
        ])
        .unwrap();
        let Command::Record(args) = cli.command else {
            panic!()
        };
        let options = args.options().unwrap();
        assert!(options.live);
        assert_eq!(options.metrics, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(options.metrics_pairs, 200);
        assert!(Cli::try_parse_from(["tcpchurn", "record", "--metrics", "localhost"]).is_err());
        let cli = Cli::try_parse_from(["tcpchurn", "replay", "x.trace", "--follow"]).unwrap();
        let Command::Replay(args) = cli.command else {
            panic!()
        };
        assert!(args.follow);
        assert!(
            Cli::try_parse_from(["tcpchurn", "replay", "x", "--follow", "--connections"]).is_err()
        );
        // Live flags that would be ignored are refused.
        for ignored in [
            &["replay", "x", "--interval", "2s"][..],
            &["replay", "x", "--follow", "--events", "--interval", "2s"],
            &["record", "--metrics-pairs", "10"],
        ] {
            let args = std::iter::once("tcpchurn").chain(ignored.iter().copied());
            assert!(Cli::try_parse_from(args).is_err(), "{ignored:?}");
        }
        assert!(
            Cli::try_parse_from(["tcpchurn", "replay", "x", "--follow", "--interval", "2s"])
                .is_ok()
        );
        let cli = Cli::try_parse_from([
            "tcpchurn",
            "record",
            "--pod",
            "infra/zk-0",
            "--container",
            "web",
            "--host-root",
            "/host",
        ])
        .unwrap();
        let Command::Record(args) = cli.command else {
            panic!()
        };
        let options = args.options().unwrap();
        assert_eq!(options.filters.pods, ["infra/zk-0"]);
        assert_eq!(options.filters.containers, ["web"]);
        assert_eq!(options.host_root, std::path::Path::new("/host"));
        let cli = Cli::try_parse_from(["tcpchurn", "record", "--pod", "a/b/c"]).unwrap();
        let Command::Record(args) = cli.command else {
            panic!()
        };
        assert_eq!(
            args.options().unwrap_err().to_string(),
            "--pod: `a/b/c` is not NAMESPACE/NAME or NAME"
        );
        assert!(Cli::try_parse_from(["tcpchurn", "replay"]).is_err());
        // Flags that would be ignored are refused.
        for ignored in [&["-r"][..], &["--events", "--connections"]] {
            let mut args = vec!["tcpchurn", "replay", "x.trace"];
            args.extend_from_slice(ignored);
            assert!(Cli::try_parse_from(args).is_err(), "{ignored:?}");
        }
        assert!(Cli::try_parse_from(["tcpchurn", "replay", "x.trace", "-e", "-r"]).is_ok());
        let cli = Cli::try_parse_from(["tcpchurn", "doctor", "--json", "--top", "3"]).unwrap();
        let Command::Doctor(args) = cli.command else {
            panic!()
        };
        assert!(args.json);
        assert_eq!(args.top, 3);
    }

    #[test]
    fn long_version_names_the_commit_and_the_kernel_programs() {
        let version = Cli::command().render_long_version();
        assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
        assert!(version.contains("\ncommit   "), "{version}");
        assert!(version.contains("kernel programs"), "{version}");
    }
}
