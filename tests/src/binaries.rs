//! The programs under test.

use std::path::{Path, PathBuf};

use tcpchurn_harness::workspace;

/// The `tcpchurn` binary under test (`TCPCHURN_BIN`, set by `cargo xtask test`).
pub fn tcpchurn_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("TCPCHURN_BIN") {
        return PathBuf::from(path);
    }
    let root = workspace::root();
    ["target/release/tcpchurn", "target/debug/tcpchurn"]
        .iter()
        .map(|p| root.join(p))
        .find(|p| p.exists())
        .expect("tcpchurn is not built: run the tests with `cargo xtask test`")
}

/// The peer program, built by cargo next to the test executables
/// (`target/<profile>/tcpchurn-peer`, tests in `target/<profile>/deps/`).
pub fn peer_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("locating the test executable");
    exe.parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("tcpchurn-peer"))
        .filter(|p| p.exists())
        .expect("tcpchurn-peer is not built next to the tests; run them with `cargo xtask test`")
}
