//! The demo's recording: it starts before the clients, runs for the demo's duration,
//! and ends with the clients frozen so that no connection attempt is cut in half.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use tcpchurn_harness::{Process, Recorder, Recording, Topology, interrupt::sleep};

use super::setting::shown;

/// Starts recording both namespaces of `topology` into `trace`; the recording lasts
/// `duration` from now (the clients start within it).
pub fn start(
    tcpchurn: &Path,
    trace: &Path,
    topology: &Topology,
    duration: Duration,
) -> anyhow::Result<(Recorder, Instant)> {
    println!(
        "Recording both namespaces for {} s into {} ...",
        duration.as_secs(),
        shown(trace)
    );
    let recorder = Recorder::start(tcpchurn, trace, topology.netns_args())?;
    Ok((recorder, Instant::now() + duration))
}

/// Records until `deadline`, then freezes the clients (SIGSTOP) and stops the
/// recorder. Fails if a server or a looping client dies meanwhile.
pub fn record_until(
    mut recorder: Recorder,
    deadline: Instant,
    servers: &mut [Process],
    clients: &mut [Process],
) -> anyhow::Result<Recording> {
    while Instant::now() < deadline {
        sleep(Duration::from_millis(250))?;
        recorder.check_running()?;
        for process in servers.iter_mut().chain(clients.iter_mut()) {
            process.check_running()?;
        }
    }
    for client in clients.iter() {
        client.signal(libc::SIGSTOP);
    }
    let recording = recorder.stop()?;
    recording.ensure_success()?;
    Ok(recording)
}

/// "events 1234 (800 transitions), lost 0" from the recorder's summary.
pub fn summary_line(recording: &Recording) -> String {
    format!(
        "events {}, lost {}",
        recording.summary("events").unwrap_or("?"),
        recording.summary("lost events").unwrap_or("?")
    )
}
