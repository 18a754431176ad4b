//! The server's listening socket, with the options `std` does not offer before `bind`.

use std::{
    io,
    net::{SocketAddr, TcpListener},
    os::fd::FromRawFd as _,
};

/// How to listen.
#[derive(Clone, Copy, Debug)]
pub struct ListenOptions {
    /// `SO_REUSEPORT`: several processes listen on the same address and port, the
    /// kernel spreads connections over their sockets.
    pub reuseport: bool,
    /// `IPV6_V6ONLY`: an IPv6 wildcard listener that leaves IPv4 to another socket.
    pub v6only: bool,
    /// The `listen()` backlog.
    pub backlog: libc::c_int,
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn enable(fd: libc::c_int, level: libc::c_int, option: libc::c_int) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: a valid fd and a correctly sized int option.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            option,
            (&raw const one).cast(),
            u32::try_from(size_of::<libc::c_int>()).unwrap_or(4),
        )
    })
}

/// A socket listening on `addr` with `options`.
pub fn listen(addr: SocketAddr, options: ListenOptions) -> io::Result<TcpListener> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: a plain socket() call; the fd is owned by the listener below.
    let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new socket that nothing else owns; the listener closes it.
    let listener = unsafe { TcpListener::from_raw_fd(fd) };
    enable(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR)?;
    if options.reuseport {
        enable(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT)?;
    }
    if options.v6only {
        enable(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY)?;
    }
    let (storage, len) = sockaddr(addr);
    // SAFETY: `storage` holds a sockaddr of `len` bytes for `family`.
    check(unsafe { libc::bind(fd, (&raw const storage).cast(), len) })?;
    // SAFETY: a bound socket.
    check(unsafe { libc::listen(fd, options.backlog) })?;
    Ok(listener)
}

/// `addr` as a `sockaddr_in`/`sockaddr_in6` in a `sockaddr_storage`.
fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: a sockaddr_in fits in a sockaddr_storage.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: a sockaddr_in6 fits in a sockaddr_storage.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, libc::socklen_t::try_from(len).unwrap_or(0))
}
