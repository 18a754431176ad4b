//! LEB128 varints and a bounds-checked byte cursor. Every read returns `None` on short
//! input instead of panicking: trace files are untrusted input.

use bytes::BufMut;

pub fn put_u64(out: &mut impl BufMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

pub fn put_i64(out: &mut impl BufMut, value: i64) {
    put_u64(out, ((value << 1) ^ (value >> 63)) as u64);
}

/// A read position in an untrusted byte slice.
#[derive(Clone, Copy, Debug)]
pub struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn u8(&mut self) -> Option<u8> {
        let byte = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(byte)
    }

    pub fn bytes(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(len)?;
        let slice = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(slice)
    }

    pub fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N)?.try_into().ok()
    }

    pub fn u16_be(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    pub fn u32_le(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    pub fn u64_le(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    pub fn var_u64(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    pub fn var_u32(&mut self) -> Option<u32> {
        self.var_u64().and_then(|v| u32::try_from(v).ok())
    }

    pub fn var_i64(&mut self) -> Option<i64> {
        let raw = self.var_u64()?;
        Some(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_edge_values() {
        let values = [
            0u64,
            1,
            127,
            128,
            16383,
            16384,
            u64::from(u32::MAX),
            u64::MAX,
        ];
        let mut out = Vec::new();
        for v in values {
            put_u64(&mut out, v);
        }
        let signed = [0i64, -1, 1, -64, 64, i64::MIN, i64::MAX];
        for v in signed {
            put_i64(&mut out, v);
        }
        let mut cursor = Cursor::new(&out);
        for v in values {
            assert_eq!(cursor.var_u64(), Some(v));
        }
        for v in signed {
            assert_eq!(cursor.var_i64(), Some(v));
        }
        assert_eq!(cursor.position(), out.len());
        assert_eq!(cursor.var_u64(), None);
    }

    #[test]
    fn small_values_are_one_byte() {
        let mut out = Vec::new();
        put_u64(&mut out, 127);
        put_i64(&mut out, -64);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn overlong_varints_are_rejected() {
        let data = [0xffu8; 11];
        assert_eq!(Cursor::new(&data).var_u64(), None);
        assert_eq!(Cursor::new(&[0x80, 0x80]).var_u64(), None);
    }
}
