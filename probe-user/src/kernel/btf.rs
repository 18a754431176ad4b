//! Just enough of a BTF reader to find struct member offsets in the running kernel
//! (what the kernel program needs from them is in [`crate::kernel::offsets`]).

use std::{
    collections::HashMap,
    fs,
    io::{self, Read as _},
    os::unix::fs::OpenOptionsExt as _,
    path::Path,
};

pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

const BTF_MAGIC: u16 = 0xeb9f;

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// The largest BTF file read: a kernel's BTF is a few MiB (5.3 MiB for a 6.18 with many
/// drivers built in).
pub const MAX_BTF_BYTES: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("reading {path}: {error}")]
    Read { path: String, error: io::Error },
    #[error("--btf {0}: not a regular file")]
    NotAFile(String),
    #[error("--btf {path}: {size} bytes is too large for kernel BTF (at most {MAX_BTF_BYTES})")]
    TooLarge { path: String, size: u64 },
    #[error("not BTF data (bad magic {0:#06x})")]
    BadMagic(u16),
    #[error("BTF data is truncated or inconsistent: {0}")]
    Truncated(&'static str),
    #[error("unknown BTF kind {kind} at type {id}")]
    UnknownKind { kind: u32, id: u32 },
}

impl BtfError {
    /// The file cannot be kernel BTF at all: the user named the wrong file.
    pub fn is_wrong_file(&self) -> bool {
        matches!(self, Self::NotAFile(_) | Self::TooLarge { .. })
    }

    /// What is wrong, without the path (for a line that names it already).
    pub fn reason(&self) -> String {
        match self {
            Self::Read { error, .. } => error.to_string(),
            Self::NotAFile(_) => "not a regular file".into(),
            Self::TooLarge { size, .. } => {
                format!("{size} bytes is too large for kernel BTF (at most {MAX_BTF_BYTES})")
            }
            other => other.to_string(),
        }
    }
}

/// Reads a BTF file: a regular file of at most [`MAX_BTF_BYTES`], checked before it is
/// opened (a FIFO would block, a device could have no end) and again once open.
pub fn read_file(path: &Path) -> Result<Vec<u8>, BtfError> {
    let shown = || path.display().to_string();
    let read_error = |error| BtfError::Read {
        path: shown(),
        error,
    };
    let check = |meta: &fs::Metadata| {
        if !meta.is_file() {
            Err(BtfError::NotAFile(shown()))
        } else if meta.len() > MAX_BTF_BYTES {
            Err(BtfError::TooLarge {
                path: shown(),
                size: meta.len(),
            })
        } else {
            Ok(())
        }
    };
    check(&fs::metadata(path).map_err(read_error)?)?;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(read_error)?;
    check(&file.metadata().map_err(read_error)?)?;
    let mut data = Vec::new();
    file.take(MAX_BTF_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(read_error)?;
    if data.len() as u64 > MAX_BTF_BYTES {
        return Err(BtfError::TooLarge {
            path: shown(),
            size: data.len() as u64,
        });
    }
    Ok(data)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Member {
    name_off: u32,
    type_id: u32,
    /// Bit offset within the parent.
    bit_offset: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Type {
    name_off: u32,
    kind: u32,
    /// Size for INT/STRUCT/UNION/ENUM, referenced type for PTR/TYPEDEF/modifiers.
    size_or_type: u32,
    members: Vec<Member>,
    /// Element type and length for arrays.
    array_elem: u32,
    array_len: u32,
}

/// One enumerator of an ENUM or ENUM64 type: its enum's name, its own name (string
/// offsets) and its value. Kept apart from [`Type`], which every one of the kernel's
/// ~130,000 types has.
#[derive(Clone, Copy, Debug)]
struct Enumerator {
    enum_name_off: u32,
    name_off: u32,
    value: u64,
}

/// Parsed BTF types and strings.
#[derive(Debug)]
pub struct Btf {
    types: Vec<Type>,
    strings: Vec<u8>,
    /// Struct/union name → ids with that name (complete definitions first).
    by_name: HashMap<String, Vec<u32>>,
    enumerators: Vec<Enumerator>,
}

/// Where a member sits and how big it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberOffset {
    pub offset: u32,
    pub size: u32,
    pub is_pointer: bool,
}

fn u16_at(data: &[u8], at: usize) -> Result<u16, BtfError> {
    data.get(at..at + 2)
        .and_then(|b| b.try_into().ok())
        .map(u16::from_le_bytes)
        .ok_or(BtfError::Truncated("header"))
}

fn u32_at(data: &[u8], at: usize) -> Result<u32, BtfError> {
    data.get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or(BtfError::Truncated("type section"))
}

/// The type and string sections of raw BTF, after checking the header.
fn sections(data: &[u8]) -> Result<(&[u8], &[u8]), BtfError> {
    let magic = u16_at(data, 0)?;
    if magic != BTF_MAGIC {
        return Err(BtfError::BadMagic(magic));
    }
    let hdr_len = u32_at(data, 4)? as usize;
    let type_off = u32_at(data, 8)? as usize;
    let type_len = u32_at(data, 12)? as usize;
    let str_off = u32_at(data, 16)? as usize;
    let str_len = u32_at(data, 20)? as usize;
    let types_start = hdr_len
        .checked_add(type_off)
        .ok_or(BtfError::Truncated("type offset"))?;
    let types_end = types_start
        .checked_add(type_len)
        .ok_or(BtfError::Truncated("type length"))?;
    let str_start = hdr_len
        .checked_add(str_off)
        .ok_or(BtfError::Truncated("string offset"))?;
    let str_end = str_start
        .checked_add(str_len)
        .ok_or(BtfError::Truncated("string length"))?;
    let type_data = data
        .get(types_start..types_end)
        .ok_or(BtfError::Truncated("type section"))?;
    let strings = data
        .get(str_start..str_end)
        .ok_or(BtfError::Truncated("string section"))?;
    Ok((type_data, strings))
}

/// Reads type `id` at byte `at` of the type section; returns it and where the next
/// type starts.
fn read_type(
    type_data: &[u8],
    mut at: usize,
    id: u32,
    enumerators: &mut Vec<Enumerator>,
) -> Result<(Type, usize), BtfError> {
    let info = u32_at(type_data, at + 4)?;
    let mut ty = Type {
        name_off: u32_at(type_data, at)?,
        kind: (info >> 24) & 0x1f,
        size_or_type: u32_at(type_data, at + 8)?,
        ..Type::default()
    };
    at += 12;
    let vlen = (info & 0xffff) as usize;
    let kind_flag = info >> 31 == 1;
    match ty.kind {
        KIND_INT | KIND_VAR | KIND_DECL_TAG => at += 4,
        KIND_ARRAY => {
            ty.array_elem = u32_at(type_data, at)?;
            ty.array_len = u32_at(type_data, at + 8)?;
            at += 12;
        }
        KIND_STRUCT | KIND_UNION => {
            ty.members.reserve(vlen);
            for _ in 0..vlen {
                let offset = u32_at(type_data, at + 8)?;
                ty.members.push(Member {
                    name_off: u32_at(type_data, at)?,
                    type_id: u32_at(type_data, at + 4)?,
                    // With kind_flag the top 8 bits hold the bitfield size.
                    bit_offset: if kind_flag {
                        offset & 0x00ff_ffff
                    } else {
                        offset
                    },
                });
                at += 12;
            }
        }
        KIND_ENUM | KIND_ENUM64 => {
            // ENUM entries: name, 32-bit value; ENUM64: name, low and high halves.
            let wide = ty.kind == KIND_ENUM64;
            for _ in 0..vlen {
                let low = u64::from(u32_at(type_data, at + 4)?);
                let high = if wide {
                    u64::from(u32_at(type_data, at + 8)?)
                } else {
                    0
                };
                enumerators.push(Enumerator {
                    enum_name_off: ty.name_off,
                    name_off: u32_at(type_data, at)?,
                    value: (high << 32) | low,
                });
                at += if wide { 12 } else { 8 };
            }
        }
        KIND_FUNC_PROTO => at += 8 * vlen,
        KIND_DATASEC => at += 12 * vlen,
        KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
        | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => {}
        kind => return Err(BtfError::UnknownKind { kind, id }),
    }
    Ok((ty, at))
}

impl Btf {
    /// Parses little-endian raw BTF (the format of `/sys/kernel/btf/vmlinux`).
    pub fn parse(data: &[u8]) -> Result<Self, BtfError> {
        let (type_data, strings) = sections(data)?;
        // Type id 0 is `void`.
        let mut types = vec![Type::default()];
        let mut enumerators = Vec::new();
        let mut at = 0;
        while at < type_data.len() {
            let id = u32::try_from(types.len()).unwrap_or(u32::MAX);
            let (ty, next) = read_type(type_data, at, id, &mut enumerators)?;
            types.push(ty);
            at = next;
        }
        if at != type_data.len() {
            return Err(BtfError::Truncated("last type runs past the type section"));
        }

        let mut btf = Self {
            types,
            strings: strings.to_vec(),
            by_name: HashMap::new(),
            enumerators,
        };
        for (id, ty) in btf.types.iter().enumerate() {
            if matches!(ty.kind, KIND_STRUCT | KIND_UNION) && ty.name_off != 0 {
                let name = btf.name(ty.name_off).to_owned();
                let id = u32::try_from(id).unwrap_or(u32::MAX);
                btf.by_name.entry(name).or_default().push(id);
            }
        }
        Ok(btf)
    }

    fn name(&self, offset: u32) -> &str {
        let start = offset as usize;
        let Some(rest) = self.strings.get(start..) else {
            return "";
        };
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or("")
    }

    fn ty(&self, id: u32) -> Option<&Type> {
        self.types.get(id as usize)
    }

    /// The name of type `id` (empty for anonymous types), if it exists.
    pub fn type_name(&self, id: u32) -> Option<&str> {
        self.ty(id).map(|ty| self.name(ty.name_off))
    }

    /// Whether a typedef of this name exists: the kernel declares `btf_trace_NAME` for
    /// every tracepoint `NAME` it has (what `tp_btf` programs attach to).
    pub fn has_typedef(&self, name: &str) -> bool {
        self.types
            .iter()
            .any(|ty| ty.kind == KIND_TYPEDEF && self.name(ty.name_off) == name)
    }

    /// Follows typedefs and qualifiers to the underlying type.
    fn resolve(&self, mut id: u32) -> Option<u32> {
        for _ in 0..32 {
            let ty = self.ty(id)?;
            match ty.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = ty.size_or_type;
                }
                _ => return Some(id),
            }
        }
        None
    }

    fn size_of(&self, id: u32) -> Option<u32> {
        let id = self.resolve(id)?;
        let ty = self.ty(id)?;
        match ty.kind {
            KIND_INT | KIND_STRUCT | KIND_UNION | KIND_ENUM | KIND_ENUM64 | KIND_FLOAT => {
                Some(ty.size_or_type)
            }
            KIND_PTR => Some(8),
            KIND_ARRAY => self.size_of(ty.array_elem)?.checked_mul(ty.array_len),
            _ => None,
        }
    }

    /// Finds `name` among the members of struct/union `id`, looking through anonymous
    /// members (`struct sock_common`'s unions, `sk_buff`'s `dev`).
    fn find_member(&self, id: u32, name: &str, depth: u32) -> Option<(u32, u32)> {
        if depth > 8 {
            return None;
        }
        let ty = self.ty(self.resolve(id)?)?;
        if !matches!(ty.kind, KIND_STRUCT | KIND_UNION) {
            return None;
        }
        for member in &ty.members {
            if member.name_off != 0 && self.name(member.name_off) == name {
                return Some((member.bit_offset, member.type_id));
            }
        }
        for member in ty.members.iter().filter(|m| m.name_off == 0) {
            if let Some((bits, type_id)) = self.find_member(member.type_id, name, depth + 1) {
                return Some((member.bit_offset + bits, type_id));
            }
        }
        None
    }

    /// The value of enumerator `name` of the enum named `enum_name` (`enum sock_flags`'
    /// `SOCK_DONE`).
    pub fn enum_value(&self, enum_name: &str, name: &str) -> Option<u64> {
        self.enumerators
            .iter()
            .find(|e| self.name(e.name_off) == name && self.name(e.enum_name_off) == enum_name)
            .map(|e| e.value)
    }

    /// Byte offset of `path` (e.g. `["__sk_common", "skc_net", "net"]`) inside the
    /// struct named `root`. Every step but the last must be an embedded struct/union.
    pub fn member_offset(&self, root: &str, path: &[&str]) -> Option<MemberOffset> {
        let candidates = self.by_name.get(root)?;
        // A name can have a forward declaration or several definitions; take the
        // first that has the whole path.
        candidates.iter().find_map(|&id| {
            let mut current = id;
            let mut bits = 0;
            for step in path {
                let (offset, next) = self.find_member(current, step, 0)?;
                bits += offset;
                current = next;
            }
            if bits % 8 != 0 {
                return None;
            }
            let resolved = self.resolve(current)?;
            Some(MemberOffset {
                offset: bits / 8,
                size: self.size_of(resolved)?,
                is_pointer: self.ty(resolved)?.kind == KIND_PTR,
            })
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds raw BTF by hand, the way the kernel lays it out.
    #[derive(Default)]
    struct Builder {
        types: Vec<u8>,
        strings: Vec<u8>,
        next_id: u32,
    }

    impl Builder {
        fn new() -> Self {
            Self {
                types: Vec::new(),
                strings: vec![0],
                next_id: 1,
            }
        }

        fn string(&mut self, s: &str) -> u32 {
            if s.is_empty() {
                return 0;
            }
            let off = u32::try_from(self.strings.len()).unwrap();
            self.strings.extend_from_slice(s.as_bytes());
            self.strings.push(0);
            off
        }

        fn header(
            &mut self,
            name: &str,
            kind: u32,
            vlen: u32,
            kind_flag: bool,
            size_or_type: u32,
        ) -> u32 {
            let name_off = self.string(name);
            self.types.extend_from_slice(&name_off.to_le_bytes());
            let info = (u32::from(kind_flag) << 31) | (kind << 24) | vlen;
            self.types.extend_from_slice(&info.to_le_bytes());
            self.types.extend_from_slice(&size_or_type.to_le_bytes());
            let id = self.next_id;
            self.next_id += 1;
            id
        }

        fn int(&mut self, name: &str, size: u32) -> u32 {
            let id = self.header(name, KIND_INT, 0, false, size);
            self.types.extend_from_slice(&(size * 8).to_le_bytes());
            id
        }

        fn ptr(&mut self, to: u32) -> u32 {
            self.header("", KIND_PTR, 0, false, to)
        }

        fn composite(
            &mut self,
            kind: u32,
            name: &str,
            size: u32,
            members: &[(&str, u32, u32)],
            bitfields: bool,
        ) -> u32 {
            let id = self.header(
                name,
                kind,
                u32::try_from(members.len()).unwrap(),
                bitfields,
                size,
            );
            for &(member, ty, bit_offset) in members {
                let name_off = self.string(member);
                self.types.extend_from_slice(&name_off.to_le_bytes());
                self.types.extend_from_slice(&ty.to_le_bytes());
                self.types.extend_from_slice(&bit_offset.to_le_bytes());
            }
            id
        }

        fn enumeration(&mut self, name: &str, values: &[(&str, u32)]) -> u32 {
            let vlen = u32::try_from(values.len()).unwrap();
            let id = self.header(name, KIND_ENUM, vlen, false, 4);
            for &(member, value) in values {
                let name_off = self.string(member);
                self.types.extend_from_slice(&name_off.to_le_bytes());
                self.types.extend_from_slice(&value.to_le_bytes());
            }
            id
        }

        fn finish(self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&BTF_MAGIC.to_le_bytes());
            out.push(1);
            out.push(0);
            out.extend_from_slice(&24u32.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&u32::try_from(self.types.len()).unwrap().to_le_bytes());
            out.extend_from_slice(&u32::try_from(self.types.len()).unwrap().to_le_bytes());
            out.extend_from_slice(&u32::try_from(self.strings.len()).unwrap().to_le_bytes());
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strings);
            out
        }
    }

    /// A miniature of the 6.18 structures, with the anonymous unions that make naive
    /// lookups fail.
    pub(crate) fn kernel_like() -> Vec<u8> {
        let mut b = Builder::new();
        let u32_t = b.int("unsigned int", 4);
        let u64_t = b.int("u64", 8);
        let ns_common = b.composite(
            KIND_STRUCT,
            "ns_common",
            24,
            &[("stashed", u64_t, 0), ("inum", u32_t, 128)],
            false,
        );
        let net = b.composite(
            KIND_STRUCT,
            "net",
            256,
            &[("passive", u32_t, 0), ("ns", ns_common, 1024)],
            false,
        );
        let net_ptr = b.ptr(net);
        let possible_net = b.composite(KIND_STRUCT, "", 8, &[("net", net_ptr, 0)], false);
        let possible_net_t = b.header("possible_net_t", KIND_TYPEDEF, 0, false, possible_net);
        let anon_union = b.composite(
            KIND_UNION,
            "",
            8,
            &[("skc_net", possible_net_t, 0), ("skc_other", u64_t, 0)],
            false,
        );
        let sock_common = b.composite(
            KIND_STRUCT,
            "sock_common",
            136,
            &[("skc_daddr", u32_t, 0), ("", anon_union, 384)],
            false,
        );
        let kernfs_node = b.composite(
            KIND_STRUCT,
            "kernfs_node",
            128,
            &[("count", u32_t, 0), ("id", u64_t, 640)],
            false,
        );
        let kn_ptr = b.ptr(kernfs_node);
        let cgroup = b.composite(
            KIND_STRUCT,
            "cgroup",
            1024,
            &[("self", u64_t, 0), ("kn", kn_ptr, 2048)],
            false,
        );
        let cgroup_ptr = b.ptr(cgroup);
        let cgrp_data = b.composite(
            KIND_STRUCT,
            "sock_cgroup_data",
            16,
            &[("cgroup", cgroup_ptr, 0), ("classid", u32_t, 64)],
            false,
        );
        let flags = b.int("u8", 1);
        b.enumeration("sock_flags", &[("SOCK_DEAD", 0), ("SOCK_DONE", 1)]);
        b.composite(
            KIND_STRUCT,
            "sock",
            1024,
            &[
                ("__sk_common", sock_common, 0),
                ("sk_bits", flags, (3 << 24) | (1100 * 8)),
                ("sk_cgrp_data", cgrp_data, 5000 * 8),
            ],
            true,
        );
        b.finish()
    }

    /// An `int` (type 1) and the typedef the kernel declares for a tracepoint (type 2).
    pub(crate) fn tracepoint_typedef(tracepoint: &str) -> Vec<u8> {
        let mut b = Builder::new();
        let int = b.int("int", 4);
        b.header(
            &format!("btf_trace_{tracepoint}"),
            KIND_TYPEDEF,
            0,
            false,
            int,
        );
        b.finish()
    }

    #[test]
    fn resolves_members_through_anonymous_unions_and_typedefs() {
        let btf = Btf::parse(&kernel_like()).unwrap();
        assert_eq!(
            btf.member_offset("sock", &["__sk_common", "skc_net", "net"]),
            Some(MemberOffset {
                offset: 48,
                size: 8,
                is_pointer: true
            })
        );
        assert_eq!(
            btf.member_offset("net", &["ns", "inum"])
                .map(|m| (m.offset, m.size)),
            Some((144, 4))
        );
        assert_eq!(
            btf.member_offset("sock", &["sk_cgrp_data", "cgroup"])
                .map(|m| m.offset),
            Some(5000)
        );
        assert_eq!(btf.member_offset("sock", &["no_such_member"]), None);
        assert_eq!(btf.member_offset("no_such_struct", &["x"]), None);
        assert_eq!(btf.enum_value("sock_flags", "SOCK_DONE"), Some(1));
        assert_eq!(btf.enum_value("sock_flags", "SOCK_NOPE"), None);
        assert_eq!(btf.enum_value("no_such_enum", "SOCK_DONE"), None);
    }

    #[test]
    fn names_types_and_finds_typedefs() {
        let btf = Btf::parse(&kernel_like()).unwrap();
        assert_eq!(btf.type_name(1), Some("unsigned int"));
        assert_eq!(btf.type_name(0), Some(""));
        assert_eq!(btf.type_name(10_000), None);
        assert!(btf.has_typedef("possible_net_t"));
        assert!(!btf.has_typedef("btf_trace_inet_sock_set_state"));
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(
            Btf::parse(b"nope"),
            Err(BtfError::Truncated(_)) | Err(BtfError::BadMagic(_))
        ));
        assert!(matches!(Btf::parse(&[0u8; 32]), Err(BtfError::BadMagic(0))));
        let mut data = kernel_like();
        data.truncate(data.len() - 40);
        assert!(Btf::parse(&data).is_err());
    }
}
