//! Requests and answers of a known size, HTTP/1.0 style: the client writes its request
//! and reads until the server closes; the server reads the request, answers and closes.

use std::{
    io::{self, Read, Write},
    net::TcpStream,
};

/// What a server that turns clients away writes before closing (25 bytes).
pub const ERROR_LINE: &[u8] = b"ERR too many connections\n";

/// Writes `len` bytes (a repeating pattern).
pub fn write_bytes(stream: &mut TcpStream, len: u64) -> io::Result<()> {
    let chunk = [b'x'; 16 * 1024];
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
        stream.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// Reads `len` bytes, or until the peer closes; returns how many arrived.
pub fn read_bytes(stream: &mut TcpStream, len: u64) -> io::Result<u64> {
    io::copy(&mut stream.take(len), &mut io::sink())
}

/// Reads until the peer closes; returns how many bytes arrived.
pub fn read_to_end(stream: &mut TcpStream) -> io::Result<u64> {
    io::copy(stream, &mut io::sink())
}
