//! The connection tracker: turns the event stream into connections, each one 4-tuple
//! lifecycle with up to two sockets (the client's and the server's), and hands every
//! connection to a [`TrackerSink`] once it has ended.
//!
//! - [`Endpoint`]: one socket, and the first sign of the end it saw;
//! - [`Connection`]: its two sockets, and what their views say together; `handover`:
//!   when a socket's hand-over to a timewait socket starts TIME_WAIT;
//! - `roles`: listeners tell servers from clients; `ends`: which client socket and
//!   which server socket are one connection; `slots`: where live connections are kept;
//! - [`ConnectionTracker`]: routes each event to its socket.

mod connection;
mod connection_tracker;
mod endpoint;
mod ends;
mod handover;
mod roles;
mod slots;

pub use self::{
    connection::Connection,
    connection_tracker::{ConnectionTracker, TrackerSink},
    endpoint::Endpoint,
};
