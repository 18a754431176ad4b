//! Cgroup directories a run makes (a child joins one before it starts, see
//! [`crate::Spawn::in_cgroup`]), removed deepest first when dropped.

use std::{
    fs,
    path::{Path, PathBuf},
    thread,
    time::Duration,
};

use anyhow::Context as _;

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup`, or
/// `/sys/fs/cgroup/unified` on hybrid hosts).
pub fn v2_root() -> anyhow::Result<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mountinfo")?;
    mounts
        .lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            (right.split_whitespace().next()? == "cgroup2")
                .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
        })
        .context("no cgroup v2 hierarchy is mounted")
}

/// The cgroup directories made so far, removed when dropped.
#[derive(Debug, Default)]
pub struct Cgroups {
    made: Vec<PathBuf>,
}

impl Cgroups {
    /// Makes `dir` and the parents it lacks; returns `dir`.
    pub fn make(&mut self, dir: &Path) -> anyhow::Result<PathBuf> {
        let mut missing = Vec::new();
        let mut at = dir;
        while !at.exists() {
            missing.push(at.to_path_buf());
            at = at.parent().context("a cgroup path without a parent")?;
        }
        for d in missing.into_iter().rev() {
            fs::create_dir(&d).with_context(|| format!("creating cgroup {}", d.display()))?;
            self.made.push(d);
        }
        Ok(dir.to_path_buf())
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        for dir in self.made.iter().rev() {
            // Killed processes leave their cgroup asynchronously.
            for _ in 0..100 {
                if fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}
