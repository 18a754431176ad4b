//! What a replay reads: the files named on the command line, as one trace set, and
//! where each host's events go on the replay's timeline.

use std::path::PathBuf;

use crate::{
    analysis::{HostInfo, UnmergedEnds},
    model::{HostId, HostNames},
    render::{
        events::{EventsHeader, HeaderHost},
        hosts,
    },
    trace::{
        TraceEnd,
        set::{Input, Timeline, TraceSet, inputs},
    },
};

/// A trace set ready to be read (as many times as the replay needs).
#[derive(Clone, Debug)]
pub struct Traces {
    pub set: TraceSet,
    pub timeline: Timeline,
    pub names: HostNames,
}

impl Traces {
    /// The set of these inputs, with the hosts' clocks measured.
    pub fn of(inputs: Vec<Input>) -> anyhow::Result<Self> {
        let set = TraceSet::open(inputs)?;
        let timeline = set.timeline()?;
        let names = HostNames(set.hosts().iter().map(|h| h.name.clone()).collect());
        Ok(Self {
            set,
            timeline,
            names,
        })
    }
}

impl Traces {
    /// Every host: its files, kernel and clock; `ends`: the end block each host's
    /// last part had, once read.
    pub fn host_infos(&self, ends: &[Option<&TraceEnd>]) -> Vec<HostInfo> {
        self.set
            .hosts()
            .iter()
            .zip(&self.timeline.hosts)
            .map(|(host, placed)| {
                let meta = host.meta();
                HostInfo {
                    name: host.name.clone(),
                    hostname: meta.hostname.clone(),
                    kernel: meta.kernel.clone(),
                    files: host.parts.iter().map(|p| p.name.clone()).collect(),
                    start_unix_ns: meta.start_unix_ns,
                    clock: Some(placed.clock),
                    clock_via: clock_via(&placed.clock.basis)
                        .map(|h| self.names.name(h).to_owned()),
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
    pub fn unmerged(&self) -> Vec<UnmergedEnds> {
        self.timeline
            .unmatched
            .iter()
            .map(|&ends| UnmergedEnds {
                client: self.names.name(ends.client).to_owned(),
                server: self.names.name(ends.server).to_owned(),
                ends,
            })
            .collect()
    }

    /// The first line of `--events` text.
    pub fn events_header(&self) -> EventsHeader {
        let several = self.names.several();
        let infos = self.host_infos(&[]);
        EventsHeader {
            hosts: infos
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
            start_unix_ns: self.timeline.start_unix_ns,
        }
    }
}

fn clock_via(basis: &crate::trace::set::ClockBasis) -> Option<HostId> {
    use crate::trace::set::ClockBasis;
    match *basis {
        ClockBasis::SameBoot { via } | ClockBasis::Exchanges { via, .. } => Some(via),
        ClockBasis::Reference | ClockBasis::Unknown => None,
    }
}

/// Opens the files, directories and patterns given on the command line.
pub fn open(files: &[PathBuf]) -> anyhow::Result<Traces> {
    Traces::of(inputs::expand(files)?)
}
