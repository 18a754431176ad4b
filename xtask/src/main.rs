//! Project tasks: `cargo xtask setup | lint | test | demo | bench | soak | dist | kernels`.

mod bench;
mod binaries;
mod cargo;
mod demo;
mod dist;
mod kernels;
mod lint;
mod setup;
mod setup_containers;
mod soak;
mod test;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "tcpchurn project tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install what building and testing need (LLVM 22, bpf-linker 0.13, nightly
    /// rust-src, iproute2); idempotent and fast when everything is there.
    Setup(setup::SetupArgs),
    /// Formatting and clippy checks (warnings are errors).
    Lint,
    /// Setup, lint, unit tests, then the privileged tests (root; in CI a skip fails).
    Test(test::TestArgs),
    /// Stage an incident in network namespaces, record it, print the verdict (root).
    Demo(demo::DemoArgs),
    /// Churn benchmark: tracing overhead, losses, bytes/event, replay speed (root).
    Bench(bench::BenchArgs),
    /// Record churn for a long time (default 10 minutes) with rotation; check that
    /// events in = events out + lost, and that the recorder's memory stays flat.
    Soak(soak::SoakArgs),
    /// Build what ships into target/dist: the static (musl) binary with man pages,
    /// completions, README and licenses, as a .tar.gz with its SHA-256, and a .deb.
    Dist(dist::DistArgs),
    /// The privileged suites inside Debian's LTS kernels (6.1, 6.12; generic, cloud,
    /// PREEMPT_RT), each booted in a QEMU guest (root; installs what it needs).
    Kernels(kernels::KernelsArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Setup(args) => setup::setup(&args).and_then(|()| setup_containers::install()),
        Command::Lint => lint::lint(),
        Command::Test(args) => test::test(&args),
        Command::Demo(args) => demo::demo(&args),
        Command::Bench(args) => bench::bench(&args),
        Command::Soak(args) => soak::soak(&args),
        Command::Dist(args) => dist::dist(&args),
        Command::Kernels(args) => kernels::kernels(&args),
    }
}
