//! `--pod` and `--container`: which workloads a recording or a replay keeps.

use super::workload::Workload;

/// Container ids given as a prefix must have at least this many hex digits (podman
/// and docker print 12).
pub const MIN_ID_PREFIX: usize = 4;
/// Longer names are not names (Kubernetes allows 253 characters).
const MAX_NAME: usize = 253;

/// `--pod NAMESPACE/NAME`, or `--pod NAME` for pods in any namespace (and podman's
/// pods, which have none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodSelector {
    pub namespace: Option<String>,
    pub name: String,
}

impl PodSelector {
    pub fn parse(text: &str) -> Result<Self, String> {
        let valid = |what: &str| !what.is_empty() && what.len() <= MAX_NAME && !what.contains('/');
        let (namespace, name) = match text.split_once('/') {
            Some((namespace, name)) => (Some(namespace), name),
            None => (None, text),
        };
        if !valid(name) || namespace.is_some_and(|ns| !valid(ns)) {
            return Err(format!("`{text}` is not NAMESPACE/NAME or NAME"));
        }
        Ok(Self {
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        })
    }

    fn matches(&self, w: &Workload) -> bool {
        let named = |n: &Option<crate::model::workload::Named>, want: &str| {
            n.as_ref().is_some_and(|n| n.value == want)
        };
        named(&w.pod, &self.name)
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| named(&w.namespace, ns))
    }
}

impl std::fmt::Display for PodSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A set of `--pod` and `--container` selectors; a workload passes when any selects
/// it. Empty selects everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkloadFilter {
    pub pods: Vec<PodSelector>,
    /// Container names, or id prefixes of at least [`MIN_ID_PREFIX`] hex digits.
    pub containers: Vec<String>,
}

impl WorkloadFilter {
    /// Parses `--pod` and `--container` values.
    pub fn parse(pods: &[String], containers: &[String]) -> Result<Self, String> {
        let pods = pods
            .iter()
            .map(|p| PodSelector::parse(p).map_err(|e| format!("--pod: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        for c in containers {
            if c.is_empty() || c.len() > MAX_NAME || c.contains('/') {
                return Err(format!("--container: `{c}` is not a container name or id"));
            }
        }
        Ok(Self {
            pods,
            containers: containers.to_vec(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty() && self.containers.is_empty()
    }

    /// Whether a workload is selected (a pod-level workload only by `--pod`).
    pub fn selects(&self, w: &Workload) -> bool {
        self.pods.iter().any(|p| p.matches(w))
            || self.containers.iter().any(|c| {
                w.container.as_ref().is_some_and(|n| n.value == *c)
                    || (c.len() >= MIN_ID_PREFIX
                        && c.bytes().all(|b| b.is_ascii_hexdigit())
                        && w.id
                            .as_deref()
                            .is_some_and(|id| id.starts_with(&c.to_ascii_lowercase())))
            })
    }

    /// Whether either end passes: always with an empty filter.
    pub fn keeps(&self, ends: [Option<&Workload>; 2]) -> bool {
        self.is_empty() || ends.into_iter().flatten().any(|w| self.selects(w))
    }

    /// The selectors as given, for the trace header.
    pub fn describe(&self) -> (Vec<String>, Vec<String>) {
        (
            self.pods.iter().map(ToString::to_string).collect(),
            self.containers.clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::workload::{Named, Source};

    fn workload(ns: Option<&str>, pod: Option<&str>, container: &str, id: &str) -> Workload {
        let named = |v: &str| Named::new(v, Source::OciConfig);
        Workload {
            id: Some(id.to_owned()),
            container: Some(named(container)),
            pod: pod.map(named),
            namespace: ns.map(named),
            ..Workload::default()
        }
    }

    #[test]
    fn pods_match_by_namespace_and_name_or_name_alone() {
        let zk = workload(Some("infra"), Some("zk-0"), "zookeeper", "abcdef12");
        let f = WorkloadFilter::parse(&["infra/zk-0".into()], &[]).unwrap();
        assert!(f.selects(&zk));
        assert!(!f.selects(&workload(Some("shop"), Some("zk-0"), "z", "1")));
        let any_ns = WorkloadFilter::parse(&["zk-0".into()], &[]).unwrap();
        assert!(any_ns.selects(&zk));
        assert!(
            any_ns.selects(&workload(None, Some("zk-0"), "z", "1")),
            "podman pods"
        );
        assert!(
            !any_ns.selects(&workload(None, None, "zk-0", "1")),
            "a container"
        );
        for bad in ["", "a/b/c", "/x", "x/"] {
            assert!(PodSelector::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn containers_match_by_name_or_id_prefix() {
        let c = workload(None, None, "web", "abcdef0123");
        let by = |sel: &str| WorkloadFilter::parse(&[], &[sel.to_owned()]).unwrap();
        assert!(by("web").selects(&c));
        assert!(by("ABCDEF").selects(&c));
        assert!(by("abcd").selects(&c));
        assert!(!by("abc").selects(&c), "too short a prefix");
        assert!(!by("bcde").selects(&c));
        assert!(WorkloadFilter::parse(&[], &["a/b".into()]).is_err());
    }

    #[test]
    fn an_empty_filter_keeps_everything_and_one_end_is_enough() {
        assert!(WorkloadFilter::default().keeps([None, None]));
        let f = WorkloadFilter::parse(&[], &["web".into()]).unwrap();
        let c = workload(None, None, "web", "abcd");
        assert!(f.keeps([None, Some(&c)]));
        assert!(!f.keeps([None, None]));
        assert_eq!(f.describe(), (vec![], vec!["web".to_owned()]));
    }
}
