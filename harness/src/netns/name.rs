//! Namespace names that say who owns them: `tcpchurn-PID-START-N-TAG`, where PID and
//! START (its start time, in clock ticks after boot) identify the process that made
//! it, even after the pid is reused. A namespace whose owner is gone was left by a
//! killed run and may be removed by any later one; one whose owner runs is kept.

use std::sync::{
    OnceLock,
    atomic::{AtomicU32, Ordering},
};

use anyhow::Context as _;

/// Every namespace the harness makes starts with this.
pub const PREFIX: &str = "tcpchurn-";

/// A process, told apart from a later one with the same pid by its start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pid: u32,
    start: u64,
}

/// State and start time from `/proc/PID/stat` (fields 3 and 22; the command name in
/// field 2 may contain spaces and parentheses, so count after the last `)`).
fn state_and_start(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

impl Owner {
    /// This process.
    pub fn current() -> anyhow::Result<Self> {
        static CURRENT: OnceLock<Option<Owner>> = OnceLock::new();
        CURRENT
            .get_or_init(|| {
                let pid = std::process::id();
                state_and_start(pid).map(|(_, start)| Self { pid, start })
            })
            .context("reading this process's start time from /proc/self/stat")
    }

    /// Whether the owner still runs: the same process (pid and start time), and not a
    /// zombie (a killed owner may stay unreaped for a while).
    pub fn is_alive(self) -> bool {
        state_and_start(self.pid).is_some_and(|(state, start)| start == self.start && state != 'Z')
    }
}

/// A new name for a namespace of this process.
pub fn next(tag: &str) -> anyhow::Result<String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let owner = Owner::current()?;
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Ok(format_name(owner, n, tag))
}

fn format_name(owner: Owner, n: u32, tag: &str) -> String {
    format!("{PREFIX}{}-{}-{n}-{tag}", owner.pid, owner.start)
}

/// The owner a harness namespace name carries; `None` for any other name (another
/// tool's, or an older scheme's, which is not ours to judge).
pub fn owner_of(name: &str) -> Option<Owner> {
    let mut parts = name.strip_prefix(PREFIX)?.splitn(4, '-');
    let pid = parts.next()?.parse().ok()?;
    let start = parts.next()?.parse().ok()?;
    parts.next()?.parse::<u32>().ok()?;
    parts.next()?;
    Some(Owner { pid, start })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_carries_its_owner() {
        let owner = Owner {
            pid: 4242,
            start: 987_654,
        };
        let name = format_name(owner, 3, "lc-server");
        assert_eq!(name, "tcpchurn-4242-987654-3-lc-server");
        assert_eq!(owner_of(&name), Some(owner));
    }

    #[test]
    fn names_of_other_schemes_have_no_owner() {
        for name in [
            "tcpchurn-demo-4242-server",
            "tct-lc-4242-0",
            "tcpchurn-4242-x-0-tag",
            "tcpchurn-4242-5-0",
            "other",
        ] {
            assert_eq!(owner_of(name), None, "{name}");
        }
    }

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "77 (a (b) c) S 1 77 77 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1000 10";
        assert_eq!(parse_stat(stat), Some(('S', 123_456)));
    }

    #[test]
    fn this_process_is_alive() {
        assert!(Owner::current().unwrap().is_alive());
    }
}
