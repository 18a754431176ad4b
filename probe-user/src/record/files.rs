//! The files a recording creates, and the only place that creates them. Every file is
//! new: created exclusively (never an existing file, never through a symbolic link,
//! mode 0600), in the directory opened when the recording was checked. Nothing else is
//! ever created there (docs/files.md). The one file written that is not created is
//! `/dev/null` (`-o /dev/null`: the recording keeps no trace, for `--metrics`).

use std::{
    ffi::{CString, OsStr, OsString},
    fmt, fs, io,
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::{ffi::OsStrExt as _, fs::OpenOptionsExt as _},
    },
    path::{Path, PathBuf},
};

/// `-o /dev/null`: no trace is kept (a recorder that only serves `--metrics`); the
/// bytes are still produced, for the live views.
pub const DISCARD: &str = "/dev/null";

/// Whether `path` keeps nothing.
pub fn discards(path: &Path) -> bool {
    path == Path::new(DISCARD)
}

/// How many taken names rotation steps over before it gives up.
const MAX_TAKEN: u32 = 64;

/// Why a trace file cannot be created; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{path}: the directory {dir} does not exist")]
    NoDirectory { path: PathBuf, dir: PathBuf },
    #[error("{0}: already exists; pass --force to replace it")]
    Exists(PathBuf),
    #[error(
        "{path}: {} of an earlier recording {} ({}); pass --force to remove {}, or choose \
         another name",
        if parts.len() == 1 { "a rotated file" } else { "rotated files" },
        if parts.len() == 1 { "exists" } else { "exist" },
        Names(parts),
        if parts.len() == 1 { "it" } else { "them" },
    )]
    PartsExist { path: PathBuf, parts: Vec<PathBuf> },
    #[error("{0}: is a symbolic link; refusing to write a trace through it")]
    Symlink(PathBuf),
    #[error("{0}: is not a regular file")]
    NotAFile(PathBuf),
    #[error("{first} and the next {MAX_TAKEN} names are all taken")]
    NoFreeName { first: PathBuf },
    // The message already says what the OS said: the error is not also a source, or it
    // would be printed twice.
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: io::Error },
}

/// Up to three names, then how many more.
struct Names<'a>(&'a [PathBuf]);

impl fmt::Display for Names<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, path) in self.0.iter().take(3).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", path.display())?;
        }
        if self.0.len() > 3 {
            write!(f, " and {} more", self.0.len() - 3)?;
        }
        Ok(())
    }
}

/// A file of the recording, just created.
#[derive(Debug)]
pub struct NewPart {
    /// Its suffix: `FILE.index`.
    pub index: u32,
    pub path: PathBuf,
    pub file: fs::File,
    /// Names that were taken (by files this recording did not create) and skipped.
    pub taken: Vec<PathBuf>,
}

/// The directory a recording writes into, held open from the start: the files go where
/// the recording was checked even if the path is renamed or replaced meanwhile.
#[derive(Debug)]
pub struct OutputDir {
    dir: OwnedFd,
    dir_path: PathBuf,
    /// The first file's path as given, and its name; parts are `name.1`, `name.2`...
    base: PathBuf,
    name: OsString,
    /// `--force`: files of an earlier recording are replaced.
    force: bool,
    /// `-o /dev/null`: nothing is created.
    discard: bool,
}

fn c_name(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn check_status(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl OutputDir {
    /// Checks, creating nothing, that a recording can start at `path`: its directory
    /// exists and can be written to, `path` is not a symbolic link or anything but a
    /// regular file, and unless `force`, neither `path` nor (when `rotating`) any
    /// `path.N` exists.
    pub fn check(path: &Path, force: bool, rotating: bool) -> Result<Self, OutputError> {
        let io_error = |error| OutputError::Io {
            path: path.to_path_buf(),
            error,
        };
        if discards(path) {
            return Self::discard().map_err(io_error);
        }
        let name = path
            .file_name()
            .filter(|_| !path.as_os_str().as_bytes().ends_with(b"/"))
            .ok_or_else(|| OutputError::NotAFile(path.to_path_buf()))?
            .to_owned();
        let dir_path = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let c_dir = c_name(dir_path.as_os_str()).map_err(io_error)?;
        // SAFETY: a valid C string; the fd returned is owned below.
        let fd = unsafe {
            libc::open(
                c_dir.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            let error = io::Error::last_os_error();
            return Err(match error.raw_os_error() {
                Some(libc::ENOENT | libc::ENOTDIR) => OutputError::NoDirectory {
                    path: path.to_path_buf(),
                    dir: dir_path,
                },
                _ => io_error(error),
            });
        }
        // SAFETY: `fd` was just opened and is owned by nobody else.
        let dir = unsafe { OwnedFd::from_raw_fd(fd) };
        let output = Self {
            dir,
            dir_path,
            base: path.to_path_buf(),
            name,
            force,
            discard: false,
        };
        match output.existing(&output.name) {
            Ok(true) if !force => return Err(OutputError::Exists(path.to_path_buf())),
            Ok(_) => {}
            Err(error) => return Err(classify(path, error)),
        }
        if rotating && !force {
            let parts = output.existing_parts();
            if !parts.is_empty() {
                return Err(OutputError::PartsExist {
                    path: path.to_path_buf(),
                    parts: parts.iter().map(|&i| output.path(i)).collect(),
                });
            }
        }
        // Whether the directory takes new files (a read-only file system says so now),
        // without creating one.
        // SAFETY: a valid directory fd and C string.
        check_status(unsafe {
            libc::faccessat(
                output.dir.as_raw_fd(),
                c".".as_ptr(),
                libc::W_OK | libc::X_OK,
                libc::AT_EACCESS,
            )
        })
        .map_err(io_error)?;
        Ok(output)
    }

    /// `-o /dev/null`: its directory held like any other, nothing ever created there.
    fn discard() -> io::Result<Self> {
        let dir = fs::File::options()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open("/dev")?;
        Ok(Self {
            dir: OwnedFd::from(dir),
            dir_path: PathBuf::from("/dev"),
            base: PathBuf::from(DISCARD),
            name: OsString::from("null"),
            force: false,
            discard: true,
        })
    }

    /// The path of file `index`: `FILE` for 0, `FILE.index` after.
    pub fn path(&self, index: u32) -> PathBuf {
        let mut path = self.base.clone().into_os_string();
        if index > 0 {
            path.push(format!(".{index}"));
        }
        PathBuf::from(path)
    }

    /// The directory the files go to.
    pub fn dir_path(&self) -> &Path {
        &self.dir_path
    }

    fn name_of(&self, index: u32) -> OsString {
        let mut name = self.name.clone();
        if index > 0 {
            name.push(format!(".{index}"));
        }
        name
    }

    /// `name`'s own status (a link is not followed); `None` if there is no such name.
    fn status(&self, name: &OsStr) -> io::Result<Option<libc::stat>> {
        let c = c_name(name)?;
        // SAFETY: stat is plain data, filled by fstatat.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: a valid directory fd, C string and stat buffer.
        let rc = unsafe {
            libc::fstatat(
                self.dir.as_raw_fd(),
                c.as_ptr(),
                &raw mut stat,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        match check_status(rc) {
            Ok(()) => Ok(Some(stat)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Whether `name` exists in the directory: false if not, an error if it is a
    /// symbolic link or not a regular file.
    fn existing(&self, name: &OsStr) -> Result<bool, io::Error> {
        match self.status(name)?.map(|stat| stat.st_mode & libc::S_IFMT) {
            None => Ok(false),
            Some(libc::S_IFREG) => Ok(true),
            Some(libc::S_IFLNK) => Err(io::Error::from_raw_os_error(libc::ELOOP)),
            Some(_) => Err(io::Error::from_raw_os_error(libc::EISDIR)),
        }
    }

    /// The suffixes of the `FILE.N` entries in the directory, whatever they are.
    fn existing_parts(&self) -> Vec<u32> {
        let prefix = {
            let mut prefix = self.name.as_bytes().to_vec();
            prefix.push(b'.');
            prefix
        };
        let mut parts: Vec<u32> = fs::read_dir(&self.dir_path)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name();
                let suffix = name.as_bytes().strip_prefix(prefix.as_slice())?;
                if suffix.is_empty() || !suffix.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                std::str::from_utf8(suffix).ok()?.parse().ok()
            })
            .filter(|&index| index > 0)
            .collect();
        parts.sort_unstable();
        parts
    }

    fn unlink(&self, name: &OsStr) -> io::Result<()> {
        let c = c_name(name)?;
        // SAFETY: a valid directory fd and C string.
        check_status(unsafe { libc::unlinkat(self.dir.as_raw_fd(), c.as_ptr(), 0) })
    }

    /// Creates `name`: new, mode 0600, never through a symbolic link.
    fn create_new(&self, name: &OsStr) -> io::Result<fs::File> {
        let c = c_name(name)?;
        // SAFETY: a valid directory fd and C string; the fd returned is owned below.
        let fd = unsafe {
            libc::openat(
                self.dir.as_raw_fd(),
                c.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and is owned by nobody else.
        Ok(fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Creates the first file. With `--force`, an existing `FILE` is removed first: a
    /// file is replaced, never written into.
    pub fn create_first(&self) -> Result<fs::File, OutputError> {
        let path = self.path(0);
        if self.discard {
            return fs::File::options()
                .write(true)
                .open(DISCARD)
                .map_err(|error| OutputError::Io { path, error });
        }
        if self.force {
            match self.existing(&self.name) {
                Ok(true) => self.unlink(&self.name).map_err(|error| OutputError::Io {
                    path: path.clone(),
                    error,
                })?,
                Ok(false) => {}
                Err(error) => return Err(classify(&path, error)),
            }
        }
        self.create_new(&self.name)
            .map_err(|error| classify(&path, error))
    }

    /// Creates file `index`, or the first free one after it: a name someone else took
    /// is never written into. With `--force`, a file of an earlier recording (a regular
    /// file of this user) is replaced when rotation reaches its name, as tcpdump would
    /// overwrite it: until then it stays.
    pub fn create_part(&self, index: u32) -> Result<NewPart, OutputError> {
        if self.discard {
            // Refused with the options: there is nothing to rotate.
            return Err(OutputError::NotAFile(self.base.clone()));
        }
        let mut taken = Vec::new();
        for index in index..index.saturating_add(MAX_TAKEN) {
            let (name, path) = (self.name_of(index), self.path(index));
            let mut created = self.create_new(&name);
            if is_taken(&created) && self.force && self.is_ours(&name) && self.unlink(&name).is_ok()
            {
                created = self.create_new(&name);
            }
            match created {
                Ok(file) => {
                    return Ok(NewPart {
                        index,
                        path,
                        file,
                        taken,
                    });
                }
                Err(error) if error.raw_os_error() == Some(libc::EEXIST) => taken.push(path),
                Err(error) => return Err(OutputError::Io { path, error }),
            }
        }
        Err(OutputError::NoFreeName {
            first: self.path(index),
        })
    }

    /// Whether `name` is a regular file of this process's user (a file of an earlier
    /// recording, not one another user planted).
    fn is_ours(&self, name: &OsStr) -> bool {
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        self.status(name)
            .ok()
            .flatten()
            .is_some_and(|stat| stat.st_mode & libc::S_IFMT == libc::S_IFREG && stat.st_uid == uid)
    }

    /// Removes file `index`, one this recording created (`--rotate`).
    pub fn remove(&self, index: u32) -> io::Result<()> {
        self.unlink(&self.name_of(index))
    }
}

fn is_taken(created: &io::Result<fs::File>) -> bool {
    created
        .as_ref()
        .is_err_and(|error| error.raw_os_error() == Some(libc::EEXIST))
}

/// The error for a path that could not be created or replaced.
fn classify(path: &Path, error: io::Error) -> OutputError {
    match error.raw_os_error() {
        Some(libc::ELOOP) => OutputError::Symlink(path.to_path_buf()),
        Some(libc::EEXIST) => OutputError::Exists(path.to_path_buf()),
        Some(libc::EISDIR) => OutputError::NotAFile(path.to_path_buf()),
        _ => OutputError::Io {
            path: path.to_path_buf(),
            error,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tcpchurn-files-{name}-{}", std::process::id()));
        let _fresh = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn files_are_new_and_private_and_force_replaces_instead_of_writing_into() {
        let dir = temp_dir("create");
        let path = dir.join("a.trace");
        let output = OutputDir::check(&path, false, false).unwrap();
        drop(output.create_first().unwrap());
        assert_eq!(mode(&path), 0o600);
        assert!(matches!(
            OutputDir::check(&path, false, false),
            Err(OutputError::Exists(_))
        ));
        assert!(matches!(output.create_first(), Err(OutputError::Exists(_))));
        // A file someone else holds open: --force replaces it with a new inode.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        let old = fs::File::open(&path).unwrap();
        let old_inode = std::os::unix::fs::MetadataExt::ino(&old.metadata().unwrap());
        let output = OutputDir::check(&path, true, false).unwrap();
        drop(output.create_first().unwrap());
        assert_ne!(
            std::os::unix::fs::MetadataExt::ino(&fs::metadata(&path).unwrap()),
            old_inode
        );
        assert_eq!(mode(&path), 0o600);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dev_null_is_written_not_created() {
        let output = OutputDir::check(Path::new(DISCARD), false, false).unwrap();
        let mut file = output.create_first().unwrap();
        io::Write::write_all(&mut file, b"nothing kept").unwrap();
        assert_eq!(output.path(0), Path::new("/dev/null"));
        assert!(output.create_part(1).is_err());
        assert!(Path::new(DISCARD).exists(), "never removed");
    }

    #[test]
    fn refuses_symlinks_other_files_and_missing_directories() {
        let dir = temp_dir("symlink");
        let target = dir.join("elsewhere");
        let link = dir.join("planted.trace");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        for force in [false, true] {
            assert!(matches!(
                OutputDir::check(&link, force, false),
                Err(OutputError::Symlink(_))
            ));
        }
        assert!(!target.exists());
        let err = OutputDir::check(&dir.join("nope/x.trace"), false, false).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert!(matches!(
            OutputDir::check(&dir, true, false),
            Err(OutputError::NotAFile(_))
        ));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parts_of_an_earlier_recording_are_refused_or_replaced_with_force() {
        let dir = temp_dir("parts");
        let path = dir.join("inc.trace");
        for name in ["inc.trace.1", "inc.trace.2", "inc.trace.x", "inc.trace.bak"] {
            fs::write(dir.join(name), b"earlier").unwrap();
        }
        // Without rotation they are not in the way.
        assert!(OutputDir::check(&path, false, false).is_ok());
        let err = OutputDir::check(&path, false, true).unwrap_err();
        assert!(matches!(err, OutputError::PartsExist { ref parts, .. } if parts.len() == 2));
        assert!(err.to_string().contains("inc.trace.1, "), "{err}");
        // With --force they stay until rotation reaches them, then are replaced: a new
        // file, not the old one written into.
        let output = OutputDir::check(&path, true, true).unwrap();
        drop(output.create_first().unwrap());
        assert!(dir.join("inc.trace.2").exists());
        let old = fs::File::open(dir.join("inc.trace.1")).unwrap();
        let part = output.create_part(1).unwrap();
        assert_eq!((part.index, part.taken.len()), (1, 0));
        assert_eq!(fs::read(dir.join("inc.trace.1")).unwrap(), b"");
        assert_eq!(io::read_to_string(old).unwrap(), "earlier");
        // A file of another user is not an earlier recording's: stepped over.
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(dir.join("inc.trace.2"), Some(65534), None).unwrap();
            assert_eq!(output.create_part(2).unwrap().index, 3);
            assert_eq!(fs::read(dir.join("inc.trace.2")).unwrap(), b"earlier");
        }
        assert!(dir.join("inc.trace.x").exists() && dir.join("inc.trace.bak").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_taken_part_name_is_stepped_over_never_written() {
        let dir = temp_dir("taken");
        let path = dir.join("x.trace");
        let output = OutputDir::check(&path, false, true).unwrap();
        drop(output.create_first().unwrap());
        fs::write(dir.join("x.trace.1"), b"someone else's").unwrap();
        std::os::unix::fs::symlink(dir.join("victim"), dir.join("x.trace.2")).unwrap();
        let part = output.create_part(1).unwrap();
        assert_eq!(part.index, 3);
        assert_eq!(
            part.taken,
            vec![dir.join("x.trace.1"), dir.join("x.trace.2")]
        );
        assert_eq!(fs::read(dir.join("x.trace.1")).unwrap(), b"someone else's");
        assert!(!dir.join("victim").exists());
        assert_eq!(mode(&part.path), 0o600);
        output.remove(3).unwrap();
        assert!(!part.path.exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
