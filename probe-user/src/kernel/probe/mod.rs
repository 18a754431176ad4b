//! The only module that talks to aya: load the kernel program with this kernel's
//! layouts and offsets, attach it, and hand out the ring buffer and loss counters.

mod attach;
mod counters;
mod ring;
mod ring_layout;

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    path::Path,
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Map, MapData, PerCpuArray},
};
use log::debug;
use probe_common::{
    BtfStateOffsets, KernelFilter, MAX_FILTER_NETNS, MAX_FILTER_PORTS, ProbeConfig,
};

use self::ring_layout::{RingLayout, RingTooSmall, page_size};
pub use self::{counters::KernelCounters, ring::EventRing};
use crate::{
    kernel::{
        btf,
        layouts::{
            ErrorReportLayout, Layouts, ReceiveResetLayout, ResetAddrs, SendResetLayout,
            StateChangeLayout,
        },
        offsets::KernelBtf,
        tracefs::{FormatError, FormatFile, Tracefs, TracefsError},
    },
    model::{Filters, KernelFeatures, TracepointStatus},
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
    #[error(transparent)]
    RingSize(#[from] RingTooSmall),
    #[error("polling the ring buffer: {0}")]
    Poll(#[source] std::io::Error),
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
    /// What the kernel program keeps (the first [`MAX_FILTER_PORTS`] ports and
    /// [`MAX_FILTER_NETNS`] namespaces).
    pub filters: Filters,
    /// Try the BTF-enabled raw tracepoint for state changes (else: classic only).
    pub tp_btf: bool,
}

/// A loaded and attached kernel program. Dropping it detaches every program.
pub struct KernelProbe {
    ebpf: Ebpf,
    /// Forwards the kernel program's rare log lines (aya-log) to the `log` crate.
    logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    /// File descriptors of the event programs, for their skipped-run counts: the
    /// `tp_btf` state-change program's (when loaded), and the others'.
    main_program_fd: Option<i32>,
    event_program_fds: Vec<i32>,
    counters: PerCpuArray<MapData, u64>,
    /// Every tracepoint tried, the state change first.
    pub tracepoints: Vec<TracepointStatus>,
    pub softirq_tracking: bool,
    /// Every event's context comes from its socket's lock (`docs/attribution.md` §5).
    pub socket_lock: bool,
    /// The layouts of the records the attached programs write.
    pub layouts: Layouts,
    /// What the attached tracepoints give, where kernels differ.
    pub features: KernelFeatures,
}

impl std::fmt::Debug for KernelProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelProbe")
            .field("tracepoints", &self.tracepoints)
            .field("softirq_tracking", &self.softirq_tracking)
            .finish_non_exhaustive()
    }
}

/// Reads this kernel's record layouts; the state-change tracepoint is mandatory. An
/// optional tracepoint that is missing or not understood gets a status saying why.
fn read_layouts(tracefs: &Tracefs) -> Result<(Layouts, Vec<TracepointStatus>), KernelError> {
    let state_change = tracefs
        .layout(
            StateChangeLayout::TRACEPOINT,
            StateChangeLayout::from_format,
        )?
        .ok_or(KernelError::NoStateTracepoint)?;
    let mut statuses = Vec::new();
    let layouts = Layouts {
        state_change,
        send_reset: optional_layout(
            tracefs,
            SendResetLayout::TRACEPOINT,
            SendResetLayout::from_format,
            &mut statuses,
        ),
        receive_reset: optional_layout(
            tracefs,
            ReceiveResetLayout::TRACEPOINT,
            ReceiveResetLayout::from_format,
            &mut statuses,
        ),
        error_report: optional_layout(
            tracefs,
            ErrorReportLayout::TRACEPOINT,
            ErrorReportLayout::from_format,
            &mut statuses,
        ),
    };
    Ok((layouts, statuses))
}

fn optional_layout<T>(
    tracefs: &Tracefs,
    tracepoint: (&'static str, &'static str),
    build: fn(&FormatFile) -> Result<T, FormatError>,
    statuses: &mut Vec<TracepointStatus>,
) -> Option<T> {
    let detail = match tracefs.layout(tracepoint, build) {
        Ok(Some(layout)) => return Some(layout),
        Ok(None) => "not available on this kernel".to_owned(),
        Err(err) => format!("layout not understood: {err}"),
    };
    statuses.push(TracepointStatus {
        name: format!("{}:{}", tracepoint.0, tracepoint.1),
        attached: false,
        detail: Some(detail),
    });
    None
}

fn kernel_filter(filters: &Filters) -> KernelFilter {
    let mut filter = KernelFilter::NONE;
    for (slot, port) in filter
        .ports
        .iter_mut()
        .zip(filters.ports.iter().take(MAX_FILTER_PORTS))
    {
        *slot = *port;
    }
    for (slot, netns) in filter
        .netns
        .iter_mut()
        .zip(filters.netns.iter().take(MAX_FILTER_NETNS))
    {
        *slot = *netns;
    }
    filter.port_count = u32::try_from(filters.ports.len().min(MAX_FILTER_PORTS)).unwrap_or(0);
    filter.netns_count = u32::try_from(filters.netns.len().min(MAX_FILTER_NETNS)).unwrap_or(0);
    filter
}

/// The constants the kernel program runs with.
fn probe_config(
    layouts: &Layouts,
    btf: &KernelBtf,
    options: &ProbeOptions,
    rings: RingLayout,
) -> ProbeConfig {
    ProbeConfig {
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
        sock: btf.sock,
        btf_state: btf.state.clone().unwrap_or(BtfStateOffsets::UNKNOWN),
        counters: btf.counters,
        filter: kernel_filter(&options.filters),
        // Each ring wakes the reader at the same fill fraction as one ring would.
        wakeup_threshold: options.wakeup_threshold / u64::from(rings.count),
        ring_mask: rings.mask(),
    }
}

impl KernelProbe {
    /// Loads the program with this kernel's layouts and offsets and attaches it.
    /// Returns the probe and its ring buffer (owned separately so it can be polled
    /// while the probe is detached at shutdown).
    pub fn load(
        tracefs: &Tracefs,
        options: &ProbeOptions,
        btf: &KernelBtf,
    ) -> Result<(Self, EventRing), KernelError> {
        if PROBE_OBJECT.is_empty() {
            return Err(KernelError::NoObject);
        }
        let (mut layouts, mut tracepoints) = read_layouts(tracefs)?;
        let rings = RingLayout::new(options.ring_bytes, possible_cpus(), page_size())?;
        let config = probe_config(&layouts, btf, options, rings);
        debug!("kernel program config: {config:?}");
        // aya's loader parses /sys/kernel/btf/vmlinux as it is made, for CO-RE
        // relocations, which Rust programs do not have: that copy (megabytes) is dropped
        // at once, before the one the `tp_btf` programs are loaded against is read.
        let mut loader = EbpfLoader::new();
        loader.btf(None);
        loader.override_global("CONFIG", &config, true);
        for (name, bytes) in rings.map_sizes() {
            loader.map_max_entries(name, bytes);
        }
        let mut ebpf = loader.load(PROBE_OBJECT)?;

        // The socket lock tells whether an event runs in its owner's context; only
        // without its offset do the softirq tracepoints run, on every softirq.
        let socket_lock = btf.sock.sk_lock_owned != 0;
        let softirq_tracking = attach_all(
            &mut ebpf,
            &mut layouts,
            &mut tracepoints,
            btf,
            options,
            socket_lock,
        )?;
        // The BTF parses are freed: give their pages back before the ring is mapped, so
        // that they do not add to the recorder's peak RSS.
        release_freed_memory();

        let features = kernel_features(&layouts, &tracepoints);
        let (ring, counters) = take_maps(&mut ebpf, rings)?;
        Ok((
            Self {
                features,
                main_program_fd: program_fds(&ebpf, &[attach::BTF_STATE_MAIN]).pop(),
                event_program_fds: program_fds(&ebpf, &counters::EVENT_PROGRAMS),
                logger: logger(&mut ebpf),
                ebpf,
                counters,
                tracepoints,
                softirq_tracking,
                socket_lock,
                layouts,
            },
            ring,
        ))
    }

    /// Reads the per-CPU counters and the runs the kernel skipped that nothing
    /// recorded.
    pub fn counters(&self) -> Result<KernelCounters, KernelError> {
        let misses = self.recursion_misses();
        let counters = counters::read_counters(&self.counters)?;
        Ok(Self::with_misses(counters, misses))
    }

    /// The skipped runs of the `tp_btf` state-change program and of the other event
    /// programs.
    fn recursion_misses(&self) -> (u64, u64) {
        let main = self.main_program_fd.as_slice();
        (
            counters::recursion_misses(main),
            counters::recursion_misses(&self.event_program_fds),
        )
    }

    fn with_misses(mut counters: KernelCounters, (main, other): (u64, u64)) -> KernelCounters {
        counters.recursion_missed =
            counters::unrescued_misses(main, other, counters.rescued_total());
        counters
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
        // The rescue program goes first: it counts every skip of the main program it
        // records, so once it is gone the rescued count is final and every rescue's skip
        // is in the misses read next. Skipped runs are read while the programs still
        // exist; nothing runs once they are detached, so the per-CPU counters read after
        // are final.
        attach::detach_rescue(&mut self.ebpf);
        let misses = self.recursion_misses();
        drop(self.ebpf);
        let counters = counters::read_counters(&self.counters)?;
        Ok(Self::with_misses(counters, misses))
    }
}

/// Attaches every program: the softirq trackers, the resets, the error reports and the
/// state changes, choosing for each the variant this kernel allows. `layouts` become
/// those of the records the attached programs write; `tracepoints` gets each one's
/// status, the state change first. The softirq trackers only without `socket_lock`
/// (every event's context then comes from its socket's lock, `docs/attribution.md` §5).
/// Returns whether softirq tracking is on.
fn attach_all(
    ebpf: &mut Ebpf,
    layouts: &mut Layouts,
    tracepoints: &mut Vec<TracepointStatus>,
    btf: &KernelBtf,
    options: &ProbeOptions,
    socket_lock: bool,
) -> Result<bool, KernelError> {
    let softirq_tracking = !socket_lock && {
        let softirq = attach::softirq_tracking(ebpf);
        tracepoints.push(softirq.clone());
        softirq.attached
    };
    tracepoints.extend(attach::optional_tracepoints(ebpf, layouts));
    // The raw error-report program reads the socket at the BTF offsets: the kernel's
    // own BTF or a `--btf` file both serve.
    let state = btf.state.as_ref().map_err(Clone::clone);
    let socket_readable = state.clone().and_then(|offsets| {
        (offsets.sk_err != 0)
            .then_some(())
            .ok_or_else(|| "no sock.sk_err in BTF".to_owned())
    });
    if let Some((layout, status)) =
        attach::error_report(ebpf, layouts.error_report, socket_readable)
    {
        layouts.error_report = layout;
        tracepoints.push(status);
    }
    // The `tp_btf` program names its tracepoint by a type id of the running kernel's
    // own BTF: a file for another build (`--btf`, as from BTFHub for a kernel without
    // BTF) only gives offsets.
    // It is parsed only when it is used, and dropped once the programs are loaded.
    let own = state.and_then(|_| {
        if options.tp_btf {
            running_kernel_btf()
        } else {
            Err("not used (--no-tp-btf)".to_owned())
        }
    });
    let tp_btf = own.as_ref().map_err(Clone::clone);
    let (state_change, status) = attach::state_change(ebpf, layouts.state_change, tp_btf)?;
    layouts.state_change = state_change;
    tracepoints.insert(0, status);
    Ok(softirq_tracking)
}

/// What the attached tracepoints give, where kernels differ (docs/kernel-facts.md §6).
fn kernel_features(layouts: &Layouts, tracepoints: &[TracepointStatus]) -> KernelFeatures {
    let attached = |name: &str| tracepoints.iter().any(|t| t.name == name && t.attached);
    let send_reset = layouts
        .send_reset
        .filter(|_| attached("tcp:tcp_send_reset"));
    KernelFeatures {
        reset_reason: send_reset.is_some_and(|l| l.reason.is_some()),
        // The sockaddr layout came with the rewrite that traces RSTs without a socket.
        reset_without_socket: send_reset
            .is_some_and(|l| matches!(l.addrs, ResetAddrs::Sockaddr { .. })),
        error_report_socket: layouts.error_report == Some(ErrorReportLayout::FROM_SOCKET),
    }
}

/// The running kernel's own BTF, for the `tp_btf` programs; a kernel that does not
/// expose it has none to attach them with.
fn running_kernel_btf() -> Result<aya::Btf, String> {
    let path = Path::new(btf::VMLINUX);
    if !path.exists() {
        return Err("no kernel BTF".into());
    }
    aya::Btf::parse_file(path, aya::Endianness::default())
        .map_err(|err| format!("reading {}: {err}", path.display()))
}

/// The ring buffers in use (`rings`) and the counters, owned apart from the programs so
/// that both can be read after detaching.
fn take_maps(
    ebpf: &mut Ebpf,
    rings: RingLayout,
) -> Result<(EventRing, PerCpuArray<MapData, u64>), KernelError> {
    let mut take = |name, missing| ebpf.take_map(name).ok_or(KernelError::Missing(missing));
    let map_error = |what| move |source| KernelError::Map { what, source };
    let mut ring_maps = Vec::new();
    for name in ring_layout::RING_MAPS.iter().take(rings.count as usize) {
        let Map::RingBuf(ring) = take(*name, "ring buffer map")? else {
            return Err(KernelError::Missing("ring buffer map"));
        };
        ring_maps.push(ring);
    }
    let counters = PerCpuArray::try_from(take("COUNTERS", "COUNTERS map")?)
        .map_err(map_error("COUNTERS map"))?;
    let maps: Vec<&MapData> = ring_maps.iter().collect();
    let ring = EventRing::new(&maps, rings.bytes_each).map_err(KernelError::Poll)?;
    Ok((ring, counters))
}

/// Returns freed heap pages to the kernel (glibc keeps them otherwise; musl's allocator
/// returns them by itself).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn program_fds(ebpf: &Ebpf, names: &[&str]) -> Vec<i32> {
    names
        .iter()
        .filter_map(|name| ebpf.program(name))
        .filter_map(|program| program.fd().ok())
        .map(|fd| fd.as_fd().as_raw_fd())
        .collect()
}

fn logger(ebpf: &mut Ebpf) -> Option<aya_log::EbpfLogger<&'static dyn log::Log>> {
    match aya_log::EbpfLogger::init(ebpf) {
        Ok(logger) => Some(logger),
        Err(err) => {
            debug!("kernel program logs unavailable: {err}");
            None
        }
    }
}

/// CPUs the kernel may run programs on (the length of per-CPU maps).
pub fn possible_cpus() -> u32 {
    aya::util::nr_cpus()
        .ok()
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0)
}

/// The names of the BPF programs loaded in the kernel, by program id (empty without
/// CAP_SYS_ADMIN, which listing them needs).
pub fn program_names() -> std::collections::HashMap<u32, String> {
    aya::programs::loaded_programs()
        .flatten()
        .filter_map(|info| Some((info.id(), info.name_as_str()?.to_owned())))
        .collect()
}
