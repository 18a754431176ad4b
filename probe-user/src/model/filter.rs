//! `--server`/`--client`: which connections a replay keeps.

use std::net::{IpAddr, SocketAddr};

use crate::model::{SocketTuple, TraceEvent};

/// A client/server address filter; empty keeps everything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointFilter {
    pub server: Option<(IpAddr, Option<u16>)>,
    pub client: Option<IpAddr>,
}

/// `ADDR` or `[V6]`, canonical (an IPv4-mapped IPv6 address is the IPv4 address).
/// Brackets come in pairs.
fn parse_ip(text: &str) -> Option<IpAddr> {
    let bare = match text.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']')?,
        None => text,
    };
    bare.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

impl EndpointFilter {
    /// Parses `ADDR`, `ADDR:PORT`, `[V6]:PORT` or `V6`.
    pub fn parse_server(text: &str) -> Result<(IpAddr, Option<u16>), String> {
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok((addr.ip().to_canonical(), Some(addr.port())));
        }
        parse_ip(text)
            .map(|ip| (ip, None))
            .ok_or_else(|| format!("`{text}` is not an address or address:port"))
    }

    pub fn parse_client(text: &str) -> Result<IpAddr, String> {
        parse_ip(text).ok_or_else(|| format!("`{text}` is not an IP address"))
    }

    pub fn is_empty(&self) -> bool {
        self.server.is_none() && self.client.is_none()
    }

    fn is_server(&self, addr: SocketAddr) -> bool {
        self.server
            .is_none_or(|(ip, port)| addr.ip() == ip && port.is_none_or(|p| p == addr.port()))
    }

    /// Whether a socket's tuple belongs to the filtered client/server pair, seen from
    /// either end.
    pub fn matches(&self, tuple: &SocketTuple) -> bool {
        let client_ok = |addr: SocketAddr| self.client.is_none_or(|ip| addr.ip() == ip);
        (self.is_server(tuple.remote) && client_ok(tuple.local))
            || (self.is_server(tuple.local) && client_ok(tuple.remote))
    }

    /// Whether the filter leaves this socket out (never when it is empty).
    pub fn excludes(&self, tuple: &SocketTuple) -> bool {
        !self.is_empty() && !self.matches(tuple)
    }

    /// Whether an event is about a socket the filter keeps; lost events always are.
    pub fn keeps(&self, event: &TraceEvent) -> bool {
        event.tuple().is_none_or(|tuple| !self.excludes(&tuple))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Gap, GapCause};

    fn tuple(local: &str, remote: &str) -> SocketTuple {
        SocketTuple {
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
        }
    }

    #[test]
    fn endpoint_filters_match_either_end() {
        let filter = EndpointFilter {
            server: Some(EndpointFilter::parse_server("10.0.0.1:2181").unwrap()),
            client: Some(EndpointFilter::parse_client("10.0.0.2").unwrap()),
        };
        assert!(filter.matches(&tuple("10.0.0.2:40000", "10.0.0.1:2181")));
        assert!(filter.matches(&tuple("10.0.0.1:2181", "10.0.0.2:40000")));
        assert!(!filter.matches(&tuple("10.0.0.3:40000", "10.0.0.1:2181")));
        assert!(!filter.matches(&tuple("10.0.0.2:40000", "10.0.0.1:80")));
        let any_port = EndpointFilter {
            server: Some(EndpointFilter::parse_server("[fd00::1]").unwrap()),
            client: None,
        };
        assert!(any_port.matches(&tuple("[fd00::2]:5000", "[fd00::1]:80")));
        assert!(EndpointFilter::parse_server("nope").is_err());
        for unbalanced in ["[fd88::1", "fd88::1]", "[[fd88::1]", "[fd88::1]]"] {
            assert!(
                EndpointFilter::parse_server(unbalanced).is_err(),
                "{unbalanced}"
            );
            assert!(
                EndpointFilter::parse_client(unbalanced).is_err(),
                "{unbalanced}"
            );
        }
        assert!(EndpointFilter::parse_client("10.0.0.1:80").is_err());
    }

    #[test]
    fn addresses_are_canonical() {
        assert_eq!(
            EndpointFilter::parse_server("[::ffff:10.0.0.1]:80"),
            Ok(("10.0.0.1".parse().unwrap(), Some(80)))
        );
        assert_eq!(
            EndpointFilter::parse_client("::ffff:10.0.0.2"),
            Ok("10.0.0.2".parse().unwrap())
        );
    }

    #[test]
    fn an_empty_filter_keeps_everything_and_gaps_are_always_kept() {
        let everything = EndpointFilter::default();
        assert!(!everything.excludes(&tuple("10.0.0.2:1", "10.0.0.1:2")));
        let only = EndpointFilter {
            server: Some(EndpointFilter::parse_server("10.0.0.9").unwrap()),
            client: None,
        };
        assert!(only.excludes(&tuple("10.0.0.2:1", "10.0.0.1:2")));
        let gap = TraceEvent::Lost(Gap {
            from_ns: 0,
            to_ns: 1,
            lost: 1,
            cpu: None,
            cause: GapCause::RingFull,
            host: crate::model::HostId::FIRST,
        });
        assert!(only.keeps(&gap));
    }
}
