//! The hosts of a replay of several recordings: their clocks, as text and as JSON.

use serde::Serialize;

use crate::{
    analysis::{HostInfo, UnmergedEnds},
    render::format::{human_duration, round3},
    trace::set::{ClockBasis, HostClock},
};

/// `+250.012 ms ± 20 µs`
pub fn offset(clock: &HostClock) -> String {
    let sign = if clock.offset_ns < 0 { '-' } else { '+' };
    format!(
        "{sign}{:.3} ms ± {}",
        clock.offset_ns.unsigned_abs() as f64 / 1e6,
        human_duration(clock.uncertainty_ns)
    )
}

/// How the host's clock lines up with the reference host's, for people.
pub fn clock_sentence(host: &HostInfo) -> String {
    let via = host.clock_via.as_deref().unwrap_or("?");
    match host.clock {
        None => "its own clock".to_owned(),
        Some(clock) => match clock.basis {
            ClockBasis::Reference => "the reference clock".to_owned(),
            ClockBasis::SameBoot { .. } => {
                format!("clock {} (same boot as {via})", offset(&clock))
            }
            ClockBasis::Exchanges {
                agreeing, total, ..
            } => format!(
                "clock {} against {via} ({agreeing} of {total} messages seen at both ends \
                 agree)",
                offset(&clock)
            ),
            ClockBasis::Unknown => "clock unknown (no connection seen at both ends: its \
                                    header's clock is used)"
                .to_owned(),
        },
    }
}

/// The line about one host: `zk (zk.trace, zk.trace.1): clock +250.012 ms ± 20 µs ...`
pub fn host_line(host: &HostInfo) -> String {
    format!(
        "{} ({}): {}",
        host.name,
        host.files.join(", "),
        clock_sentence(host)
    )
}

/// The sentence about ends that could not be matched.
pub fn unmerged(u: &UnmergedEnds) -> String {
    format!(
        "not merged: {} connects on {} to port {} and {} accepts on {} found no other end \
         ({} connections between the two did): addresses may be translated between them \
         (NAT), or their clocks are more than 10 s apart; their ends count as separate \
         connections",
        u.ends.connects, u.client, u.ends.port, u.ends.accepts, u.server, u.ends.matched
    )
}

#[derive(Serialize)]
pub struct JsonExchanges {
    agreeing: usize,
    total: usize,
}

/// One host in the verdict's `trace.hosts`.
#[derive(Serialize)]
pub struct JsonHost<'a> {
    clock_basis: &'static str,
    clock_exchanges: Option<JsonExchanges>,
    clock_offset_ms: Option<f64>,
    clock_uncertainty_ms: Option<f64>,
    clock_via: Option<&'a str>,
    files: &'a [String],
    hostname: &'a str,
    kernel: &'a str,
    name: &'a str,
    start_unix_ns: u64,
    stop_reason: Option<&'a str>,
}

impl<'a> JsonHost<'a> {
    pub fn of(host: &'a HostInfo) -> Self {
        let clock = host.clock.filter(|c| c.basis != ClockBasis::Unknown);
        let ms = |ns: f64| round3(ns / 1e6);
        Self {
            clock_basis: match host.clock.map(|c| c.basis) {
                None | Some(ClockBasis::Reference) => "reference",
                Some(ClockBasis::SameBoot { .. }) => "same_boot",
                Some(ClockBasis::Exchanges { .. }) => "connections",
                Some(ClockBasis::Unknown) => "unknown",
            },
            clock_exchanges: match host.clock.map(|c| c.basis) {
                Some(ClockBasis::Exchanges {
                    agreeing, total, ..
                }) => Some(JsonExchanges { agreeing, total }),
                _ => None,
            },
            clock_offset_ms: clock.map(|c| ms(c.offset_ns as f64)),
            clock_uncertainty_ms: clock.map(|c| ms(c.uncertainty_ns as f64)),
            clock_via: host.clock_via.as_deref(),
            files: &host.files,
            hostname: &host.hostname,
            kernel: &host.kernel,
            name: &host.name,
            start_unix_ns: host.start_unix_ns,
            stop_reason: host.stop_reason.as_deref(),
        }
    }
}
