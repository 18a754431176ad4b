//! tracefs: found or mounted, and its tracepoint `format` files parsed (the fields of
//! each tracepoint's record, with their offsets and sizes).

use std::{
    collections::HashMap,
    fs, io,
    path::{Path, PathBuf},
};

/// Where tracefs may be mounted, in order of preference.
pub const TRACEFS_MOUNTS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// What is wrong with a format file: a malformed line, or a field a layout needs.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("line {line}: {reason}: {text:?}")]
    Malformed {
        line: usize,
        reason: &'static str,
        text: String,
    },
    #[error("{tracepoint}: field `{field}` is missing from the format file")]
    MissingField {
        tracepoint: &'static str,
        field: &'static str,
    },
    #[error("{tracepoint}: field `{field}` has size {size}, expected {expected}")]
    BadSize {
        tracepoint: &'static str,
        field: &'static str,
        size: usize,
        expected: &'static str,
    },
    #[error(
        "{tracepoint}: field `{field}` ends at byte {end} of the record, past the {limit} bytes \
         the kernel program copies"
    )]
    OutOfReach {
        tracepoint: &'static str,
        field: &'static str,
        end: usize,
        limit: usize,
    },
}

/// One `field:` line of a format file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatField {
    pub c_type: String,
    pub offset: usize,
    pub size: usize,
    pub signed: bool,
}

/// A parsed tracefs `format` file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FormatFile {
    pub name: String,
    pub id: Option<u32>,
    pub fields: HashMap<String, FormatField>,
}

impl FormatFile {
    pub fn parse(text: &str) -> Result<Self, FormatError> {
        let mut file = Self::default();
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            let trimmed = line.trim();
            if let Some(name) = trimmed.strip_prefix("name:") {
                file.name = name.trim().to_owned();
            } else if let Some(id) = trimmed.strip_prefix("ID:") {
                file.id = id.trim().parse().ok();
            } else if trimmed.starts_with("field:") {
                let (name, field) =
                    parse_field_line(trimmed).ok_or_else(|| FormatError::Malformed {
                        line: line_no,
                        reason: "expected `field:TYPE NAME; offset:N; size:N; signed:N;`",
                        text: trimmed.to_owned(),
                    })?;
                file.fields.insert(name, field);
            } else if trimmed.starts_with("print fmt:") {
                break;
            }
        }
        Ok(file)
    }

    pub fn field(&self, name: &str) -> Option<&FormatField> {
        self.fields.get(name)
    }
}

/// `field:__u8 saddr[4]; offset:32; size:4; signed:0;` → ("saddr", ...).
fn parse_field_line(line: &str) -> Option<(String, FormatField)> {
    let mut parts = line.split(';').map(str::trim).filter(|p| !p.is_empty());
    let decl = parts.next()?.strip_prefix("field:")?.trim();
    let mut offset = None;
    let mut size = None;
    let mut signed = false;
    for part in parts {
        let (key, value) = part.split_once(':')?;
        match key.trim() {
            "offset" => offset = value.trim().parse().ok(),
            "size" => size = value.trim().parse().ok(),
            "signed" => signed = value.trim() == "1",
            _ => {}
        }
    }
    // The name is the last identifier of the declaration, before any array suffix:
    // `const void * skaddr`, `__u8 saddr_v6[16]`, `enum sk_rst_reason reason`.
    let without_array = decl.split('[').next()?.trim_end();
    let name_start = without_array
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(0, |i| i + 1);
    let name = &without_array[name_start..];
    if name.is_empty() {
        return None;
    }
    let c_type = without_array[..name_start].trim().to_owned();
    Some((
        name.to_owned(),
        FormatField {
            c_type,
            offset: offset?,
            size: size?,
            signed,
        },
    ))
}

/// A mounted tracefs.
#[derive(Clone, Debug)]
pub struct Tracefs {
    root: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    #[error(
        "tracefs is not mounted and mounting it at /sys/kernel/tracing failed ({0}); mount it \
         with `mount -t tracefs nodev /sys/kernel/tracing`"
    )]
    NotMounted(io::Error),
    #[error(
        "tracefs at {0} cannot be read by this user: run tcpchurn record as root, or give it \
         CAP_DAC_READ_SEARCH (docs/privileges.md)"
    )]
    NotReadable(PathBuf),
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: {source}")]
    Format { path: PathBuf, source: FormatError },
}

impl Tracefs {
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Finds a mounted tracefs, mounting one at `/sys/kernel/tracing` if there is none
    /// (a host need not mount it).
    pub fn locate_or_mount() -> Result<Self, TracefsError> {
        if let Some(found) = Self::locate() {
            return Ok(found);
        }
        // Mounted but closed to this user (tracefs is root's, mode 0700): mounting
        // again would not help.
        if let Some(root) = TRACEFS_MOUNTS.iter().map(Path::new).find(|root| {
            fs::metadata(root.join("events"))
                .is_err_and(|e| e.kind() == io::ErrorKind::PermissionDenied)
        }) {
            return Err(TracefsError::NotReadable(root.to_path_buf()));
        }
        mount_tracefs(Path::new(TRACEFS_MOUNTS[0])).map_err(TracefsError::NotMounted)?;
        Self::locate().ok_or_else(|| {
            TracefsError::NotMounted(io::Error::other("mounted, but events/ is still missing"))
        })
    }

    pub fn locate() -> Option<Self> {
        TRACEFS_MOUNTS
            .iter()
            .map(Path::new)
            .find(|root| root.join("events").is_dir())
            .map(Self::at)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn has_event(&self, (category, name): (&str, &str)) -> bool {
        self.root.join("events").join(category).join(name).is_dir()
    }

    pub fn format(&self, (category, name): (&str, &str)) -> Result<FormatFile, TracefsError> {
        let path = self
            .root
            .join("events")
            .join(category)
            .join(name)
            .join("format");
        let text = fs::read_to_string(&path).map_err(|source| TracefsError::Read {
            path: path.clone(),
            source,
        })?;
        FormatFile::parse(&text).map_err(|source| TracefsError::Format { path, source })
    }

    /// Reads the layout of one tracepoint; `Ok(None)` when this kernel lacks it.
    pub fn layout<T>(
        &self,
        tracepoint: (&'static str, &'static str),
        build: impl FnOnce(&FormatFile) -> Result<T, FormatError>,
    ) -> Result<Option<T>, TracefsError> {
        if !self.has_event(tracepoint) {
            return Ok(None);
        }
        let path = self
            .root
            .join("events")
            .join(tracepoint.0)
            .join(tracepoint.1)
            .join("format");
        let file = self.format(tracepoint)?;
        build(&file)
            .map(Some)
            .map_err(|source| TracefsError::Format { path, source })
    }
}

fn mount_tracefs(target: &Path) -> io::Result<()> {
    use std::{ffi::CString, os::unix::ffi::OsStrExt as _};
    let target = CString::new(target.as_os_str().as_bytes())?;
    let source = c"nodev";
    let fstype = c"tracefs";
    // SAFETY: all pointers are valid NUL-terminated strings for the duration of the call.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEND_RESET_6_18: &str = include_str!("testdata/tcp_send_reset.6.18.format");

    #[test]
    fn parses_field_lines_with_pointers_arrays_and_enums() {
        let file = FormatFile::parse(SEND_RESET_6_18).unwrap();
        assert_eq!(file.name, "tcp_send_reset");
        let skaddr = file.field("skaddr").unwrap();
        assert_eq!(
            (skaddr.c_type.as_str(), skaddr.offset, skaddr.size),
            ("const void *", 16, 8)
        );
        let reason = file.field("reason").unwrap();
        assert_eq!(
            (reason.c_type.as_str(), reason.offset),
            ("enum sk_rst_reason", 28)
        );
        let saddr = file.field("saddr").unwrap();
        assert_eq!((saddr.offset, saddr.size), (32, 28));
        assert!(file.field("common_pid").unwrap().signed);
    }

    #[test]
    fn malformed_lines_are_rejected_with_their_number() {
        let err = FormatFile::parse("name: x\nformat:\n\tfield:int a;\toffset:x;\n").unwrap_err();
        assert!(err.to_string().starts_with("line 3:"), "{err}");
    }
}
