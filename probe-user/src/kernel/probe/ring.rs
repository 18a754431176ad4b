//! The ring buffer the kernel program writes into, read through a memory mapping of
//! our own and registered with tokio so that the recorder can wait for the kernel's
//! (rare, batched) wake-ups.
//!
//! The kernel lets a reader map the data pages twice in a row, so that a record that
//! wraps around the end reads as one slice (aya's `RingBuf` does this). Every mapped
//! page counts in the recorder's RSS, and the kernel fills in the whole mapping at
//! `mmap` time: a 16 MiB ring then shows as 32 MiB. Here the data pages are mapped
//! once, and the rare record that wraps is copied into a buffer.
//!
//! The protocol (`kernel/bpf/ringbuf.c`): the consumer position lives in the first page
//! (the only one the reader may write), the producer position in the second, the data
//! after it. Each record has an 8-byte header: its length, with a busy bit while the
//! producer fills it and a discard bit; records are 8-byte aligned.
//!
//! Events are spread over one ring per CPU (or group of CPUs): CPUs reserving in one
//! ring contend for its lock. A socket's transitions can run on several CPUs, so the
//! rings are merged in event-time order. The program reads the event time after
//! reserving its record, so a record reserved after a ring was read is later than the
//! read; records are handed out up to [`HOLD_NS`] before the read began, which also
//! covers a record still being written (it holds back its ring's later ones).

use std::{
    io,
    os::fd::{AsFd as _, AsRawFd, OwnedFd, RawFd},
    ptr::NonNull,
    sync::atomic::{AtomicU32, AtomicU64, Ordering, fence},
    task::Poll,
};

use aya::maps::MapData;
use probe_common::KernelEvent;
use tokio::io::{Interest, unix::AsyncFd};

use crate::kernel::host::monotonic_now;

/// How long before a merge begins its records must be: longer than a program can take
/// from reserving its record to reading the clock (a softirq interrupting it runs at
/// most 2 ms before the kernel defers the rest, `MAX_SOFTIRQ_TIME`, `kernel/softirq.c`).
const HOLD_NS: u64 = 5_000_000;

// The merge reads a record's time from its first 8 bytes.
const _: () = assert!(std::mem::offset_of!(KernelEvent, ts_ns) == 0);

/// `BPF_RINGBUF_BUSY_BIT`, `BPF_RINGBUF_DISCARD_BIT`, `BPF_RINGBUF_HDR_SZ`
/// (`include/uapi/linux/bpf.h`).
const BUSY: u32 = 1 << 31;
const DISCARD: u32 = 1 << 30;
const HEADER: u64 = 8;

/// One `mmap` of the map, unmapped when dropped (a length of 0: memory that is not
/// ours to unmap, for tests).
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(fd: RawFd, len: usize, prot: i32, offset: usize) -> io::Result<Self> {
        let offset = libc::off_t::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: a fresh shared mapping of the map's fd; the kernel checks the length,
        // offset and protection against the map.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd,
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast()).ok_or(io::ErrorKind::InvalidData)?;
        Ok(Self { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.len != 0 {
            // SAFETY: unmaps exactly what `new` mapped; nothing borrows it any more.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        }
    }
}

/// The map's fd, for the reactor.
struct RingFd(OwnedFd);

impl AsRawFd for RingFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// A mapped ring: where the positions and the data are.
struct Mapped {
    consumer: Mapping,
    producer: Mapping,
    page: usize,
    size: u64,
    /// The consumer position, as last published (once per pass).
    pos: u64,
    /// Where a record that wraps around the end is put together.
    scratch: Vec<u64>,
}

// SAFETY: the mappings are owned by this value and only read (the consumer position
// is written) through `&mut self`.
unsafe impl Send for Mapped {}

impl Mapped {
    fn new(fd: RawFd, size: u32) -> io::Result<Self> {
        let page = usize::try_from(super::ring_layout::page_size())
            .map_err(|_| io::ErrorKind::InvalidData)?;
        let size_bytes = usize::try_from(size).map_err(|_| io::ErrorKind::InvalidInput)?;
        if !size.is_power_of_two() || size_bytes % page != 0 {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        let consumer = Mapping::new(fd, page, libc::PROT_READ | libc::PROT_WRITE, 0)?;
        let producer = Mapping::new(fd, page + size_bytes, libc::PROT_READ, page)?;
        let mut mapped = Self {
            consumer,
            producer,
            page,
            size: u64::from(size),
            pos: 0,
            scratch: Vec::new(),
        };
        mapped.pos = mapped.consumer_pos().load(Ordering::Acquire);
        Ok(mapped)
    }

    fn consumer_pos(&self) -> &AtomicU64 {
        // SAFETY: the first page of the map holds the consumer position, 8-byte aligned
        // (page aligned), shared with the kernel, which only reads it.
        unsafe { self.consumer.ptr.cast::<AtomicU64>().as_ref() }
    }

    fn producer_pos(&self) -> u64 {
        // SAFETY: the second page of the map starts with the producer position, which
        // the kernel writes with release semantics.
        unsafe { self.producer.ptr.cast::<AtomicU64>().as_ref() }.load(Ordering::Acquire)
    }

    /// The data byte at ring offset `at` (below the ring size).
    fn data(&self, at: u64) -> *const u8 {
        // SAFETY: `at < size`, and the mapping is one page followed by `size` bytes.
        unsafe { self.producer.ptr.as_ptr().add(self.page + at as usize) }
    }

    /// Asks the CPU to fetch the bytes 256 to 512 past ring position `pos`, about two
    /// records ahead of the one about to be decoded: the kernel wrote them on another
    /// CPU, so they are cache misses otherwise (an event is 136 to 200 bytes with its
    /// header). Fetching past the producer position is harmless.
    fn prefetch(&self, pos: u64) {
        #[cfg(target_arch = "x86_64")]
        for line in 4..8 {
            let at = (pos + line * 64) & (self.size - 1);
            // SAFETY: a prefetch is a hint that never faults, and the address lies
            // inside the mapping anyway.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    self.data(at).cast(),
                );
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = pos;
    }

    /// Hands every committed record to `each`, in order, and frees its space.
    fn drain(&mut self, each: &mut impl FnMut(&[u8])) {
        let mut producer = self.producer_pos();
        let mut pos = self.pos;
        loop {
            if pos == producer {
                self.publish(pos);
                // Either this sees a record committed meanwhile, or the producer sees
                // the consumer position just published (libbpf does the same).
                fence(Ordering::SeqCst);
                producer = self.producer_pos();
                if pos == producer {
                    return;
                }
            }
            // Short of the producer position, `None` is a record still being written.
            let Some(record) = self.peek(pos, producer) else {
                self.publish(pos);
                return;
            };
            self.hand_out_pending(record, each);
            pos = record.next();
        }
    }

    /// Frees the records before `pos`. Once per pass, not per record: the program
    /// reads the consumer position on every reserve, and each store here takes that
    /// cache line away from its CPU.
    fn publish(&mut self, pos: u64) {
        if pos != self.pos {
            self.pos = pos;
            self.consumer_pos().store(pos, Ordering::Release);
        }
    }

    /// Hands out the `len` data bytes at ring offset `at`, copied when they wrap.
    fn hand_out(&mut self, at: u64, len: u64, each: &mut impl FnMut(&[u8])) {
        let first = len.min(self.size - at) as usize;
        let len = len as usize;
        // SAFETY: `first` bytes from `at` lie inside the data pages; the producer is
        // done with them (the busy bit was clear) until the consumer position moves
        // past them.
        let head = unsafe { std::slice::from_raw_parts(self.data(at), first) };
        if first == len {
            each(head);
            return;
        }
        // SAFETY: the rest of the record starts at the beginning of the data pages.
        let tail = unsafe { std::slice::from_raw_parts(self.data(0), len - first) };
        // u64 words: the decoder reads the record in place and needs its alignment.
        self.scratch.clear();
        self.scratch.resize(len.div_ceil(8), 0);
        // SAFETY: the scratch buffer holds at least `len` bytes.
        let buf =
            unsafe { std::slice::from_raw_parts_mut(self.scratch.as_mut_ptr().cast::<u8>(), len) };
        buf[..first].copy_from_slice(head);
        buf[first..].copy_from_slice(tail);
        each(buf);
    }
}

/// A committed record not yet consumed: its ring position, payload length and time.
#[derive(Clone, Copy, Debug)]
struct Pending {
    pos: u64,
    len: u64,
    /// Discarded by the producer or malformed: skipped, never handed out.
    skip: bool,
    ts_ns: u64,
}

impl Pending {
    /// Where the next record starts.
    fn next(&self) -> u64 {
        self.pos + (HEADER + self.len).next_multiple_of(8)
    }

    /// Its place in a merge: a skipped record goes at once (it only frees space).
    fn merge_ts(&self) -> u64 {
        if self.skip { 0 } else { self.ts_ns }
    }
}

/// Where a merge stands in one ring. The next record is read only when the merge has
/// handed out the one before it, so that its cache lines are fetched once, right
/// before it is decoded (reading every ring ahead fetched them twice).
#[derive(Clone, Copy, Debug)]
struct Cursor {
    head: Option<Pending>,
    /// Where the first record not handed out starts.
    next: u64,
    /// The producer position when the merge began.
    end: u64,
}

impl Mapped {
    /// The committed record at `pos`; `None` at `end` and at a record still being
    /// written.
    fn peek(&self, pos: u64, end: u64) -> Option<Pending> {
        if pos == end {
            return None;
        }
        let mask = self.size - 1;
        let at = pos & mask;
        // SAFETY: headers are 8-byte aligned and never wrap (the ring size is a
        // multiple of the page size); the kernel commits a record with a fully
        // ordered exchange, paired with this acquire load.
        let header = unsafe { &*self.data(at).cast::<AtomicU32>() }.load(Ordering::Acquire);
        if header & BUSY != 0 {
            return None;
        }
        let len = u64::from(header & !(BUSY | DISCARD));
        let skip = header & DISCARD != 0 || len > self.size - HEADER;
        let ts_ns = if skip || len < 8 {
            0
        } else {
            // SAFETY: the payload starts 8-byte aligned right after the header, and
            // an aligned word never wraps.
            unsafe { self.data((at + HEADER) & mask).cast::<u64>().read() }
        };
        let record = Pending {
            pos,
            len,
            skip,
            ts_ns,
        };
        self.prefetch(record.next());
        Some(record)
    }

    /// Hands out a record [`Self::peek`] found.
    fn hand_out_pending(&mut self, record: Pending, each: &mut impl FnMut(&[u8])) {
        if !record.skip {
            let mask = self.size - 1;
            self.hand_out((record.pos + HEADER) & mask, record.len, each);
        }
    }
}

/// Hands out the records of `rings` in event-time order, those up to `cutoff_ns`, and
/// frees them; later ones wait for the next call. `cursors` is scratch space kept
/// between calls.
fn merge(
    rings: &mut [Mapped],
    cursors: &mut Vec<Cursor>,
    cutoff_ns: u64,
    each: &mut impl FnMut(&[u8]),
) {
    cursors.clear();
    cursors.extend(rings.iter().map(|ring| {
        let end = ring.producer_pos();
        Cursor {
            head: ring.peek(ring.pos, end),
            next: ring.pos,
            end,
        }
    }));
    loop {
        let mut next: Option<(usize, Pending)> = None;
        for (i, cursor) in cursors.iter().enumerate() {
            if let Some(record) = cursor.head {
                let ts = record.merge_ts();
                if ts <= cutoff_ns && next.is_none_or(|(_, best)| ts < best.merge_ts()) {
                    next = Some((i, record));
                }
            }
        }
        let Some((i, record)) = next else { break };
        let (ring, cursor) = (&mut rings[i], &mut cursors[i]);
        ring.hand_out_pending(record, each);
        cursor.next = record.next();
        cursor.head = ring.peek(cursor.next, cursor.end);
    }
    for (ring, cursor) in rings.iter_mut().zip(cursors.iter()) {
        ring.publish(cursor.next);
    }
}

/// See the module documentation.
pub struct EventRing {
    fds: Vec<AsyncFd<RingFd>>,
    rings: Vec<Mapped>,
    cursors: Vec<Cursor>,
}

impl std::fmt::Debug for EventRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventRing")
    }
}

impl EventRing {
    /// Maps the ring buffers `maps` of `size` bytes each. Must be called inside a tokio
    /// runtime.
    pub(super) fn new(maps: &[&MapData], size: u32) -> io::Result<Self> {
        let mut fds = Vec::with_capacity(maps.len());
        let mut rings = Vec::with_capacity(maps.len());
        for map in maps {
            let fd = map.fd().as_fd().try_clone_to_owned()?;
            rings.push(Mapped::new(fd.as_raw_fd(), size)?);
            // SAFETY: `RingFd` owns the fd, and the AsyncFd owns it: it stays open and
            // unchanged for as long as it is registered.
            let fd = unsafe { AsyncFd::register_with_interest(RingFd(fd), Interest::READABLE) }
                .map_err(|e| e.into_parts().1)?;
            fds.push(fd);
        }
        Ok(Self {
            fds,
            rings,
            cursors: Vec::new(),
        })
    }

    /// Waits until the kernel wakes the reader of any ring, then hands the pending
    /// events to `each`.
    pub async fn drain_when_woken(&mut self, each: impl FnMut(&[u8])) -> io::Result<()> {
        std::future::poll_fn(|cx| {
            let mut woken = false;
            for fd in &self.fds {
                match fd.poll_read_ready(cx) {
                    Poll::Ready(Ok(mut guard)) => {
                        // Cleared before the rings are read: a wake-up during the read
                        // sets it again.
                        guard.clear_ready();
                        woken = true;
                    }
                    Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                    Poll::Pending => {}
                }
            }
            if woken {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        })
        .await?;
        self.drain(each);
        Ok(())
    }

    /// Hands the pending events to `each`, without waiting: with several rings, those
    /// older than [`HOLD_NS`], in time order.
    pub fn drain(&mut self, each: impl FnMut(&[u8])) {
        self.drain_before(monotonic_now().saturating_sub(HOLD_NS), each);
    }

    /// Hands every event to `each`: the programs are detached, nothing older comes.
    pub fn drain_all(&mut self, each: impl FnMut(&[u8])) {
        self.drain_before(u64::MAX, each);
    }

    fn drain_before(&mut self, cutoff_ns: u64, mut each: impl FnMut(&[u8])) {
        if let [ring] = &mut self.rings[..] {
            ring.drain(&mut each);
        } else {
            merge(&mut self.rings, &mut self.cursors, cutoff_ns, &mut each);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring laid out in ordinary memory: consumer page, producer page, data. The
    /// mappings have length 0, so they are not unmapped.
    struct FakeRing {
        mapped: Mapped,
        /// Keeps the memory alive (8-byte aligned); the mappings point into it.
        _memory: Vec<u64>,
    }

    impl FakeRing {
        fn new(size: usize, page: usize) -> Self {
            let mut memory = vec![0u64; (2 * page + size) / 8];
            let base = NonNull::new(memory.as_mut_ptr().cast::<u8>()).unwrap();
            // SAFETY: both pointers lie inside `memory`.
            let producer = unsafe { base.add(page) };
            let mapped = Mapped {
                consumer: Mapping { ptr: base, len: 0 },
                producer: Mapping {
                    ptr: producer,
                    len: 0,
                },
                page,
                size: size as u64,
                pos: 0,
                scratch: Vec::new(),
            };
            Self {
                mapped,
                _memory: memory,
            }
        }

        /// Writes a record at producer position `pos` the way the kernel does; returns
        /// the next position.
        fn produce(&mut self, pos: u64, payload: &[u8], flags: u32) -> u64 {
            let size = self.mapped.size;
            let data = self.mapped.data(0).cast_mut();
            let put = |at: u64, byte: u8| {
                // SAFETY: inside the fake data pages.
                unsafe { *data.add((at % size) as usize) = byte };
            };
            let header = (payload.len() as u32 | flags).to_le_bytes();
            for (i, b) in header.iter().chain([0u8; 4].iter()).enumerate() {
                put(pos + i as u64, *b);
            }
            for (i, b) in payload.iter().enumerate() {
                put(pos + HEADER + i as u64, *b);
            }
            let next = pos + (HEADER + payload.len() as u64).next_multiple_of(8);
            // SAFETY: the producer position is the first word of the producer page.
            unsafe { self.mapped.producer.ptr.cast::<AtomicU64>().as_ref() }
                .store(next, Ordering::Release);
            next
        }

        fn drained(&mut self) -> Vec<Vec<u8>> {
            let mut out = Vec::new();
            self.mapped.drain(&mut |item: &[u8]| {
                assert_eq!(item.as_ptr() as usize % 8, 0, "records are 8-byte aligned");
                out.push(item.to_vec());
            });
            out
        }
    }

    #[test]
    fn records_come_out_in_order_and_a_wrapped_one_is_put_together() {
        let mut ring = FakeRing::new(512, 64);
        let a: Vec<u8> = (0..120).collect();
        let b: Vec<u8> = (100..220).collect();
        // Records of 128 bytes with their headers: a at 0, b at 128.
        let mut pos = ring.produce(0, &a, 0);
        pos = ring.produce(pos, &b, 0);
        assert_eq!(ring.drained(), vec![a, b]);
        // c at 256..496; d's header at 496, its data at 504..512 and 0..142.
        let c: Vec<u8> = (0..232).map(|i| (i % 251) as u8).collect();
        let d: Vec<u8> = (0..150).collect();
        pos = ring.produce(pos, &c, 0);
        pos = ring.produce(pos, &d, 0);
        assert_eq!(pos, 656);
        assert_eq!(ring.drained(), vec![c, d]);
        assert_eq!(ring.mapped.consumer_pos().load(Ordering::Relaxed), pos);
        assert!(ring.drained().is_empty());
    }

    #[test]
    fn a_busy_record_stops_the_drain_and_a_discarded_one_is_skipped() {
        let mut ring = FakeRing::new(512, 64);
        let pos = ring.produce(0, &[1; 16], DISCARD);
        let pos = ring.produce(pos, &[2; 16], 0);
        let busy_at = pos;
        ring.produce(pos, &[3; 16], BUSY);
        assert_eq!(ring.drained(), vec![vec![2; 16]]);
        assert_eq!(ring.mapped.pos, busy_at);
        ring.produce(busy_at, &[3; 16], 0);
        assert_eq!(ring.drained(), vec![vec![3; 16]]);
    }

    /// A 16-byte record payload whose event time is `ts`.
    fn at(ts: u64) -> Vec<u8> {
        let mut payload = ts.to_le_bytes().to_vec();
        payload.extend_from_slice(&[7; 8]);
        payload
    }

    /// Fake rings merged the way the recorder merges its per-CPU rings.
    struct Merged {
        rings: Vec<Mapped>,
        cursors: Vec<Cursor>,
        _memory: Vec<Vec<u64>>,
    }

    impl Merged {
        fn new(fakes: [FakeRing; 2]) -> Self {
            let (rings, memory): (Vec<_>, Vec<_>) =
                fakes.into_iter().map(|f| (f.mapped, f._memory)).unzip();
            Self {
                rings,
                cursors: Vec::new(),
                _memory: memory,
            }
        }

        /// The times of the records handed out up to `cutoff`.
        fn up_to(&mut self, cutoff: u64) -> Vec<u64> {
            let mut out = Vec::new();
            let Self { rings, cursors, .. } = self;
            merge(rings, cursors, cutoff, &mut |item: &[u8]| {
                out.push(u64::from_le_bytes(item[..8].try_into().unwrap()));
            });
            out
        }

        fn consumed(&self, ring: usize) -> u64 {
            self.rings[ring].consumer_pos().load(Ordering::Relaxed)
        }
    }

    #[test]
    fn rings_merge_in_time_order_and_keep_what_is_newer_than_the_cutoff() {
        let (mut a, mut b) = (FakeRing::new(512, 64), FakeRing::new(512, 64));
        let pos = a.produce(0, &at(10), 0);
        let a_end = a.produce(pos, &at(30), 0);
        let pos = b.produce(0, &at(0), DISCARD);
        let b_held = b.produce(pos, &at(20), 0);
        let b_end = b.produce(b_held, &at(40), 0);
        let mut merged = Merged::new([a, b]);

        assert_eq!(merged.up_to(35), [10, 20, 30]);
        // What went out is freed; the held record stays in its ring.
        assert_eq!((merged.consumed(0), merged.consumed(1)), (a_end, b_held));
        assert_eq!(merged.up_to(35), [0u64; 0]);
        assert_eq!(merged.up_to(u64::MAX), [40]);
        assert_eq!(merged.consumed(1), b_end);
    }

    #[test]
    fn a_record_still_being_written_holds_back_its_ring() {
        let (mut a, mut b) = (FakeRing::new(512, 64), FakeRing::new(512, 64));
        let busy = a.produce(0, &at(5), BUSY);
        a.produce(busy, &at(15), 0);
        b.produce(0, &at(10), 0);
        let mut merged = Merged::new([a, b]);
        // Ring a's records wait behind the busy one; b's goes out.
        assert_eq!(merged.up_to(u64::MAX), [10]);
        assert_eq!(merged.consumed(0), 0);
    }
}
