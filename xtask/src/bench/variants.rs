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
    /// `tcpchurn record` with these extra arguments.
    Tcpchurn(Vec<String>),
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
            Kind::Tcpchurn(vec!["--live".into()]),
            "tcpchurn record -o FILE --netns NS --live > /dev/null".into(),
        ),
        Variant::new(
            TCPCHURN_METRICS,
            Kind::Tcpchurn(vec!["--metrics".into(), metrics.clone()]),
            format!("tcpchurn record -o FILE --netns NS --metrics {metrics} (not scraped)"),
        ),
    ]
}

/// The variants to run (untraced first), and what was left out and why.
pub fn variants(args: &BenchArgs) -> (Vec<Variant>, Vec<String>) {
    let mut variants = vec![
        Variant::new(UNTRACED, Kind::Untraced, "tcpchurn-churn alone".into()),
        Variant::new(
            TCPCHURN_DEFAULTS,
            Kind::Tcpchurn(Vec::new()),
            "tcpchurn record -o FILE --netns NS".into(),
        ),
    ];
    if !args.alt_args.trim().is_empty() {
        variants.push(Variant::new(
            "tcpchurn-alt",
            Kind::Tcpchurn(
                args.alt_args
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
            ),
            format!("tcpchurn record -o FILE --netns NS {}", args.alt_args),
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
