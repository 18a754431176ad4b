//! Builds the kernel program (`probe-ebpf`) for `bpfel-unknown-none` with the nightly
//! toolchain and bpf-linker, and leaves it in `$OUT_DIR/probe-ebpf` for
//! `include_bytes_aligned!`. Then writes `$OUT_DIR/long_version.txt`, what
//! `tcpchurn --version` prints: the version, the git commit built, the target, and the
//! programs the embedded object holds (read from the object itself, not listed by hand).
//!
//! With `AYA_BUILD_SKIP=1` (used by lints that do not need the object) an empty file is
//! written instead; loading it fails with a clear error rather than at compile time.
use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};
use object::{Object as _, ObjectSection as _, ObjectSymbol as _, SymbolKind};

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);
    let object = out_dir.join("probe-ebpf");
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if skip {
        println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
        if !object.exists() {
            fs::write(&object, []).context("writing the eBPF stub")?;
        }
    } else {
        build_probe()?;
        strip_debug_info(&object);
    }
    let data = fs::read(&object).context("reading the eBPF object")?;
    let long_version = format!(
        "{}\ncommit   {}\ntarget   {}\n{}",
        env::var("CARGO_PKG_VERSION").context("CARGO_PKG_VERSION not set")?,
        git_commit().unwrap_or_else(|| "unknown (not built from a git checkout)".into()),
        env::var("TARGET").context("TARGET not set")?,
        programs_text(&data)?,
    );
    fs::write(out_dir.join("long_version.txt"), long_version).context("writing long_version.txt")
}

fn build_probe() -> anyhow::Result<()> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .into_iter()
        .find(|p| p.name.as_str() == "probe-ebpf")
        .ok_or_else(|| anyhow!("probe-ebpf package not found"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("probe-ebpf manifest has no parent directory"))?;
    aya_build::build_ebpf(
        [Package {
            name: ebpf.name.as_str(),
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        Toolchain::default(),
    )
}

/// Drops the object's DWARF (`llvm-strip --strip-debug`, LLVM's own, which bpf-linker
/// needs anyway). The loader reads the programs, maps, `.BTF` and `.BTF.ext`, never the
/// debug sections, which are three quarters of the object and would be embedded in
/// every binary. Without llvm-strip the object is kept whole, and said.
fn strip_debug_info(object: &Path) {
    for tool in ["/usr/lib/llvm-22/bin/llvm-strip", "llvm-strip"] {
        let stripped = Command::new(tool)
            .arg("--strip-debug")
            .arg(object)
            .status()
            .is_ok_and(|s| s.success());
        if stripped {
            return;
        }
    }
    println!(
        "cargo:warning=llvm-strip not found: the embedded kernel object keeps its debug \
         information (about 0.7 MB)"
    );
}

/// The programs of the eBPF object, one line per section kind (`tracepoint`, `tp_btf`,
/// `raw_tp`): the global functions of every section that is not `.text`.
fn programs_text(data: &[u8]) -> anyhow::Result<String> {
    if data.is_empty() {
        return Ok(
            "kernel programs: none (built with AYA_BUILD_SKIP: recording is unavailable)".into(),
        );
    }
    let file = object::File::parse(data).context("parsing the eBPF object")?;
    let mut kinds: Vec<(String, Vec<String>)> = Vec::new();
    for symbol in file.symbols() {
        if symbol.kind() != SymbolKind::Text || !symbol.is_global() {
            continue;
        }
        let Some(section) = symbol
            .section_index()
            .and_then(|i| file.section_by_index(i).ok())
        else {
            continue;
        };
        let section = section.name().unwrap_or("");
        if section.starts_with('.') || section.is_empty() {
            continue;
        }
        let kind = section.split('/').next().unwrap_or(section).to_owned();
        let name = symbol.name().unwrap_or("?").to_owned();
        match kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, names)) => names.push(name),
            None => kinds.push((kind, vec![name])),
        }
    }
    kinds.sort();
    let mut text = format!("kernel programs (eBPF object of {} bytes):", data.len());
    for (kind, mut names) in kinds {
        names.sort();
        text.push_str(&format!("\n  {kind:<11} {}", names.join(", ")));
    }
    Ok(text)
}

/// The commit this is built from: `TCPCHURN_COMMIT` if set (builds from a source
/// tarball), else `git rev-parse HEAD`; rebuilt when HEAD moves.
fn git_commit() -> Option<String> {
    println!("cargo:rerun-if-env-changed=TCPCHURN_COMMIT");
    if let Ok(commit) = env::var("TCPCHURN_COMMIT") {
        return Some(commit);
    }
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git").args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let git_dir = PathBuf::from(git(&["rev-parse", "--git-dir"])?);
    let common_dir = PathBuf::from(git(&["rev-parse", "--git-common-dir"])?);
    watch(&git_dir.join("HEAD"));
    if let Some(reference) = fs::read_to_string(git_dir.join("HEAD"))
        .ok()
        .and_then(|head| head.strip_prefix("ref: ").map(|r| r.trim().to_owned()))
    {
        watch(&common_dir.join(reference));
        watch(&common_dir.join("packed-refs"));
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}

/// Reruns this script when `path` changes (a file that does not exist is not watched:
/// cargo would rerun on every build).
fn watch(path: &Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
