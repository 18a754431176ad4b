//! How the ring-buffer capacity is split over CPUs: one ring per CPU, or per group of
//! CPUs when there are more CPUs than rings.

use probe_common::MAX_RINGS;

/// The kernel program's ring maps, in ring order (`probe-ebpf`).
pub(super) const RING_MAPS: [&str; MAX_RINGS as usize] =
    ["EVENTS", "EVENTS_1", "EVENTS_2", "EVENTS_3"];

/// The smallest ring the kernel accepts: one page.
const MIN_RING_BYTES: u32 = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RingLayout {
    /// Rings in use (a power of two): a CPU writes to ring `cpu & (count - 1)`.
    pub count: u32,
    /// Bytes of each ring in use (a power of two).
    pub bytes_each: u32,
}

impl RingLayout {
    /// Splits `total` bytes (a power of two, at least a page) over `cpus` CPUs: as many
    /// rings as CPUs, rounded down to a power of two, at most [`MAX_RINGS`], and none
    /// smaller than a page.
    pub fn new(total: u32, cpus: u32) -> Self {
        let mut count = 1 << cpus.clamp(1, MAX_RINGS).ilog2();
        while count > 1 && total / count < MIN_RING_BYTES {
            count /= 2;
        }
        Self {
            count,
            bytes_each: total / count,
        }
    }

    /// The size to give each ring map: unused ones get the smallest ring.
    pub fn map_sizes(self) -> impl Iterator<Item = (&'static str, u32)> {
        RING_MAPS.into_iter().enumerate().map(move |(i, name)| {
            let used = i < self.count as usize;
            (
                name,
                if used {
                    self.bytes_each
                } else {
                    MIN_RING_BYTES
                },
            )
        })
    }

    /// The program's mask from a CPU number to its ring.
    pub fn mask(self) -> u64 {
        u64::from(self.count - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_ring_per_cpu_up_to_four_and_a_power_of_two() {
        let mib = 1 << 20;
        let layout = |total, cpus| {
            let l = RingLayout::new(total, cpus);
            (l.count, l.bytes_each)
        };
        assert_eq!(layout(16 * mib, 1), (1, 16 * mib));
        assert_eq!(layout(16 * mib, 2), (2, 8 * mib));
        assert_eq!(layout(16 * mib, 3), (2, 8 * mib));
        assert_eq!(layout(16 * mib, 64), (4, 4 * mib));
        // Unknown CPU count: one ring.
        assert_eq!(layout(16 * mib, 0), (1, 16 * mib));
        // No ring below a page.
        assert_eq!(layout(8192, 8), (2, 4096));
        assert_eq!(layout(4096, 8), (1, 4096));
    }

    #[test]
    fn unused_rings_get_one_page_and_the_mask_picks_a_used_one() {
        let layout = RingLayout::new(1 << 24, 2);
        let sizes: Vec<_> = layout.map_sizes().collect();
        assert_eq!(
            sizes,
            vec![
                ("EVENTS", 1 << 23),
                ("EVENTS_1", 1 << 23),
                ("EVENTS_2", 4096),
                ("EVENTS_3", 4096)
            ]
        );
        assert_eq!(layout.mask(), 1);
        assert_eq!(RingLayout::new(1 << 24, 1).mask(), 0);
    }
}
