//! Where the workspace and its built programs are.

use std::path::PathBuf;

/// The workspace root (this crate lives one level below it).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// A program of the release build (`target/release/NAME`).
pub fn release_bin(name: &str) -> PathBuf {
    root().join("target/release").join(name)
}
