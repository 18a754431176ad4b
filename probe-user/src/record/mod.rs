//! `tcpchurn record`: attach, stream the ring buffer into a trace file, stop cleanly.
//!
//! Threads: the tokio current-thread runtime drains the ring buffer and encodes
//! blocks; a writer thread does the file I/O (write + fdatasync per block), so a slow
//! disk never stalls the reader. If the disk falls behind, the channel fills, the
//! reader waits, the ring fills and the kernel counts the loss: nothing is dropped
//! silently and memory stays bounded. Both run at a raised priority ([`priority`]), so
//! that a saturated machine does not keep them off the CPU while the ring fills.
//!
//! With `--live` or `--metrics`, the blocks written are also handed to an analysis
//! thread ([`observer`]) through a [`tee`] that never makes the recorder wait; it
//! feeds the screen ([`live`]) and the metrics server ([`metrics`]).

mod driver;
pub mod files;
mod header;
pub mod live;
pub mod metrics;
pub mod names;
pub mod observer;
pub mod options;
pub mod priority;
mod privileges;
pub mod recording;
pub mod selection;
pub mod sink;
pub mod sockets;
pub mod tee;
mod watchers;

use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::Notify;

pub use self::options::{OptionsError, RecordOptions};
use crate::{
    kernel::{host, offsets::KernelBtf, preflight, tracefs::Tracefs},
    model::RecordSummary,
    record::files::OutputDir,
};

/// Records until stopped. Every input is checked before the output is touched, and
/// errors before attaching leave no kernel state and no file.
pub fn record(options: RecordOptions) -> anyhow::Result<RecordSummary> {
    let options = options.checked()?;
    preflight::check_privileges()?;
    preflight::check_kernel(&host::uname().release)?;
    return_freed_memory_promptly();
    let btf = KernelBtf::read(&options.btf)?;
    for missing in &btf.info.missing {
        log::warn!("{missing}");
    }
    if !options.filters.netns.is_empty() && !btf.info.netns {
        anyhow::bail!(
            "--netns needs each socket's network namespace, which needs kernel BTF ({} could \
             not be used); record without --netns, or pass --btf FILE",
            options.btf.display()
        );
    }
    let dir = OutputDir::check(&options.output, options.force, options.max_size.is_some())?;
    let metrics = options.metrics.map(metrics::bind).transpose()?;
    let tracefs = Tracefs::locate_or_mount()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let stop_request = Arc::new(Notify::new());
    let (tee, watchers) = watchers::Watchers::start(&options, metrics, Arc::clone(&stop_request))?;
    let watched = driver::Watched { tee, stop_request };
    // After the watchers' threads start (they keep the default priority), before the
    // writer's (it inherits this one's).
    raise_priority(options.nice);
    let summary = runtime.block_on(driver::run(&options, &tracefs, &btf, dir, watched));
    watchers.finish();
    summary
}

/// Raises the draining thread's priority; a recorder that cannot still records, and
/// says so when the priority was asked for.
fn raise_priority(asked: Option<i32>) {
    match priority::raise(asked) {
        Ok(priority) => log::debug!("scheduling priority: {priority:?}"),
        Err(err) if asked.is_some() => {
            log::warn!("--nice: {err}; recording at the current priority")
        }
        Err(err) => log::debug!("raising the scheduling priority: {err}"),
    }
}

/// glibc serves allocations below a threshold that grows, once large blocks have been
/// freed, up to 32 MiB from its heap, and keeps what is freed there: the 1 MiB trace
/// blocks, once written, would stay in the recorder's RSS. A fixed threshold has every
/// block (and every large parse buffer) mapped on its own and unmapped when freed.
/// musl's allocator does this by itself.
fn return_freed_memory_promptly() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets glibc's allocator parameters; called before any thread
    // of ours starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
    }
}
