//! The recorder's capabilities: reading them, and giving up those it no longer needs
//! (like `tcpdump -Z`). Capabilities belong to a thread: each thread drops its own, and
//! a thread started later inherits the set of the thread that starts it.

use std::{fmt, io};

pub const CAP_DAC_OVERRIDE: u32 = 1;
pub const CAP_DAC_READ_SEARCH: u32 = 2;
pub const CAP_SETPCAP: u32 = 8;
pub const CAP_SYS_PTRACE: u32 = 19;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_PERFMON: u32 = 38;
pub const CAP_BPF: u32 = 39;

const NAMES: [(u32, &str); 7] = [
    (CAP_DAC_OVERRIDE, "CAP_DAC_OVERRIDE"),
    (CAP_DAC_READ_SEARCH, "CAP_DAC_READ_SEARCH"),
    (CAP_SETPCAP, "CAP_SETPCAP"),
    (CAP_SYS_PTRACE, "CAP_SYS_PTRACE"),
    (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
    (CAP_PERFMON, "CAP_PERFMON"),
    (CAP_BPF, "CAP_BPF"),
];

/// A set of capabilities, one bit per capability number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapSet(pub u64);

impl CapSet {
    pub const EMPTY: Self = Self(0);

    pub fn of(caps: &[u32]) -> Self {
        Self(caps.iter().fold(0, |set, &cap| set | (1 << cap)))
    }

    pub fn has(self, cap: u32) -> bool {
        cap < 64 && self.0 & (1 << cap) != 0
    }

    pub fn with(self, cap: u32) -> Self {
        Self(self.0 | (1 << cap))
    }
}

impl fmt::Display for CapSet {
    /// `CAP_SYS_ADMIN, CAP_SYS_PTRACE`, `none`, or numbers for capabilities without a name here.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = (0..64)
            .filter(|&cap| self.has(cap))
            .map(|cap| {
                NAMES
                    .iter()
                    .find(|(number, _)| *number == cap)
                    .map_or_else(|| format!("cap {cap}"), |(_, name)| (*name).to_owned())
            })
            .collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(", "))
        }
    }
}

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`; version 3 takes two (capabilities 0-31 and 32-63).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

fn header() -> CapHeader {
    CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        // 0: the calling thread.
        pid: 0,
    }
}

/// The calling thread's `(effective, permitted)` sets.
pub fn current() -> io::Result<(CapSet, CapSet)> {
    let mut header = header();
    let mut data = [CapData::default(); 2];
    // SAFETY: capget fills two version-3 data structs.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let join = |low: u32, high: u32| CapSet(u64::from(low) | (u64::from(high) << 32));
    Ok((
        join(data[0].effective, data[1].effective),
        join(data[0].permitted, data[1].permitted),
    ))
}

/// The highest capability number this kernel knows.
fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(40)
        .min(63)
}

/// Keeps only `keep` (of what it has) in the calling thread, for good: the rest leaves
/// the effective, permitted and bounding sets (the bounding set only while
/// CAP_SETPCAP is still held), the inheritable and ambient sets are emptied.
pub fn keep_only(keep: CapSet) -> io::Result<()> {
    let (effective, permitted) = current()?;
    if effective.has(CAP_SETPCAP) {
        for cap in (0..=last_cap()).filter(|&cap| !keep.has(cap)) {
            // SAFETY: prctl with integer arguments.
            let _dropped = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap)) };
        }
    }
    // SAFETY: prctl with integer arguments; fails harmlessly before Linux 4.3.
    let _cleared = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    let effective = effective.0 & keep.0;
    let permitted = permitted.0 & keep.0;
    let split = |set: u64| (set as u32, (set >> 32) as u32);
    let (effective_low, effective_high) = split(effective);
    let (permitted_low, permitted_high) = split(permitted);
    let data = [
        CapData {
            effective: effective_low,
            permitted: permitted_low,
            inheritable: 0,
        },
        CapData {
            effective: effective_high,
            permitted: permitted_high,
            inheritable: 0,
        },
    ];
    let mut header = header();
    // SAFETY: capset reads two version-3 data structs.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_and_names() {
        let set = CapSet::of(&[CAP_SYS_ADMIN, CAP_SYS_PTRACE]);
        assert!(set.has(CAP_SYS_ADMIN) && !set.has(CAP_BPF) && !set.has(99));
        assert_eq!(set.to_string(), "CAP_SYS_PTRACE, CAP_SYS_ADMIN");
        assert_eq!(CapSet::EMPTY.to_string(), "none");
        assert_eq!(CapSet::EMPTY.with(7).to_string(), "cap 7");
    }

    #[test]
    fn a_thread_gives_up_its_capabilities_for_good() {
        // In a thread of its own: the test process keeps its capabilities.
        std::thread::spawn(|| {
            let (_, permitted) = current().unwrap();
            keep_only(CapSet::EMPTY).unwrap();
            assert_eq!(current().unwrap(), (CapSet::EMPTY, CapSet::EMPTY));
            // Nothing comes back: asking for what was permitted before gives nothing.
            if permitted != CapSet::EMPTY {
                assert!(keep_only(permitted).is_ok());
                assert_eq!(current().unwrap(), (CapSet::EMPTY, CapSet::EMPTY));
            }
        })
        .join()
        .unwrap();
    }
}
