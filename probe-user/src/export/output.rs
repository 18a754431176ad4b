//! The output directory and its files: created for this user only (the tables name
//! processes and addresses), never through a symbolic link, never over an existing
//! file unless asked.

use std::{
    fs::{self, DirBuilder, File},
    io,
    os::unix::fs::DirBuilderExt as _,
    path::{Path, PathBuf},
};

use anyhow::Context as _;

use crate::private_file;

/// Creates `dir` and its missing parents (mode 0700) unless it is already a directory.
pub fn directory(dir: &Path) -> anyhow::Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => anyhow::bail!("{}: is not a directory", dir.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| dir.display().to_string()),
        Err(e) => Err(e).with_context(|| dir.display().to_string()),
    }
}

/// The path of a table in `dir`.
pub fn table_path(dir: &Path, table: &str, extension: &str) -> PathBuf {
    dir.join(format!("{table}.{extension}"))
}

/// Creates a table's file: mode 0600, not through a symlink, not over an existing file
/// unless `force`.
pub fn create(path: &Path, force: bool) -> anyhow::Result<File> {
    private_file::create(path, force).map_err(|e| match e.raw_os_error() {
        Some(libc::EEXIST) => anyhow::anyhow!(
            "{}: already exists; pass --force to overwrite it",
            path.display()
        ),
        Some(libc::ELOOP) => anyhow::anyhow!(
            "{}: is a symbolic link; refusing to write through it",
            path.display()
        ),
        _ => anyhow::anyhow!("{}: {e}", path.display()),
    })
}
