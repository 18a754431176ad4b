//! Where a test's two peers run: two namespaces joined by veth, or one namespace over
//! loopback (where the kernel runs each side's softirq in the other side's task, and
//! both ends have the same addresses). Tests run every scenario in both.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tcpchurn_harness::{Netns, Topology};

use crate::recording::{netns, topology};

pub enum Layout {
    /// Server and client in two namespaces joined by a veth pair.
    Veth(Topology),
    /// Both in one namespace, over loopback.
    Loopback(Netns),
}

impl Layout {
    pub fn new(veth: bool, tag: &str) -> Self {
        if veth {
            Self::Veth(topology(tag))
        } else {
            Self::Loopback(netns(tag))
        }
    }

    pub fn server_ns(&self) -> &Netns {
        match self {
            Self::Veth(t) => &t.server,
            Self::Loopback(ns) => ns,
        }
    }

    pub fn client_ns(&self) -> &Netns {
        match self {
            Self::Veth(t) => &t.client,
            Self::Loopback(ns) => ns,
        }
    }

    /// The server's and the client's address.
    pub fn addrs(&self, v6: bool) -> (IpAddr, IpAddr) {
        match (self, v6) {
            (Self::Veth(t), false) => (t.server_v4.into(), t.client_v4.into()),
            (Self::Veth(t), true) => (t.server_v6.into(), t.client_v6.into()),
            (Self::Loopback(_), false) => (Ipv4Addr::LOCALHOST.into(), Ipv4Addr::LOCALHOST.into()),
            (Self::Loopback(_), true) => (Ipv6Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()),
        }
    }

    /// `--netns` arguments selecting where the peers run.
    pub fn netns_args(&self) -> Vec<String> {
        match self {
            Self::Veth(t) => t.netns_args(),
            Self::Loopback(ns) => ns.netns_args(),
        }
    }
}

/// Privileged tests from a table: `name: expression;` becomes a test `name` that
/// evaluates the expression when [`crate::require_root`] lets it run.
#[macro_export]
macro_rules! privileged_tests {
    ($($name:ident: $body:expr;)*) => {$(
        #[test]
        fn $name() {
            if $crate::require_root(stringify!($name)) {
                $body;
            }
        }
    )*};
}
