//! The recorder's view of the running kernel: whether it can record here, what the
//! kernel offers (tracepoint layouts from tracefs, struct offsets from BTF, sockets from
//! `sock_diag`), the loaded program ([`probe`], the only module that uses aya), and the
//! decoding of what that program sends.

pub mod attached;
pub mod btf;
pub mod capabilities;
pub mod decode;
pub mod diag;
pub mod host;
pub mod layouts;
pub mod offsets;
pub mod preflight;
pub mod probe;
pub mod tracefs;
