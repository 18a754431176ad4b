//! The machine the benchmark runs on: kernel, CPUs, and how busy it is.

use serde::{Deserialize, Serialize};
use tcpchurn_harness::exec;

/// The first load average, and all three as text.
pub fn loadavg() -> (f64, String) {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let first = text
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let three: Vec<&str> = text.split_whitespace().take(3).collect();
    (first, three.join(" "))
}

pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// The `host` section of the results.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Host {
    pub kernel: String,
    pub cpus: usize,
    pub loadavg_start: String,
    pub loadavg_end: String,
    /// The load average exceeded half the CPUs at the start or the end.
    pub busy: bool,
}

impl Host {
    /// The host at the start of the benchmark; warns when the machine is busy.
    pub fn at_start() -> Self {
        let cpus = cpus();
        let (load, loadavg_start) = loadavg();
        let kernel = exec::try_stdout("uname", &["-r"])
            .unwrap_or_default()
            .trim()
            .to_owned();
        eprintln!("bench: kernel {kernel}, {cpus} CPUs, load average {loadavg_start}");
        let busy = load > 0.5 * cpus as f64;
        if busy {
            eprintln!(
                "bench: WARNING: the machine is busy (load {load:.2} on {cpus} CPUs): \
                 absolute conn/s will be low and noisy; ratios stay meaningful because every \
                 round runs all variants back to back"
            );
        }
        Self {
            kernel,
            cpus,
            loadavg_end: loadavg_start.clone(),
            loadavg_start,
            busy,
        }
    }

    /// Adds the load average at the end.
    pub fn finish(&mut self) {
        let (load, text) = loadavg();
        self.loadavg_end = text;
        self.busy |= load > 0.5 * self.cpus as f64;
    }
}
