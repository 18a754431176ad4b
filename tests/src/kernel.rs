//! What the kernel under test gives: the same tests pass on every kernel of the matrix
//! (`cargo xtask kernels`, docs/kernels.md).

use std::path::{Path, PathBuf};

/// Kernel BTF for the recorders the tests start (`TCPCHURN_TEST_BTF`): set where the
/// kernel's own BTF is hidden (`cargo xtask kernels` does that in one guest), as a
/// kernel without BTF would be, with a copy given as a BTFHub file would be.
pub fn test_btf() -> Option<PathBuf> {
    std::env::var_os("TCPCHURN_TEST_BTF").map(PathBuf::from)
}

/// Whether the recorders the tests start use the classic state-change tracepoint
/// (`TCPCHURN_TEST_NO_TP_BTF` set and not empty or `0`): the suites that set up their own
/// recordings then run on the path a kernel without BTF takes, with the same assertions.
pub fn test_classic_path() -> bool {
    std::env::var("TCPCHURN_TEST_NO_TP_BTF").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Whether the kernel exposes its own BTF: the `tp_btf` programs need it.
pub fn kernel_has_btf() -> bool {
    Path::new("/sys/kernel/btf/vmlinux").exists()
}
