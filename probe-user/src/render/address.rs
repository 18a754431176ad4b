//! Addresses and ports as every output shows them. A part the kernel did not give
//! ([`known_ip`], [`known_port`]: a connect's source port before it is picked, a child
//! socket's peer before 6.15; docs/kernel-facts.md §1.1) is unknown: `*` in text (ss's
//! mark for an unspecified address or port), null in JSON and Parquet, an empty label
//! in metrics; never 0 or 0.0.0.0.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
};

use crate::model::{known_ip, known_port};

/// What text shows for an unknown address or port.
const UNKNOWN: &str = "*";

/// An address in text: `10.0.0.1`, `::1`, or `*` when unknown. Honours width and
/// alignment (`{:<21}`).
#[derive(Clone, Copy, Debug)]
pub struct IpText(pub IpAddr);

impl fmt::Display for IpText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match known_ip(self.0) {
            Some(ip) => f.pad(&ip.to_string()),
            None => f.pad(UNKNOWN),
        }
    }
}

/// An address and port in text: `10.0.0.1:80`, `[::1]:80`, and with unknown parts
/// `10.0.0.1:*`, `[::1]:*`, `*:80`, `*:*`. Honours width and alignment.
#[derive(Clone, Copy, Debug)]
pub struct EndpointText(pub SocketAddr);

impl fmt::Display for EndpointText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (ip, port) = (known_ip(self.0.ip()), known_port(self.0.port()));
        if ip.is_some() && port.is_some() {
            // The standard form, with an IPv6 scope id if there is one.
            return f.pad(&self.0.to_string());
        }
        let ip = match ip {
            Some(IpAddr::V6(v6)) => format!("[{v6}]"),
            Some(IpAddr::V4(v4)) => v4.to_string(),
            None => UNKNOWN.to_owned(),
        };
        let port = port.map_or_else(|| UNKNOWN.to_owned(), |p| p.to_string());
        f.pad(&format!("{ip}:{port}"))
    }
}

/// An address as a JSON or Parquet value: its text, or null when unknown.
pub fn ip_value(ip: IpAddr) -> Option<String> {
    known_ip(ip).map(|ip| ip.to_string())
}

/// A port as a JSON or Parquet value: null when unknown.
pub fn port_value(port: u16) -> Option<u16> {
    known_port(port)
}

/// An address as a metrics label: empty when unknown, as every unknown label is.
pub fn ip_label(ip: IpAddr) -> String {
    ip_value(ip).unwrap_or_default()
}

/// An address and port as a metrics label: empty when neither is known, else
/// [`EndpointText`] (`10.0.0.1:*` when only the port is unknown).
pub fn endpoint_label(endpoint: SocketAddr) -> String {
    if known_ip(endpoint.ip()).is_none() && known_port(endpoint.port()).is_none() {
        return String::new();
    }
    EndpointText(endpoint).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(text: &str) -> String {
        EndpointText(text.parse().unwrap()).to_string()
    }

    #[test]
    fn known_parts_as_they_are_unknown_ones_as_a_star() {
        assert_eq!(endpoint("10.0.0.1:80"), "10.0.0.1:80");
        assert_eq!(endpoint("[::1]:80"), "[::1]:80");
        assert_eq!(endpoint("[fe80::1%2]:80"), "[fe80::1%2]:80");
        assert_eq!(endpoint("10.0.0.1:0"), "10.0.0.1:*");
        assert_eq!(endpoint("[::1]:0"), "[::1]:*");
        assert_eq!(endpoint("[::ffff:10.0.0.1]:0"), "[::ffff:10.0.0.1]:*");
        assert_eq!(endpoint("0.0.0.0:80"), "*:80");
        assert_eq!(endpoint("[::]:80"), "*:80");
        assert_eq!(endpoint("0.0.0.0:0"), "*:*");
        assert_eq!(endpoint("[::]:0"), "*:*");
        let ip = |text: &str| IpText(text.parse().unwrap()).to_string();
        assert_eq!(ip("10.0.0.2"), "10.0.0.2");
        assert_eq!(ip("::1"), "::1");
        assert_eq!(ip("0.0.0.0"), "*");
        assert_eq!(ip("::"), "*");
    }

    #[test]
    fn text_forms_fill_their_columns() {
        let unknown: SocketAddr = "10.0.0.1:0".parse().unwrap();
        assert_eq!(format!("[{:<12}]", EndpointText(unknown)), "[10.0.0.1:*  ]");
        assert_eq!(format!("[{:>3}]", IpText("::".parse().unwrap())), "[  *]");
    }

    #[test]
    fn values_are_null_and_labels_empty_when_unknown() {
        let v4: SocketAddr = "10.0.0.1:0".parse().unwrap();
        assert_eq!(ip_value(v4.ip()).as_deref(), Some("10.0.0.1"));
        assert_eq!(port_value(v4.port()), None);
        assert_eq!(port_value(2181), Some(2181));
        assert_eq!(ip_value("::".parse().unwrap()), None);
        assert_eq!(ip_value("0.0.0.0".parse().unwrap()), None);
        assert_eq!(ip_label("0.0.0.0".parse().unwrap()), "");
        assert_eq!(ip_label("10.0.0.2".parse().unwrap()), "10.0.0.2");
        assert_eq!(endpoint_label("0.0.0.0:0".parse().unwrap()), "");
        assert_eq!(endpoint_label(v4), "10.0.0.1:*");
        assert_eq!(
            endpoint_label("10.0.0.1:2181".parse().unwrap()),
            "10.0.0.1:2181"
        );
    }
}
