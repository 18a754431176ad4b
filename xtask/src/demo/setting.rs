//! What every demo incident shares: its addresses, where it writes, and paths as the
//! user can type them.

use std::path::{Path, PathBuf};

use tcpchurn_harness::Addresses;

/// The demo's addresses: the server host is 10.79.0.1, the node 10.79.0.2.
const SUBNET: u8 = 79;

pub fn addresses() -> Addresses {
    Addresses::subnet(SUBNET)
}

/// Where a demo writes: its trace, and the logs of the processes it ran.
pub struct Output {
    pub trace: PathBuf,
    pub logs: PathBuf,
}

/// A path as the user can type it: relative to the current directory when inside it.
pub fn shown(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}
