//! Checks made before any kernel work: privileges and the output path. Each failure
//! is one sentence saying what is wrong and what to do.

use std::{
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(
        "tcpchurn record needs root, or CAP_BPF and CAP_PERFMON (missing: {missing}); run it with \
         sudo, or as a privileged container"
    )]
    Privileges { missing: String },
    #[error("{path}: the directory {dir} does not exist")]
    NoDirectory { path: PathBuf, dir: PathBuf },
    #[error("{0}: already exists; pass --force to overwrite it")]
    Exists(PathBuf),
    #[error("{0}: is a symbolic link; refusing to write a trace through it")]
    Symlink(PathBuf),
    #[error("{0}: is not a regular file")]
    NotAFile(PathBuf),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("tcpchurn needs Linux 5.8 or newer (for the BPF ring buffer); this kernel is {0}")]
    KernelTooOld(String),
}

/// `(major, minor)` from a kernel release such as `6.18.44-fc-v595` or `5.4.0-150-generic`.
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Refuses kernels without the BPF ring buffer (5.8). An unparsable release is let
/// through: loading then fails with the kernel's own error.
pub fn check_kernel(release: &str) -> Result<(), PreflightError> {
    match kernel_version(release) {
        Some(version) if version < (5, 8) => Err(PreflightError::KernelTooOld(release.to_owned())),
        _ => Ok(()),
    }
}

/// The effective capability set from the text of `/proc/self/status`.
pub fn effective_capabilities(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

/// What is missing to load and attach tracepoint programs, if anything. Since 5.8,
/// CAP_BPF + CAP_PERFMON are enough; before, CAP_SYS_ADMIN was required.
pub fn missing_privileges(cap_eff: u64) -> Option<String> {
    let has = |cap: u32| cap_eff & (1u64 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return None;
    }
    let missing: Vec<&str> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .into_iter()
        .filter(|(cap, _)| !has(*cap))
        .map(|(_, name)| name)
        .collect();
    Some(missing.join(", "))
}

pub fn check_privileges() -> Result<(), PreflightError> {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    match effective_capabilities(&status).and_then(missing_privileges) {
        None if effective_capabilities(&status).is_some() => Ok(()),
        None => Err(PreflightError::Privileges {
            missing: "unknown (no CapEff in /proc/self/status)".into(),
        }),
        Some(missing) => Err(PreflightError::Privileges { missing }),
    }
}

/// Checks that a trace can be created at `path`, without creating it.
pub fn check_output(path: &Path, force: bool) -> Result<(), PreflightError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(PreflightError::NoDirectory {
            path: path.to_path_buf(),
            dir,
        });
    }
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            Err(PreflightError::Symlink(path.to_path_buf()))
        }
        Ok(meta) if !meta.is_file() => Err(PreflightError::NotAFile(path.to_path_buf())),
        Ok(_) if !force => Err(PreflightError::Exists(path.to_path_buf())),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Probe writability now rather than after attaching.
            let probe = dir.join(format!(".tcpchurn-probe-{}", std::process::id()));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&probe)
            {
                Ok(_) => {
                    let _removed = fs::remove_file(&probe);
                    Ok(())
                }
                Err(source) => Err(PreflightError::Io {
                    path: path.to_path_buf(),
                    source,
                }),
            }
        }
        Err(source) => Err(PreflightError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Creates a trace file: mode 0600 (traces hold addresses and process names), never
/// through a symlink, and never over an existing file unless `force`.
pub fn create_output(path: &Path, force: bool) -> Result<File, PreflightError> {
    check_output(path, force)?;
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
    let file = options
        .open(path)
        .map_err(|source| match source.raw_os_error() {
            Some(libc::ELOOP) => PreflightError::Symlink(path.to_path_buf()),
            Some(libc::EEXIST) => PreflightError::Exists(path.to_path_buf()),
            _ => PreflightError::Io {
                path: path.to_path_buf(),
                source,
            },
        })?;
    // An existing file overwritten with --force keeps its old mode otherwise.
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(|source| PreflightError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions() {
        assert_eq!(kernel_version("6.18.44-fc-v595"), Some((6, 18)));
        assert_eq!(kernel_version("5.4.0-150-generic"), Some((5, 4)));
        assert_eq!(kernel_version("garbage"), None);
        assert!(check_kernel("5.8.0").is_ok());
        assert!(check_kernel("6.1.0-28-amd64").is_ok());
        assert!(check_kernel("weird").is_ok());
        let err = check_kernel("5.4.0-150-generic").unwrap_err();
        assert_eq!(
            err.to_string(),
            "tcpchurn needs Linux 5.8 or newer (for the BPF ring buffer); this kernel is 5.4.0-150-generic"
        );
    }

    #[test]
    fn parses_capabilities() {
        let status = "Name:\tcat\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(effective_capabilities(status), Some(0x1ff_ffff_ffff));
        assert_eq!(missing_privileges(0x1ff_ffff_ffff), None);
        assert_eq!(missing_privileges(0), Some("CAP_BPF, CAP_PERFMON".into()));
        assert_eq!(missing_privileges(1 << CAP_BPF), Some("CAP_PERFMON".into()));
        assert_eq!(
            missing_privileges((1 << CAP_BPF) | (1 << CAP_PERFMON)),
            None
        );
        assert_eq!(missing_privileges(1 << CAP_SYS_ADMIN), None);
        assert_eq!(effective_capabilities("Name: x\n"), None);
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tcpchurn-preflight-{name}-{}", std::process::id()));
        let _fresh = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn output_files_are_private_and_not_clobbered() {
        let dir = temp_dir("create");
        let path = dir.join("a.trace");
        drop(create_output(&path, false).unwrap());
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(matches!(
            create_output(&path, false),
            Err(PreflightError::Exists(_))
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        drop(create_output(&path, true).unwrap());
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_symlinks_and_missing_directories() {
        let dir = temp_dir("symlink");
        let target = dir.join("elsewhere");
        let link = dir.join("planted.trace");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(
            create_output(&link, false),
            Err(PreflightError::Symlink(_))
        ));
        assert!(matches!(
            create_output(&link, true),
            Err(PreflightError::Symlink(_))
        ));
        assert!(!target.exists());
        let err = check_output(&dir.join("nope/x.trace"), false).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert!(matches!(
            check_output(&dir, true),
            Err(PreflightError::NotAFile(_))
        ));
        fs::remove_dir_all(&dir).unwrap();
    }
}
