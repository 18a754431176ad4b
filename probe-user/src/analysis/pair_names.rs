//! A pair's workload names: one side's pod (and workload) when every connection of the
//! pair agrees on it, else none.

use std::sync::Arc;

use crate::model::Workload;

/// The same value for every connection so far, or not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Agreement {
    /// No connection yet.
    #[default]
    Empty,
    /// Every connection said this (`None`: every one was unknown).
    Same(Option<Arc<str>>),
    Mixed,
}

impl Agreement {
    fn add(&mut self, value: Option<String>) {
        *self = match std::mem::take(self) {
            Self::Empty => Self::Same(value.map(Arc::from)),
            Self::Same(same) if same.as_deref() == value.as_deref() => Self::Same(same),
            Self::Same(_) | Self::Mixed => Self::Mixed,
        };
    }

    fn agreed(&self) -> Option<&str> {
        match self {
            Self::Same(Some(value)) => Some(value),
            Self::Empty | Self::Same(None) | Self::Mixed => None,
        }
    }
}

/// One side of a pair: its pod and its workload label, when all connections agree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SideNames {
    pod: Agreement,
    label: Agreement,
}

impl SideNames {
    /// One connection's workload on this side (`None`: unknown, or the host).
    pub fn add(&mut self, workload: Option<&Workload>) {
        self.pod.add(workload.and_then(Workload::pod_label));
        self.label.add(workload.map(Workload::label));
    }

    /// `namespace/pod` (or a podman pod's name) when every connection is in it.
    pub fn pod(&self) -> Option<&str> {
        self.pod.agreed()
    }

    /// What to call this side: the workload every connection agrees on
    /// (`namespace/pod/container`), else their common pod.
    pub fn label(&self) -> Option<&str> {
        self.label.agreed().or_else(|| self.pod())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Named, Source};

    fn container(pod: &str, name: &str) -> Workload {
        let named = |v: &str| Some(Named::new(v, Source::OciConfig));
        Workload {
            container: named(name),
            pod: named(pod),
            namespace: named("shop"),
            ..Workload::default()
        }
    }

    #[test]
    fn names_hold_only_while_every_connection_agrees() {
        let mut side = SideNames::default();
        assert_eq!((side.pod(), side.label()), (None, None));
        side.add(Some(&container("web-0", "app")));
        side.add(Some(&container("web-0", "app")));
        assert_eq!(side.pod(), Some("shop/web-0"));
        assert_eq!(side.label(), Some("shop/web-0/app"));
        // Another container of the same pod: the pod still holds.
        side.add(Some(&container("web-0", "sidecar")));
        assert_eq!(side.label(), Some("shop/web-0"));
        // A connection whose pod is unknown: nothing holds.
        side.add(None);
        assert_eq!((side.pod(), side.label()), (None, None));
    }

    #[test]
    fn all_unknown_is_unknown() {
        let mut side = SideNames::default();
        side.add(None);
        side.add(None);
        assert_eq!((side.pod(), side.label()), (None, None));
    }
}
