//! A workload as five columns, the container object of the JSON printers flattened:
//! `…pod_namespace`, `…pod`, `…container`, `…container_id`, `…container_runtime`, each
//! null when unknown (all null for the host and for unknown workloads).

use std::sync::Arc;

use arrow_array::{ArrayRef, builder::StringBuilder};

use crate::{
    model::Workload,
    render::{parquet::Names, workload::JsonContainer},
};

/// See the module documentation.
#[derive(Default)]
pub struct WorkloadColumns {
    namespace: Names,
    pod: Names,
    container: Names,
    id: StringBuilder,
    runtime: Names,
}

impl WorkloadColumns {
    pub fn push(&mut self, workload: Option<&Workload>) {
        let w = JsonContainer::of_option(workload);
        let w = w.as_ref();
        self.namespace.append_option(w.and_then(|w| w.namespace));
        self.pod.append_option(w.and_then(|w| w.pod));
        self.container.append_option(w.and_then(|w| w.container));
        self.id.append_option(w.and_then(|w| w.id));
        self.runtime.append_option(w.and_then(|w| w.runtime));
    }

    /// Its arrays, in the order of the module documentation.
    pub fn take(&mut self) -> [ArrayRef; 5] {
        [
            Arc::new(self.namespace.finish()),
            Arc::new(self.pod.finish()),
            Arc::new(self.container.finish()),
            Arc::new(self.id.finish()),
            Arc::new(self.runtime.finish()),
        ]
    }
}
