//! The host as the trace header records it: the kernel's clocks, `uname`, the boot id.

/// Kernel CLOCK_MONOTONIC (what `bpf_ktime_get_ns()` returns) in nanoseconds.
pub fn monotonic_now() -> u64 {
    read_clock(libc::CLOCK_MONOTONIC)
}

/// Kernel CLOCK_MONOTONIC and the wall clock, read as close together as possible.
pub fn clock_pair() -> (u64, u64) {
    (0..3)
        .map(|_| {
            let before = read_clock(libc::CLOCK_MONOTONIC);
            let wall = read_clock(libc::CLOCK_REALTIME);
            let after = read_clock(libc::CLOCK_MONOTONIC);
            (after - before, before + (after - before) / 2, wall)
        })
        .min_by_key(|(gap, _, _)| *gap)
        .map_or((0, 0), |(_, mono, wall)| (mono, wall))
}

fn read_clock(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the valid timespec.
    unsafe { libc::clock_gettime(clock, &raw mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// `uname`'s node name, kernel release and machine (empty if the call fails).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Uname {
    pub hostname: String,
    pub release: String,
    pub machine: String,
}

pub fn uname() -> Uname {
    // SAFETY: utsname is plain data and uname fills it.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a utsname.
    if unsafe { libc::uname(&raw mut uts) } != 0 {
        return Uname::default();
    }
    let field = |raw: &[libc::c_char]| {
        let bytes: Vec<u8> = raw
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Uname {
        hostname: field(&uts.nodename),
        release: field(&uts.release),
        machine: field(&uts.machine),
    }
}

/// `/proc/sys/kernel/random/boot_id`: monotonic times are only comparable within one
/// boot. Empty if unreadable.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}
