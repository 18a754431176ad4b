//! Tracepoint record layouts, read from tracefs `format` files at load time.
//!
//! The record of `sock:inet_sock_set_state` moved every address field by one byte in
//! Linux 5.6 (`protocol` became a `__u16`), and `tcp:tcp_send_reset` was rewritten in
//! 6.10; reading offsets from the running kernel's format file is the only way to be
//! right on both sides of those changes without CO-RE.

use std::{
    collections::HashMap,
    fs, io,
    path::{Path, PathBuf},
};

use probe_common::{FieldSpec, KernelFields, RECORD_BYTES, RECORD_START};

/// Where tracefs may be mounted, in order of preference.
pub const TRACEFS_MOUNTS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

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

/// A field's place in the bytes the kernel program copies (record offset minus
/// [`RECORD_START`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub offset: usize,
    pub size: usize,
}

impl Field {
    /// Reads an unsigned little-endian integer of 1, 2, 4 or 8 bytes.
    pub fn read_uint(self, record: &[u8]) -> Option<u64> {
        let bytes = record.get(self.offset..self.offset + self.size)?;
        let mut value = [0u8; 8];
        value[..bytes.len().min(8)].copy_from_slice(&bytes[..bytes.len().min(8)]);
        Some(u64::from_le_bytes(value))
    }

    pub fn read_bytes<const N: usize>(self, record: &[u8]) -> Option<[u8; N]> {
        if self.size < N {
            return None;
        }
        record.get(self.offset..self.offset + N)?.try_into().ok()
    }

    fn kernel_spec(self, big_endian: bool) -> FieldSpec {
        FieldSpec {
            // Offsets are bounded by RECORD_BYTES (checked when the layout is built).
            offset: u16::try_from(self.offset).unwrap_or(u16::MAX),
            size: u8::try_from(self.size).unwrap_or(u8::MAX),
            big_endian: u8::from(big_endian),
        }
    }
}

fn spec(field: Option<Field>) -> FieldSpec {
    field.map_or(FieldSpec::ABSENT, |f| f.kernel_spec(false))
}

/// How many record bytes the kernel program must copy for the decoder: up to the end
/// of the last field it reads (every field was checked to end within RECORD_BYTES).
fn copy_len(fields: &[Option<Field>]) -> u16 {
    let end = fields
        .iter()
        .flatten()
        .map(|f| f.offset + f.size)
        .max()
        .unwrap_or(0)
        .min(RECORD_BYTES);
    u16::try_from(end).unwrap_or(0)
}

impl TupleFields {
    fn all(&self) -> [Option<Field>; 7] {
        [
            Some(self.sport),
            Some(self.dport),
            self.family,
            Some(self.saddr),
            Some(self.daddr),
            Some(self.saddr_v6),
            Some(self.daddr_v6),
        ]
    }
}

/// Looks fields up in one format file and checks they fit the copied record.
struct Lookup<'a> {
    tracepoint: &'static str,
    file: &'a FormatFile,
}

impl Lookup<'_> {
    fn optional(&self, name: &'static str, sizes: &[usize]) -> Result<Option<Field>, FormatError> {
        let Some(field) = self.file.field(name) else {
            return Ok(None);
        };
        if !sizes.contains(&field.size) {
            return Err(FormatError::BadSize {
                tracepoint: self.tracepoint,
                field: name,
                size: field.size,
                expected: match sizes {
                    [1, 2] => "1 or 2",
                    [2] => "2",
                    [4] => "4",
                    [8] => "8",
                    [16] => "16",
                    [28] => "28",
                    _ => "another size",
                },
            });
        }
        let end = field.offset + field.size;
        if field.offset < RECORD_START || end > RECORD_START + RECORD_BYTES {
            return Err(FormatError::OutOfReach {
                tracepoint: self.tracepoint,
                field: name,
                end,
                limit: RECORD_START + RECORD_BYTES,
            });
        }
        Ok(Some(Field {
            offset: field.offset - RECORD_START,
            size: field.size,
        }))
    }

    fn required(&self, name: &'static str, sizes: &[usize]) -> Result<Field, FormatError> {
        self.optional(name, sizes)?
            .ok_or(FormatError::MissingField {
                tracepoint: self.tracepoint,
                field: name,
            })
    }
}

/// Ports, family and addresses as the `sock` and `tcp_event_sk` classes lay them out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TupleFields {
    pub sport: Field,
    pub dport: Field,
    /// Absent in `tcp:*` events before 5.12; then the v6 fields (v4-mapped for IPv4)
    /// tell the family.
    pub family: Option<Field>,
    pub saddr: Field,
    pub daddr: Field,
    pub saddr_v6: Field,
    pub daddr_v6: Field,
}

impl TupleFields {
    fn from(lookup: &Lookup<'_>) -> Result<Self, FormatError> {
        Ok(Self {
            sport: lookup.required("sport", &[2])?,
            dport: lookup.required("dport", &[2])?,
            family: lookup.optional("family", &[2])?,
            saddr: lookup.required("saddr", &[4])?,
            daddr: lookup.required("daddr", &[4])?,
            saddr_v6: lookup.required("saddr_v6", &[16])?,
            daddr_v6: lookup.required("daddr_v6", &[16])?,
        })
    }
}

/// `sock:inet_sock_set_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateChangeLayout {
    pub skaddr: Field,
    pub oldstate: Field,
    pub newstate: Field,
    pub protocol: Field,
    pub tuple: TupleFields,
}

impl StateChangeLayout {
    pub const TRACEPOINT: (&'static str, &'static str) = ("sock", "inet_sock_set_state");

    /// The fixed layout the `tp_btf` state-change program writes
    /// ([`probe_common::state_record`]: the tracefs layout since Linux 5.6).
    pub const TP_BTF: Self = {
        use probe_common::state_record as r;
        const fn at(offset: usize, size: usize) -> Field {
            Field { offset, size }
        }
        Self {
            skaddr: at(r::SKADDR, 8),
            oldstate: at(r::OLDSTATE, 4),
            newstate: at(r::NEWSTATE, 4),
            protocol: at(r::PROTOCOL, 2),
            tuple: TupleFields {
                sport: at(r::SPORT, 2),
                dport: at(r::DPORT, 2),
                family: Some(at(r::FAMILY, 2)),
                saddr: at(r::SADDR, 4),
                daddr: at(r::DADDR, 4),
                saddr_v6: at(r::SADDR_V6, 16),
                daddr_v6: at(r::DADDR_V6, 16),
            },
        }
    };

    pub fn from_format(file: &FormatFile) -> Result<Self, FormatError> {
        let lookup = Lookup {
            tracepoint: "sock:inet_sock_set_state",
            file,
        };
        Ok(Self {
            skaddr: lookup.required("skaddr", &[8])?,
            oldstate: lookup.required("oldstate", &[4])?,
            newstate: lookup.required("newstate", &[4])?,
            protocol: lookup.required("protocol", &[1, 2])?,
            tuple: TupleFields::from(&lookup)?,
        })
    }

    pub fn kernel_fields(&self) -> KernelFields {
        KernelFields {
            skaddr: spec(Some(self.skaddr)),
            protocol: spec(Some(self.protocol)),
            sport: spec(Some(self.tuple.sport)),
            dport: spec(Some(self.tuple.dport)),
            copy_len: copy_len(&self.used()),
            ..KernelFields::ABSENT
        }
    }

    fn used(&self) -> Vec<Option<Field>> {
        let mut fields = vec![
            Some(self.skaddr),
            Some(self.oldstate),
            Some(self.newstate),
            Some(self.protocol),
        ];
        fields.extend(self.tuple.all());
        fields
    }
}

/// How `tcp:tcp_send_reset` carries addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetAddrs {
    /// 6.10+: `struct sockaddr_in`/`sockaddr_in6` in 28-byte fields, ports in network
    /// order, no family field (kernel-facts §3).
    Sockaddr { saddr: Field, daddr: Field },
    /// Before 6.10: the `tcp_event_sk_skb` class with separate ports and addresses.
    Split(TupleFields),
}

/// `tcp:tcp_send_reset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendResetLayout {
    pub skbaddr: Option<Field>,
    pub skaddr: Field,
    pub state: Option<Field>,
    pub reason: Option<Field>,
    pub addrs: ResetAddrs,
}

impl SendResetLayout {
    pub const TRACEPOINT: (&'static str, &'static str) = ("tcp", "tcp_send_reset");

    pub fn from_format(file: &FormatFile) -> Result<Self, FormatError> {
        let lookup = Lookup {
            tracepoint: "tcp:tcp_send_reset",
            file,
        };
        let addrs = if file.field("saddr").is_some_and(|f| f.size == 28) {
            ResetAddrs::Sockaddr {
                saddr: lookup.required("saddr", &[28])?,
                daddr: lookup.required("daddr", &[28])?,
            }
        } else {
            ResetAddrs::Split(TupleFields::from(&lookup)?)
        };
        Ok(Self {
            skbaddr: lookup.optional("skbaddr", &[8])?,
            skaddr: lookup.required("skaddr", &[8])?,
            state: lookup.optional("state", &[4])?,
            reason: lookup.optional("reason", &[4])?,
            addrs,
        })
    }

    pub fn kernel_fields(&self) -> KernelFields {
        let (sport, dport) = match self.addrs {
            // sin_port / sin6_port sit at byte 2 of the sockaddr, in network order.
            ResetAddrs::Sockaddr { saddr, daddr } => (
                Field {
                    offset: saddr.offset + 2,
                    size: 2,
                }
                .kernel_spec(true),
                Field {
                    offset: daddr.offset + 2,
                    size: 2,
                }
                .kernel_spec(true),
            ),
            ResetAddrs::Split(tuple) => (spec(Some(tuple.sport)), spec(Some(tuple.dport))),
        };
        let mut used = vec![Some(self.skaddr), self.skbaddr, self.state, self.reason];
        match self.addrs {
            ResetAddrs::Sockaddr { saddr, daddr } => used.extend([Some(saddr), Some(daddr)]),
            ResetAddrs::Split(tuple) => used.extend(tuple.all()),
        }
        KernelFields {
            skaddr: spec(Some(self.skaddr)),
            skbaddr: spec(self.skbaddr),
            sport,
            dport,
            copy_len: copy_len(&used),
            ..KernelFields::ABSENT
        }
    }
}

/// `tcp:tcp_receive_reset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceiveResetLayout {
    pub skaddr: Field,
    pub tuple: TupleFields,
}

impl ReceiveResetLayout {
    pub const TRACEPOINT: (&'static str, &'static str) = ("tcp", "tcp_receive_reset");

    pub fn from_format(file: &FormatFile) -> Result<Self, FormatError> {
        let lookup = Lookup {
            tracepoint: "tcp:tcp_receive_reset",
            file,
        };
        Ok(Self {
            skaddr: lookup.required("skaddr", &[8])?,
            tuple: TupleFields::from(&lookup)?,
        })
    }

    pub fn kernel_fields(&self) -> KernelFields {
        let mut used = vec![Some(self.skaddr)];
        used.extend(self.tuple.all());
        KernelFields {
            skaddr: spec(Some(self.skaddr)),
            sport: spec(Some(self.tuple.sport)),
            dport: spec(Some(self.tuple.dport)),
            copy_len: copy_len(&used),
            ..KernelFields::ABSENT
        }
    }
}

/// `sock:inet_sk_error_report` (5.14+). It has no socket pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorReportLayout {
    pub error: Field,
    pub protocol: Field,
    pub tuple: TupleFields,
}

impl ErrorReportLayout {
    pub const TRACEPOINT: (&'static str, &'static str) = ("sock", "inet_sk_error_report");

    pub fn from_format(file: &FormatFile) -> Result<Self, FormatError> {
        let lookup = Lookup {
            tracepoint: "sock:inet_sk_error_report",
            file,
        };
        Ok(Self {
            error: lookup.required("error", &[4])?,
            protocol: lookup.required("protocol", &[1, 2])?,
            tuple: TupleFields::from(&lookup)?,
        })
    }

    pub fn kernel_fields(&self) -> KernelFields {
        let mut used = vec![Some(self.error), Some(self.protocol)];
        used.extend(self.tuple.all());
        KernelFields {
            protocol: spec(Some(self.protocol)),
            sport: spec(Some(self.tuple.sport)),
            dport: spec(Some(self.tuple.dport)),
            error: spec(Some(self.error)),
            copy_len: copy_len(&used),
            ..KernelFields::ABSENT
        }
    }
}

/// The layouts of every tracepoint tcpchurn uses on this kernel. Only the state change
/// is mandatory; a kernel without one of the others still records the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layouts {
    pub state_change: StateChangeLayout,
    pub send_reset: Option<SendResetLayout>,
    pub receive_reset: Option<ReceiveResetLayout>,
    pub error_report: Option<ErrorReportLayout>,
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
    /// (kernel-facts: "tracefs may not be mounted").
    pub fn locate_or_mount() -> Result<Self, TracefsError> {
        if let Some(found) = Self::locate() {
            return Ok(found);
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

    const STATE_6_18: &str = include_str!("testdata/inet_sock_set_state.6.18.format");
    const STATE_5_5: &str = include_str!("testdata/inet_sock_set_state.5.5.format");
    const SEND_RESET_6_18: &str = include_str!("testdata/tcp_send_reset.6.18.format");
    const RECEIVE_RESET_6_18: &str = include_str!("testdata/tcp_receive_reset.6.18.format");
    const ERROR_REPORT_6_18: &str = include_str!("testdata/inet_sk_error_report.6.18.format");

    fn field(offset: usize, size: usize) -> Field {
        Field {
            offset: offset - RECORD_START,
            size,
        }
    }

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
    fn state_change_layout_6_18() {
        let layout =
            StateChangeLayout::from_format(&FormatFile::parse(STATE_6_18).unwrap()).unwrap();
        assert_eq!(layout.skaddr, field(8, 8));
        assert_eq!(layout.oldstate, field(16, 4));
        assert_eq!(layout.newstate, field(20, 4));
        assert_eq!(layout.protocol, field(30, 2));
        assert_eq!(layout.tuple.sport, field(24, 2));
        assert_eq!(layout.tuple.family, Some(field(28, 2)));
        assert_eq!(layout.tuple.saddr, field(32, 4));
        assert_eq!(layout.tuple.daddr, field(36, 4));
        assert_eq!(layout.tuple.saddr_v6, field(40, 16));
        assert_eq!(layout.tuple.daddr_v6, field(56, 16));
        // The kernel program copies up to the end of daddr_v6 (record byte 72), and no
        // further: the kernel refuses a program that reads past the record.
        assert_eq!(layout.kernel_fields().copy_len, 64);
    }

    #[test]
    fn the_tp_btf_layout_is_the_tracefs_layout_since_5_6() {
        let layout =
            StateChangeLayout::from_format(&FormatFile::parse(STATE_6_18).unwrap()).unwrap();
        assert_eq!(StateChangeLayout::TP_BTF, layout);
        assert_eq!(
            usize::from(StateChangeLayout::TP_BTF.kernel_fields().copy_len),
            probe_common::state_record::LEN
        );
    }

    #[test]
    fn state_change_layout_before_5_6_is_one_byte_earlier() {
        let layout =
            StateChangeLayout::from_format(&FormatFile::parse(STATE_5_5).unwrap()).unwrap();
        assert_eq!(layout.protocol, field(30, 1));
        assert_eq!(layout.tuple.saddr, field(31, 4));
        assert_eq!(layout.tuple.daddr, field(35, 4));
        assert_eq!(layout.tuple.saddr_v6, field(39, 16));
        assert_eq!(layout.tuple.daddr_v6, field(55, 16));
        let kernel = layout.kernel_fields();
        assert_eq!(
            kernel.protocol,
            FieldSpec {
                offset: 22,
                size: 1,
                big_endian: 0
            }
        );
        // The record ends at byte 71: a partial last word.
        assert_eq!(kernel.copy_len, 63);
    }

    #[test]
    fn send_reset_6_18_has_sockaddrs_with_network_order_ports() {
        let layout =
            SendResetLayout::from_format(&FormatFile::parse(SEND_RESET_6_18).unwrap()).unwrap();
        assert_eq!(layout.skbaddr, Some(field(8, 8)));
        assert_eq!(layout.skaddr, field(16, 8));
        assert_eq!(layout.state, Some(field(24, 4)));
        assert_eq!(layout.reason, Some(field(28, 4)));
        assert_eq!(
            layout.addrs,
            ResetAddrs::Sockaddr {
                saddr: field(32, 28),
                daddr: field(60, 28)
            }
        );
        let kernel = layout.kernel_fields();
        assert_eq!(
            kernel.sport,
            FieldSpec {
                offset: 26,
                size: 2,
                big_endian: 1
            }
        );
        assert!(!kernel.protocol.is_present());
        assert_eq!(kernel.copy_len, 80);
    }

    #[test]
    fn send_reset_before_6_10_uses_split_fields() {
        // The tcp_event_sk_skb layout of 5.x (kernel-facts §3, tcp_retransmit_skb row).
        let text = "name: tcp_send_reset\nformat:\n\
            \tfield:const void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;\n\
            \tfield:const void * skaddr;\toffset:16;\tsize:8;\tsigned:0;\n\
            \tfield:int state;\toffset:24;\tsize:4;\tsigned:1;\n\
            \tfield:__u16 sport;\toffset:28;\tsize:2;\tsigned:0;\n\
            \tfield:__u16 dport;\toffset:30;\tsize:2;\tsigned:0;\n\
            \tfield:__u16 family;\toffset:32;\tsize:2;\tsigned:0;\n\
            \tfield:__u8 saddr[4];\toffset:34;\tsize:4;\tsigned:0;\n\
            \tfield:__u8 daddr[4];\toffset:38;\tsize:4;\tsigned:0;\n\
            \tfield:__u8 saddr_v6[16];\toffset:42;\tsize:16;\tsigned:0;\n\
            \tfield:__u8 daddr_v6[16];\toffset:58;\tsize:16;\tsigned:0;\n";
        let layout = SendResetLayout::from_format(&FormatFile::parse(text).unwrap()).unwrap();
        assert_eq!(layout.reason, None);
        let ResetAddrs::Split(tuple) = layout.addrs else {
            panic!("expected split fields");
        };
        assert_eq!(tuple.sport, field(28, 2));
    }

    #[test]
    fn receive_reset_and_error_report_6_18() {
        let receive =
            ReceiveResetLayout::from_format(&FormatFile::parse(RECEIVE_RESET_6_18).unwrap())
                .unwrap();
        assert_eq!(receive.skaddr, field(8, 8));
        assert_eq!(receive.tuple.saddr_v6, field(30, 16));
        let error =
            ErrorReportLayout::from_format(&FormatFile::parse(ERROR_REPORT_6_18).unwrap()).unwrap();
        assert_eq!(error.error, field(8, 4));
        assert_eq!(error.protocol, field(18, 2));
        assert_eq!(error.tuple.daddr_v6, field(44, 16));
        assert!(error.kernel_fields().error.is_present());
        assert_eq!(receive.kernel_fields().copy_len, 54);
        assert_eq!(error.kernel_fields().copy_len, 52);
    }

    #[test]
    fn missing_and_unreachable_fields_are_named() {
        let text = STATE_6_18.replace("field:int oldstate;", "field:int something_else;");
        let err = StateChangeLayout::from_format(&FormatFile::parse(&text).unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "sock:inet_sock_set_state: field `oldstate` is missing from the format file"
        );
        let text = STATE_6_18.replace("offset:56;\tsize:16", "offset:96;\tsize:16");
        let err = StateChangeLayout::from_format(&FormatFile::parse(&text).unwrap()).unwrap_err();
        assert!(err.to_string().contains("past the 88 bytes"), "{err}");
    }

    #[test]
    fn malformed_lines_are_rejected_with_their_number() {
        let err = FormatFile::parse("name: x\nformat:\n\tfield:int a;\toffset:x;\n").unwrap_err();
        assert!(err.to_string().starts_with("line 3:"), "{err}");
    }

    #[test]
    fn reads_little_endian_fields() {
        let record = [0x34, 0x12, 0, 0, 0xff];
        assert_eq!(
            Field { offset: 0, size: 2 }.read_uint(&record),
            Some(0x1234)
        );
        assert_eq!(Field { offset: 4, size: 1 }.read_uint(&record), Some(0xff));
        assert_eq!(Field { offset: 4, size: 2 }.read_uint(&record), None);
    }
}
