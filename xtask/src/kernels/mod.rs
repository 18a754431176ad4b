//! `cargo xtask kernels`: the privileged suites inside the kernels production nodes run
//! (Debian 12's 6.1 and 6.12 LTS packages: generic, cloud, PREEMPT_RT), each booted in
//! a QEMU guest by virtme-ng over the host's own file system, against the binaries
//! built here. One more run hides the kernel's BTF, so that the classic-tracepoint
//! fallback passes the suites too. Prints a table and fails if any kernel did.
//!
//! Guests get 1 vCPU: where KVM does not work they run under QEMU's emulator (TCG), a
//! full host core each, and two vCPUs under TCG were found to hang or crash the guest
//! (docs/kernels.md). A guest that crashes, hangs or dies is run once more; its console
//! is kept in `target/kernels/logs/`.

mod guest;
mod images;
mod install;
mod table;
mod vm;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use tcpchurn_harness::{
    exec,
    runner::{in_ci, is_root},
    workspace,
};

use self::{
    guest::{KernelResult, Problem, Suite},
    images::{KernelImage, MATRIX},
    vm::{Accel, GuestRun, GuestSpec},
};
use crate::{binaries::build_tcpchurn, cargo::cargo};

#[derive(Debug, clap::Args)]
pub struct KernelsArgs {
    /// Every kernel of the matrix (CI runs a subset that fits its time).
    #[arg(long)]
    pub all: bool,
    /// Only these kernels (names from the table, e.g. 6.1-rt); repeatable.
    #[arg(long = "kernel", value_name = "NAME")]
    pub kernels: Vec<String>,
    /// Only these suites (lifecycle, verdicts, scope, hostile, zookeeper); repeatable.
    #[arg(long = "suite", value_name = "NAME")]
    pub suites: Vec<String>,
    /// Every test of each suite, also those that do not depend on the kernel.
    #[arg(long)]
    pub every_test: bool,
    /// Where the kernels and virtme-ng are kept between runs (default:
    /// `$XDG_CACHE_HOME/tcpchurn/kernels`, or `~/.cache/tcpchurn/kernels`).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// vCPUs per guest (default: each kernel's own, from the matrix: two for 6.12, one
    /// for the others).
    #[arg(long)]
    pub cpus: Option<u32>,
    /// Guest memory.
    #[arg(long, default_value = "2G")]
    pub memory: String,
    /// Use QEMU's emulator even where KVM works.
    #[arg(long)]
    pub no_kvm: bool,
    /// Skip installing what is missing.
    #[arg(long)]
    pub no_install: bool,
}

/// The privileged suites the guests run, in that order (the longest last), each with
/// the tests it runs there (none listed: all). What depends on the kernel runs in every
/// guest: transitions, resets, errors and owners (lifecycle), verdicts from real
/// traffic, namespaces and cgroups read from sockets (scope), the ZooKeeper loop, and of
/// the hostile suite the kernel side: loss counting with a tiny ring, detaching on
/// SIGTERM, no kernel BTF, mounting tracefs. The rest of it (signals, files, disks,
/// permissions, bad input) and the packaging suite (`ship`) test userspace only and run
/// on the host (`--every-test` runs them in the guests too).
const SUITES: [(&str, &[&str]); 5] = [
    ("lifecycle", &[]),
    ("verdicts", &[]),
    ("scope", &[]),
    (
        "hostile",
        &[
            "a_tiny_ring_reports_every_lost_event",
            "sigterm_stops_cleanly_and_leaves_nothing_behind",
            "without_btf_it_records_the_rest_and_says_what_is_missing",
            "an_unmounted_tracefs_is_mounted",
        ],
    ),
    ("zookeeper", &[]),
];
/// How much slower than the host timing-based tests may run under emulation.
const TCG_TIME_SCALE: u32 = 6;
/// One suite in a guest; the ZooKeeper suite is the longest (about 5 min under TCG).
const SUITE_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// A guest that prints nothing for this long is hung (every test prints when it ends).
const IDLE_TIMEOUT: Duration = Duration::from_secs(8 * 60);
/// Attempts per kernel when the guest crashes, hangs or dies (not when tests fail).
const ATTEMPTS: u32 = 2;
/// A KVM guest boots and prints in seconds; where KVM does not work it hangs.
const KVM_PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Where a run's staged binaries, guest script and logs go.
fn work_dir() -> PathBuf {
    workspace::root().join("target/kernels")
}

/// Where the kernels and virtme-ng are kept between runs, and between clones: they are
/// tools, like the Debian packages installed beside them.
fn cache_dir(args: &KernelsArgs) -> PathBuf {
    if let Some(dir) = &args.cache {
        return dir.clone();
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    base.map_or_else(|| work_dir().join("cache"), |b| b.join("tcpchurn/kernels"))
}

/// Builds `tcpchurn` and the privileged test executables on the host.
fn build() -> anyhow::Result<(PathBuf, Vec<Suite>)> {
    let tcpchurn = build_tcpchurn()?;
    let out = cargo()
        .args([
            "test",
            "--release",
            "-p",
            "tcpchurn-tests",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("building the privileged tests")?;
    if !out.status.success() {
        bail!("building the privileged tests failed");
    }
    let suites = guest::test_executables(&String::from_utf8_lossy(&out.stdout));
    stage(&tcpchurn, &suites)
}

/// Copies the binaries where the guests run them from: a guest reads the host's files
/// live, and a rebuild while a guest runs must not change them under it. The tests
/// find the peer program one directory above their own (`target/release/deps`).
fn stage(tcpchurn: &Path, suites: &[Suite]) -> anyhow::Result<(PathBuf, Vec<Suite>)> {
    let stage = work_dir().join("stage");
    let _removed = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(stage.join("deps"))?;
    let copy = |from: &Path, to: PathBuf| -> anyhow::Result<PathBuf> {
        std::fs::copy(from, &to).with_context(|| format!("copying {}", from.display()))?;
        Ok(to)
    };
    let staged_tcpchurn = copy(tcpchurn, stage.join("tcpchurn"))?;
    let peer = workspace::root().join("target/release/tcpchurn-peer");
    copy(&peer, stage.join("tcpchurn-peer"))?;
    let suites = suites
        .iter()
        .map(|s| {
            Ok(Suite {
                executable: copy(&s.executable, stage.join("deps").join(&s.name))?,
                ..s.clone()
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((staged_tcpchurn, suites))
}

/// The suites the guests run, in [`SUITES`] order, each with its test filter; `--suite`
/// chooses among them.
fn guest_suites(built: Vec<Suite>, args: &KernelsArgs) -> anyhow::Result<Vec<Suite>> {
    for name in &args.suites {
        if !SUITES.iter().any(|(s, _)| s == name) {
            let names: Vec<_> = SUITES.iter().map(|(s, _)| *s).collect();
            bail!(
                "no suite {name:?} runs in the guests ({})",
                names.join(", ")
            );
        }
    }
    let mut suites = Vec::new();
    for (name, tests) in SUITES {
        if !args.suites.is_empty() && !args.suites.iter().any(|s| s == name) {
            continue;
        }
        let built = built
            .iter()
            .find(|s| s.name == name)
            .with_context(|| format!("the privileged tests have no suite {name}"))?;
        // A renamed test must not silently drop out of the guests.
        let listed =
            exec::stdout(Command::new(&built.executable).args(["--list", "--format", "terse"]))?;
        for test in tests {
            if !listed
                .lines()
                .any(|l| l.strip_suffix(": test") == Some(test))
            {
                bail!("suite {name} has no test {test} (xtask/src/kernels/mod.rs SUITES)");
            }
        }
        suites.push(Suite {
            tests: if args.every_test {
                Vec::new()
            } else {
                tests.iter().map(|t| (*t).to_owned()).collect()
            },
            ..built.clone()
        });
    }
    Ok(suites)
}

fn selected(args: &KernelsArgs) -> anyhow::Result<Vec<images::KernelSpec>> {
    for name in &args.kernels {
        if !MATRIX.iter().any(|k| k.name == name) {
            let names: Vec<_> = MATRIX.iter().map(|k| k.name).collect();
            bail!("no kernel {name:?} in the matrix ({})", names.join(", "));
        }
    }
    Ok(MATRIX
        .into_iter()
        .filter(|k| {
            if args.kernels.is_empty() {
                args.all || k.in_ci
            } else {
                args.kernels.iter().any(|n| n == k.name)
            }
        })
        .collect())
}

pub fn kernels(args: &KernelsArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    if !is_root() {
        let reason = "the kernel matrix needs root (installs, and eBPF inside the guests)";
        if in_ci() {
            bail!("{reason}, and CI=true: a matrix that cannot run is a failure");
        }
        bail!("{reason}; run `cargo xtask kernels` as root");
    }
    let specs = selected(args)?;
    let cache = cache_dir(args);
    let work = work_dir();
    std::fs::create_dir_all(work.join("logs"))?;
    let tools = if args.no_install {
        install::Tools::existing(&cache)
    } else {
        crate::setup::setup(&crate::setup::SetupArgs {
            zookeeper: true,
            ..Default::default()
        })?;
        install::install(&cache)?
    };
    let (tcpchurn, suites) = build()?;
    let suites = guest_suites(suites, args)?;
    let images = specs
        .iter()
        .map(|spec| images::fetch(*spec, &cache))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let accel = match images.first() {
        Some(first) if !args.no_kvm => {
            let log = work.join("logs/kvm-probe.log");
            if vm::kvm_works(&tools, &first.vmlinuz, &log, KVM_PROBE_TIMEOUT) {
                Accel::Kvm
            } else {
                eprintln!(
                    "xtask: KVM does not work here (see {}); using TCG",
                    log.display()
                );
                Accel::Tcg
            }
        }
        _ => Accel::Tcg,
    };
    eprintln!("xtask: guests run under {}", accel.name());
    let prepared = Prepared {
        tools: &tools,
        guest_script: guest::write_script(&work)?,
        tcpchurn: &tcpchurn,
        suites: &suites,
        accel,
        cpus: args.cpus,
        memory: &args.memory,
        logs: work.join("logs"),
    };
    let mut results = Vec::new();
    for image in &images {
        results.push(prepared.run_kernel(image)?);
        // The table so far, so a long run shows progress.
        eprintln!("{}", table::render(&results, &suites));
    }
    println!("{}", table::render(&results, &suites));
    println!(
        "kernels: {} kernels in {:.1} min under {}; logs in {}",
        results.len(),
        started.elapsed().as_secs_f64() / 60.0,
        accel.name(),
        work.join("logs").display()
    );
    let failed: Vec<_> = results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.name.as_str())
        .collect();
    // The closing line CI reads.
    println!(
        "kernels: {} passed, {} failed",
        results.len() - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        bail!("kernels failed: {}", failed.join(", "));
    }
    Ok(())
}

/// What every guest of one run shares.
struct Prepared<'a> {
    tools: &'a install::Tools,
    guest_script: PathBuf,
    tcpchurn: &'a Path,
    suites: &'a [Suite],
    accel: Accel,
    /// `--cpus`, over each kernel's own.
    cpus: Option<u32>,
    memory: &'a str,
    logs: PathBuf,
}

impl Prepared<'_> {
    fn exec(&self, image: &KernelImage) -> String {
        let scale = if self.accel == Accel::Tcg {
            TCG_TIME_SCALE
        } else {
            1
        };
        let mut exec = format!(
            "sh {} {} {} {} {} {}",
            self.guest_script.display(),
            if image.spec.hide_btf { "nobtf" } else { "btf" },
            self.tcpchurn.display(),
            SUITE_TIMEOUT.as_secs(),
            scale,
            workspace::root().join("tests").display(),
        );
        for suite in self.suites {
            // NAME=EXECUTABLE[=TEST,TEST...]
            exec.push_str(&format!(" {}={}", suite.name, suite.executable.display()));
            if !suite.tests.is_empty() {
                exec.push_str(&format!("={}", suite.tests.join(",")));
            }
        }
        exec
    }

    fn run_kernel(&self, image: &KernelImage) -> anyhow::Result<KernelResult> {
        let name = image.spec.name;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let log = vm::log_path(&self.logs, name, attempts);
            eprintln!(
                "xtask: kernel {name} ({} {}), attempt {attempts}; console in {}",
                image.package,
                image.version,
                log.display()
            );
            let spec = GuestSpec {
                tools: self.tools,
                vmlinuz: &image.vmlinuz,
                accel: self.accel,
                cpus: self.cpus.unwrap_or(image.spec.cpus),
                memory: self.memory,
                exec: self.exec(image),
                timeout: SUITE_TIMEOUT * u32::try_from(self.suites.len()).unwrap_or(1)
                    + Duration::from_secs(5 * 60),
                idle_timeout: IDLE_TIMEOUT,
                log: &log,
            };
            let guest: GuestRun = vm::run_guest(&spec, |line| {
                if let Some(report) = line.split_once("@@kernels ").map(|(_, r)| r)
                    && !report.starts_with("attach")
                {
                    eprintln!("xtask: [{name}] {report}");
                }
            })?;
            let result = KernelResult::from_guest(image, &guest, attempts, &log);
            let retry = matches!(
                result.problem,
                Some(Problem::Crash(_) | Problem::Hang(_) | Problem::Died(_))
            );
            if let Some(problem) = &result.problem {
                eprintln!("xtask: [{name}] {problem}");
            }
            if !retry || attempts >= ATTEMPTS {
                return Ok(result);
            }
        }
    }
}
