//! The kernel's own view of a namespace's TCP sockets, from `ss`, to check a trace
//! against.

use std::net::{IpAddr, Ipv4Addr};

use tcpchurn_harness::Netns;

/// One line of `ss -Htanp`.
#[derive(Debug)]
pub struct SsSocket {
    /// `ESTAB`, `TIME-WAIT`, `LISTEN`, ...
    pub state: String,
    pub local: (IpAddr, u16),
    pub peer: (IpAddr, u16),
    pub pid: Option<u32>,
}

fn endpoint(text: &str) -> (IpAddr, u16) {
    let (host, port) = text.rsplit_once(':').unwrap();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = host
        .parse::<IpAddr>()
        .map_or(IpAddr::from(Ipv4Addr::UNSPECIFIED), |ip| ip.to_canonical());
    (ip, port.parse().unwrap_or(0))
}

/// Every TCP socket of a namespace, as `ss` sees it.
pub fn ss(netns: &Netns) -> Vec<SsSocket> {
    netns
        .run("ss", &["-Htanp"])
        .unwrap()
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [state, _recv_q, _send_q, local, peer, rest @ ..] = fields.as_slice() else {
                return None;
            };
            let pid = rest.iter().find_map(|r| {
                let start = r.find("pid=")? + 4;
                let digits: String = r[start..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                digits.parse().ok()
            });
            Some(SsSocket {
                state: (*state).to_owned(),
                local: endpoint(local),
                peer: endpoint(peer),
                pid,
            })
        })
        .collect()
}
