//! `tcpchurn doctor`'s report as text (sections with aligned columns, notes wrapped)
//! and as one JSON document (the report's fields, derived).

use std::io::{self, Write};

use crate::{
    model::doctor::{DoctorReport, Holder, NamespaceCensus, Status},
    render::text::{clean, wrap},
};

pub fn write_json(out: &mut impl Write, report: &DoctorReport) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report).map_err(io::Error::other)?;
    writeln!(out)
}

pub fn write_text(out: &mut impl Write, report: &DoctorReport) -> io::Result<()> {
    let host = &report.host;
    writeln!(
        out,
        "tcpchurn doctor on {} (Linux {}, {})",
        printable(&host.hostname),
        printable(&host.kernel),
        printable(&host.machine)
    )?;
    write_checks(out, report)?;
    write_sysctls(out, report)?;
    write_sockets(out, report)?;
    if !report.warnings.is_empty() {
        writeln!(out, "\nNOT READ")?;
        for warning in &report.warnings {
            wrapped(out, "  ", &printable(warning))?;
        }
    }
    Ok(())
}

fn write_checks(out: &mut impl Write, report: &DoctorReport) -> io::Result<()> {
    let verdict = if report.can_record {
        "yes"
    } else {
        "NO (see FAIL below)"
    };
    writeln!(out, "\nCAN TCPCHURN RECORD HERE? {verdict}")?;
    for check in &report.checks {
        writeln!(
            out,
            "  {:<5} {:<15} {}",
            check.status.name(),
            check.name,
            printable(&check.found)
        )?;
        if let Some(note) = &check.note {
            wrapped(out, "                        ", &printable(note))?;
        }
    }
    for p in &report.attached_programs {
        writeln!(
            out,
            "                        {} {}: program {} ({}) of pid {} ({})",
            p.kind.name(),
            printable(&p.tracepoint),
            p.program_id,
            printable(p.program_name.as_deref().unwrap_or("name unknown")),
            p.pid,
            printable(&p.comm)
        )?;
    }
    Ok(())
}

fn write_sysctls(out: &mut impl Write, report: &DoctorReport) -> io::Result<()> {
    writeln!(out, "\nTCP SETTINGS (this network namespace)")?;
    for sysctl in &report.sysctls {
        let value = sysctl.value.as_deref().unwrap_or("(absent)");
        let flag = if sysctl.status == Status::Ok {
            ""
        } else {
            sysctl.status.name()
        };
        writeln!(
            out,
            "  {:<5} {:<30} {}",
            flag,
            sysctl.name,
            printable(value)
        )?;
        for note in &sysctl.notes {
            wrapped(out, "            ", &printable(note))?;
        }
    }
    Ok(())
}

fn write_sockets(out: &mut impl Write, report: &DoctorReport) -> io::Result<()> {
    let census = &report.sockets;
    let states: Vec<&str> = census.totals.keys().copied().collect();
    let reached = census.namespaces.len();
    writeln!(
        out,
        "\nTCP SOCKETS (sock_diag, {reached} network namespace{} reached)",
        if reached == 1 { "" } else { "s" }
    )?;
    if states.is_empty() {
        writeln!(out, "  none")?;
        return Ok(());
    }
    write!(out, "  {:<11} {:<28}", "NETNS", "WHERE")?;
    for state in &states {
        write!(out, " {:>11}", state)?;
    }
    writeln!(out)?;
    for ns in census
        .namespaces
        .iter()
        .filter(|ns| ns.own || !ns.counts.is_empty())
    {
        write_namespace_row(out, ns, &states)?;
    }
    write!(out, "  {:<11} {:<28}", "TOTAL", "")?;
    for state in &states {
        write!(
            out,
            " {:>11}",
            census.totals.get(state).copied().unwrap_or(0)
        )?;
    }
    writeln!(out)?;
    for ns in census
        .namespaces
        .iter()
        .filter(|ns| !ns.sysctl_differences.is_empty())
    {
        let diffs: Vec<String> = ns
            .sysctl_differences
            .iter()
            .map(|(name, value)| format!("{name}={}", value.as_deref().unwrap_or("(absent)")))
            .collect();
        wrapped(
            out,
            "  ",
            &printable(&format!("netns {} differs: {}", ns.inode, diffs.join(" "))),
        )?;
    }
    for (state, what) in [
        (
            "TIME_WAIT",
            "TIME_WAIT (no process holds these: server side, the listener's owner)",
        ),
        (
            "CLOSE_WAIT",
            "CLOSE_WAIT (a process that has not called close())",
        ),
    ] {
        let holders: Vec<&Holder> = census.holders.iter().filter(|h| h.state == state).collect();
        if holders.is_empty() {
            continue;
        }
        writeln!(out, "\nTOP {what}")?;
        writeln!(
            out,
            "  {:>7}  {:<11} {:<24} {:<24} OWNER",
            "SOCKETS", "NETNS", "LOCAL", "PEER"
        )?;
        for h in holders {
            write_holder(out, h)?;
        }
    }
    Ok(())
}

fn write_namespace_row(
    out: &mut impl Write,
    ns: &NamespaceCensus,
    states: &[&str],
) -> io::Result<()> {
    let label = match (&ns.label, ns.own) {
        (_, true) => "this one (doctor's)".to_owned(),
        (Some(label), false) => label.clone(),
        (None, false) => ns.path.clone(),
    };
    let label: String = printable(&label).chars().take(28).collect();
    write!(out, "  {:<11} {:<28}", ns.inode, label)?;
    for state in states {
        write!(out, " {:>11}", ns.counts.get(state).copied().unwrap_or(0))?;
    }
    writeln!(out)
}

fn write_holder(out: &mut impl Write, h: &Holder) -> io::Result<()> {
    let owner = h.owner.as_ref().map_or_else(
        || "unknown (client side: replay a recording to see who closed)".to_owned(),
        |o| {
            let via = match o.source {
                crate::model::doctor::HolderSource::Fd => "",
                crate::model::doctor::HolderSource::Listener => " (listener)",
            };
            format!("{} {}{via}", o.pid, printable(&o.comm))
        },
    );
    writeln!(
        out,
        "  {:>7}  {:<11} {:<24} {:<24} {owner}",
        h.count,
        h.netns,
        h.local.as_deref().unwrap_or("*"),
        h.peer
    )
}

/// Writes `text` wrapped to the terminal width, every line starting with `indent`.
fn wrapped(out: &mut impl Write, indent: &str, text: &str) -> io::Result<()> {
    writeln!(out, "{}", wrap(text, indent, indent))
}

/// Text from the system (process names, host names) as a terminal may show it: a
/// process can name itself with terminal escape sequences ([`clean`]).
fn printable(text: &str) -> String {
    clean(text).into_owned()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::doctor::{
        Check, DoctorHost, HolderOwner, HolderSource, SocketCensus, Sysctl,
    };

    fn report() -> DoctorReport {
        let mut counts = BTreeMap::new();
        counts.insert("TIME_WAIT", 5);
        counts.insert("LISTEN", 1);
        DoctorReport {
            host: DoctorHost {
                hostname: "node\x1b[31m".into(),
                kernel: "6.18.0".into(),
                machine: "x86_64".into(),
            },
            can_record: true,
            checks: vec![Check {
                name: "kernel",
                status: Status::Ok,
                found: "6.18.0".into(),
                note: None,
            }],
            attached_programs: Vec::new(),
            sysctls: vec![Sysctl {
                name: "net.ipv4.tcp_tw_recycle",
                value: None,
                status: Status::Ok,
                notes: vec!["gone since Linux 4.12".into()],
            }],
            sockets: SocketCensus {
                totals: counts.clone(),
                namespaces: vec![NamespaceCensus {
                    inode: 4026531840,
                    path: "/proc/self/ns/net".into(),
                    label: None,
                    own: true,
                    counts,
                    sysctl_differences: BTreeMap::new(),
                }],
                holders: vec![Holder {
                    state: "TIME_WAIT",
                    netns: 4026531840,
                    count: 5,
                    owner: Some(HolderOwner {
                        pid: 7,
                        comm: "java".into(),
                        source: HolderSource::Listener,
                    }),
                    local: Some("10.0.0.1:2181".into()),
                    peer: "10.0.0.2".into(),
                }],
            },
            warnings: Vec::new(),
        }
    }

    #[test]
    fn text_has_each_section_and_no_escape_sequences() {
        let mut out = Vec::new();
        write_text(&mut out, &report()).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains('\x1b'), "{text}");
        assert!(text.contains("CAN TCPCHURN RECORD HERE? yes"), "{text}");
        assert!(
            text.contains("net.ipv4.tcp_tw_recycle        (absent)"),
            "{text}"
        );
        assert!(text.contains("TOP TIME_WAIT"), "{text}");
        assert!(text.contains("10.0.0.1:2181"), "{text}");
        assert!(text.contains("7 java (listener)"), "{text}");
        assert!(!text.contains("TOP CLOSE_WAIT"), "{text}");
    }

    #[test]
    fn json_keeps_the_field_names() {
        let mut out = Vec::new();
        write_json(&mut out, &report()).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["can_record"], true);
        assert_eq!(value["checks"][0]["status"], "ok");
        assert!(value["sysctls"][0]["value"].is_null());
        assert_eq!(value["sockets"]["totals"]["TIME_WAIT"], 5);
        let holder = &value["sockets"]["holders"][0];
        assert_eq!(holder["owner"]["source"], "listener");
        assert_eq!(holder["owner"]["pid"], 7);
    }
}
