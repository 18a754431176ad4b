//! `cargo xtask dist`: what ships. A static (musl), stripped `tcpchurn` with its man
//! pages, shell completions, README and licenses in
//! `target/dist/tcpchurn-VERSION-ARCH-linux-musl/`, that directory as a `.tar.gz` with
//! a SHA-256 file, and a `.deb` (cargo-deb) installing the same files.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};
use tcpchurn_harness::{
    apt::install_missing,
    exec::{run_shown, try_stdout},
    runner::is_root,
    workspace,
};

use crate::cargo::cargo;

fn workspace_root() -> PathBuf {
    workspace::root()
}

/// The cargo-deb release `cargo xtask setup` installs.
pub const CARGO_DEB_VERSION: &str = "3.8.0";
/// The schema validator for deploy/daemonset.yaml (PyPI; it ships the schemas, so
/// validating needs no cluster and no network).
const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.37.0";
/// What the shipping tests use: podman (with runc and conmon) to build and run the
/// image, man to render the pages.
/// `musl-tools`: a C compiler for musl (`x86_64-linux-musl-gcc`), for the zstd library
/// the Parquet export compresses with.
const SHIP_PACKAGES: [&str; 5] = ["podman", "runc", "conmon", "man-db", "musl-tools"];

/// `target/venv/bin/kubernetes-validate`.
pub fn kubernetes_validate() -> PathBuf {
    workspace_root().join("target/venv/bin/kubernetes-validate")
}

/// Installs what `dist` and its tests need when missing: the musl target, cargo-deb,
/// the Debian packages (as root), and the manifest validator in `target/venv`.
pub fn install_tools() -> anyhow::Result<()> {
    if is_root() {
        install_missing(&SHIP_PACKAGES)?;
    }
    ensure_target(X86_64)?;
    if !try_stdout("cargo-deb", &["--version"]).is_some_and(|v| v.contains(CARGO_DEB_VERSION)) {
        run_shown(Command::new("cargo").args([
            "install",
            "cargo-deb",
            "--locked",
            "--version",
            CARGO_DEB_VERSION,
        ]))?;
    }
    if !kubernetes_validate().exists() {
        let venv = workspace_root().join("target/venv");
        run_shown(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        run_shown(Command::new(venv.join("bin/pip")).args(["install", "-q", KUBERNETES_VALIDATE]))?;
    }
    Ok(())
}

fn ensure_target(target: Target) -> anyhow::Result<()> {
    let installed = try_stdout("rustup", &["target", "list", "--installed"]).unwrap_or_default();
    if !installed.lines().any(|l| l.trim() == target.triple) {
        run_shown(Command::new("rustup").args(["target", "add", target.triple]))?;
    }
    Ok(())
}
const VERSION: &str = env!("CARGO_PKG_VERSION");
const LICENSES: [&str; 2] = ["LICENSE-MIT", "LICENSE-APACHE"];

#[derive(Debug, clap::Args)]
pub struct DistArgs {
    /// Also build for aarch64 (needs a linker for it: Debian's gcc-aarch64-linux-gnu).
    #[arg(long)]
    pub aarch64: bool,
    /// Do not build the .deb.
    #[arg(long)]
    pub no_deb: bool,
}

/// A target the binary ships for.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    pub triple: &'static str,
    /// The name's part in the archive, `x86_64-linux-musl`.
    pub short: &'static str,
    /// A cross linker, for targets other than the build machine's.
    linker: Option<&'static str>,
}

pub const X86_64: Target = Target {
    triple: "x86_64-unknown-linux-musl",
    short: "x86_64-linux-musl",
    linker: None,
};

pub const AARCH64: Target = Target {
    triple: "aarch64-unknown-linux-musl",
    short: "aarch64-linux-musl",
    linker: Some("aarch64-linux-gnu-gcc"),
};

impl Target {
    /// `tcpchurn-0.1.0-x86_64-linux-musl`.
    pub fn name(self) -> String {
        format!("tcpchurn-{VERSION}-{}", self.short)
    }

    /// Where cargo leaves the binary.
    fn binary(self) -> PathBuf {
        workspace_root()
            .join("target")
            .join(self.triple)
            .join("dist/tcpchurn")
    }

    fn env_key(self) -> String {
        self.triple.to_uppercase().replace('-', "_")
    }
}

pub fn dist_dir() -> PathBuf {
    workspace_root().join("target/dist")
}

pub fn dist(args: &DistArgs) -> anyhow::Result<()> {
    let mut targets = vec![X86_64];
    if args.aarch64 {
        targets.push(AARCH64);
    }
    for &target in &targets {
        build(target)?;
    }
    // Man pages and completions come from the build machine's binary: the same command
    // line for every target.
    let share = dist_dir().join("share");
    generate(&X86_64.binary(), &share)?;
    for &target in &targets {
        let archive = package(target, &share)?;
        eprintln!("xtask: {}", archive.display());
    }
    if !args.no_deb {
        for &target in &targets {
            deb(target)?;
        }
    }
    Ok(())
}

/// Builds the static binary: musl, no PIE (so no dynamic section at all), the `dist`
/// profile (no debug info, stripped).
fn build(target: Target) -> anyhow::Result<()> {
    ensure_target(target)?;
    let mut cmd = cargo();
    cmd.args([
        "build",
        "--profile",
        "dist",
        "--target",
        target.triple,
        "-p",
        "probe-user",
        "--bin",
        "tcpchurn",
    ])
    .env(
        format!("CARGO_TARGET_{}_RUSTFLAGS", target.env_key()),
        "-C relocation-model=static -C target-feature=+crt-static",
    );
    if let Some(linker) = target.linker {
        if try_stdout(linker, &["--version"]).is_none() {
            bail!(
                "no {linker} for {}: install Debian's gcc-aarch64-linux-gnu",
                target.triple
            );
        }
        cmd.env(format!("CARGO_TARGET_{}_LINKER", target.env_key()), linker);
        // The cross compiler builds the C of dependencies (zstd) too: it needs only the
        // C library's headers, and the musl target links it statically.
        cmd.env(format!("CC_{}", target.triple.replace('-', "_")), linker);
    }
    run_shown(&mut cmd)
}

/// `tcpchurn generate` into `share/man` and `share/completions`.
fn generate(binary: &Path, share: &Path) -> anyhow::Result<()> {
    for (what, dir) in [("man", "man"), ("completions", "completions")] {
        let dir = share.join(dir);
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        run_shown(Command::new(binary).arg("generate").arg(what).arg(&dir))?;
    }
    Ok(())
}

/// Lays out `target/dist/NAME/`, then `NAME.tar.gz` and `NAME.tar.gz.sha256`; removes
/// older versions' directories and archives for this target.
fn package(target: Target, share: &Path) -> anyhow::Result<PathBuf> {
    let dist = dist_dir();
    remove_stale(&dist, target)?;
    let name = target.name();
    let dir = dist.join(&name);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    copy(&target.binary(), &dir.join("tcpchurn"))?;
    for sub in ["man", "completions"] {
        fs::create_dir_all(dir.join(sub))?;
        for entry in fs::read_dir(share.join(sub))? {
            let path = entry?.path();
            if let Some(file) = path.file_name() {
                copy(&path, &dir.join(sub).join(file))?;
            }
        }
    }
    let root = workspace_root();
    for file in ["README.md"].into_iter().chain(LICENSES) {
        copy(&root.join(file), &dir.join(file))?;
    }
    let archive = format!("{name}.tar.gz");
    // Reproducible: sorted, owned by root, every file dated at the commit.
    let mtime = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .or_else(|| try_stdout("git", &["log", "-1", "--format=%ct"]).map(|t| t.trim().to_owned()))
        .unwrap_or_else(|| "0".into());
    run_shown(Command::new("tar").current_dir(&dist).args([
        "--sort=name",
        "--owner=0",
        "--group=0",
        "--numeric-owner",
        &format!("--mtime=@{mtime}"),
        "--use-compress-program=gzip -n",
        "-cf",
        &archive,
        &name,
    ]))?;
    let sum = Command::new("sha256sum")
        .current_dir(&dist)
        .arg(&archive)
        .output()
        .context("running sha256sum")?;
    if !sum.status.success() {
        bail!("sha256sum {archive} failed");
    }
    fs::write(dist.join(format!("{archive}.sha256")), sum.stdout)?;
    Ok(dist.join(archive))
}

fn remove_stale(dist: &Path, target: Target) -> anyhow::Result<()> {
    let Ok(entries) = fs::read_dir(dist) else {
        return Ok(());
    };
    let suffix = format!("-{}", target.short);
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        let stem = file
            .strip_suffix(".tar.gz.sha256")
            .or_else(|| file.strip_suffix(".tar.gz"))
            .unwrap_or(file);
        if stem.starts_with("tcpchurn-") && stem.ends_with(&suffix) {
            let path = entry.path();
            if path.is_dir() {
                fs::remove_dir_all(&path)?;
            } else {
                fs::remove_file(&path)?;
            }
        }
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// The .deb, from the binary just built and the generated files (cargo-deb reads its
/// asset list from probe-user's `[package.metadata.deb]`).
fn deb(target: Target) -> anyhow::Result<()> {
    if try_stdout("cargo-deb", &["--version"]).is_none() {
        bail!(
            "cargo-deb is missing: `cargo xtask setup` installs it (cargo install cargo-deb \
             --version {CARGO_DEB_VERSION})"
        );
    }
    let out = dist_dir();
    run_shown(
        cargo()
            .args([
                "deb",
                "-p",
                "probe-user",
                "--target",
                target.triple,
                "--profile",
                "dist",
                "--no-build",
                "--no-strip",
                "--output",
            ])
            .arg(&out),
    )
}
