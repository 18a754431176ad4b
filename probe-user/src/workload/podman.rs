//! podman's names on disk: containers/storage's `containers.json` (every container's
//! names, for podman and CRI-O alike) and libpod's state database (container name,
//! pod, infra or not; pod names).
//!
//! - `<storage>/<driver>-containers/containers.json`: containers/storage
//!   `containers.go` (`[{"id", "names", ...}]`); this machine's podman 4.3.1 writes
//!   `/var/lib/containers/storage/overlay-containers/containers.json`.
//! - `/var/lib/containers/storage/libpod/bolt_state.db`: podman v4.3.1
//!   `libpod/boltdb_state_internal.go` (buckets `ctr` and `pod`, one bucket per id
//!   holding a `config` JSON), `libpod/container_config.go` (`"name"`, `"pod"`,
//!   `"pause"` for the infra container) and `libpod/pod.go` (`"name"`).
//!   podman 5 on a fresh host keeps the same state in SQLite instead; that is not read,
//!   and its pods then stay unnamed (their containers are still named by storage).

use std::{collections::HashMap, fs, path::Path};

use serde::Deserialize;

use super::{
    bolt::{Db, Value},
    bounded,
};

const STORAGE: &str = "var/lib/containers/storage";
const STORAGE_LIMIT: u64 = 64 << 20;
const STATE_LIMIT: u64 = 256 << 20;

#[derive(Deserialize)]
struct StorageContainer {
    id: String,
    #[serde(default)]
    names: Vec<String>,
}

/// Container id to first name, from every `*-containers/containers.json` of the
/// storage under `root`.
pub fn storage_names(root: &Path) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let Ok(entries) = fs::read_dir(root.join(STORAGE)) else {
        return out;
    };
    for entry in entries.flatten().take(64) {
        if !entry.file_name().to_string_lossy().ends_with("-containers") {
            continue;
        }
        let Ok(bytes) = bounded::read_file(&entry.path().join("containers.json"), STORAGE_LIMIT)
        else {
            continue;
        };
        let Ok(list) = serde_json::from_slice::<Vec<StorageContainer>>(&bytes) else {
            continue;
        };
        for c in list {
            if let Some(name) = c.names.into_iter().find(|n| !n.is_empty()) {
                out.insert(c.id, name);
            }
        }
    }
    out
}

/// One container in libpod's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LibpodContainer {
    pub name: String,
    pub pod: Option<String>,
    /// The pod's infra (pause) container.
    pub infra: bool,
}

/// Containers and pods in libpod's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LibpodState {
    pub containers: HashMap<String, LibpodContainer>,
    /// Pod id to pod name.
    pub pods: HashMap<String, String>,
}

#[derive(Deserialize)]
struct CtrConfig {
    id: String,
    name: String,
    #[serde(default)]
    pod: Option<String>,
    #[serde(default)]
    pause: bool,
}

#[derive(Deserialize)]
struct PodConfig {
    id: String,
    name: String,
}

/// Reads libpod's bolt state under `root`; empty when there is none or it cannot be
/// read.
pub fn libpod_state(root: &Path) -> LibpodState {
    bounded::read_file(
        &root.join(STORAGE).join("libpod/bolt_state.db"),
        STATE_LIMIT,
    )
    .ok()
    .map(|bytes| parse_libpod_state(&bytes))
    .unwrap_or_default()
}

/// Parses libpod's bolt state from the database file's bytes.
pub fn parse_libpod_state(bytes: &[u8]) -> LibpodState {
    let mut state = LibpodState::default();
    let Ok(db) = Db::open(bytes) else {
        return state;
    };
    for config in configs(&db, b"ctr") {
        if let Ok(c) = serde_json::from_slice::<CtrConfig>(config) {
            let pod = c.pod.filter(|p| !p.is_empty());
            state.containers.insert(
                c.id,
                LibpodContainer {
                    name: c.name,
                    pod,
                    infra: c.pause,
                },
            );
        }
    }
    for config in configs(&db, b"pod") {
        if let Ok(p) = serde_json::from_slice::<PodConfig>(config) {
            state.pods.insert(p.id, p.name);
        }
    }
    state
}

/// The `config` value of every per-id bucket in the top-level bucket `name`.
fn configs<'a>(db: &Db<'a>, name: &[u8]) -> Vec<&'a [u8]> {
    let Ok(Some(top)) = db.root().and_then(|root| db.bucket(root, name)) else {
        return Vec::new();
    };
    let Ok(entries) = db.entries(top) else {
        return Vec::new();
    };
    entries
        .into_iter()
        .filter_map(|(_, v)| match v {
            Value::Bucket(b) => match db.get(b, b"config") {
                Ok(Some(Value::Bytes(config))) => Some(config),
                _ => None,
            },
            Value::Bytes(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_names_read_the_first_name() {
        let root = std::env::temp_dir().join(format!("tcw-podman-{}", std::process::id()));
        let dir = root.join(STORAGE).join("overlay-containers");
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("containers.json"),
            r#"[{"id":"aa","names":["web"],"image":"x"},{"id":"bb","names":[]},{"id":"cc","names":["","db"]}]"#,
        )
        .unwrap();
        let names = storage_names(&root);
        assert_eq!(names.get("aa").map(String::as_str), Some("web"));
        assert_eq!(names.get("bb"), None);
        assert_eq!(names.get("cc").map(String::as_str), Some("db"));
        fs::write(dir.join("containers.json"), "[{").unwrap();
        assert!(storage_names(&root).is_empty());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn garbage_state_is_empty() {
        assert_eq!(parse_libpod_state(b"not bolt"), LibpodState::default());
        // A valid database without podman's buckets.
        assert_eq!(
            parse_libpod_state(&super::super::bolt::tests::sample()),
            LibpodState::default()
        );
    }
}
