//! The node-wide scans behind the resolver: the mount table, the cgroup v2 tree,
//! `/proc` by network namespace, and the addresses of every namespace. Each builds a
//! fresh index; the resolver decides when to rebuild one.

use std::{
    collections::HashMap,
    fs,
    net::IpAddr,
    os::unix::fs::{DirEntryExt as _, MetadataExt as _},
    path::Path,
};

use crate::workload::{bounded, netns_addrs};

/// Cgroup directories indexed at most (a node has thousands).
const MAX_CGROUPS: usize = 1 << 20;
const MAX_DEPTH: usize = 64;
/// Processes remembered per network namespace (enough to see the pod; a host
/// namespace holds thousands).
const PIDS_PER_NETNS: usize = 32;
const STAT_LIMIT: u64 = 4096;

/// Where the cgroup v2 hierarchy is mounted, from a `mountinfo` text (field 5 is the
/// mount point; the filesystem type follows the ` - ` separator).
pub fn cgroup2_mount(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| left.split_whitespace().nth(4).map(unescape_octal))?
    })
}

/// Whether cgroup v1 hierarchies are mounted too (a hybrid host, or a v1 host): a
/// runtime may then place a container in v1 hierarchies only, leaving its v2 cgroup
/// the root.
pub fn has_cgroup1(mountinfo: &str) -> bool {
    mountinfo.lines().any(|line| {
        line.split_once(" - ")
            .and_then(|(_, right)| right.split_whitespace().next())
            == Some("cgroup")
    })
}

/// `mountinfo` escapes space, tab, newline and backslash as `\NNN`.
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(code) = bytes
                .get(i + 1..i + 4)
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        {
            out.push(code);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `net:[4026531840]` → 4026531840.
pub fn netns_inode(link: &Path) -> Option<u32> {
    let target = fs::read_link(link).ok()?;
    let text = target.to_str()?;
    text.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// When a process started (`/proc/PID/stat` field 22, clock ticks since boot): with
/// the pid, it names one process even after the pid is reused.
pub fn process_start(proc: &Path, pid: u32) -> Option<u64> {
    let stat = bounded::read_text(&proc.join(pid.to_string()).join("stat"), STAT_LIMIT).ok()?;
    parse_start_time(&stat)
}

/// Field 22 of a `stat` line; the name (field 2) may hold spaces and parentheses, so
/// fields are counted from its last `)`.
pub fn parse_start_time(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Every directory of the v2 hierarchy at `top`: inode → path relative to it.
pub fn walk_cgroups(top: &Path) -> HashMap<u64, String> {
    let mut map = HashMap::new();
    if let Ok(meta) = fs::metadata(top) {
        map.insert(meta.ino(), "/".to_owned());
    }
    let mut stack = vec![(top.to_path_buf(), String::new(), 0usize)];
    while let Some((dir, rel, depth)) = stack.pop() {
        if depth >= MAX_DEPTH {
            continue;
        }
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            if map.len() >= MAX_CGROUPS {
                break;
            }
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = format!("{rel}/{name}");
            map.insert(entry.ino(), path.clone());
            stack.push((entry.path(), path, depth + 1));
        }
    }
    map
}

/// Network namespace inode → some of the processes in it, from `/proc/*/ns/net`.
pub fn netns_pids(proc: &Path) -> HashMap<u32, Vec<u32>> {
    let mut map: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in fs::read_dir(proc).into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(inode) = netns_inode(&entry.path().join("ns/net")) {
            let pids = map.entry(inode).or_default();
            if pids.len() < PIDS_PER_NETNS {
                pids.push(pid);
            }
        }
    }
    map
}

/// Address → the namespace holding it, `None` when several do. Each namespace is
/// read through the first of its processes still there (others may be short-lived
/// children).
pub fn addresses(proc: &Path, netns_pids: &HashMap<u32, Vec<u32>>) -> HashMap<IpAddr, Option<u32>> {
    let mut map: HashMap<IpAddr, Option<u32>> = HashMap::new();
    for (&inode, pids) in netns_pids {
        let Some(addrs) = pids
            .iter()
            .find_map(|&pid| netns_addrs::of_process(proc, pid))
        else {
            continue;
        };
        for addr in addrs {
            map.entry(addr)
                .and_modify(|held| {
                    if *held != Some(inode) {
                        *held = None;
                    }
                })
                .or_insert(Some(inode));
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup2_mount_on_hybrid_and_unified_hosts() {
        // This machine (hybrid): v1 controllers, v2 at /sys/fs/cgroup/unified.
        let hybrid = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw";
        assert_eq!(
            cgroup2_mount(hybrid).as_deref(),
            Some("/sys/fs/cgroup/unified")
        );
        assert!(has_cgroup1(hybrid));
        let unified = "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate";
        assert_eq!(cgroup2_mount(unified).as_deref(), Some("/sys/fs/cgroup"));
        assert!(!has_cgroup1(unified));
        let v1 = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu";
        assert_eq!(cgroup2_mount(v1), None);
        assert_eq!(
            cgroup2_mount("1 2 0:1 / /a\\040b rw - cgroup2 cgroup2 rw").as_deref(),
            Some("/a b")
        );
        assert_eq!(cgroup2_mount("garbage - \n - \n\n"), None);
        assert!(!has_cgroup1("garbage - \n - \n\n"));
    }

    #[test]
    fn start_times_are_read_after_the_name() {
        // `/proc/self/stat` of a process named "a) b", as the kernel writes it.
        let stat = "4242 (a) b) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 10000000 200 18446744073709551615";
        assert_eq!(parse_start_time(stat), Some(987_654));
        assert_eq!(parse_start_time("4242 (x) S 1"), None);
        assert_eq!(parse_start_time("no name"), None);
        let own = process_start(Path::new("/proc"), std::process::id());
        assert!(own.is_some_and(|t| t > 0));
    }
}
