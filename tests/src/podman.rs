//! Real podman containers and pods for the tests: Debian's podman with runc and the
//! cgroupfs manager (no systemd here), explicit ulimits for every container including
//! a pod's infra container (podman's default `nofile` is above this host's hard
//! limit), and an image imported from Debian's static busybox (nothing is pulled).
//! Containers and pods are removed when dropped; images are shared and kept.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use tcpchurn_harness::{exec, runner::in_ci};

/// The tag names the applet list: a new applet needs a new tag, since an existing image
/// is kept.
pub const IMAGE: &str = "localhost/tcpchurn-busybox:2";

/// Whether podman and busybox are installed; in CI they must be.
pub fn podman_available() -> bool {
    let found = Command::new("podman")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        && Path::new("/bin/busybox").exists();
    if !found {
        assert!(
            !in_ci(),
            "podman or busybox-static missing in CI: `cargo xtask setup` installs them"
        );
        eprintln!("SKIPPED: podman or busybox-static missing; run `cargo xtask setup`");
    }
    found
}

/// Writes the test configuration into `dir`: runc, cgroupfs, and ulimits this host's
/// hard limits allow. Returns its path.
pub fn write_conf(dir: &Path) -> PathBuf {
    let conf = dir.join("containers.conf");
    fs::write(
        &conf,
        "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
         [engine]\ncgroup_manager = \"cgroupfs\"\nruntime = \"runc\"\n",
    )
    .unwrap();
    conf
}

/// `podman` with the configuration at `conf`.
pub fn podman_command(conf: &Path) -> Command {
    let mut cmd = Command::new("podman");
    cmd.env("CONTAINERS_CONF", conf)
        .args(["--runtime", "runc", "--cgroup-manager", "cgroupfs"]);
    cmd
}

/// The containers and pods a test made, removed on drop.
#[derive(Debug)]
pub struct Podman {
    conf: PathBuf,
    containers: Vec<String>,
    pods: Vec<String>,
}

impl Podman {
    /// Writes the configuration into `dir` and makes sure the image exists.
    pub fn new(dir: &Path) -> Self {
        let podman = Self {
            conf: write_conf(dir),
            containers: Vec::new(),
            pods: Vec::new(),
        };
        podman.ensure_image(dir);
        podman
    }

    /// `podman` with this configuration.
    pub fn command(&self) -> Command {
        podman_command(&self.conf)
    }

    fn run(&self, args: &[&str]) -> String {
        exec::stdout(self.command().args(args))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// The test image: a rootfs of Debian's static busybox, imported.
    fn ensure_image(&self, dir: &Path) {
        if self
            .command()
            .args(["image", "exists", IMAGE])
            .status()
            .unwrap()
            .success()
        {
            return;
        }
        let rootfs = dir.join("rootfs");
        for sub in ["bin", "tmp", "etc", "proc", "sys", "dev"] {
            fs::create_dir_all(rootfs.join(sub)).unwrap();
        }
        fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for applet in ["sh", "nc", "sleep", "true", "cat", "timeout"] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        let tar = dir.join("rootfs.tar");
        exec::stdout(
            Command::new("tar")
                .arg("-C")
                .arg(&rootfs)
                .arg("-cf")
                .arg(&tar)
                .arg("."),
        )
        .unwrap();
        exec::stdout(self.command().arg("import").arg(&tar).arg(IMAGE)).unwrap();
    }

    /// `podman run -d --name NAME OPTIONS... IMAGE COMMAND...`; returns the id.
    pub fn start(&mut self, name: &str, options: &[&str], command: &[&str]) -> String {
        self.containers.push(name.to_owned());
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(options);
        args.push(IMAGE);
        args.extend_from_slice(command);
        self.run(&args)
    }

    /// `podman pod create --name NAME --network none`.
    pub fn create_pod(&mut self, name: &str) -> String {
        self.pods.push(name.to_owned());
        self.run(&["pod", "create", "--name", name, "--network", "none"])
    }

    /// Starts a pod's infra container, so that its network namespace exists before any
    /// of its containers runs.
    pub fn start_pod(&self, name: &str) {
        self.run(&["pod", "start", name]);
    }

    /// `podman inspect -f FORMAT WHAT`.
    pub fn inspect(&self, what: &str, format: &str) -> String {
        self.run(&["inspect", "-f", format, what])
    }

    /// `podman pod inspect -f FORMAT POD`.
    pub fn inspect_pod(&self, pod: &str, format: &str) -> String {
        self.run(&["pod", "inspect", "-f", format, pod])
    }

    /// The pid of a container's first process.
    pub fn pid(&self, container: &str) -> u32 {
        self.inspect(container, "{{.State.Pid}}").parse().unwrap()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        for c in &self.containers {
            let _status = self
                .command()
                .args(["rm", "-f", "-t", "0", c])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        for p in &self.pods {
            let _status = self
                .command()
                .args(["pod", "rm", "-f", "-t", "0", p])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
