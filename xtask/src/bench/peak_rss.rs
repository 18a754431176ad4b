//! The peak RSS of a child program, watched while it runs.

use std::{thread, time::Duration};

use tcpchurn_harness::procfs;

/// Watches a child's `VmHWM` (peak RSS of the program it runs) until it exits.
///
/// `ru_maxrss` from `wait4` cannot be used: the kernel carries the high-water mark of
/// the pre-exec address space over `exec`, so every child would report at least this
/// benchmark's own RSS.
pub struct PeakRss(thread::JoinHandle<u64>);

impl PeakRss {
    pub fn watch(pid: u32) -> Self {
        Self(thread::spawn(move || {
            let mut peak = 0u64;
            // A zombie has no VmHWM: the loop ends once the program has exited.
            while let Some(kib) = procfs::status_kib(pid, "VmHWM:") {
                peak = peak.max(kib);
                thread::sleep(Duration::from_millis(10));
            }
            peak
        }))
    }

    /// The peak in KiB; call after the child has exited.
    pub fn kib(self) -> u64 {
        self.0.join().unwrap_or(0)
    }
}
