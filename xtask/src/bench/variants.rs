//! What is compared: the churn untraced, traced by tcpchurn at two settings and with
//! its live views (`--live`, `--metrics`), and traced by other tools when they are
//! installed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{args::BenchArgs, tools::TCPSTATES};

/// How a variant traces the churn.
#[derive(Clone, Debug, Default)]
pub enum Kind {
    #[default]
    Untraced,
    /// `tcpchurn record` with these extra arguments, run from `binary` (default: the
    /// build under test).
    Tcpchurn {
        binary: Option<PathBuf>,
        args: Vec<String>,
    },
    /// libbpf-tools `tcpstates`, writing a line per transition.
    Tcpstates,
    /// A bpftrace script that only counts our ports' transitions in the kernel.
    Bpftrace(PathBuf),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Variant {
    pub name: String,
    #[serde(skip)]
    pub kind: Kind,
    /// How the variant is run, for the report.
    pub command: String,
}

pub const UNTRACED: &str = "untraced";
pub const TCPCHURN_DEFAULTS: &str = "tcpchurn-defaults";
pub const TCPCHURN_ALT: &str = "tcpchurn-alt";
pub const TCPCHURN_LIVE: &str = "tcpchurn-live";
pub const TCPCHURN_METRICS: &str = "tcpchurn-metrics";

impl Variant {
    fn new(name: &str, kind: Kind, command: String) -> Self {
        Self {
            name: name.into(),
            kind,
            command,
        }
    }

    pub fn is_traced(&self) -> bool {
        !matches!(self.kind, Kind::Untraced)
    }

    /// Another tool on the same tracepoint (tcpstates, bpftrace): it runs nothing on
    /// softirqs, so it is compared on the TCP workloads only.
    pub fn is_peer(&self) -> bool {
        matches!(self.kind, Kind::Tcpstates | Kind::Bpftrace(_))
    }

    /// An untraced run before the rounds, so that the first measured run does not pay
    /// for cold caches.
    pub fn warmup() -> Self {
        Self::new("warmup", Kind::Untraced, String::new())
    }
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// The recorder with its live views: `--live` (text blocks, stdout is not a terminal:
/// the analysis and the text verdict every second) and `--metrics` (the analysis and
/// the exposition every second; nothing scrapes it).
fn live_variants() -> Vec<Variant> {
    // A port free now; the recorder binds it at each run.
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or_else(|_| "127.0.0.1:9464".to_owned(), |a| a.to_string());
    vec![
        Variant::new(
            TCPCHURN_LIVE,
            Kind::Tcpchurn {
                binary: None,
                args: vec!["--live".into()],
            },
            "tcpchurn record -o FILE --netns NS --live > /dev/null".into(),
        ),
        Variant::new(
            TCPCHURN_METRICS,
            Kind::Tcpchurn {
                binary: None,
                args: vec!["--metrics".into(), metrics.clone()],
            },
            format!("tcpchurn record -o FILE --netns NS --metrics {metrics} (not scraped)"),
        ),
    ]
}

/// The variants to run (untraced first), and what was left out and why. `alt_binary`
/// is the second tcpchurn variant's binary when it is another build.
pub fn variants(args: &BenchArgs, alt_binary: Option<&Path>) -> (Vec<Variant>, Vec<String>) {
    let mut variants = vec![
        Variant::new(UNTRACED, Kind::Untraced, "the load alone".into()),
        Variant::new(
            TCPCHURN_DEFAULTS,
            Kind::Tcpchurn {
                binary: None,
                args: Vec::new(),
            },
            "tcpchurn record -o FILE --netns NS".into(),
        ),
    ];
    let alt_args = args.alt_args();
    if alt_binary.is_some() || !alt_args.trim().is_empty() {
        let program = alt_binary.map_or_else(|| "tcpchurn".to_owned(), |b| b.display().to_string());
        variants.push(Variant::new(
            TCPCHURN_ALT,
            Kind::Tcpchurn {
                binary: alt_binary.map(Path::to_path_buf),
                args: alt_args.split_whitespace().map(str::to_owned).collect(),
            },
            format!("{program} record -o FILE --netns NS {alt_args}")
                .trim_end()
                .to_owned(),
        ));
    }
    let mut skipped = Vec::new();
    if args.no_live {
        skipped.push("tcpchurn --live and --metrics (--no-live)".to_owned());
    } else {
        variants.extend(live_variants());
    }
    if args.no_peers {
        skipped.push("tcpstates and bpftrace (--no-peers)".to_owned());
    } else {
        if Path::new(TCPSTATES).is_file() {
            variants.push(Variant::new(
                "tcpstates",
                Kind::Tcpstates,
                format!("{TCPSTATES} > FILE (all namespaces; stopped with SIGINT)"),
            ));
        } else {
            skipped.push(format!(
                "tcpstates: {TCPSTATES} is not installed (libbpf-tools)"
            ));
        }
        match which("bpftrace") {
            Some(bpftrace) => variants.push(Variant::new(
                "bpftrace-count",
                Kind::Bpftrace(bpftrace),
                "bpftrace -o FILE: inet_sock_set_state, TCP, our ports, count() in the kernel"
                    .into(),
            )),
            None => skipped.push("bpftrace: not installed".to_owned()),
        }
    }
    for s in &skipped {
        eprintln!("bench: skipping {s}");
    }
    (variants, skipped)
}
