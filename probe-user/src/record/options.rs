//! What `tcpchurn record` can be told, and the checks those options must pass before
//! anything is touched.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use probe_common::{MAX_FILTER_NETNS, MAX_FILTER_PORTS};

use crate::{
    kernel::{btf, probe::ProbeOptions},
    model::{Filters, WorkloadFilter},
    record::files,
};

/// The shortest flush interval: every flush is a write and an `fdatasync`.
const MIN_FLUSH_INTERVAL: Duration = Duration::from_millis(10);
/// The shortest ring-buffer poll interval.
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(1);

/// Everything `tcpchurn record` can be told.
#[derive(Clone, Debug)]
pub struct RecordOptions {
    pub output: PathBuf,
    pub force: bool,
    pub duration: Option<Duration>,
    /// `--port` and `--netns` (namespace inodes, already resolved), and the `--pod` and
    /// `--container` selectors as given (for the trace header).
    pub filters: Filters,
    /// `--pod` and `--container`: decided per socket scope from the node's names.
    pub workloads: WorkloadFilter,
    /// Where the node's `/` is, to name containers and pods.
    pub host_root: PathBuf,
    /// Kernel ring-buffer size: a power of two of at least 4 KiB, below 4 GiB.
    pub ring_bytes: u64,
    /// How often blocks are written and synced (at least 10 ms).
    pub flush_interval: Duration,
    /// How often the ring buffer is drained when no wake-up came (at least 1 ms).
    pub poll_interval: Duration,
    /// Take `sock_diag` snapshots at start and end.
    pub snapshot: bool,
    /// Start a new file when this one reaches this size (bytes).
    pub max_size: Option<u64>,
    /// Keep at most this many files when rotating (oldest are removed).
    pub rotate: Option<u32>,
    /// Kernel BTF file for struct offsets.
    pub btf: PathBuf,
    /// Ring fill level that wakes the reader early (0: a quarter of the ring).
    pub wakeup_bytes: u64,
    /// `--nice`: the drain and writer threads' nice value (`None`: see
    /// [`crate::record::priority`]).
    pub nice: Option<i32>,
    /// Use the BTF-enabled raw tracepoint for state changes when kernel BTF allows it.
    pub tp_btf: bool,
    /// `--live`: the verdict as it forms, on the terminal (or as text blocks).
    pub live: bool,
    /// `--metrics`: serve Prometheus metrics at this address.
    pub metrics: Option<SocketAddr>,
    /// `--metrics-pairs`: client/server pairs with their own labels; the rest are
    /// summed under `client="other"`.
    pub metrics_pairs: usize,
    /// How often the live views compute the verdict.
    pub refresh: Duration,
}

impl Default for RecordOptions {
    fn default() -> Self {
        Self {
            output: PathBuf::from("tcpchurn.trace"),
            force: false,
            duration: None,
            filters: Filters::default(),
            workloads: WorkloadFilter::default(),
            host_root: PathBuf::from("/"),
            ring_bytes: 16 << 20,
            flush_interval: Duration::from_secs(1),
            poll_interval: Duration::from_millis(20),
            snapshot: true,
            max_size: None,
            rotate: None,
            btf: PathBuf::from(btf::VMLINUX),
            wakeup_bytes: 0,
            nice: None,
            tp_btf: true,
            live: false,
            metrics: None,
            metrics_pairs: DEFAULT_METRICS_PAIRS,
            refresh: Duration::from_secs(1),
        }
    }
}

/// Pairs with their own metrics labels unless `--metrics-pairs` says otherwise.
pub const DEFAULT_METRICS_PAIRS: usize = 200;
/// The shortest refresh of the live views: each one copies the analysis' state.
const MIN_REFRESH: Duration = Duration::from_millis(100);

/// Options the kernel program cannot take.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    #[error("at most {MAX_FILTER_PORTS} --port filters")]
    TooManyPorts,
    #[error("at most {MAX_FILTER_NETNS} --netns filters")]
    TooManyNetns,
    #[error("--ring-size must be below 4 GiB")]
    RingTooLarge,
    #[error("--ring-size must be a power of two of at least 4 KiB (got {0})")]
    RingSize(u64),
    #[error("--host-root {0}: not a directory")]
    HostRoot(PathBuf),
    #[error("--port 0 matches no connection")]
    PortZero,
    #[error("--duration must be longer than 0")]
    DurationZero,
    #[error("--max-size must be at least 1 byte")]
    MaxSizeZero,
    #[error("--rotate must keep at least 1 file")]
    RotateZero,
    #[error("-o {} keeps no trace: it is for --metrics or --live", files::DISCARD)]
    DiscardWithoutViews,
    #[error("--max-size needs a file to rotate, not {}", files::DISCARD)]
    RotateDiscard,
    #[error("--metrics-pairs must be at least 1")]
    NoMetricsPairs,
}

impl RecordOptions {
    /// The options as the recorder uses them: refused if the kernel program cannot take
    /// them, intervals raised to their minimum.
    pub fn checked(self) -> Result<Self, OptionsError> {
        if self.filters.ports.len() > MAX_FILTER_PORTS {
            return Err(OptionsError::TooManyPorts);
        }
        if self.filters.netns.len() > MAX_FILTER_NETNS {
            return Err(OptionsError::TooManyNetns);
        }
        if u32::try_from(self.ring_bytes).is_err() {
            return Err(OptionsError::RingTooLarge);
        }
        if !self.ring_bytes.is_power_of_two() || self.ring_bytes < 4096 {
            return Err(OptionsError::RingSize(self.ring_bytes));
        }
        if !self.host_root.is_dir() {
            return Err(OptionsError::HostRoot(self.host_root));
        }
        if self.filters.ports.contains(&0) {
            return Err(OptionsError::PortZero);
        }
        if self.duration == Some(Duration::ZERO) {
            return Err(OptionsError::DurationZero);
        }
        if self.max_size == Some(0) {
            return Err(OptionsError::MaxSizeZero);
        }
        if self.rotate == Some(0) {
            return Err(OptionsError::RotateZero);
        }
        if files::discards(&self.output) {
            if !self.live && self.metrics.is_none() {
                return Err(OptionsError::DiscardWithoutViews);
            }
            if self.max_size.is_some() {
                return Err(OptionsError::RotateDiscard);
            }
        }
        if self.metrics_pairs == 0 {
            return Err(OptionsError::NoMetricsPairs);
        }
        Ok(Self {
            flush_interval: self.flush_interval.max(MIN_FLUSH_INTERVAL),
            poll_interval: self.poll_interval.max(MIN_POLL_INTERVAL),
            refresh: self.refresh.max(MIN_REFRESH),
            ..self
        })
    }

    /// Whether anything follows the recording as it is written.
    pub fn watched(&self) -> bool {
        self.live || self.metrics.is_some()
    }

    /// How the kernel program is set up for these (checked) options.
    pub fn probe_options(&self) -> ProbeOptions {
        let ring_bytes = u32::try_from(self.ring_bytes).unwrap_or(u32::MAX);
        ProbeOptions {
            ring_bytes,
            wakeup_threshold: if self.wakeup_bytes == 0 {
                u64::from(ring_bytes / 4)
            } else {
                self.wakeup_bytes
            },
            filters: self.filters.clone(),
            tp_btf: self.tp_btf,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_kernel_program_cannot_take_is_refused() {
        let options = |change: fn(&mut RecordOptions)| {
            let mut options = RecordOptions::default();
            change(&mut options);
            options.checked().map(|o| o.probe_options().ring_bytes)
        };
        assert_eq!(options(|_| {}), Ok(16 << 20));
        assert_eq!(
            options(|o| o.filters.ports = vec![1; 9]),
            Err(OptionsError::TooManyPorts)
        );
        assert_eq!(
            options(|o| o.filters.netns = vec![1; 9]),
            Err(OptionsError::TooManyNetns)
        );
        assert_eq!(
            options(|o| o.ring_bytes = 8 << 30),
            Err(OptionsError::RingTooLarge)
        );
        assert_eq!(
            options(|o| o.ring_bytes = 5000),
            Err(OptionsError::RingSize(5000))
        );
        assert_eq!(
            options(|o| o.ring_bytes = 2048),
            Err(OptionsError::RingSize(2048))
        );
        assert_eq!(
            options(|o| o.host_root = PathBuf::from("/nonexistent-tcpchurn-root")),
            Err(OptionsError::HostRoot(PathBuf::from(
                "/nonexistent-tcpchurn-root"
            )))
        );
        assert_eq!(
            options(|o| o.filters.ports = vec![80, 0]),
            Err(OptionsError::PortZero)
        );
        assert_eq!(
            options(|o| o.duration = Some(Duration::ZERO)),
            Err(OptionsError::DurationZero)
        );
        assert_eq!(
            options(|o| o.max_size = Some(0)),
            Err(OptionsError::MaxSizeZero)
        );
        assert_eq!(
            options(|o| {
                o.max_size = Some(1 << 20);
                o.rotate = Some(0);
            }),
            Err(OptionsError::RotateZero)
        );
        let checked = RecordOptions {
            flush_interval: Duration::ZERO,
            poll_interval: Duration::ZERO,
            ..RecordOptions::default()
        }
        .checked()
        .unwrap();
        assert_eq!(
            (checked.flush_interval, checked.poll_interval),
            (MIN_FLUSH_INTERVAL, MIN_POLL_INTERVAL)
        );
        assert_eq!(checked.probe_options().wakeup_threshold, 4 << 20);
    }

    #[test]
    fn dev_null_keeps_nothing_and_needs_a_live_view() {
        let discard = |change: fn(&mut RecordOptions)| {
            let mut options = RecordOptions {
                output: PathBuf::from("/dev/null"),
                ..RecordOptions::default()
            };
            change(&mut options);
            options.checked().map(|o| o.watched())
        };
        assert_eq!(discard(|_| {}), Err(OptionsError::DiscardWithoutViews));
        assert_eq!(
            discard(|o| o.metrics = Some("127.0.0.1:9100".parse().unwrap())),
            Ok(true)
        );
        assert_eq!(
            discard(|o| {
                o.live = true;
                o.max_size = Some(1 << 20);
            }),
            Err(OptionsError::RotateDiscard)
        );
        assert_eq!(
            discard(|o| {
                o.live = true;
                o.metrics_pairs = 0;
            }),
            Err(OptionsError::NoMetricsPairs)
        );
    }
}
