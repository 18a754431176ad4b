//! Two namespaces, a server side and a client side (an application node), joined by a
//! veth pair with IPv4 and IPv6 addresses.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::{exec, netns::Netns};

/// The addresses of a topology: `10.N.0.1` and `fdN::1` on the server side, `.2` and
/// `::2` on the client side. Each user takes its own N (two decimal digits), so that a
/// trace shows whose connections it holds.
#[derive(Clone, Copy, Debug)]
pub struct Addresses {
    pub server_v4: Ipv4Addr,
    pub client_v4: Ipv4Addr,
    pub server_v6: Ipv6Addr,
    pub client_v6: Ipv6Addr,
}

impl Addresses {
    /// `10.N.0.0/24` and `fdN::/64` (N < 100; its decimal digits are the last two of
    /// the IPv6 prefix, so that 77 gives `10.77.0.0/24` and `fd77::/64`).
    pub fn subnet(n: u8) -> Self {
        let group = 0xfd00 | u16::from(n / 10 % 10) << 4 | u16::from(n % 10);
        let v6 = |host: u16| Ipv6Addr::new(group, 0, 0, 0, 0, 0, 0, host);
        Self {
            server_v4: Ipv4Addr::new(10, n, 0, 1),
            client_v4: Ipv4Addr::new(10, n, 0, 2),
            server_v6: v6(1),
            client_v6: v6(2),
        }
    }
}

/// Two namespaces joined by a veth pair; dropping it deletes both, with every process
/// inside.
#[derive(Debug)]
pub struct Topology {
    pub server: Netns,
    pub client: Netns,
    pub server_v4: Ipv4Addr,
    pub client_v4: Ipv4Addr,
    pub server_v6: Ipv6Addr,
    pub client_v6: Ipv6Addr,
}

const SERVER_DEV: &str = "veth-server";
const CLIENT_DEV: &str = "veth-client";

impl Topology {
    pub fn create(tag: &str, addresses: Addresses) -> anyhow::Result<Self> {
        let server = Netns::create(&format!("{tag}-server"))?;
        let client = Netns::create(&format!("{tag}-client"))?;
        exec::ip(&[
            "-n",
            &server.name,
            "link",
            "add",
            SERVER_DEV,
            "type",
            "veth",
            "peer",
            "name",
            CLIENT_DEV,
            "netns",
            &client.name,
        ])?;
        for (ns, dev, v4, v6) in [
            (
                &server,
                SERVER_DEV,
                addresses.server_v4,
                addresses.server_v6,
            ),
            (
                &client,
                CLIENT_DEV,
                addresses.client_v4,
                addresses.client_v6,
            ),
        ] {
            let (v4, v6) = (format!("{v4}/24"), format!("{v6}/64"));
            exec::ip(&["-n", &ns.name, "addr", "add", &v4, "dev", dev])?;
            exec::ip(&["-n", &ns.name, "addr", "add", &v6, "dev", dev, "nodad"])?;
            exec::ip(&["-n", &ns.name, "link", "set", dev, "up"])?;
        }
        Ok(Self {
            server,
            client,
            server_v4: addresses.server_v4,
            client_v4: addresses.client_v4,
            server_v6: addresses.server_v6,
            client_v6: addresses.client_v6,
        })
    }

    /// `--netns` arguments selecting both namespaces.
    pub fn netns_args(&self) -> Vec<String> {
        let mut args = self.server.netns_args();
        args.extend(self.client.netns_args());
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subnet_number_gives_both_families() {
        let a = Addresses::subnet(77);
        assert_eq!(a.server_v4, Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(a.client_v4, Ipv4Addr::new(10, 77, 0, 2));
        assert_eq!(a.server_v6.to_string(), "fd77::1");
        assert_eq!(a.client_v6.to_string(), "fd77::2");
    }
}
