//! The kernels of the matrix: Debian 12's own packages, fetched with `apt-get
//! download` and unpacked with `dpkg -x` into a cache directory. Nothing is installed
//! as the host's kernel.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};
use tcpchurn_harness::exec::{run_shown, try_stdout};

/// One kernel of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelSpec {
    /// Short name, for `--kernel` and the table.
    pub name: &'static str,
    /// Debian's meta-package that depends on the newest image of this flavour.
    pub meta_package: &'static str,
    /// Run in CI (`cargo xtask kernels`), not only with `--all`.
    pub in_ci: bool,
    /// Run with the kernel's BTF hidden (classic tracepoints only).
    pub hide_btf: bool,
    /// vCPUs of its guest, unless `--cpus` says otherwise. Two give the recorder a ring
    /// per CPU, merged by event time (docs/kernel-facts.md §4.5). Under TCG, two vCPUs
    /// cost 6.12's suites no time and slow 6.1's down 1.5-2x (docs/kernels.md): CI runs
    /// 6.12 with two, 6.1 with one.
    pub cpus: u32,
}

/// The matrix: the LTS kernels production nodes run (Debian 12 and many cloud images
/// ship 6.1; newer ones 6.12), generic, cloud and PREEMPT_RT.
pub const MATRIX: [KernelSpec; 6] = [
    KernelSpec {
        name: "6.1",
        meta_package: "linux-image-amd64",
        in_ci: true,
        hide_btf: false,
        cpus: 1,
    },
    KernelSpec {
        name: "6.1-cloud",
        meta_package: "linux-image-cloud-amd64",
        in_ci: false,
        hide_btf: false,
        cpus: 1,
    },
    KernelSpec {
        name: "6.1-rt",
        meta_package: "linux-image-rt-amd64",
        in_ci: true,
        hide_btf: false,
        cpus: 1,
    },
    KernelSpec {
        name: "6.12",
        meta_package: "linux-image-6.12-amd64",
        in_ci: true,
        hide_btf: false,
        cpus: 2,
    },
    KernelSpec {
        name: "6.12-rt",
        meta_package: "linux-image-6.12-rt-amd64",
        in_ci: false,
        hide_btf: false,
        cpus: 1,
    },
    // Not in CI until the classic error-report pairing survives an emulated CPU's
    // stalls (docs/kernels.md): 4 of 14 lifecycle tests fail there.
    KernelSpec {
        name: "6.1-nobtf",
        meta_package: "linux-image-amd64",
        in_ci: false,
        hide_btf: true,
        cpus: 1,
    },
];

/// A kernel ready to boot.
#[derive(Clone, Debug)]
pub struct KernelImage {
    pub spec: KernelSpec,
    /// The image package, e.g. `linux-image-6.1.0-56-amd64`.
    pub package: String,
    /// Its Debian version, e.g. `6.1.192-2`.
    pub version: String,
    /// `boot/vmlinuz-*` inside the unpacked package; `lib/modules` is beside it, where
    /// virtme-ng finds the modules.
    pub vmlinuz: PathBuf,
}

/// The image package a meta-package currently depends on.
fn image_package(meta: &str) -> anyhow::Result<String> {
    let depends = try_stdout("apt-cache", &["depends", "--important", meta])
        .with_context(|| format!("`apt-cache depends {meta}` failed (apt-get update?)"))?;
    depends
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .map(str::trim)
        .find(|p| p.starts_with("linux-image-") && !p.ends_with("-dbg"))
        .map(str::to_owned)
        .with_context(|| format!("{meta} depends on no linux-image package:\n{depends}"))
}

fn candidate_version(package: &str) -> anyhow::Result<String> {
    let policy = try_stdout("apt-cache", &["policy", package])
        .with_context(|| format!("`apt-cache policy {package}` failed"))?;
    policy
        .lines()
        .find_map(|l| l.trim().strip_prefix("Candidate: "))
        .map(str::to_owned)
        .filter(|v| v != "(none)")
        .with_context(|| format!("no installable version of {package}"))
}

/// The unpacked kernel of `spec`, downloading and unpacking it when it is not in
/// `cache` yet.
pub fn fetch(spec: KernelSpec, cache: &Path) -> anyhow::Result<KernelImage> {
    let package = match image_package(spec.meta_package) {
        Ok(package) => package,
        Err(_) => {
            // A fresh machine may have no package lists yet.
            run_shown(Command::new("apt-get").args(["update", "-qq"]))?;
            image_package(spec.meta_package)?
        }
    };
    let version = candidate_version(&package)?;
    let release = package
        .strip_prefix("linux-image-")
        .context("not an image package")?
        .to_owned();
    let root = cache.join("images").join(format!("{package}_{version}"));
    let vmlinuz = root.join("boot").join(format!("vmlinuz-{release}"));
    if !vmlinuz.exists() {
        let downloads = cache.join("debs");
        fs::create_dir_all(&downloads)?;
        eprintln!("xtask: fetching {package} {version}");
        run_shown(Command::new("apt-get").current_dir(&downloads).args([
            "download",
            "-qq",
            &format!("{package}={version}"),
        ]))?;
        let deb = fs::read_dir(&downloads)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{package}_")) && n.ends_with(".deb"))
            })
            .with_context(|| format!("apt-get download left no {package}_*.deb"))?;
        let partial = cache
            .join("images")
            .join(format!("{package}_{version}.partial"));
        fs::create_dir_all(cache.join("images"))?;
        let _removed = fs::remove_dir_all(&partial);
        run_shown(Command::new("dpkg").arg("-x").arg(&deb).arg(&partial))?;
        let _removed = fs::remove_dir_all(&root);
        fs::rename(&partial, &root)?;
        fs::remove_file(&deb)?;
        if !vmlinuz.exists() {
            bail!("{} has no {}", deb.display(), vmlinuz.display());
        }
    }
    Ok(KernelImage {
        spec,
        package,
        version,
        vmlinuz,
    })
}
