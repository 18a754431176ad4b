//! An input that grows: bytes pushed at its end are read from its start, like a file
//! being written. The live views follow the recorder's blocks through one.

use std::{
    cell::RefCell,
    io::{self, Read, Seek, SeekFrom},
    rc::Rc,
};

/// See the module documentation. Bytes already read are dropped when more are pushed:
/// a following reader only goes back to the start of the block it is waiting for, and
/// it is there whenever it waits.
#[derive(Debug, Default)]
pub struct ByteQueue {
    data: Vec<u8>,
    /// Position of `data[0]` in the stream.
    base: u64,
    pos: u64,
}

impl ByteQueue {
    pub fn push(&mut self, bytes: &[u8]) {
        let read = usize::try_from(self.pos.saturating_sub(self.base))
            .unwrap_or(usize::MAX)
            .min(self.data.len());
        self.data.drain(..read);
        self.base += read as u64;
        self.data.extend_from_slice(bytes);
    }

    /// Bytes pushed and not yet dropped.
    pub fn held(&self) -> usize {
        self.data.len()
    }
}

impl Read for ByteQueue {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let from = usize::try_from(self.pos - self.base).unwrap_or(usize::MAX);
        let available = self.data.get(from..).unwrap_or_default();
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for ByteQueue {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::Current(delta) => self.pos.checked_add_signed(delta),
            SeekFrom::End(delta) => (self.base + self.data.len() as u64).checked_add_signed(delta),
        };
        match target {
            Some(at) if at >= self.base => {
                self.pos = at;
                Ok(at)
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the bytes still held",
            )),
        }
    }
}

/// A [`ByteQueue`] shared by who pushes and who reads (one thread).
#[derive(Clone, Debug, Default)]
pub struct SharedQueue(Rc<RefCell<ByteQueue>>);

impl SharedQueue {
    pub fn push(&self, bytes: &[u8]) {
        self.0.borrow_mut().push(bytes);
    }

    pub fn held(&self) -> usize {
        self.0.borrow().held()
    }
}

impl Read for SharedQueue {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.borrow_mut().read(buf)
    }
}

impl Seek for SharedQueue {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.0.borrow_mut().seek(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_bytes_are_dropped_and_cannot_be_sought_back() {
        let mut queue = ByteQueue::default();
        queue.push(b"abcdef");
        let mut buf = [0u8; 4];
        assert_eq!(queue.read(&mut buf).unwrap(), 4);
        assert_eq!(&buf, b"abcd");
        queue.seek(SeekFrom::Start(2)).unwrap();
        queue.push(b"gh");
        assert_eq!(queue.held(), 6, "from byte 2 on");
        assert!(queue.seek(SeekFrom::Start(1)).is_err());
        let mut rest = Vec::new();
        queue.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"cdefgh");
        assert_eq!(queue.stream_position().unwrap(), 8);
        assert_eq!(queue.read(&mut buf).unwrap(), 0, "nothing more yet");
    }
}
