//! `record --pod` and `--container`: which socket scopes (network namespace and
//! cgroup) belong to the selected workloads. Decided once per new scope from the
//! node's names (a new container is a new scope), cached, and decided again while the
//! answer can still improve. The kernel's `--netns` filter is fixed when the program
//! loads; this one runs in the recorder.

use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use crate::{
    model::{Identity, Scope, WorkloadFilter, WorkloadKey},
    workload::resolver::Resolver,
};

/// Scopes remembered at most; beyond, the decisions start over.
const MAX_SCOPES: usize = 65_536;
/// A scope that named no workload yet (its container's names may be written just
/// after it starts) is decided again after this long.
const REDECIDE_AFTER: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug)]
struct Decision {
    keep: bool,
    /// `None`: final.
    redecide_at: Option<Instant>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Selection {
    filter: WorkloadFilter,
    decisions: FxHashMap<Scope, Decision>,
}

impl Selection {
    pub fn new(filter: WorkloadFilter) -> Self {
        Self {
            filter,
            decisions: FxHashMap::default(),
        }
    }

    /// Whether the sockets of `scope` are recorded.
    pub fn keeps(&mut self, scope: Scope, resolver: &mut Resolver) -> bool {
        if let Some(decision) = self.decisions.get(&scope)
            && decision.redecide_at.is_none_or(|at| Instant::now() < at)
        {
            return decision.keep;
        }
        let redeciding = self.decisions.contains_key(&scope);
        if redeciding {
            resolver.forget(WorkloadKey::Cgroup(scope.cgroup));
            resolver.forget(WorkloadKey::Netns(scope.netns));
        }
        let identity = scope_identity(scope, resolver);
        let keep = identity.workload().is_some_and(|w| self.filter.selects(w));
        let named = identity
            .workload()
            .is_some_and(|w| w.container.is_some() || w.pod.is_some());
        if self.decisions.len() >= MAX_SCOPES {
            self.decisions.clear();
        }
        self.decisions.insert(
            scope,
            Decision {
                keep,
                redecide_at: (!keep && !named && identity != Identity::Host)
                    .then(|| Instant::now() + REDECIDE_AFTER),
            },
        );
        keep
    }

    /// Whether anything on the node is selected now (at the start: a selector that
    /// matches nothing deserves a warning).
    pub fn matches_any_cgroup(&self, resolver: &mut Resolver) -> bool {
        resolver.cgroup_ids().into_iter().any(|id| {
            resolver
                .cgroup(id)
                .workload()
                .is_some_and(|w| self.filter.selects(w))
        })
    }
}

/// What a scope is: its cgroup's workload, else its namespace's (a pod's namespace
/// names the pod; on hybrid hosts a container's v2 cgroup may be the root).
fn scope_identity(scope: Scope, resolver: &mut Resolver) -> Identity {
    let by_cgroup = if scope.cgroup == 0 {
        Identity::Unknown
    } else {
        resolver.cgroup(scope.cgroup)
    };
    if by_cgroup.workload().is_some() || scope.netns == 0 {
        return by_cgroup;
    }
    match resolver.netns(scope.netns) {
        workload @ Identity::Workload(_) => workload,
        _ => by_cgroup,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_nothing_names_are_left_out_and_decided_again_later() {
        let mut resolver = Resolver::new("/nonexistent-tcpchurn-root");
        let filter = WorkloadFilter::parse(&["shop/web".into()], &[]).unwrap();
        let mut selection = Selection::new(filter);
        let scope = Scope::new(7, 8);
        assert!(!selection.keeps(scope, &mut resolver));
        let decision = selection.decisions[&scope];
        assert!(decision.redecide_at.is_some(), "unknown: asked again later");
        assert!(!selection.matches_any_cgroup(&mut resolver));
    }
}
