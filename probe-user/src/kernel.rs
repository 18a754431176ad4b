//! The only module that talks to aya and the kernel: load the program with this
//! kernel's offsets, attach it, and hand out the ring buffer and loss counters.

use std::{io, path::Path};

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, PerCpuArray, RingBuf},
    programs::{BtfTracePoint, RawTracePoint, TracePoint},
};
use log::{debug, warn};
use probe_common::{
    BtfStateOffsets, KernelFilter, MAX_FILTER_NETNS, MAX_FILTER_PORTS, ProbeConfig, counter,
};
use tokio::io::{Interest, unix::AsyncFd};

use crate::{
    btf::{self, Btf},
    model::{SocketOffsetsInfo, TracepointStatus},
    tracefs::{
        ErrorReportLayout, Layouts, ReceiveResetLayout, SendResetLayout, StateChangeLayout,
        Tracefs, TracefsError,
    },
};

/// The compiled kernel program.
static PROBE_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/probe-ebpf"));

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error(transparent)]
    Tracefs(#[from] TracefsError),
    #[error("this kernel has no sock:inet_sock_set_state tracepoint (it appeared in Linux 4.16)")]
    NoStateTracepoint,
    #[error("this tcpchurn was built without its kernel program (AYA_BUILD_SKIP was set)")]
    NoObject,
    #[error("loading the kernel program failed: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("the kernel program has no {0}")]
    Missing(&'static str),
    #[error("{what}: {source}")]
    Program {
        what: String,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("polling the ring buffer: {0}")]
    Poll(#[source] io::Error),
    #[error("{what}: {source}")]
    Map {
        what: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
}

/// How the kernel program is set up.
#[derive(Clone, Debug)]
pub struct ProbeOptions {
    /// Ring-buffer size in bytes (a power of two, multiple of the page size).
    pub ring_bytes: u32,
    /// Fill level above which events wake the reader.
    pub wakeup_threshold: u64,
    pub ports: Vec<u16>,
    pub netns: Vec<u32>,
    /// Try the BTF-enabled raw tracepoint for state changes (else: classic only).
    pub tp_btf: bool,
}

/// The kernel program's counters, one value per possible CPU, and the runs the kernel
/// skipped (per program, summed over the event programs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelCounters {
    pub submitted: Vec<u64>,
    pub ring_full: Vec<u64>,
    pub recursion_missed: u64,
}

impl KernelCounters {
    pub fn submitted_total(&self) -> u64 {
        self.submitted.iter().sum()
    }

    pub fn lost_total(&self) -> u64 {
        self.ring_full.iter().sum::<u64>() + self.recursion_missed
    }
}

/// The programs whose skipped runs are lost events (the softirq trackers are not:
/// they emit nothing). Only one of the two state-change programs is loaded.
const EVENT_PROGRAMS: [&str; 5] = [
    "inet_sock_set_state_btf",
    "inet_sock_set_state",
    "tcp_send_reset",
    "tcp_receive_reset",
    "inet_sk_error_report",
];

/// `recursion_misses` of a program, from its fd's `/proc/self/fdinfo` entry (5.12+;
/// aya 0.14 does not expose it). A kernel without the field reports 0.
fn recursion_misses(fd: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("recursion_misses:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A loaded and attached kernel program. Dropping it detaches every program.
pub struct KernelProbe {
    ebpf: Ebpf,
    /// Forwards the kernel program's rare log lines (aya-log) to the `log` crate.
    logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    /// File descriptors of the attached event programs, for their skipped-run counts.
    event_program_fds: Vec<i32>,
    counters: PerCpuArray<MapData, u64>,
    pub tracepoints: Vec<TracepointStatus>,
    pub softirq_tracking: bool,
    pub layouts: Layouts,
    pub offsets: SocketOffsetsInfo,
}

impl std::fmt::Debug for KernelProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelProbe")
            .field("tracepoints", &self.tracepoints)
            .field("softirq_tracking", &self.softirq_tracking)
            .finish_non_exhaustive()
    }
}

/// Reads this kernel's record layouts; the state-change tracepoint is mandatory.
pub fn read_layouts(tracefs: &Tracefs) -> Result<(Layouts, Vec<TracepointStatus>), KernelError> {
    let mut statuses = Vec::new();
    let state_change = tracefs
        .layout(
            StateChangeLayout::TRACEPOINT,
            StateChangeLayout::from_format,
        )?
        .ok_or(KernelError::NoStateTracepoint)?;

    fn optional<T>(
        tracefs: &Tracefs,
        tracepoint: (&'static str, &'static str),
        build: impl FnOnce(&crate::tracefs::FormatFile) -> Result<T, crate::tracefs::FormatError>,
        statuses: &mut Vec<TracepointStatus>,
    ) -> Option<T> {
        let name = format!("{}:{}", tracepoint.0, tracepoint.1);
        match tracefs.layout(tracepoint, build) {
            Ok(Some(layout)) => Some(layout),
            Ok(None) => {
                statuses.push(TracepointStatus {
                    name,
                    attached: false,
                    detail: Some("not available on this kernel".into()),
                });
                None
            }
            Err(err) => {
                statuses.push(TracepointStatus {
                    name,
                    attached: false,
                    detail: Some(format!("layout not understood: {err}")),
                });
                None
            }
        }
    }
    let layouts = Layouts {
        state_change,
        send_reset: optional(
            tracefs,
            SendResetLayout::TRACEPOINT,
            SendResetLayout::from_format,
            &mut statuses,
        ),
        receive_reset: optional(
            tracefs,
            ReceiveResetLayout::TRACEPOINT,
            ReceiveResetLayout::from_format,
            &mut statuses,
        ),
        error_report: optional(
            tracefs,
            ErrorReportLayout::TRACEPOINT,
            ErrorReportLayout::from_format,
            &mut statuses,
        ),
    };
    Ok((layouts, statuses))
}

/// Offsets read from kernel BTF.
struct BtfOffsets {
    sock: probe_common::SockOffsets,
    info: SocketOffsetsInfo,
    /// For the `tp_btf` state-change program, or why it cannot be used.
    state: Result<BtfStateOffsets, String>,
}

/// Resolves `struct sock` offsets from kernel BTF. Without BTF the recording goes on,
/// with netns and cgroup unknown.
fn btf_offsets(path: &Path) -> BtfOffsets {
    match Btf::from_file(path) {
        Ok(btf) => {
            let report = btf::sock_offsets(&btf);
            let info = SocketOffsetsInfo {
                netns: report.offsets.netns_valid == 1,
                cgroup: report.offsets.cgroup_valid == 1,
                missing: report.missing,
            };
            BtfOffsets {
                sock: report.offsets,
                info,
                state: btf::btf_state_offsets(&btf).map_err(|missing| missing.join("; ")),
            }
        }
        Err(err) => BtfOffsets {
            sock: probe_common::SockOffsets::UNKNOWN,
            info: SocketOffsetsInfo {
                netns: false,
                cgroup: false,
                missing: vec![format!(
                    "no kernel BTF ({err}): network namespace and cgroup are not recorded"
                )],
            },
            state: Err("no kernel BTF".into()),
        },
    }
}

/// Loads and attaches the `tp_btf` state-change program (kernel BTF read by aya from
/// the same file as the offsets).
fn attach_btf_state_change(ebpf: &mut Ebpf, btf_path: &Path) -> Result<(), String> {
    let btf = aya::Btf::parse_file(btf_path, aya::Endianness::default())
        .map_err(|err| format!("reading {}: {err}", btf_path.display()))?;
    let program: &mut BtfTracePoint = ebpf
        .program_mut("inet_sock_set_state_btf")
        .ok_or("the kernel program has no inet_sock_set_state_btf")?
        .try_into()
        .map_err(|err| format!("{err}"))?;
    program
        .load("inet_sock_set_state", &btf)
        .map_err(|err| format!("loading (verifier): {}", program_error(&err)))?;
    program
        .attach()
        .map_err(|err| format!("attaching: {}", program_error(&err)))?;
    Ok(())
}

/// A program error with its sources (the verifier log of a refused program).
fn program_error(err: &aya::programs::ProgramError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn kernel_filter(options: &ProbeOptions) -> KernelFilter {
    let mut filter = KernelFilter::NONE;
    for (slot, port) in filter
        .ports
        .iter_mut()
        .zip(options.ports.iter().take(MAX_FILTER_PORTS))
    {
        *slot = *port;
    }
    for (slot, netns) in filter
        .netns
        .iter_mut()
        .zip(options.netns.iter().take(MAX_FILTER_NETNS))
    {
        *slot = *netns;
    }
    filter.port_count = u32::try_from(options.ports.len().min(MAX_FILTER_PORTS)).unwrap_or(0);
    filter.netns_count = u32::try_from(options.netns.len().min(MAX_FILTER_NETNS)).unwrap_or(0);
    filter
}

fn attach(
    ebpf: &mut Ebpf,
    program: &str,
    (category, name): (&str, &str),
) -> Result<(), KernelError> {
    let what = format!("attaching {category}:{name}");
    let tracepoint: &mut TracePoint = ebpf
        .program_mut(program)
        .ok_or(KernelError::Missing("program"))?
        .try_into()
        .map_err(|source| KernelError::Program {
            what: what.clone(),
            source,
        })?;
    tracepoint.load().map_err(|source| KernelError::Program {
        what: format!("loading {program} (verifier)"),
        source,
    })?;
    tracepoint
        .attach(category, name)
        .map_err(|source| KernelError::Program { what, source })?;
    Ok(())
}

/// Attaches a raw tracepoint program to the tracepoint of the same name.
fn attach_raw(ebpf: &mut Ebpf, name: &str) -> Result<(), KernelError> {
    let what = format!("attaching raw tracepoint {name}");
    let program: &mut RawTracePoint = ebpf
        .program_mut(name)
        .ok_or(KernelError::Missing("program"))?
        .try_into()
        .map_err(|source| KernelError::Program {
            what: what.clone(),
            source,
        })?;
    program.load().map_err(|source| KernelError::Program {
        what: format!("loading {name} (verifier)"),
        source,
    })?;
    program
        .attach(name)
        .map_err(|source| KernelError::Program { what, source })?;
    Ok(())
}

impl KernelProbe {
    /// Loads the program with this kernel's layouts and offsets and attaches it.
    /// Returns the probe and its ring buffer (owned separately so it can be polled
    /// while the probe is detached at shutdown).
    pub fn load(
        tracefs: &Tracefs,
        options: &ProbeOptions,
        btf_path: &Path,
    ) -> Result<(Self, EventRing), KernelError> {
        if PROBE_OBJECT.is_empty() {
            return Err(KernelError::NoObject);
        }
        let (mut layouts, mut tracepoints) = read_layouts(tracefs)?;
        let BtfOffsets {
            sock,
            info: offsets,
            state: btf_state,
        } = btf_offsets(btf_path);
        let config = ProbeConfig {
            state_change: layouts.state_change.kernel_fields(),
            send_reset: layouts
                .send_reset
                .map(|l| l.kernel_fields())
                .unwrap_or_default(),
            receive_reset: layouts
                .receive_reset
                .map(|l| l.kernel_fields())
                .unwrap_or_default(),
            error_report: layouts
                .error_report
                .map(|l| l.kernel_fields())
                .unwrap_or_default(),
            sock,
            btf_state: btf_state.clone().unwrap_or(BtfStateOffsets::UNKNOWN),
            filter: kernel_filter(options),
            wakeup_threshold: options.wakeup_threshold,
        };
        debug!("kernel program config: {config:?}");

        let mut ebpf = EbpfLoader::new()
            .override_global("CONFIG", &config, true)
            .map_max_entries("EVENTS", options.ring_bytes)
            .load(PROBE_OBJECT)?;

        // Softirq tracking first, so that the execution context is known as early as
        // possible once transitions start arriving.
        let softirq_tracking = match attach_raw(&mut ebpf, "softirq_entry")
            .and_then(|()| attach_raw(&mut ebpf, "softirq_exit"))
        {
            Ok(()) => true,
            Err(err) => {
                warn!(
                    "{err}; owners are then taken only from transitions that run in syscalls (connect, listen, close)"
                );
                false
            }
        };
        tracepoints.push(TracepointStatus {
            name: "irq:softirq_entry+softirq_exit".into(),
            attached: softirq_tracking,
            detail: (!softirq_tracking).then(|| "softirq tracking unavailable".into()),
        });

        let optional = [
            (
                "tcp_send_reset",
                SendResetLayout::TRACEPOINT,
                layouts.send_reset.is_some(),
            ),
            (
                "tcp_receive_reset",
                ReceiveResetLayout::TRACEPOINT,
                layouts.receive_reset.is_some(),
            ),
            (
                "inet_sk_error_report",
                ErrorReportLayout::TRACEPOINT,
                layouts.error_report.is_some(),
            ),
        ];
        for (program, tracepoint, available) in optional {
            if !available {
                continue;
            }
            let name = format!("{}:{}", tracepoint.0, tracepoint.1);
            match attach(&mut ebpf, program, tracepoint) {
                Ok(()) => tracepoints.push(TracepointStatus {
                    name,
                    attached: true,
                    detail: None,
                }),
                Err(err) => {
                    warn!("{err}; recording without it");
                    tracepoints.push(TracepointStatus {
                        name,
                        attached: false,
                        detail: Some(err.to_string()),
                    });
                }
            }
        }
        // State changes: the BTF-enabled raw tracepoint when kernel BTF allows it (no
        // record build, no `trace_call_bpf`), the classic tracepoint otherwise.
        let btf_attached = if options.tp_btf {
            btf_state.and_then(|_| attach_btf_state_change(&mut ebpf, btf_path))
        } else {
            Err("not used (--no-tp-btf)".to_owned())
        };
        let detail = match btf_attached {
            Ok(()) => {
                layouts.state_change = StateChangeLayout::TP_BTF;
                "tp_btf".to_owned()
            }
            Err(why) => {
                debug!("state changes through the classic tracepoint: tp_btf: {why}");
                // The first line says why; a verifier log stays in the debug output.
                let why: String = why.lines().next().unwrap_or("").chars().take(200).collect();
                attach(
                    &mut ebpf,
                    "inet_sock_set_state",
                    StateChangeLayout::TRACEPOINT,
                )?;
                format!("classic tracepoint (tp_btf: {why})")
            }
        };
        debug!("sock:inet_sock_set_state attached as {detail}");
        tracepoints.insert(
            0,
            TracepointStatus {
                name: "sock:inet_sock_set_state".into(),
                attached: true,
                detail: Some(detail),
            },
        );

        let event_program_fds = EVENT_PROGRAMS
            .iter()
            .filter_map(|name| ebpf.program(name))
            .filter_map(|program| program.fd().ok())
            .map(|fd| std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(fd)))
            .collect();
        let logger = match aya_log::EbpfLogger::init(&mut ebpf) {
            Ok(logger) => Some(logger),
            Err(err) => {
                debug!("kernel program logs unavailable: {err}");
                None
            }
        };
        let ring = RingBuf::try_from(
            ebpf.take_map("EVENTS")
                .ok_or(KernelError::Missing("EVENTS map"))?,
        )
        .map_err(|source| KernelError::Map {
            what: "EVENTS ring buffer",
            source,
        })?;
        let ring = EventRing::new(ring).map_err(KernelError::Poll)?;
        let counters = PerCpuArray::try_from(
            ebpf.take_map("COUNTERS")
                .ok_or(KernelError::Missing("COUNTERS map"))?,
        )
        .map_err(|source| KernelError::Map {
            what: "COUNTERS map",
            source,
        })?;
        Ok((
            Self {
                ebpf,
                logger,
                event_program_fds,
                counters,
                tracepoints,
                softirq_tracking,
                layouts,
                offsets,
            },
            ring,
        ))
    }

    /// Reads the per-CPU counters and the runs the kernel skipped.
    pub fn counters(&self) -> Result<KernelCounters, KernelError> {
        let mut counters = read_counters(&self.counters)?;
        counters.recursion_missed = self
            .event_program_fds
            .iter()
            .map(|&fd| recursion_misses(fd))
            .sum();
        Ok(counters)
    }

    /// Passes on what the kernel program logged since the last call.
    pub fn flush_logs(&mut self) {
        if let Some(logger) = &mut self.logger {
            logger.flush();
        }
    }

    /// Detaches every program now (dropping the probe does the same), and returns the
    /// counters as they were at that moment.
    pub fn detach(mut self) -> Result<KernelCounters, KernelError> {
        self.flush_logs();
        // Skipped runs are read while the programs still exist; nothing runs once they
        // are detached, so the per-CPU counters read after are final.
        let recursion_missed = self
            .event_program_fds
            .iter()
            .map(|&fd| recursion_misses(fd))
            .sum();
        drop(self.ebpf);
        let mut counters = read_counters(&self.counters)?;
        counters.recursion_missed = recursion_missed;
        Ok(counters)
    }
}

/// Reads the per-CPU counters (also from an already detached probe).
pub fn read_counters(counters: &PerCpuArray<MapData, u64>) -> Result<KernelCounters, KernelError> {
    let per_cpu = |index: u32| -> Result<Vec<u64>, KernelError> {
        Ok(counters
            .get(&index, 0)
            .map_err(|source| KernelError::Map {
                what: "reading COUNTERS",
                source,
            })?
            .iter()
            .copied()
            .collect())
    };
    Ok(KernelCounters {
        submitted: per_cpu(counter::SUBMITTED)?,
        ring_full: per_cpu(counter::RING_FULL)?,
        recursion_missed: 0,
    })
}

/// The ring buffer the kernel program writes into, registered with tokio so that the
/// recorder can wait for the kernel's (rare, batched) wake-ups.
pub struct EventRing(AsyncFd<RingBuf<MapData>>);

impl std::fmt::Debug for EventRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventRing")
    }
}

impl EventRing {
    /// Must be called inside a tokio runtime.
    fn new(ring: RingBuf<MapData>) -> io::Result<Self> {
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

/// CPUs the kernel may run programs on (the length of per-CPU maps).
pub fn possible_cpus() -> u32 {
    aya::util::nr_cpus()
        .ok()
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0)
}
