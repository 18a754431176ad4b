//! Whether a privileged test may run.

use tcpchurn_harness::runner::{in_ci, is_root};

/// True when the test can run. Without root it prints why it skips; under `CI=true`
/// it panics instead, because a privileged test that does not run proves nothing.
pub fn require_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(
        !in_ci(),
        "{test}: needs root, and CI=true: a skipped privileged test is a failure"
    );
    eprintln!(
        "SKIPPED {test}: needs root (eBPF and network namespaces); run `cargo xtask test` as root"
    );
    false
}
