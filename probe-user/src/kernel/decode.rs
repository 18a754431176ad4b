//! Turns the raw bytes of one ring-buffer entry into a typed observation, using the
//! record layouts read from tracefs. Pure: the recorder and the unit tests feed it
//! bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use probe_common::{CountedEvent, EventKind, ExecContext, KernelEvent, RECORD_BYTES};

use crate::{
    kernel::layouts::{
        Field, Layouts, ResetAddrs, SendResetLayout, StateChangeLayout, TupleFields,
    },
    model::{Comm, ResetReason, Scope, SocketTuple, Task, TcpCounters, TcpState},
};

const AF_INET: u64 = 2;
const AF_INET6: u64 = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error(
        "ring-buffer entry of {0} bytes, expected {len} or {counted}",
        len = size_of::<KernelEvent>(),
        counted = size_of::<CountedEvent>()
    )]
    Size(usize),
    #[error("unknown event kind {0}")]
    Kind(u8),
    #[error("event kind {0:?} arrived but its layout is unknown")]
    NoLayout(EventKind),
    #[error("invalid TCP state {0}")]
    State(u64),
    #[error("unknown address family {0}")]
    Family(u64),
    #[error("field outside the copied record")]
    Field,
}

/// What one tracepoint hit says, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observation {
    StateChange {
        skaddr: u64,
        old: TcpState,
        new: TcpState,
        tuple: SocketTuple,
        /// On the state changes that carry them ([`probe_common::carries_counters`]).
        counters: Option<TcpCounters>,
    },
    SendReset {
        /// 0 when the kernel had no socket for the packet (connection refused, or a
        /// stray segment).
        skaddr: u64,
        state: Option<TcpState>,
        /// `None` on kernels whose `tcp_send_reset` has no `reason` (before 6.10).
        reason: Option<ResetReason>,
        /// `local` is this host's side.
        tuple: SocketTuple,
    },
    ReceiveReset {
        skaddr: u64,
        tuple: SocketTuple,
    },
    ErrorReport {
        /// The socket, when the raw-tracepoint program recorded the report; 0 from the
        /// classic tracepoint, whose record names no socket.
        skaddr: u64,
        errno: i32,
        tuple: SocketTuple,
    },
}

/// A decoded kernel event with its context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Kernel CLOCK_MONOTONIC.
    pub ts_ns: u64,
    pub cpu: u32,
    pub context: ExecContext,
    /// `None` in softirq, and for the idle task.
    pub task: Option<Task>,
    pub scope: Scope,
    pub observation: Observation,
}

/// Reads a `T` (a [`KernelEvent`] or a [`CountedEvent`]) out of ring-buffer bytes
/// without trusting their alignment.
fn read_pod<T: Copy>(bytes: &[u8]) -> T {
    debug_assert_eq!(bytes.len(), size_of::<T>());
    // SAFETY: callers pass exactly `size_of::<T>()` bytes, every bit pattern is a
    // valid T (integers and byte arrays only), and read_unaligned copes with any
    // alignment.
    unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) }
}

/// Reads a [`KernelEvent`] out of ring-buffer bytes without trusting their alignment.
pub fn kernel_event(bytes: &[u8]) -> Result<KernelEvent, DecodeError> {
    if bytes.len() != size_of::<KernelEvent>() {
        return Err(DecodeError::Size(bytes.len()));
    }
    Ok(read_pod(bytes))
}

/// Decodes the ring-buffer entries of one kernel, whose layouts it knows.
#[derive(Clone, Copy, Debug)]
pub struct Decoder {
    layouts: Layouts,
    /// The state change comes in the `tp_btf` program's fixed layout: decided once,
    /// since comparing two layouts costs tens of instructions.
    fixed_state_change: bool,
}

impl Decoder {
    pub fn new(layouts: Layouts) -> Self {
        Self {
            layouts,
            fixed_state_change: layouts.state_change == StateChangeLayout::TP_BTF,
        }
    }

    /// Decodes one ring-buffer entry: a [`KernelEvent`], or a [`CountedEvent`] (a
    /// state change with its socket's counters), told apart by their length.
    #[inline]
    pub fn decode(&self, bytes: &[u8]) -> Result<Decoded, DecodeError> {
        decode_entry(bytes, &self.layouts, self.fixed_state_change)
    }
}

#[inline]
fn decode_entry(bytes: &[u8], layouts: &Layouts, fixed: bool) -> Result<Decoded, DecodeError> {
    const PLAIN: usize = size_of::<KernelEvent>();
    const COUNTED: usize = size_of::<CountedEvent>();
    // Ring-buffer records are 8-byte aligned: decode in place, without copying the
    // event out of the ring first.
    let aligned = bytes.as_ptr().cast::<CountedEvent>().is_aligned();
    match bytes.len() {
        PLAIN if aligned => {
            // SAFETY: the length and alignment match, and every bit pattern is a valid
            // KernelEvent (integers and byte arrays only).
            let event = unsafe { &*bytes.as_ptr().cast::<KernelEvent>() };
            decode_event(event, None, layouts, fixed)
        }
        PLAIN => decode_event(&read_pod::<KernelEvent>(bytes), None, layouts, fixed),
        COUNTED if aligned => {
            // SAFETY: as above, for a CountedEvent.
            let counted = unsafe { &*bytes.as_ptr().cast::<CountedEvent>() };
            decode_event(&counted.event, Some(&counted.counters), layouts, fixed)
        }
        COUNTED => {
            let counted = read_pod::<CountedEvent>(bytes);
            decode_event(&counted.event, Some(&counted.counters), layouts, fixed)
        }
        other => Err(DecodeError::Size(other)),
    }
}

/// A state change in any layout tracefs describes.
fn state_change(
    layout: &StateChangeLayout,
    record: &[u8],
    counters: Option<&probe_common::TcpCounters>,
) -> Result<Observation, DecodeError> {
    let field = |f: Field| f.read_uint(record).ok_or(DecodeError::Field);
    Ok(Observation::StateChange {
        skaddr: field(layout.skaddr)?,
        old: state(field(layout.oldstate)?)?,
        new: state(field(layout.newstate)?)?,
        tuple: tuple_from(record, &layout.tuple)?,
        counters: counters.map(TcpCounters::from_kernel),
    })
}

/// A state change in the fixed layout of the `tp_btf` program (the tracefs layout
/// since 5.6): loads at constant offsets of the record, without the layout's lookups
/// and bounds checks (the recorder's largest instruction count per event).
#[inline]
fn fixed_state_change(
    record: &[u8; RECORD_BYTES],
    counters: Option<&probe_common::TcpCounters>,
) -> Result<Observation, DecodeError> {
    use probe_common::state_record as r;
    let bytes16 = |at: usize| -> [u8; 16] { std::array::from_fn(|i| record[at + i]) };
    let bytes4 = |at: usize| [record[at], record[at + 1], record[at + 2], record[at + 3]];
    let bytes8 = |at: usize| -> [u8; 8] { std::array::from_fn(|i| record[at + i]) };
    let u16_at = |at: usize| u16::from_le_bytes([record[at], record[at + 1]]);
    let u32_at = |at: usize| u32::from_le_bytes(bytes4(at));
    let skaddr = u64::from_le_bytes(bytes8(r::SKADDR));
    let (local, remote) = match u64::from(u16_at(r::FAMILY)) {
        AF_INET => (
            IpAddr::V4(Ipv4Addr::from(bytes4(r::SADDR))),
            IpAddr::V4(Ipv4Addr::from(bytes4(r::DADDR))),
        ),
        AF_INET6 => (
            IpAddr::V6(Ipv6Addr::from(bytes16(r::SADDR_V6))),
            IpAddr::V6(Ipv6Addr::from(bytes16(r::DADDR_V6))),
        ),
        other => return Err(DecodeError::Family(other)),
    };
    Ok(Observation::StateChange {
        skaddr,
        old: state(u64::from(u32_at(r::OLDSTATE)))?,
        new: state(u64::from(u32_at(r::NEWSTATE)))?,
        tuple: SocketTuple {
            local: SocketAddr::new(canonical(local), u16_at(r::SPORT)),
            remote: SocketAddr::new(canonical(remote), u16_at(r::DPORT)),
        },
        counters: counters.map(TcpCounters::from_kernel),
    })
}

fn canonical(ip: IpAddr) -> IpAddr {
    // A dual-stack socket talking to an IPv4 peer reports v4-mapped addresses; the
    // peer's socket reports plain IPv4. Canonical form lets both ends meet.
    ip.to_canonical()
}

fn tuple_from(record: &[u8], fields: &TupleFields) -> Result<SocketTuple, DecodeError> {
    let read16 = |f: Field| f.read_bytes::<16>(record).ok_or(DecodeError::Field);
    let read4 = |f: Field| f.read_bytes::<4>(record).ok_or(DecodeError::Field);
    let sport = fields.sport.read_uint(record).ok_or(DecodeError::Field)? as u16;
    let dport = fields.dport.read_uint(record).ok_or(DecodeError::Field)? as u16;
    let family = match fields.family {
        Some(field) => field.read_uint(record).ok_or(DecodeError::Field)?,
        // tcp:* events before 5.12 have no family: the v6 fields are v4-mapped for
        // IPv4 sockets.
        None => {
            let saddr_v6 = Ipv6Addr::from(read16(fields.saddr_v6)?);
            if saddr_v6.to_ipv4_mapped().is_some() {
                AF_INET
            } else {
                AF_INET6
            }
        }
    };
    let (local, remote) = match family {
        AF_INET => (
            IpAddr::V4(Ipv4Addr::from(read4(fields.saddr)?)),
            IpAddr::V4(Ipv4Addr::from(read4(fields.daddr)?)),
        ),
        // For AF_INET6 the 4-byte fields hold 127.0.0.6 after connect(): only the v6
        // fields are meaningful (docs/kernel-facts.md §4.2).
        AF_INET6 => (
            IpAddr::V6(Ipv6Addr::from(read16(fields.saddr_v6)?)),
            IpAddr::V6(Ipv6Addr::from(read16(fields.daddr_v6)?)),
        ),
        other => return Err(DecodeError::Family(other)),
    };
    Ok(SocketTuple {
        local: SocketAddr::new(canonical(local), sport),
        remote: SocketAddr::new(canonical(remote), dport),
    })
}

/// A `struct sockaddr_in`/`sockaddr_in6` as `tcp_send_reset` stores it (28 bytes).
fn sockaddr(raw: &[u8; 28]) -> Result<SocketAddr, DecodeError> {
    let family = u64::from(u16::from_ne_bytes([raw[0], raw[1]]));
    let port = u16::from_be_bytes([raw[2], raw[3]]);
    let ip = match family {
        AF_INET => IpAddr::V4(Ipv4Addr::new(raw[4], raw[5], raw[6], raw[7])),
        AF_INET6 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&raw[8..24]);
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        other => return Err(DecodeError::Family(other)),
    };
    Ok(SocketAddr::new(canonical(ip), port))
}

fn state(value: u64) -> Result<TcpState, DecodeError> {
    u32::try_from(value)
        .ok()
        .and_then(TcpState::from_kernel)
        .ok_or(DecodeError::State(value))
}

fn send_reset(layout: &SendResetLayout, record: &[u8]) -> Result<Observation, DecodeError> {
    let field = |f: Field| f.read_uint(record).ok_or(DecodeError::Field);
    let tuple = match layout.addrs {
        ResetAddrs::Sockaddr { saddr, daddr } => SocketTuple {
            local: sockaddr(&saddr.read_bytes::<28>(record).ok_or(DecodeError::Field)?)?,
            remote: sockaddr(&daddr.read_bytes::<28>(record).ok_or(DecodeError::Field)?)?,
        },
        ResetAddrs::Split(fields) => tuple_from(record, &fields)?,
    };
    let state = match layout.state.map(field).transpose()? {
        None | Some(0) => None,
        Some(s) => Some(state(s)?),
    };
    // A kernel without the field gives no reason: unknown, not NOT_SPECIFIED (0).
    let reason = layout
        .reason
        .map(field)
        .transpose()?
        .map(|r| ResetReason(u32::try_from(r).unwrap_or(ResetReason::WIRE_UNKNOWN)));
    Ok(Observation::SendReset {
        skaddr: field(layout.skaddr)?,
        state,
        reason,
        tuple,
    })
}

/// Decodes one event; `counters` are those the kernel appended to a state change;
/// `fixed`: the state change is in [`StateChangeLayout::TP_BTF`].
fn decode_event(
    event: &KernelEvent,
    counters: Option<&probe_common::TcpCounters>,
    layouts: &Layouts,
    fixed: bool,
) -> Result<Decoded, DecodeError> {
    let kind = EventKind::from_u8(event.kind).ok_or(DecodeError::Kind(event.kind))?;
    let record = &event.record[..];
    let field = |f: Field| f.read_uint(record).ok_or(DecodeError::Field);
    let observation = match kind {
        EventKind::StateChange if fixed => fixed_state_change(&event.record, counters)?,
        EventKind::StateChange => state_change(&layouts.state_change, record, counters)?,
        EventKind::SendReset => send_reset(
            layouts
                .send_reset
                .as_ref()
                .ok_or(DecodeError::NoLayout(kind))?,
            record,
        )?,
        EventKind::ReceiveReset => {
            let layout = layouts
                .receive_reset
                .as_ref()
                .ok_or(DecodeError::NoLayout(kind))?;
            Observation::ReceiveReset {
                skaddr: field(layout.skaddr)?,
                tuple: tuple_from(record, &layout.tuple)?,
            }
        }
        EventKind::ErrorReport => {
            let layout = layouts
                .error_report
                .as_ref()
                .ok_or(DecodeError::NoLayout(kind))?;
            let raw = field(layout.error)? as u32;
            Observation::ErrorReport {
                skaddr: layout.skaddr.map(field).transpose()?.unwrap_or(0),
                // The kernel reports a positive errno; be lenient about a negative one.
                errno: (raw as i32).abs(),
                tuple: tuple_from(record, &layout.tuple)?,
            }
        }
    };
    let context = ExecContext::from_u8(event.context);
    let pid = (event.pid_tgid >> 32) as u32;
    let tid = event.pid_tgid as u32;
    // In softirq the kernel program leaves the task out; pid 0 (the idle task) is
    // never a socket's owner either.
    let task = (context != ExecContext::Softirq && pid != 0).then(|| Task {
        pid,
        tid,
        comm: Comm::new(event.comm),
    });
    Ok(Decoded {
        ts_ns: event.ts_ns,
        cpu: u32::from(event.cpu),
        context,
        task,
        scope: Scope::new(event.netns, event.cgroup_id),
        observation,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use probe_common::{RECORD_BYTES, RECORD_START};

    use super::*;
    use crate::kernel::{
        layouts::{ErrorReportLayout, ReceiveResetLayout, SendResetLayout, StateChangeLayout},
        tracefs::FormatFile,
    };

    /// One entry, through a [`Decoder`] made for `layouts`.
    fn decode(bytes: &[u8], layouts: &Layouts) -> Result<Decoded, DecodeError> {
        Decoder::new(*layouts).decode(bytes)
    }

    pub(crate) fn layouts_6_18() -> Layouts {
        let parse = |text: &str| FormatFile::parse(text).unwrap();
        Layouts {
            state_change: StateChangeLayout::from_format(&parse(include_str!(
                "testdata/inet_sock_set_state.6.18.format"
            )))
            .unwrap(),
            send_reset: Some(
                SendResetLayout::from_format(&parse(include_str!(
                    "testdata/tcp_send_reset.6.18.format"
                )))
                .unwrap(),
            ),
            receive_reset: Some(
                ReceiveResetLayout::from_format(&parse(include_str!(
                    "testdata/tcp_receive_reset.6.18.format"
                )))
                .unwrap(),
            ),
            error_report: Some(
                ErrorReportLayout::from_format(&parse(include_str!(
                    "testdata/inet_sk_error_report.6.18.format"
                )))
                .unwrap(),
            ),
        }
    }

    /// Builds a raw event by writing values at tracefs offsets, the way the kernel does.
    pub(crate) struct RawEvent(KernelEvent);

    impl RawEvent {
        pub(crate) fn new(kind: EventKind) -> Self {
            Self(KernelEvent {
                ts_ns: 1_000,
                pid_tgid: (1234u64 << 32) | 1235,
                cgroup_id: 7,
                netns: 4_026_531_840,
                cpu: 1,
                kind: kind as u8,
                context: ExecContext::Task as u8,
                comm: *b"client\0\0\0\0\0\0\0\0\0\0",
                record: [0; RECORD_BYTES],
            })
        }

        pub(crate) fn put(mut self, tracefs_offset: usize, bytes: &[u8]) -> Self {
            let at = tracefs_offset - RECORD_START;
            self.0.record[at..at + bytes.len()].copy_from_slice(bytes);
            self
        }

        /// The event's time and CPU.
        pub(crate) fn at(mut self, ts_ns: u64, cpu: u16) -> Self {
            self.0.ts_ns = ts_ns;
            self.0.cpu = cpu;
            self
        }

        pub(crate) fn context(mut self, context: ExecContext) -> Self {
            self.0.context = context as u8;
            if context == ExecContext::Softirq {
                self.0.pid_tgid = 0;
                self.0.comm = [0; 16];
            }
            self
        }

        pub(crate) fn bytes(&self) -> Vec<u8> {
            // SAFETY: KernelEvent is plain old data.
            unsafe {
                std::slice::from_raw_parts(
                    (&raw const self.0).cast::<u8>(),
                    size_of::<KernelEvent>(),
                )
                .to_vec()
            }
        }

        /// The entry of this event with `counters` appended, as a [`CountedEvent`].
        pub(crate) fn counted_bytes(&self, counters: probe_common::TcpCounters) -> Vec<u8> {
            let counted = CountedEvent {
                event: self.0,
                counters,
            };
            // SAFETY: CountedEvent is plain old data.
            unsafe {
                std::slice::from_raw_parts(
                    (&raw const counted).cast::<u8>(),
                    size_of::<CountedEvent>(),
                )
                .to_vec()
            }
        }
    }

    /// A 6.18 `inet_sock_set_state` record.
    pub(crate) fn state_change_v4(
        old: u32,
        new: u32,
        sport: u16,
        dport: u16,
        saddr: [u8; 4],
        daddr: [u8; 4],
    ) -> RawEvent {
        RawEvent::new(EventKind::StateChange)
            .put(8, &0xffff_8881_0000_1000u64.to_le_bytes())
            .put(16, &old.to_le_bytes())
            .put(20, &new.to_le_bytes())
            .put(24, &sport.to_le_bytes())
            .put(26, &dport.to_le_bytes())
            .put(28, &2u16.to_le_bytes())
            .put(30, &6u16.to_le_bytes())
            .put(32, &saddr)
            .put(36, &daddr)
    }

    #[test]
    fn decodes_an_ipv4_state_change() {
        let raw = state_change_v4(7, 2, 0, 2181, [10, 0, 0, 2], [10, 0, 0, 1]);
        let decoded = decode(&raw.bytes(), &layouts_6_18()).unwrap();
        assert_eq!(
            decoded.observation,
            Observation::StateChange {
                skaddr: 0xffff_8881_0000_1000,
                old: TcpState::Close,
                new: TcpState::SynSent,
                tuple: SocketTuple {
                    local: "10.0.0.2:0".parse().unwrap(),
                    remote: "10.0.0.1:2181".parse().unwrap(),
                },
                counters: None,
            }
        );
        let task = decoded.task.unwrap();
        assert_eq!(
            (task.pid, task.tid, task.comm.as_str().as_ref()),
            (1234, 1235, "client")
        );
        assert_eq!(decoded.scope.netns, 4_026_531_840);
    }

    #[test]
    fn ipv6_ignores_the_127_0_0_6_artefact() {
        let v6_local: Ipv6Addr = "fd00::2".parse().unwrap();
        let v6_remote: Ipv6Addr = "fd00::1".parse().unwrap();
        let raw = state_change_v4(2, 1, 40000, 80, [127, 0, 0, 6], [0; 4])
            .put(28, &10u16.to_le_bytes())
            .put(40, &v6_local.octets())
            .put(56, &v6_remote.octets());
        let Observation::StateChange { tuple, .. } =
            decode(&raw.bytes(), &layouts_6_18()).unwrap().observation
        else {
            panic!()
        };
        assert_eq!(tuple.local, "[fd00::2]:40000".parse().unwrap());
        assert_eq!(tuple.remote, "[fd00::1]:80".parse().unwrap());
    }

    #[test]
    fn v4_mapped_addresses_become_ipv4() {
        let mapped = Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped();
        let raw = state_change_v4(10, 3, 80, 40000, [0; 4], [0; 4])
            .put(28, &10u16.to_le_bytes())
            .put(40, &mapped.octets())
            .put(56, &Ipv4Addr::new(10, 0, 0, 2).to_ipv6_mapped().octets());
        let Observation::StateChange { tuple, .. } =
            decode(&raw.bytes(), &layouts_6_18()).unwrap().observation
        else {
            panic!()
        };
        assert_eq!(tuple.local, "10.0.0.1:80".parse().unwrap());
    }

    /// The fixed-offset decoder and the layout-driven one agree on the layout they
    /// share, for IPv4, IPv6, v4-mapped and the 127.0.0.6 artefact, and on errors.
    #[test]
    fn the_fixed_layout_decodes_as_the_layout_driven_one() {
        let v6 = |text: &str| text.parse::<Ipv6Addr>().unwrap().octets();
        let mapped = |ip: [u8; 4]| Ipv4Addr::from(ip).to_ipv6_mapped().octets();
        let counters = probe_common::TcpCounters {
            bytes_sent: 5,
            known: probe_common::counter_field::BYTES_SENT,
            ..probe_common::TcpCounters::UNKNOWN
        };
        let events = [
            state_change_v4(7, 2, 0, 2181, [10, 0, 0, 2], [10, 0, 0, 1]),
            state_change_v4(2, 1, 40000, 80, [127, 0, 0, 6], [0; 4])
                .put(28, &10u16.to_le_bytes())
                .put(40, &v6("fd00::2"))
                .put(56, &v6("fd00::1")),
            state_change_v4(10, 3, 80, 40000, [0; 4], [0; 4])
                .put(28, &10u16.to_le_bytes())
                .put(40, &mapped([10, 0, 0, 1]))
                .put(56, &mapped([10, 0, 0, 2])),
            state_change_v4(1, 4, 1, 2, [1, 2, 3, 4], [5, 6, 7, 8]).put(28, &7u16.to_le_bytes()),
            state_change_v4(1, 99, 1, 2, [1, 2, 3, 4], [5, 6, 7, 8]),
        ];
        assert_eq!(layouts_6_18().state_change, StateChangeLayout::TP_BTF);
        for raw in events {
            let record = &raw.0.record;
            for with in [None, Some(&counters)] {
                assert_eq!(
                    fixed_state_change(record, with),
                    state_change(&StateChangeLayout::TP_BTF, record, with),
                );
            }
        }
    }

    #[test]
    fn softirq_events_carry_no_task() {
        let raw = state_change_v4(2, 1, 40000, 80, [10, 0, 0, 2], [10, 0, 0, 1])
            .context(ExecContext::Softirq);
        let decoded = decode(&raw.bytes(), &layouts_6_18()).unwrap();
        assert_eq!(decoded.context, ExecContext::Softirq);
        assert_eq!(decoded.task, None);
    }

    /// An IPv6 state change as the `tp_btf` program writes it: 8-byte words packed
    /// from the socket's fields (see `state_change_btf` in probe-ebpf).
    #[test]
    fn decodes_a_tp_btf_ipv6_state_change() {
        let local: Ipv6Addr = "fd00::2".parse().unwrap();
        let remote: Ipv6Addr = "fd00::1".parse().unwrap();
        let half = |addr: Ipv6Addr, i: usize| {
            u64::from_le_bytes(addr.octets()[8 * i..8 * i + 8].try_into().unwrap())
        };
        let words: [u64; 10] = [
            0xffff_8881_0000_2000,
            2 | (1 << 32),
            40000 | (2181 << 16) | (10 << 32) | (6 << 48),
            0,
            half(local, 0),
            half(local, 1),
            half(remote, 0),
            half(remote, 1),
            0,
            0,
        ];
        let mut raw = RawEvent::new(EventKind::StateChange);
        for (i, word) in words.iter().enumerate() {
            raw = raw.put(RECORD_START + 8 * i, &word.to_le_bytes());
        }
        let layouts = Layouts {
            state_change: StateChangeLayout::TP_BTF,
            ..layouts_6_18()
        };
        let decoded = decode(&raw.bytes(), &layouts).unwrap();
        assert_eq!(
            decoded.observation,
            Observation::StateChange {
                skaddr: 0xffff_8881_0000_2000,
                old: TcpState::SynSent,
                new: TcpState::Established,
                tuple: SocketTuple {
                    local: "[fd00::2]:40000".parse().unwrap(),
                    remote: "[fd00::1]:2181".parse().unwrap(),
                },
                counters: None,
            }
        );

        // IPv4: the addresses in `saddr`/`daddr` (v4-mapped in the v6 fields too).
        let v4 = [
            0xffff_8881_0000_2000,
            2 | (1 << 32),
            40000 | (2181 << 16) | (2 << 32) | (6 << 48),
            u64::from(u32::from_le_bytes([10, 0, 0, 2]))
                | (u64::from(u32::from_le_bytes([10, 0, 0, 1])) << 32),
        ];
        let mut raw = RawEvent::new(EventKind::StateChange);
        for (i, word) in v4.iter().enumerate() {
            raw = raw.put(RECORD_START + 8 * i, &word.to_le_bytes());
        }
        let Observation::StateChange { tuple, .. } =
            decode(&raw.bytes(), &layouts).unwrap().observation
        else {
            panic!("not a state change");
        };
        assert_eq!(tuple.local, "10.0.0.2:40000".parse().unwrap());
        assert_eq!(tuple.remote, "10.0.0.1:2181".parse().unwrap());
    }

    #[test]
    fn a_longer_entry_carries_the_sockets_counters() {
        use probe_common::counter_field;
        let raw = state_change_v4(1, 4, 40000, 80, [10, 0, 0, 2], [10, 0, 0, 1]);
        let counters = probe_common::TcpCounters {
            bytes_sent: 1 << 20,
            bytes_acked: (1 << 20) + 1,
            bytes_received: 10_240,
            segs_in: 40,
            segs_out: 30,
            total_retrans: 2,
            srtt_us8: 8 * 120,
            known: counter_field::ALL & !counter_field::PEER_FIN,
            ..probe_common::TcpCounters::UNKNOWN
        };
        let aligned = raw.counted_bytes(counters);
        // Also at an odd address, as a copy could be.
        let mut shifted = vec![0u8; aligned.len() + 1];
        shifted[1..].copy_from_slice(&aligned);
        for bytes in [&aligned[..], &shifted[1..]] {
            let Observation::StateChange {
                counters: Some(c), ..
            } = decode(bytes, &layouts_6_18()).unwrap().observation
            else {
                panic!("no counters");
            };
            assert_eq!(c.bytes_sent(), Some(1 << 20));
            assert_eq!(c.bytes_received(), Some(10_240));
            assert_eq!((c.segs_in(), c.segs_out()), (Some(40), Some(30)));
            assert_eq!((c.retransmits(), c.srtt_us()), (Some(2), Some(120)));
            assert_eq!(c.peer_fin(), None, "sk_flags was not read");
        }
        let mut truncated = raw.counted_bytes(counters);
        truncated.pop();
        assert_eq!(
            decode(&truncated, &layouts_6_18()),
            Err(DecodeError::Size(175))
        );
    }

    #[test]
    fn a_comm_read_from_the_task_ends_at_its_first_nul() {
        let mut raw = state_change_v4(7, 2, 0, 80, [0; 4], [0; 4]);
        raw.0.comm = *b"sh\0ld-long-name\0";
        let task = decode(&raw.bytes(), &layouts_6_18()).unwrap().task.unwrap();
        assert_eq!(task.comm, Comm::from_str_lossy("sh"));
    }

    #[test]
    fn decodes_a_send_reset_with_sockaddrs() {
        let mut sin = [0u8; 28];
        sin[..2].copy_from_slice(&2u16.to_ne_bytes());
        sin[2..4].copy_from_slice(&2181u16.to_be_bytes());
        sin[4..8].copy_from_slice(&[10, 0, 0, 1]);
        let mut din = [0u8; 28];
        din[..2].copy_from_slice(&2u16.to_ne_bytes());
        din[2..4].copy_from_slice(&40000u16.to_be_bytes());
        din[4..8].copy_from_slice(&[10, 0, 0, 2]);
        let raw = RawEvent::new(EventKind::SendReset)
            .put(16, &0u64.to_le_bytes())
            .put(24, &0u32.to_le_bytes())
            .put(28, &1u32.to_le_bytes())
            .put(32, &sin)
            .put(60, &din);
        let decoded = decode(&raw.bytes(), &layouts_6_18()).unwrap();
        assert_eq!(
            decoded.observation,
            Observation::SendReset {
                skaddr: 0,
                state: None,
                reason: Some(ResetReason::NO_SOCKET),
                tuple: SocketTuple {
                    local: "10.0.0.1:2181".parse().unwrap(),
                    remote: "10.0.0.2:40000".parse().unwrap(),
                },
            }
        );
    }

    /// 6.1's `tcp_send_reset` (the `tcp_event_sk_skb` class, no `reason`): the reason
    /// is unknown, not NOT_SPECIFIED.
    #[test]
    fn a_send_reset_without_a_reason_field_has_no_reason() {
        let parse = |text: &str| FormatFile::parse(text).unwrap();
        let layouts = Layouts {
            send_reset: Some(
                SendResetLayout::from_format(&parse(include_str!(
                    "testdata/tcp_send_reset.6.1.format"
                )))
                .unwrap(),
            ),
            ..layouts_6_18()
        };
        let raw = RawEvent::new(EventKind::SendReset)
            .put(16, &0xffff_8881_0000_3000u64.to_le_bytes())
            .put(24, &7u32.to_le_bytes())
            .put(28, &4181u16.to_le_bytes())
            .put(30, &40000u16.to_le_bytes())
            .put(32, &2u16.to_le_bytes())
            .put(34, &[10, 0, 0, 1])
            .put(38, &[10, 0, 0, 2])
            .put(42, &Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped().octets())
            .put(58, &Ipv4Addr::new(10, 0, 0, 2).to_ipv6_mapped().octets());
        let decoded = decode(&raw.bytes(), &layouts).unwrap();
        assert_eq!(
            decoded.observation,
            Observation::SendReset {
                skaddr: 0xffff_8881_0000_3000,
                state: Some(TcpState::Close),
                reason: None,
                tuple: SocketTuple {
                    local: "10.0.0.1:4181".parse().unwrap(),
                    remote: "10.0.0.2:40000".parse().unwrap(),
                },
            }
        );
    }

    #[test]
    fn decodes_an_error_report() {
        let raw = RawEvent::new(EventKind::ErrorReport)
            .put(8, &111i32.to_le_bytes())
            .put(12, &40000u16.to_le_bytes())
            .put(14, &80u16.to_le_bytes())
            .put(16, &2u16.to_le_bytes())
            .put(18, &6u16.to_le_bytes())
            .put(20, &[10, 0, 0, 2])
            .put(24, &[10, 0, 0, 1]);
        let decoded = decode(&raw.bytes(), &layouts_6_18()).unwrap();
        assert!(matches!(
            decoded.observation,
            Observation::ErrorReport { errno: 111, .. }
        ));
    }

    #[test]
    fn rejects_bad_input() {
        let layouts = layouts_6_18();
        assert_eq!(decode(&[0u8; 5], &layouts), Err(DecodeError::Size(5)));
        let mut bytes = state_change_v4(7, 2, 0, 80, [0; 4], [0; 4]).bytes();
        bytes[30] = 99; // kind
        assert_eq!(decode(&bytes, &layouts), Err(DecodeError::Kind(99)));
        let raw = state_change_v4(7, 42, 0, 80, [0; 4], [0; 4]);
        assert_eq!(decode(&raw.bytes(), &layouts), Err(DecodeError::State(42)));
        let raw = state_change_v4(7, 2, 0, 80, [0; 4], [0; 4]).put(28, &17u16.to_le_bytes());
        assert_eq!(decode(&raw.bytes(), &layouts), Err(DecodeError::Family(17)));
    }
}
