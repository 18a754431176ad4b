//! `--alt-rev REV`: `tcpchurn` built from another git revision, for a before/after
//! comparison of two builds in the same rounds.
//!
//! The revision's tree is exported with `git archive` into `target/bench/rev/<commit>`
//! (no worktree is registered) and built there with its own target directory,
//! `target/bench/rev-target`, shared by every revision so that dependencies build once.

use std::{path::PathBuf, process::Command};

use anyhow::Context as _;
use tcpchurn_harness::{exec, workspace};

use crate::binaries::BUILD_TCPCHURN;

/// Builds `tcpchurn` at `rev` and returns the binary's path.
pub fn build_rev(rev: &str) -> anyhow::Result<PathBuf> {
    let root = workspace::root();
    let commit = exec::stdout(Command::new("git").current_dir(&root).args([
        "rev-parse",
        "--verify",
        &format!("{rev}^{{commit}}"),
    ]))
    .with_context(|| format!("--alt-rev {rev}: not a commit of this repository"))?;
    let commit = commit.trim();
    let short = commit.get(..12).unwrap_or(commit);
    let src = root.join("target/bench/rev").join(short);
    if !src.join("Cargo.toml").is_file() {
        std::fs::create_dir_all(&src)?;
        let archive = format!(
            "git archive --format=tar {commit} | tar -x -C '{}'",
            src.display()
        );
        exec::run_shown(Command::new("sh").current_dir(&root).args(["-c", &archive]))
            .with_context(|| format!("exporting {rev} ({short})"))?;
    }
    let target_dir = root.join("target/bench/rev-target");
    eprintln!(
        "bench: building tcpchurn at {rev} ({short}) in {}",
        src.display()
    );
    exec::run_shown(
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .current_dir(&src)
            .env("CARGO_TARGET_DIR", &target_dir)
            .args(BUILD_TCPCHURN),
    )
    .with_context(|| format!("building tcpchurn at {rev}"))?;
    // One target directory for every revision: keep this revision's binary apart.
    let built = target_dir.join("release/tcpchurn");
    let binary = root
        .join("target/bench/rev")
        .join(format!("tcpchurn-{short}"));
    std::fs::copy(&built, &binary)
        .with_context(|| format!("copying {} to {}", built.display(), binary.display()))?;
    Ok(binary)
}
