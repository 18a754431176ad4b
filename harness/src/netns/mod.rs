//! Network namespaces: made with a name that says who owns them, deleted with
//! everything inside when dropped, and removed by a later run when the process that
//! made them was killed.

pub mod name;

use std::{
    ffi::OsStr, os::unix::fs::MetadataExt as _, process::Command, sync::Once, thread,
    time::Duration,
};

use anyhow::Context as _;

use crate::exec;

/// A network namespace with loopback up, deleted (with every process inside killed)
/// when dropped.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
    /// Its inode: the id `tcpchurn record` writes into events.
    pub inode: u64,
}

impl Netns {
    /// A new namespace; `tag` says what it is for (it ends the name).
    pub fn create(tag: &str) -> anyhow::Result<Self> {
        remove_stale_once();
        let name = name::next(tag)?;
        exec::ip(&["netns", "add", &name])?;
        // From here the guard deletes it, whatever fails next.
        let mut netns = Self { name, inode: 0 };
        exec::ip(&["-n", &netns.name, "link", "set", "lo", "up"])?;
        netns.inode = std::fs::metadata(format!("/run/netns/{}", netns.name))
            .with_context(|| format!("reading the inode of namespace {}", netns.name))?
            .ino();
        Ok(netns)
    }

    /// A command that runs `program` inside this namespace. `ip netns exec` execs the
    /// program, so the child's pid is the program's. It also remounts /sys, so a child
    /// that must join a cgroup joins it before (see [`crate::Spawn::in_cgroup`]).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs a short command inside the namespace, which must succeed; returns its
    /// stdout.
    pub fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<String> {
        exec::stdout(self.command(program).args(args))
    }

    /// `--netns NAME`: the recorder's arguments selecting this namespace.
    pub fn netns_args(&self) -> Vec<String> {
        vec!["--netns".into(), self.name.clone()]
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = destroy(&self.name) {
            eprintln!("warning: {e:#}");
        }
    }
}

/// Kills every process inside a namespace, then deletes it. `ip netns del` alone kills
/// nothing: the namespace would live on as long as a process is inside.
fn destroy(name: &str) -> anyhow::Result<()> {
    for _round in 0..50 {
        let pids: Vec<i32> = exec::ip(&["netns", "pids", name])
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        thread::sleep(Duration::from_millis(20));
    }
    exec::ip(&["netns", "del", name]).map(drop)
}

/// Deletes the namespaces (and kills the processes in them) that earlier runs left
/// behind when they were killed outright; namespaces of runs still going are kept.
/// Runs once per process, before its first namespace is made.
fn remove_stale_once() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Err(e) = remove_stale() {
            eprintln!("warning: removing stale namespaces: {e:#}");
        }
    });
}

fn remove_stale() -> anyhow::Result<()> {
    let list = exec::ip(&["netns", "list"])?;
    for netns in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(owner) = name::owner_of(netns) else {
            continue;
        };
        if owner.is_alive() {
            continue;
        }
        eprintln!("removing namespace {netns}, left by a run that was killed");
        // Another run may be removing it at the same moment.
        if let Err(e) = destroy(netns)
            && exec::ip(&["netns", "list"]).is_ok_and(|l| l.contains(netns))
        {
            eprintln!("warning: {e:#}");
        }
    }
    Ok(())
}
