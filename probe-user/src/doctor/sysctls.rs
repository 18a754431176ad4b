//! The TCP sysctls that decide TIME_WAIT and reconnect behaviour, read in a network
//! namespace, with what each does and does not do at its value. The facts are those of
//! docs/kernel-facts.md §1.3 and docs/incident-guide.md §5 (where the outage's sysctl
//! folklore is corrected, with the kernel sources).

use std::fs;

use crate::model::doctor::{Status, Sysctl};

/// Every sysctl the doctor reads, in the order it reports them. All of them are per
/// network namespace on the kernels tcpchurn records on.
pub const NAMES: [&str; 9] = [
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_tw_reuse",
    "net.ipv4.tcp_timestamps",
    "net.ipv4.tcp_max_tw_buckets",
    "net.ipv4.tcp_fin_timeout",
    "net.core.somaxconn",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.tcp_rfc1337",
    "net.ipv4.tcp_tw_recycle",
];

/// The values of [`NAMES`] in the calling thread's network namespace (`None`: this
/// kernel has no such file). Tabs and repeated blanks become one space.
pub fn read_values() -> Vec<(&'static str, Option<String>)> {
    NAMES
        .iter()
        .map(|&name| {
            let path = format!("/proc/sys/{}", name.replace('.', "/"));
            let value = fs::read_to_string(path)
                .ok()
                .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "));
            (name, value)
        })
        .collect()
}

fn value_of<'a>(values: &'a [(&'static str, Option<String>)], name: &str) -> Option<&'a str> {
    values
        .iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.as_deref())
}

/// What each value means, with a warning where the value (or the namespace's TIME_WAIT
/// count) invites trouble or a myth.
pub fn assess(values: &[(&'static str, Option<String>)], time_wait: u64) -> Vec<Sysctl> {
    values
        .iter()
        .map(|(name, value)| {
            let (status, notes) = match value.as_deref() {
                None => absent(name),
                Some(v) => present(name, v, values, time_wait),
            };
            Sysctl {
                name,
                value: value.clone(),
                status,
                notes,
            }
        })
        .collect()
}

fn absent(name: &str) -> (Status, Vec<String>) {
    let note = match name {
        "net.ipv4.tcp_tw_recycle" => {
            "gone since Linux 4.12 (docs/kernel-facts.md §1.3): writing it fails with ENOENT, and a \
             sysctl.conf that sets it fails to apply; nothing expires TIME_WAIT early any more"
        }
        _ => "not in this kernel",
    };
    (Status::Ok, vec![note.to_owned()])
}

fn present(
    name: &str,
    value: &str,
    values: &[(&'static str, Option<String>)],
    time_wait: u64,
) -> (Status, Vec<String>) {
    let one = |status, note: String| (status, vec![note]);
    match name {
        "net.ipv4.ip_local_port_range" => port_range(value),
        "net.ipv4.tcp_tw_reuse" => tw_reuse(value, value_of(values, "net.ipv4.tcp_timestamps")),
        "net.ipv4.tcp_timestamps" => one(
            Status::Ok,
            "tcp_tw_reuse can take over a TIME_WAIT socket only when both ends use TCP \
             timestamps (0 disables them)"
                .into(),
        ),
        "net.ipv4.tcp_max_tw_buckets" => max_tw_buckets(value, time_wait),
        "net.ipv4.tcp_fin_timeout" => one(
            Status::Ok,
            format!(
                "an orphaned connection (closed by its program) waits at most {value} s in \
                 FIN_WAIT2 for the peer's FIN. It does NOT shorten TIME_WAIT, which is fixed at \
                 60 s (TCP_TIMEWAIT_LEN, no sysctl; docs/kernel-facts.md §1.3)"
            ),
        ),
        "net.core.somaxconn" => one(
            Status::Ok,
            format!(
                "caps every listen() backlog (the accept queue) at {value}; a full accept queue \
                 drops handshakes. It limits neither open connections nor TIME_WAIT, and a \
                 server that accepts and then closes (ZooKeeper over maxClientCnxns) never \
                 fills it"
            ),
        ),
        "net.ipv4.tcp_syncookies" => one(
            Status::Ok,
            "matters only when a listener's SYN queue overflows (a SYN flood): connections \
             that complete their handshake and are closed after accept() are not helped by it \
             (docs/incident-guide.md §5)"
                .into(),
        ),
        "net.ipv4.tcp_rfc1337" => one(
            Status::Ok,
            if value == "0" {
                "0: an RST received in TIME_WAIT ends the TIME_WAIT socket early \
                 (docs/kernel-facts.md §1.3)"
            } else {
                "1: an RST received in TIME_WAIT is ignored; the socket stays for its 60 s"
            }
            .into(),
        ),
        "net.ipv4.tcp_tw_recycle" => one(
            if value == "0" {
                Status::Ok
            } else {
                Status::Warn
            },
            "exists only before Linux 4.12; when on, it drops SYNs from clients behind one \
             address whose timestamps are not monotonic: a Kubernetes node's pods behind SNAT \
             (docs/incident-guide.md §5). Leave it 0"
                .into(),
        ),
        _ => (Status::Ok, Vec::new()),
    }
}

fn port_range(value: &str) -> (Status, Vec<String>) {
    let mut parts = value.split(' ').map(str::parse::<u32>);
    let (Some(Ok(low)), Some(Ok(high))) = (parts.next(), parts.next()) else {
        return (Status::Warn, vec![format!("unexpected value `{value}`")]);
    };
    let ports = high.saturating_sub(low) + 1;
    let mut notes = vec![format!(
        "{ports} local ports for connect(): at most that many connections, TIME_WAIT \
         included, from one address to one server address and port; past it connect() fails \
         with EADDRNOTAVAIL unless tcp_tw_reuse lets it take over a TIME_WAIT socket"
    )];
    let status = if ports < 10_000 {
        notes.push(format!(
            "a client reconnecting 100 times a second exhausts {ports} ports in {} s \
             (TIME_WAIT lasts 60 s)",
            ports / 100
        ));
        Status::Warn
    } else {
        Status::Ok
    };
    (status, notes)
}

fn tw_reuse(value: &str, timestamps: Option<&str>) -> (Status, Vec<String>) {
    let meaning = match value {
        "0" => "0: connect() never takes over a TIME_WAIT socket",
        "1" => "1: connect() may take over a TIME_WAIT socket older than 1 s",
        "2" => "2: as 1, for loopback connections only (the default since Linux 4.19)",
        _ => "unexpected value",
    };
    let mut notes = vec![
        meaning.to_owned(),
        "acts only in connect(): it neither shortens TIME_WAIT nor removes TIME_WAIT sockets, \
         and does nothing for a server that accepts (docs/incident-guide.md §5)"
            .to_owned(),
    ];
    let mut status = Status::Ok;
    if value != "0" && timestamps == Some("0") {
        notes.push("tcp_timestamps is 0 here, so it never applies".to_owned());
        status = Status::Warn;
    }
    (status, notes)
}

fn max_tw_buckets(value: &str, time_wait: u64) -> (Status, Vec<String>) {
    let Ok(limit) = value.parse::<u64>() else {
        return (Status::Warn, vec![format!("unexpected value `{value}`")]);
    };
    let mut notes = vec![format!(
        "at most {limit} TIME_WAIT sockets; past it a closing connection skips TIME_WAIT (the \
         kernel logs \"TCP: time wait bucket table overflow\" and counts TCPTimeWaitOverflow), \
         losing TIME_WAIT's protection against old duplicate segments"
    )];
    let status = if limit > 0 && time_wait.saturating_mul(10) >= limit.saturating_mul(8) {
        notes.push(format!(
            "{time_wait} TIME_WAIT sockets now: at least 80% of the limit"
        ));
        Status::Warn
    } else {
        notes.push(format!("{time_wait} TIME_WAIT sockets now"));
        Status::Ok
    };
    (status, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&'static str, Option<&str>)]) -> Vec<(&'static str, Option<String>)> {
        pairs
            .iter()
            .map(|&(n, v)| (n, v.map(str::to_owned)))
            .collect()
    }

    fn find<'a>(all: &'a [Sysctl], name: &str) -> &'a Sysctl {
        all.iter().find(|s| s.name == name).unwrap()
    }

    #[test]
    fn tw_recycle_absent_is_explained_present_and_on_is_a_warning() {
        let gone = assess(&values(&[("net.ipv4.tcp_tw_recycle", None)]), 0);
        assert_eq!(gone[0].status, Status::Ok);
        assert!(gone[0].notes[0].contains("gone since Linux 4.12"));
        let on = assess(&values(&[("net.ipv4.tcp_tw_recycle", Some("1"))]), 0);
        assert_eq!(on[0].status, Status::Warn);
        assert!(on[0].notes[0].contains("NAT") || on[0].notes[0].contains("SNAT"));
    }

    #[test]
    fn fin_timeout_says_what_it_does_not_do() {
        let all = assess(&values(&[("net.ipv4.tcp_fin_timeout", Some("30"))]), 0);
        let note = &all[0].notes[0];
        assert!(note.contains("30 s in FIN_WAIT2"), "{note}");
        assert!(note.contains("does NOT shorten TIME_WAIT"), "{note}");
    }

    #[test]
    fn tw_reuse_needs_timestamps() {
        let all = assess(
            &values(&[
                ("net.ipv4.tcp_tw_reuse", Some("1")),
                ("net.ipv4.tcp_timestamps", Some("0")),
            ]),
            0,
        );
        let reuse = find(&all, "net.ipv4.tcp_tw_reuse");
        assert_eq!(reuse.status, Status::Warn);
        assert!(reuse.notes.iter().any(|n| n.contains("never applies")));
        let default = assess(&values(&[("net.ipv4.tcp_tw_reuse", Some("2"))]), 0);
        assert_eq!(default[0].status, Status::Ok);
        assert!(default[0].notes[0].contains("loopback"));
    }

    #[test]
    fn port_range_and_tw_buckets_warn_near_their_limits() {
        let narrow = assess(
            &values(&[("net.ipv4.ip_local_port_range", Some("60000 61000"))]),
            0,
        );
        assert_eq!(narrow[0].status, Status::Warn);
        assert!(narrow[0].notes[0].starts_with("1001 local ports"));
        let wide = assess(
            &values(&[("net.ipv4.ip_local_port_range", Some("32768 60999"))]),
            0,
        );
        assert_eq!(wide[0].status, Status::Ok);
        let bad = assess(&values(&[("net.ipv4.ip_local_port_range", Some("x"))]), 0);
        assert_eq!(bad[0].status, Status::Warn);

        let buckets = |tw| {
            assess(
                &values(&[("net.ipv4.tcp_max_tw_buckets", Some("1000"))]),
                tw,
            )[0]
            .status
        };
        assert_eq!(buckets(799), Status::Ok);
        assert_eq!(buckets(800), Status::Warn);
    }

    #[test]
    fn every_name_is_a_proc_sys_path() {
        for name in NAMES {
            assert!(name.starts_with("net."), "{name}");
        }
        // Reading works without privileges; tcp_tw_recycle is absent since 4.12.
        let read = read_values();
        assert_eq!(read.len(), NAMES.len());
    }
}
