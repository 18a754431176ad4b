//! The output directory and its files: created for this user only (the tables name
//! processes and addresses), never through a symbolic link, never over an existing
//! file unless asked.

use std::{
    fs::{self, DirBuilder, File, OpenOptions},
    io,
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use anyhow::Context as _;

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
    let mut options = OpenOptions::new();
    options
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let file = options.open(path).map_err(|e| match e.raw_os_error() {
        Some(libc::EEXIST) => anyhow::anyhow!(
            "{}: already exists; pass --force to overwrite it",
            path.display()
        ),
        Some(libc::ELOOP) => anyhow::anyhow!(
            "{}: is a symbolic link; refusing to write through it",
            path.display()
        ),
        _ => anyhow::anyhow!("{}: {e}", path.display()),
    })?;
    // A file overwritten with --force keeps its old mode otherwise.
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .with_context(|| path.display().to_string())?;
    Ok(file)
}
