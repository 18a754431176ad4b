//! Files only this user can read: traces and exported tables name processes and
//! addresses.

use std::{
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::Path,
};

/// Creates `path` for writing with mode 0600, never through a symbolic link (the error
/// is `ELOOP`), and never over an existing file (`EEXIST`) unless `replace`; a replaced
/// file gets mode 0600 too.
pub fn create(path: &Path, replace: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    if replace {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let file = options.open(path)?;
    // An existing file keeps its old mode otherwise.
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    Ok(file)
}
