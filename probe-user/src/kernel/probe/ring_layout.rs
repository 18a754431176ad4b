//! How the ring-buffer capacity is split over CPUs: one ring per CPU, or per group of
//! CPUs when there are more CPUs than rings.

use probe_common::MAX_RINGS;

/// The kernel program's ring maps, in ring order (`probe-ebpf`).
pub(super) const RING_MAPS: [&str; MAX_RINGS as usize] =
    ["EVENTS", "EVENTS_1", "EVENTS_2", "EVENTS_3"];

/// This machine's page size: the kernel accepts a ring only in whole pages
/// (`ringbuf_map_alloc()` refuses a size that is not page-aligned), and 4 KiB is not
/// every kernel's page (arm64 and ppc64 kernels run with 16 or 64 KiB pages).
pub(super) fn page_size() -> u32 {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u32::try_from(page).unwrap_or(4096)
}

/// The requested capacity does not fill one page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("--ring-size {total} is smaller than one page of this kernel ({page} bytes)")]
pub struct RingTooSmall {
    pub total: u32,
    pub page: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RingLayout {
    /// Rings in use (a power of two): a CPU writes to ring `cpu & (count - 1)`.
    pub count: u32,
    /// Bytes of each ring in use (a power of two).
    pub bytes_each: u32,
    /// The smallest ring the kernel accepts (one page): what unused rings get.
    pub page: u32,
}

impl RingLayout {
    /// Splits `total` bytes (a power of two) over `cpus` CPUs: as many rings as CPUs,
    /// rounded down to a power of two, at most [`MAX_RINGS`], and none smaller than a
    /// `page` (a power of two).
    pub fn new(total: u32, cpus: u32, page: u32) -> Result<Self, RingTooSmall> {
        if total < page {
            return Err(RingTooSmall { total, page });
        }
        let mut count = 1 << cpus.clamp(1, MAX_RINGS).ilog2();
        while count > 1 && total / count < page {
            count /= 2;
        }
        Ok(Self {
            count,
            bytes_each: total / count,
            page,
        })
    }

    /// The size to give each ring map: unused ones get one page.
    pub fn map_sizes(self) -> impl Iterator<Item = (&'static str, u32)> {
        RING_MAPS.into_iter().enumerate().map(move |(i, name)| {
            let used = i < self.count as usize;
            (name, if used { self.bytes_each } else { self.page })
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
            let l = RingLayout::new(total, cpus, 4096).unwrap();
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
        let layout = RingLayout::new(1 << 24, 2, 4096).unwrap();
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
        assert_eq!(RingLayout::new(1 << 24, 1, 4096).unwrap().mask(), 0);
    }

    #[test]
    fn with_64k_pages_no_ring_is_smaller_than_a_page() {
        let page = 1 << 16;
        let layout = RingLayout::new(1 << 24, 2, page).unwrap();
        let sizes: Vec<_> = layout.map_sizes().map(|(_, bytes)| bytes).collect();
        assert_eq!(sizes, vec![1 << 23, 1 << 23, page, page]);
        let small = RingLayout::new(1 << 17, 4, page).unwrap();
        assert_eq!((small.count, small.bytes_each), (2, page));
        assert_eq!(
            RingLayout::new(1 << 15, 4, page),
            Err(RingTooSmall {
                total: 1 << 15,
                page
            })
        );
    }
}
