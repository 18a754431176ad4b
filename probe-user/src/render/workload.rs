//! Workloads as both formats show them: the JSON container object, and the text label
//! next to an address.

use serde::Serialize;

use crate::{model::Workload, render::text::clean};

/// `{namespace, pod, container, id, runtime}`, each null when unknown; the object
/// itself is null for the host and for unknown workloads.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct JsonContainer<'a> {
    pub namespace: Option<&'a str>,
    pub pod: Option<&'a str>,
    pub container: Option<&'a str>,
    pub id: Option<&'a str>,
    pub runtime: Option<&'static str>,
}

impl<'a> JsonContainer<'a> {
    pub fn of(w: &'a Workload) -> Self {
        Self {
            namespace: w.namespace.as_ref().map(|n| n.value.as_str()),
            pod: w.pod.as_ref().map(|n| n.value.as_str()),
            container: w.container.as_ref().map(|n| n.value.as_str()),
            id: w.id.as_deref(),
            runtime: w.runtime.map(|r| r.name()),
        }
    }

    pub fn of_option(w: Option<&'a Workload>) -> Option<Self> {
        w.map(Self::of)
    }
}

/// `namespace/pod/container` (or what is known of it) for text: names come from the
/// trace, so control characters are escaped ([`clean`]), never sent to the terminal.
pub fn text_label(w: &Workload) -> String {
    clean(&w.label()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Named, Runtime, Source};

    #[test]
    fn the_object_has_the_documented_keys_and_nulls() {
        let w = Workload {
            runtime: Some(Runtime::Podman),
            id: Some("abc".into()),
            container: Some(Named::new("web", Source::PodmanState)),
            ..Workload::default()
        };
        let json = serde_json::to_value(JsonContainer::of(&w)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"namespace": null, "pod": null, "container": "web", "id": "abc", "runtime": "podman"})
        );
        assert_eq!(JsonContainer::of_option(None), None);
    }

    #[test]
    fn text_labels_never_carry_control_characters() {
        let w = Workload {
            container: Some(Named::new("evil\x1b[31m\nname", Source::PodmanState)),
            ..Workload::default()
        };
        assert_eq!(text_label(&w), "evil\\x1b[31m\\x0aname");
    }
}
