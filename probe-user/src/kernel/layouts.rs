//! Tracepoint record layouts: where each field the decoder reads sits in the record
//! the kernel program copies, as this kernel's tracefs `format` files say.
//!
//! The record of `sock:inet_sock_set_state` moved every address field by one byte in
//! Linux 5.6 (`protocol` became a `__u16`), and `tcp:tcp_send_reset` was rewritten in
//! 6.10; reading offsets from the running kernel's format file is the only way to be
//! right on both sides of those changes without CO-RE.

use probe_common::{FieldSpec, KernelFields, RECORD_BYTES, RECORD_START};

use crate::kernel::tracefs::{FormatError, FormatFile};

/// A field's place in the bytes the kernel program copies (record offset minus
/// [`RECORD_START`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub offset: usize,
    pub size: usize,
}

impl Field {
    /// Reads an unsigned little-endian integer of 1, 2, 4 or 8 bytes (the first 8 of a
    /// longer field). The usual sizes are fixed-size loads: a variable-length copy is a
    /// `memcpy` call, and the recorder reads six of these per event.
    #[inline]
    pub fn read_uint(self, record: &[u8]) -> Option<u64> {
        let bytes = record.get(self.offset..self.offset + self.size)?;
        Some(match *bytes {
            [a] => u64::from(a),
            [a, b] => u64::from(u16::from_le_bytes([a, b])),
            [a, b, c, d] => u64::from(u32::from_le_bytes([a, b, c, d])),
            [a, b, c, d, e, f, g, h] => u64::from_le_bytes([a, b, c, d, e, f, g, h]),
            _ => {
                let mut value = [0u8; 8];
                let len = bytes.len().min(8);
                value[..len].copy_from_slice(&bytes[..len]);
                u64::from_le_bytes(value)
            }
        })
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
    /// The kernel program's view of a record with these tuple fields and `others`: the
    /// ports, and the bytes to copy (up to the last field the decoder reads).
    fn kernel_fields(&self, others: &[Field]) -> KernelFields {
        let mut used: Vec<Option<Field>> = others.iter().copied().map(Some).collect();
        used.extend(self.all());
        KernelFields {
            sport: spec(Some(self.sport)),
            dport: spec(Some(self.dport)),
            copy_len: copy_len(&used),
            ..KernelFields::ABSENT
        }
    }

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
            oldstate: spec(Some(self.oldstate)),
            newstate: spec(Some(self.newstate)),
            ..self
                .tuple
                .kernel_fields(&[self.skaddr, self.oldstate, self.newstate, self.protocol])
        }
    }
}

/// How `tcp:tcp_send_reset` carries addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetAddrs {
    /// 6.10+: `struct sockaddr_in`/`sockaddr_in6` in 28-byte fields, ports in network
    /// order, no family field (docs/kernel-facts.md §3).
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
        KernelFields {
            skaddr: spec(Some(self.skaddr)),
            ..self.tuple.kernel_fields(&[self.skaddr])
        }
    }
}

/// `sock:inet_sk_error_report` (5.14+). Its tracefs record has no socket pointer; the
/// record of the program that reads the socket ([`Self::FROM_SOCKET`]) has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorReportLayout {
    /// Only in records of the program that reads the socket.
    pub skaddr: Option<Field>,
    pub error: Field,
    pub protocol: Field,
    pub tuple: TupleFields,
}

impl ErrorReportLayout {
    pub const TRACEPOINT: (&'static str, &'static str) = ("sock", "inet_sk_error_report");

    /// The fixed layout the raw-tracepoint error-report program writes, reading the
    /// socket: the state-change layout with `int error` where the states are
    /// ([`probe_common::state_record`]).
    pub const FROM_SOCKET: Self = {
        let state = StateChangeLayout::TP_BTF;
        Self {
            skaddr: Some(state.skaddr),
            error: Field {
                offset: probe_common::state_record::ERROR,
                size: 4,
            },
            protocol: state.protocol,
            tuple: state.tuple,
        }
    };

    pub fn from_format(file: &FormatFile) -> Result<Self, FormatError> {
        let lookup = Lookup {
            tracepoint: "sock:inet_sk_error_report",
            file,
        };
        Ok(Self {
            skaddr: None,
            error: lookup.required("error", &[4])?,
            protocol: lookup.required("protocol", &[1, 2])?,
            tuple: TupleFields::from(&lookup)?,
        })
    }

    pub fn kernel_fields(&self) -> KernelFields {
        KernelFields {
            protocol: spec(Some(self.protocol)),
            error: spec(Some(self.error)),
            ..self.tuple.kernel_fields(&[self.error, self.protocol])
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::tracefs::FormatFile;

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
        // The tcp_event_sk_skb layout of 5.x (docs/kernel-facts.md §3, tcp_retransmit_skb row).
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
