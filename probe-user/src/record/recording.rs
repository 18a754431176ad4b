//! The pure core of a recording: decodes ring-buffer entries, tracks sockets, turns the
//! kernel's loss counters into gaps, and encodes blocks. No I/O: the driver feeds it.

use std::collections::HashMap;

use bytes::Bytes;

use crate::{
    kernel::{
        decode::Decoder,
        diag::{DiagSocket, Snapshot},
        layouts::Layouts,
        probe::KernelCounters,
    },
    model::{Filters, Gap, GapCause, SnapshotSocket, TcpState, TraceEvent},
    record::{
        names::Names,
        selection::Selection,
        sockets::{SnapshotSockets, SocketTable},
    },
    trace::{TraceEncoder, TraceEnd},
};

/// A block is closed once this many bytes of records are pending, before the flush
/// interval is up: it bounds the recorder's memory at any event rate and in a snapshot
/// of any size (a block is held a few times over while it is encoded, framed, queued
/// and written).
const BLOCK_TARGET_BYTES: usize = 1 << 20;

/// See the module documentation.
#[derive(Debug)]
pub struct Recording {
    decoder: Decoder,
    table: SocketTable,
    encoder: TraceEncoder,
    start_monotonic_ns: u64,
    counters: KernelCounters,
    counters_at_ns: u64,
    decode_failed: u64,
    decode_failed_reported: u64,
    first_decode_error: Option<String>,
    transitions: u64,
    /// Records written before the current file (part) started.
    part_records_start: u64,
    /// Records up to the end of the current file's opening: the connections still open
    /// when a rotated file starts (the first file has none; its start snapshot is not
    /// repeated in the next one).
    part_opening_end: u64,
    /// Records encoded apart from `encoder` (the end snapshot) and written.
    records_apart: u64,
    /// Counted losses not yet matched to a chain break: a break they explain is not
    /// counted twice.
    counted_not_matched: u64,
    /// Transitions lost without a kernel count, inferred from chain breaks.
    unreported: u64,
    /// Names for each block's keys (none in unit tests).
    names: Option<Names>,
    /// `--pod`/`--container`: which scopes are recorded (needs `names`).
    selection: Option<Selection>,
}

/// Writes the names of the pending records' keys before them.
fn name_pending(encoder: &mut TraceEncoder, names: Option<&mut Names>) {
    if let Some(names) = names {
        let table = names.for_block(&encoder.pending_keys());
        encoder.add_workloads(&table);
    }
}

/// Whether the selection keeps `event` (always without one; gaps always).
fn selected(
    event: &TraceEvent,
    selection: Option<&mut Selection>,
    names: Option<&mut Names>,
) -> bool {
    match (selection, names, event.scope()) {
        (Some(selection), Some(names), Some(scope)) => selection.keeps(scope, names.resolver()),
        _ => true,
    }
}

impl Recording {
    pub fn new(layouts: Layouts, start_monotonic_ns: u64, filters: Filters) -> Self {
        Self {
            decoder: Decoder::new(layouts),
            table: SocketTable::new(start_monotonic_ns, filters),
            encoder: TraceEncoder::new(),
            start_monotonic_ns,
            counters: KernelCounters::default(),
            counters_at_ns: 0,
            decode_failed: 0,
            decode_failed_reported: 0,
            first_decode_error: None,
            transitions: 0,
            part_records_start: 0,
            part_opening_end: 0,
            records_apart: 0,
            counted_not_matched: 0,
            unreported: 0,
            names: None,
            selection: None,
        }
    }

    /// Names each block's keys with `names`, and records only the scopes `selection`
    /// keeps.
    pub fn with_names(mut self, names: Names, selection: Option<Selection>) -> Self {
        self.names = Some(names);
        self.selection = selection;
        self
    }

    /// One ring-buffer entry.
    pub fn ingest(&mut self, bytes: &[u8]) {
        // Borrowed, not moved: a decoded event and a trace event are 144 bytes each,
        // and moving them costs a memcpy call per event.
        match &self.decoder.decode(bytes) {
            Ok(decoded) => {
                let Self {
                    table,
                    selection,
                    names,
                    transitions,
                    encoder,
                    ..
                } = self;
                table.observe_with(decoded, |event| {
                    if selected(event, selection.as_mut(), names.as_mut()) {
                        if matches!(event, TraceEvent::Transition(_)) {
                            *transitions += 1;
                        }
                        encoder.push(event);
                    }
                });
            }
            Err(err) => {
                self.decode_failed += 1;
                self.first_decode_error
                    .get_or_insert_with(|| err.to_string());
            }
        }
    }

    /// The sockets of the `sock_diag` snapshot taken at the start.
    pub fn start_snapshot(&mut self, monotonic_ns: u64, snapshot: Snapshot) {
        let Self {
            table,
            encoder,
            names,
            selection,
            ..
        } = self;
        let mut scopes = Scopes { names, selection };
        let Snapshot {
            sockets,
            shared_with,
            ..
        } = snapshot;
        let sockets = SnapshotSockets {
            sockets,
            shared_with: &shared_with,
        };
        encode_snapshot(table, encoder, &mut scopes, monotonic_ns, sockets, false);
    }

    /// The sockets of the `sock_diag` snapshot taken at the end, encoded apart so that
    /// the driver can choose the file they go to; they count once
    /// [`Self::commit_apart`] hands them over.
    /// They are taken as they come: the end snapshot can hold a TIME_WAIT socket for
    /// every connection of the last minute (131,072 per namespace by default), and the
    /// encoded blocks are a fraction of the sockets' size.
    /// Taken without owners, they name no other holders.
    pub fn end_snapshot(
        &mut self,
        monotonic_ns: u64,
        sockets: impl IntoIterator<Item = DiagSocket>,
    ) -> ApartBlocks {
        let mut apart = TraceEncoder::new();
        let mut scopes = Scopes {
            names: &mut self.names,
            selection: &mut self.selection,
        };
        encode_snapshot(
            &mut self.table,
            &mut apart,
            &mut scopes,
            monotonic_ns,
            SnapshotSockets {
                sockets,
                shared_with: &HashMap::new(),
            },
            true,
        );
        name_pending(&mut apart, self.names.as_mut());
        ApartBlocks {
            records: apart.total_records(),
            blocks: apart.take_block().unwrap_or_default(),
        }
    }

    /// Blocks encoded apart, counted from now on in the current file.
    pub fn commit_apart(&mut self, apart: ApartBlocks) -> Bytes {
        self.records_apart += apart.records;
        apart.blocks
    }

    /// Whether the current file holds nothing yet but its opening: starting another
    /// would not make room.
    pub fn part_is_fresh(&self) -> bool {
        self.total_records() == self.part_opening_end && self.encoder.pending_records() == 0
    }

    fn total_records(&self) -> u64 {
        self.encoder.total_records() + self.records_apart
    }

    /// At the start of a rotated file: the connections still open (with their owners),
    /// so that the new file replays on its own.
    pub fn start_part(&mut self, monotonic_ns: u64) {
        let ts_ns = monotonic_ns.saturating_sub(self.start_monotonic_ns);
        self.part_records_start = self.total_records();
        if let Some(names) = &self.names {
            self.encoder.add_workloads(&names.full_table());
        }
        for (conn, state, owner) in self.table.live_connections() {
            let carried = TraceEvent::Snapshot(SnapshotSocket {
                ts_ns,
                conn,
                state: state.unwrap_or(TcpState::Established),
                owner,
                inode: 0,
                uid: 0,
                timer_ms: None,
                at_end: false,
                shared_with: Default::default(),
            });
            if selected(&carried, self.selection.as_mut(), self.names.as_mut()) {
                self.encoder.push(&carried);
            }
        }
        self.part_opening_end = self.total_records();
    }

    /// Records gaps for everything the kernel (or the decoder) lost since the last call,
    /// one per CPU and cause, so a replay can say where its verdicts may be incomplete.
    pub fn account(&mut self, counters: KernelCounters, monotonic_ns: u64) {
        let now = monotonic_ns.saturating_sub(self.start_monotonic_ns);
        let from = self.counters_at_ns;
        let counted = self.counted_gaps(&counters);
        // A counted loss usually shows up as a chain break too, often later (when the
        // socket's address is reused): only breaks beyond every loss counted so far are
        // unreported.
        self.counted_not_matched += counted.iter().map(|(lost, _, _)| lost).sum::<u64>();
        let breaks = self.table.take_chain_breaks();
        let matched = breaks.missing.min(self.counted_not_matched);
        self.counted_not_matched -= matched;
        let unreported = breaks.missing - matched;
        self.unreported += unreported;
        for (lost, cpu, cause) in counted {
            self.push_gap(from, now, lost, cpu, cause);
        }
        if unreported > 0 {
            let since = breaks.since_ns.map_or(from, |ns| {
                ns.saturating_sub(self.start_monotonic_ns).min(from)
            });
            self.push_gap(since, now, unreported, None, GapCause::Unreported);
        }
        self.decode_failed_reported = self.decode_failed;
        self.counters = counters;
        self.counters_at_ns = now;
        self.table.sweep(monotonic_ns);
    }

    /// The losses counted since the last [`Self::account`]: `(lost, cpu, cause)`.
    fn counted_gaps(&self, counters: &KernelCounters) -> Vec<(u64, Option<u32>, GapCause)> {
        let mut gaps = Vec::new();
        for (cpu, &count) in counters.ring_full.iter().enumerate() {
            let old = self.counters.ring_full.get(cpu).copied().unwrap_or(0);
            let lost = count.saturating_sub(old);
            if lost > 0 {
                gaps.push((lost, u32::try_from(cpu).ok(), GapCause::RingFull));
            }
        }
        let skipped = counters
            .recursion_missed
            .saturating_sub(self.counters.recursion_missed);
        if skipped > 0 {
            gaps.push((skipped, None, GapCause::Recursion));
        }
        let undecodable = self.decode_failed - self.decode_failed_reported;
        if undecodable > 0 {
            gaps.push((undecodable, None, GapCause::DecodeFailed));
        }
        gaps
    }

    fn push_gap(&mut self, from_ns: u64, to_ns: u64, lost: u64, cpu: Option<u32>, cause: GapCause) {
        self.encoder.push(&TraceEvent::Lost(Gap {
            from_ns,
            to_ns,
            lost,
            cpu,
            cause,
            host: crate::model::HostId::FIRST,
        }));
    }

    /// Every closed block and the pending records, framed and ready to write (framed
    /// blocks simply follow each other); `None` when there is nothing.
    pub fn take_blocks(&mut self) -> Option<Bytes> {
        name_pending(&mut self.encoder, self.names.as_mut());
        self.encoder.take_block()
    }

    /// Like [`Self::take_blocks`], but only once the pending records fill a block.
    pub fn take_full_blocks(&mut self) -> Option<Bytes> {
        if self.encoder.pending_bytes() >= BLOCK_TARGET_BYTES {
            self.take_blocks()
        } else {
            None
        }
    }

    /// The end block's content for the current file, as of `monotonic_ns`.
    pub fn end(&self, monotonic_ns: u64, stop_reason: &str, bytes: u64) -> TraceEnd {
        TraceEnd {
            end_ns: monotonic_ns.saturating_sub(self.start_monotonic_ns),
            stop_reason: stop_reason.to_owned(),
            records: self.total_records() - self.part_records_start,
            connections: self.table.connections(),
            lost_ring_full: self.counters.ring_full.iter().sum(),
            // Written by older recorders; the kernel program no longer reads in a
            // way that can fail.
            lost_read_failed: 0,
            lost_recursion: self.counters.recursion_missed,
            lost_decode_failed: self.decode_failed,
            lost_unreported: self.unreported,
            kernel_submitted: self.counters.submitted_total(),
            kernel_rescued: self.counters.rescued_total(),
            bytes,
            next_part: None,
        }
    }

    /// Records encoded so far, over every file.
    pub fn records(&self) -> u64 {
        self.total_records()
    }

    pub fn transitions(&self) -> u64 {
        self.transitions
    }

    pub fn first_decode_error(&self) -> Option<&str> {
        self.first_decode_error.as_deref()
    }
}

/// Framed blocks encoded apart from the recording's encoder, and the records in them.
#[derive(Debug, Default)]
pub struct ApartBlocks {
    blocks: Bytes,
    records: u64,
}

impl ApartBlocks {
    /// Their size in a file.
    pub fn len(&self) -> u64 {
        self.blocks.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }
}

/// The recording's names and selection, borrowed apart from its encoder.
struct Scopes<'a> {
    names: &'a mut Option<Names>,
    selection: &'a mut Option<Selection>,
}

/// A snapshot's sockets the selection keeps straight into `encoder`, a block at a time,
/// each block after the names of its keys: the end snapshot can hold a TIME_WAIT socket
/// for every connection of the last minute (131,072 per namespace by default).
fn encode_snapshot(
    table: &mut SocketTable,
    encoder: &mut TraceEncoder,
    scopes: &mut Scopes<'_>,
    monotonic_ns: u64,
    sockets: SnapshotSockets<'_, impl IntoIterator<Item = DiagSocket>>,
    at_end: bool,
) {
    // Straight into the encoder, a block at a time.
    table.snapshot(monotonic_ns, sockets, at_end, |event| {
        if !selected(&event, scopes.selection.as_mut(), scopes.names.as_mut()) {
            return;
        }
        encoder.push(&event);
        if encoder.pending_bytes() >= BLOCK_TARGET_BYTES {
            name_pending(encoder, scopes.names.as_mut());
            encoder.close_block();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::decode::tests::{layouts_6_18, state_change_v4};

    /// The recorder's work per event without a kernel: a server-closes-first churn of
    /// `conns` connections (ten transitions each, the closes with counters), encoded
    /// as the ring hands it over. `cargo test --release -p probe-user --lib
    /// ingest_speed -- --ignored --nocapture`; `INGEST_CONNS` sets the count. Run under
    /// `valgrind --tool=callgrind` for instruction counts that do not vary between
    /// runs (docs/bench.md, "Recorder: the work per event").
    #[test]
    #[ignore = "a measurement, not a check"]
    fn ingest_speed() {
        let conns: u64 = std::env::var("INGEST_CONNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200_000);
        let mut events = churn_events(conns.min(10_000));
        let mut recording = Recording::new(layouts_6_18(), 0, Filters::default());
        let started = std::time::Instant::now();
        let mut written = 0;
        for round in 0..conns.div_ceil(10_000) {
            for (ts_ns, bytes) in &mut events {
                bytes[..8].copy_from_slice(&(*ts_ns + round * 10_000_000_000).to_le_bytes());
                recording.ingest(bytes);
            }
            written += recording.take_full_blocks().map_or(0, |b| b.len());
        }
        let elapsed = started.elapsed();
        let total = conns.div_ceil(10_000) * 10_000 * 10;
        println!(
            "ingest: {total} events in {elapsed:?}: {:.1} ns/event, {written} bytes in full blocks",
            elapsed.as_nanos() as f64 / total as f64
        );
        assert_eq!(recording.transitions(), total);
    }

    /// Ten transitions per connection on reused socket addresses, in time order: the
    /// client's connect (source port 0 first), the server's child, the server's close
    /// first, the client's close after it. Each entry: its time, and its ring bytes.
    fn churn_events(conns: u64) -> Vec<(u64, Vec<u8>)> {
        use probe_common::TcpCounters;
        const ESTABLISHED: u32 = 1;
        const SYN_SENT: u32 = 2;
        const SYN_RECV: u32 = 3;
        const FIN_WAIT1: u32 = 4;
        const FIN_WAIT2: u32 = 5;
        const CLOSE: u32 = 7;
        const CLOSE_WAIT: u32 = 8;
        const LAST_ACK: u32 = 9;
        const LISTEN: u32 = 10;
        let (client_ip, server_ip) = ([10, 0, 0, 2], [10, 0, 0, 1]);
        let mut out = Vec::new();
        let mut ts_ns = 1_000;
        for i in 0..conns {
            let port = 1024 + (i % 60_000) as u16;
            let client_sk = 0xffff_8881_0000_0000 + (i % 256) * 0x800;
            let server_sk = 0xffff_8881_4000_0000 + (i % 256) * 0x800;
            let steps = [
                (client_sk, CLOSE, SYN_SENT, 0, false, false),
                (server_sk, LISTEN, SYN_RECV, port, true, false),
                (client_sk, SYN_SENT, ESTABLISHED, port, false, false),
                (server_sk, SYN_RECV, ESTABLISHED, port, true, false),
                (server_sk, ESTABLISHED, FIN_WAIT1, port, true, true),
                (client_sk, ESTABLISHED, CLOSE_WAIT, port, false, true),
                (server_sk, FIN_WAIT1, FIN_WAIT2, port, true, false),
                (client_sk, CLOSE_WAIT, LAST_ACK, port, false, false),
                (server_sk, FIN_WAIT2, CLOSE, port, true, true),
                (client_sk, LAST_ACK, CLOSE, port, false, true),
            ];
            for (sk, old, new, port, server, counted) in steps {
                let raw = if server {
                    state_change_v4(old, new, 80, port, server_ip, client_ip)
                } else {
                    state_change_v4(old, new, port, 80, client_ip, server_ip)
                };
                let raw = raw.put(8, &sk.to_le_bytes()).at(ts_ns, (i % 2) as u16);
                let bytes = if counted {
                    raw.counted_bytes(TcpCounters {
                        known: probe_common::counter_field::ALL,
                        ..TcpCounters::UNKNOWN
                    })
                } else {
                    raw.bytes()
                };
                out.push((ts_ns, bytes));
                ts_ns += 1_000;
            }
        }
        out
    }

    fn transition(recording: &mut Recording, old: u32, new: u32) {
        let event = state_change_v4(old, new, 40_000, 80, [10, 0, 0, 2], [10, 0, 0, 1]);
        recording.ingest(&event.bytes());
    }

    /// ESTABLISHED -> FIN_WAIT1, and then the address starts a new lifetime: the rest of
    /// the close never arrived.
    fn lose_a_close(recording: &mut Recording) {
        const ESTABLISHED: u32 = 1;
        const SYN_SENT: u32 = 2;
        const FIN_WAIT1: u32 = 4;
        const CLOSE: u32 = 7;
        transition(recording, CLOSE, SYN_SENT);
        transition(recording, SYN_SENT, ESTABLISHED);
        transition(recording, ESTABLISHED, FIN_WAIT1);
        transition(recording, CLOSE, SYN_SENT);
        transition(recording, SYN_SENT, CLOSE);
    }

    #[test]
    fn breaks_beyond_the_counted_losses_are_unreported_losses() {
        let mut recording = Recording::new(layouts_6_18(), 0, Filters::default());
        lose_a_close(&mut recording);
        recording.account(KernelCounters::default(), 2_000);
        assert_eq!(recording.end(2_000, "test", 0).lost_unreported, 1);

        // The kernel counted a skipped run: the next break is that loss, not a new one.
        lose_a_close(&mut recording);
        let counted = KernelCounters {
            recursion_missed: 1,
            ..KernelCounters::default()
        };
        recording.account(counted.clone(), 3_000);
        let end = recording.end(3_000, "test", 0);
        assert_eq!((end.lost_unreported, end.lost_recursion), (1, 1));
        assert_eq!(end.lost(), 2);

        // A counted loss whose break shows up later is matched then.
        let counted = KernelCounters {
            recursion_missed: 2,
            ..KernelCounters::default()
        };
        recording.account(counted.clone(), 4_000);
        lose_a_close(&mut recording);
        recording.account(counted, 5_000);
        let end = recording.end(5_000, "test", 0);
        assert_eq!((end.lost_unreported, end.lost_recursion), (1, 2));
    }
}
