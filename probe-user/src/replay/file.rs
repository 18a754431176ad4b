//! What the verdict and the events' header say about the traces a replay read: the
//! hosts, their files, kernels and clocks, and the ends that were not merged.

use crate::{
    analysis::{HostInfo, UnmergedEnds},
    model::HostId,
    render::{
        events::{EventsHeader, HeaderHost},
        hosts,
    },
    trace::{
        TraceEnd, TraceMeta,
        set::{ClockBasis, Traces},
    },
};

/// Every host: its files, kernel and clock; `ends`: the end block each host's last
/// part had, once read.
pub fn host_infos(traces: &Traces, ends: &[Option<&TraceEnd>]) -> Vec<HostInfo> {
    traces
        .set
        .hosts()
        .iter()
        .zip(&traces.timeline.hosts)
        .map(|(host, placed)| {
            let meta = host.meta();
            HostInfo {
                name: host.name.clone(),
                hostname: meta.hostname.clone(),
                kernel: meta.kernel.clone(),
                files: host.parts.iter().map(|p| p.name.clone()).collect(),
                start_unix_ns: meta.start_unix_ns,
                clock: Some(placed.clock),
                clock_via: clock_via(placed.clock.basis).map(|h| traces.names.name(h).to_owned()),
                stop_reason: ends
                    .get(host.id.index())
                    .copied()
                    .flatten()
                    .map(|e| e.stop_reason.clone()),
            }
        })
        .collect()
}

/// Host pairs whose connections did not meet.
pub fn unmerged(traces: &Traces) -> Vec<UnmergedEnds> {
    traces
        .timeline
        .unmatched
        .iter()
        .map(|&ends| UnmergedEnds {
            client: traces.names.name(ends.client).to_owned(),
            server: traces.names.name(ends.server).to_owned(),
            ends,
        })
        .collect()
}

/// The first line of `--events` text.
pub fn events_header(traces: &Traces) -> EventsHeader {
    let several = traces.names.several();
    EventsHeader {
        hosts: host_infos(traces, &[])
            .iter()
            .map(|h| HeaderHost {
                name: if several {
                    h.name.clone()
                } else {
                    h.hostname.clone()
                },
                kernel: h.kernel.clone(),
                clock: several.then(|| hosts::clock_sentence(h)),
            })
            .collect(),
        start_unix_ns: traces.timeline.start_unix_ns,
    }
}

/// The first line of `--events` text for one trace read as it is written.
pub fn meta_header(meta: &TraceMeta) -> EventsHeader {
    EventsHeader {
        hosts: vec![HeaderHost {
            name: meta.hostname.clone(),
            kernel: meta.kernel.clone(),
            clock: None,
        }],
        start_unix_ns: meta.start_unix_ns,
    }
}

fn clock_via(basis: ClockBasis) -> Option<HostId> {
    match basis {
        ClockBasis::SameBoot { via } | ClockBasis::Exchanges { via, .. } => Some(via),
        ClockBasis::Reference | ClockBasis::Unknown => None,
    }
}
