//! Which files are parts of one recording, in which order, and which parts are
//! missing. A recording rotated with `--max-size` writes `FILE`, `FILE.1`, ...; every
//! part repeats the recording's meta block, except its `part` (`docs/trace-format.md`).

use crate::trace::TraceMeta;

/// What every part of one recording shares in its meta block.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RecordingId<'a> {
    hostname: &'a str,
    boot_id: &'a str,
    start_monotonic_ns: u64,
    start_unix_ns: u64,
    recorder_pid: u32,
}

impl<'a> RecordingId<'a> {
    fn of(meta: &'a TraceMeta) -> Self {
        Self {
            hostname: &meta.hostname,
            boot_id: &meta.boot_id,
            start_monotonic_ns: meta.start_monotonic_ns,
            start_unix_ns: meta.start_unix_ns,
            recorder_pid: meta.recorder.pid,
        }
    }
}

/// Parts of a recording that were not given: `first..=last` (part numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MissingParts {
    pub first: u32,
    pub last: u32,
}

/// One recording: the inputs that are its parts, in part order.
///
/// Only parts missing *between* given parts are holes: a replay may start at any part
/// (`--rotate` removes the oldest ones, and each part replays alone) and end at any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recording {
    /// Indices into the inputs, ordered by part number.
    pub parts: Vec<usize>,
    /// For each entry of `parts`: the parts missing between it and the one before.
    pub missing_before: Vec<Option<MissingParts>>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PartsError {
    /// The same part of one recording was given twice.
    #[error("inputs {0} and {1} are the same part ({2}) of one recording")]
    Duplicate(usize, usize, u32),
}

/// Groups inputs (by their meta blocks) into recordings, in the order each recording
/// first appears, its parts by part number.
pub fn group(metas: &[&TraceMeta]) -> Result<Vec<Recording>, PartsError> {
    let mut recordings: Vec<(RecordingId<'_>, Vec<usize>)> = Vec::new();
    for (input, meta) in metas.iter().enumerate() {
        let id = RecordingId::of(meta);
        match recordings.iter_mut().find(|(known, _)| *known == id) {
            Some((_, parts)) => parts.push(input),
            None => recordings.push((id, vec![input])),
        }
    }
    recordings
        .into_iter()
        .map(|(_, mut parts)| {
            parts.sort_by_key(|&i| (metas[i].part.index, i));
            let mut missing_before = Vec::with_capacity(parts.len());
            let mut previous: Option<(usize, u32)> = None;
            for &input in &parts {
                let index = metas[input].part.index;
                let expected = match previous {
                    Some((first, before)) if before == index => {
                        return Err(PartsError::Duplicate(first, input, index));
                    }
                    Some((_, before)) => before + 1,
                    None => index,
                };
                missing_before.push((index > expected).then(|| MissingParts {
                    first: expected,
                    last: index - 1,
                }));
                previous = Some((input, index));
            }
            Ok(Recording {
                parts,
                missing_before,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{PartInfo, RecorderInfo};

    fn meta(host: &str, start: u64, part: u32) -> TraceMeta {
        TraceMeta {
            hostname: host.into(),
            boot_id: format!("boot-{host}"),
            start_monotonic_ns: start,
            start_unix_ns: 1_000 + start,
            recorder: RecorderInfo {
                pid: 7,
                ..RecorderInfo::default()
            },
            part: PartInfo {
                index: part,
                previous: None,
            },
            ..TraceMeta::default()
        }
    }

    fn grouped(metas: &[TraceMeta]) -> Result<Vec<Recording>, PartsError> {
        group(&metas.iter().collect::<Vec<_>>())
    }

    #[test]
    fn parts_join_in_order_and_hosts_stay_apart() {
        let metas = [
            meta("node", 5, 2),
            meta("zk", 9, 0),
            meta("node", 5, 0),
            meta("node", 5, 1),
            // Another recording on the same host, later.
            meta("node", 50, 0),
        ];
        let recordings = grouped(&metas).unwrap();
        assert_eq!(recordings.len(), 3);
        assert_eq!(recordings[0].parts, [2, 3, 0]);
        assert_eq!(recordings[0].missing_before, [None, None, None]);
        assert_eq!(recordings[1].parts, [1]);
        assert_eq!(recordings[2].parts, [4]);
    }

    #[test]
    fn missing_parts_are_found_between_given_parts() {
        let metas = [meta("node", 5, 4), meta("node", 5, 2), meta("node", 5, 7)];
        let [recording] = grouped(&metas).unwrap().try_into().unwrap();
        assert_eq!(recording.parts, [1, 0, 2]);
        assert_eq!(
            recording.missing_before,
            [
                None,
                Some(MissingParts { first: 3, last: 3 }),
                Some(MissingParts { first: 5, last: 6 }),
            ]
        );
    }

    #[test]
    fn a_part_given_twice_is_an_error() {
        let metas = [meta("node", 5, 1), meta("node", 5, 0), meta("node", 5, 1)];
        assert_eq!(grouped(&metas), Err(PartsError::Duplicate(0, 2, 1)));
    }
}
