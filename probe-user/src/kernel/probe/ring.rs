//! The ring buffer the kernel program writes into, registered with tokio so that the
//! recorder can wait for the kernel's (rare, batched) wake-ups.

use std::io;

use aya::maps::{MapData, RingBuf};
use tokio::io::{Interest, unix::AsyncFd};

/// See the module documentation.
pub struct EventRing(AsyncFd<RingBuf<MapData>>);

impl std::fmt::Debug for EventRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventRing")
    }
}

impl EventRing {
    /// Must be called inside a tokio runtime.
    pub(super) fn new(ring: RingBuf<MapData>) -> io::Result<Self> {
        // SAFETY: the ring buffer owns its map fd, which stays open and unchanged for as
        // long as the AsyncFd owns the ring buffer.
        unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map(Self)
            .map_err(|e| e.into_parts().1)
    }

    /// Waits until the kernel wakes the reader, then hands every pending event to `each`.
    pub async fn drain_when_woken(&mut self, mut each: impl FnMut(&[u8])) -> io::Result<()> {
        let mut guard = self.0.readable_mut().await?;
        drain(guard.get_inner_mut(), &mut each);
        guard.clear_ready();
        Ok(())
    }

    /// Hands every pending event to `each`, without waiting.
    pub fn drain(&mut self, mut each: impl FnMut(&[u8])) {
        drain(self.0.get_mut(), &mut each);
    }
}

fn drain(ring: &mut RingBuf<MapData>, each: &mut impl FnMut(&[u8])) {
    while let Some(item) = ring.next() {
        each(&item);
    }
}
