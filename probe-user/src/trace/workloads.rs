//! The payload of a `Workloads` block: a [`WorkloadTable`] as compact JSON.
//!
//! JSON rather than binary records: a table is written only when keys are new (a few
//! per second on a busy node, none on a quiet one), it is almost all strings, and
//! other tools read it. Tables are split so that no block holds more than
//! [`MAX_ENTRIES`] entries; a reader drops names longer than [`MAX_NAME`] bytes.

use crate::model::{Identity, Named, Workload, WorkloadTable};

/// Entries per block at most: a whole node's table fits a few blocks.
pub const MAX_ENTRIES: usize = 16_384;
/// The longest name or id a reader takes (Kubernetes names are at most 253 bytes).
pub const MAX_NAME: usize = 256;

/// `table` as the payloads of one or more blocks, in order.
pub fn encode(table: &WorkloadTable) -> Vec<Vec<u8>> {
    split(table)
        .iter()
        .map(|part| serde_json::to_vec(part).unwrap_or_default())
        .collect()
}

/// Splits a table into tables of at most [`MAX_ENTRIES`] entries each, every part with
/// the identities it refers to.
fn split(table: &WorkloadTable) -> Vec<WorkloadTable> {
    if table.len() <= MAX_ENTRIES {
        return vec![table.clone()];
    }
    let mut parts = Vec::new();
    let mut builder = crate::model::WorkloadTableBuilder::default();
    for (key, identity) in table.entries() {
        builder.add(key, identity);
        if builder.len() == MAX_ENTRIES {
            parts.push(std::mem::take(&mut builder).finish());
        }
    }
    if !builder.is_empty() {
        parts.push(builder.finish());
    }
    parts
}

/// Reads a payload back. An identity with an implausible name reads as unknown.
pub fn decode(payload: &[u8]) -> Result<WorkloadTable, String> {
    let mut table: WorkloadTable =
        serde_json::from_slice(payload).map_err(|e| format!("unreadable names: {e}"))?;
    for identity in &mut table.identities {
        if identity.workload().is_some_and(|w| !plausible(w)) {
            *identity = Identity::Unknown;
        }
    }
    Ok(table)
}

fn plausible(w: &Workload) -> bool {
    let short = |s: &str| s.len() <= MAX_NAME;
    let named = |n: &Option<Named>| n.as_ref().is_none_or(|n| short(&n.value));
    named(&w.container)
        && named(&w.pod)
        && named(&w.namespace)
        && w.id.as_deref().is_none_or(short)
        && w.pod_uid.as_deref().is_none_or(short)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Source, WorkloadKey, WorkloadTableBuilder};

    fn container(name: &str) -> Identity {
        Identity::Workload(Workload {
            container: Some(Named::new(name, Source::PodmanState)),
            ..Workload::default()
        })
    }

    #[test]
    fn a_table_reads_back_whole() {
        let mut builder = WorkloadTableBuilder::default();
        builder.add(WorkloadKey::Cgroup(3), &container("web"));
        builder.add(WorkloadKey::Netns(4_026_531_840), &Identity::Host);
        builder.add(
            WorkloadKey::Address("fd00::1".parse().unwrap()),
            &container("web"),
        );
        builder.add(WorkloadKey::Process(9), &Identity::Unknown);
        let table = builder.finish();
        let payloads = encode(&table);
        assert_eq!(payloads.len(), 1);
        assert_eq!(decode(&payloads[0]).unwrap(), table);
        assert!(
            String::from_utf8_lossy(&payloads[0]).len() < 250,
            "compact: {}",
            String::from_utf8_lossy(&payloads[0])
        );
    }

    #[test]
    fn big_tables_are_split_and_each_part_stands_alone() {
        let mut builder = WorkloadTableBuilder::default();
        for id in 0..(MAX_ENTRIES as u64 + 10) {
            builder.add(WorkloadKey::Cgroup(id), &container(&format!("c{}", id % 3)));
        }
        let payloads = encode(&builder.finish());
        assert_eq!(payloads.len(), 2);
        let last = decode(&payloads[1]).unwrap();
        assert_eq!(last.len(), 10);
        assert_eq!(last.entries().count(), 10, "its identities came along");
    }

    #[test]
    fn hostile_tables_are_refused_or_defused() {
        assert!(decode(b"{\"cgroups\":[[1").is_err());
        assert!(decode(b"\"names\"").is_err());
        let long = "x".repeat(MAX_NAME + 1);
        let mut builder = WorkloadTableBuilder::default();
        builder.add(WorkloadKey::Cgroup(1), &container(&long));
        let payload = &encode(&builder.finish())[0];
        assert_eq!(decode(payload).unwrap().identities, [Identity::Unknown]);
        // Unknown keys from a newer minor version are ignored.
        let newer = decode(br#"{"identities":[{"kind":"host"}],"cgroups":[[1,0]],"gpus":[]}"#);
        assert_eq!(newer.unwrap().len(), 1);
    }
}
