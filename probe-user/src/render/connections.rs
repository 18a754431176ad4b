//! `--connections`: one row per connection, as text or as a JSON object.

use std::{
    borrow::Cow,
    io::{self, Write},
    net::SocketAddr,
};

use serde::Serialize;

use crate::{
    analysis::{CloseHow, ClosedFirst, ConnectionRow, Side, TIME_WAIT_NS},
    model::{Comm, HostNames, Task, Workload},
    owner::Candidates,
    render::{
        address::EndpointText,
        format::{human_duration, round3, secs},
        text::clean,
        workload::{JsonContainer, text_label},
    },
};

/// The header of the text table: like tcplife's (addresses, owners, bytes each way,
/// lifetime), with who closed first, how, and who kept the TIME_WAIT.
pub const CONNECTIONS_HEADER: &str = "CONN   CLIENT                    PID COMM            \
     SERVER                    PID COMM               C->S     S->C    LIFE FIRST  HOW     TW";

/// An address, cut to fit its column.
fn addr(a: SocketAddr) -> String {
    let text = EndpointText(a).to_string();
    if text.chars().count() > 21 {
        let cut: String = text.chars().take(20).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// `PID COMM` of one end: the owner, or `-` and the name its candidates share. Names
/// come from the trace: escaped, they cannot drive the terminal.
fn owner_cells(owner: Option<&Task>, candidates: Option<&Candidates>) -> (String, String) {
    let name = |comm: &Comm| clean(&comm.as_str()).into_owned();
    match (owner, candidates) {
        (Some(task), _) => (task.pid.to_string(), name(&task.comm)),
        (None, Some(c)) => (
            "-".to_owned(),
            c.comm().map_or_else(|| "-".to_owned(), name),
        ),
        (None, None) => ("-".to_owned(), "-".to_owned()),
    }
}

/// A byte count that fits 8 columns: exact below 100 000, then `97.7K`, `1.0M`...
fn compact_bytes(bytes: Option<u64>) -> String {
    match bytes {
        None => "-".to_owned(),
        Some(b) if b < 100_000 => b.to_string(),
        Some(b) => {
            let mut value = b as f64 / 1024.0;
            for unit in ["K", "M", "G"] {
                if value < 1000.0 {
                    return format!("{value:.1}{unit}");
                }
                value /= 1024.0;
            }
            format!("{value:.1}T")
        }
    }
}

/// One text row, and under it the workloads at either end when the trace names any.
pub fn write_connection_text(out: &mut impl Write, row: &ConnectionRow) -> io::Result<()> {
    write_row_text(out, row)?;
    if row.client_workload.is_some() || row.server_workload.is_some() {
        let label = |w: &Option<std::sync::Arc<Workload>>| {
            w.as_deref().map_or_else(|| "-".to_owned(), text_label)
        };
        writeln!(
            out,
            "       {} -> {}",
            label(&row.client_workload),
            label(&row.server_workload)
        )?;
    }
    Ok(())
}

fn write_row_text(out: &mut impl Write, row: &ConnectionRow) -> io::Result<()> {
    let (client_pid, client_comm) =
        owner_cells(row.client_owner.as_ref(), row.client_candidates.as_ref());
    let (server_pid, server_comm) =
        owner_cells(row.server_owner.as_ref(), row.server_candidates.as_ref());
    writeln!(
        out,
        "{:<6} {:<21} {:>7} {:<15} {:<21} {:>7} {:<15} {:>8} {:>8} {:>7} {:<6} {:<7} {}",
        row.conn.map_or_else(|| "-".to_owned(), |c| c.to_string()),
        addr(row.client),
        client_pid,
        client_comm,
        addr(row.server),
        server_pid,
        server_comm,
        compact_bytes(row.bytes[Side::Client.index()]),
        compact_bytes(row.bytes[Side::Server.index()]),
        row.lifetime_ns()
            .map_or_else(|| "-".to_owned(), human_duration),
        match row.verdict.closed_first {
            ClosedFirst::Simultaneous => "both",
            ClosedFirst::Unknown => "?",
            other => other.name(),
        },
        row.verdict.how.map_or("-", CloseHow::name),
        time_wait_name(row.time_wait()).unwrap_or("-"),
    )
}

/// Which sides entered TIME_WAIT, as the outputs name it.
pub fn time_wait_name(time_wait: [bool; 2]) -> Option<&'static str> {
    match time_wait {
        [true, true] => Some("both"),
        [true, false] => Some("client"),
        [false, true] => Some("server"),
        [false, false] => None,
    }
}

/// A value per side.
#[derive(Serialize)]
pub struct SideCounts<T> {
    pub client: T,
    pub server: T,
}

impl<T: Copy> SideCounts<T> {
    /// From values indexed by [`crate::analysis::Side::index`].
    pub fn of(values: [T; 2]) -> Self {
        Self {
            client: values[0],
            server: values[1],
        }
    }
}

#[derive(Serialize)]
struct JsonConnection<'a> {
    conn: Option<u64>,
    client: String,
    server: String,
    closed_first: &'static str,
    how: Option<&'static str>,
    lifetime_ms: Option<f64>,
    start_s: Option<f64>,
    end_s: Option<f64>,
    client_pid: Option<u32>,
    client_comm: Option<Cow<'a, str>>,
    /// When several processes may own the client end (its owner unknown): their pids.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_pids: Option<Vec<u32>>,
    server_pid: Option<u32>,
    server_comm: Option<Cow<'a, str>>,
    /// When several processes share the listener and the accepting one is not known.
    #[serde(skip_serializing_if = "Option::is_none")]
    server_pids: Option<Vec<u32>>,
    /// Payload bytes each side sent (null where the traced ends cannot tell).
    bytes: SideCounts<Option<u64>>,
    /// Segments each side retransmitted (null unless its own socket was traced).
    retransmits: SideCounts<Option<u32>>,
    /// Smoothed round-trip time (the client's estimate, else the server's).
    rtt_ms: Option<f64>,
    time_wait: Option<&'static str>,
    /// When the first side entered TIME_WAIT, and 60 s later.
    time_wait_from_s: Option<f64>,
    time_wait_until_s: Option<f64>,
    resets: SideCounts<bool>,
    client_conn: Option<u64>,
    server_conn: Option<u64>,
    client_netns: Option<u32>,
    server_netns: Option<u32>,
    /// Which host's trace holds each end.
    client_host: Option<&'a str>,
    server_host: Option<&'a str>,
    client_container: Option<JsonContainer<'a>>,
    server_container: Option<JsonContainer<'a>>,
    preexisting: bool,
    incomplete: bool,
    role_guessed: bool,
}

/// The name of an end's owner, or the one its candidates share.
fn comm_of<'a>(
    owner: Option<&'a Task>,
    candidates: Option<&'a Candidates>,
) -> Option<Cow<'a, str>> {
    match owner {
        Some(task) => Some(task.comm.as_str()),
        None => candidates.and_then(Candidates::comm).map(|c| c.as_str()),
    }
}

/// One row as a JSON object (no trailing newline).
pub fn write_connection_json(
    out: &mut impl Write,
    row: &ConnectionRow,
    hosts: &HostNames,
) -> io::Result<()> {
    let time_wait_from = row.time_wait_ns.iter().flatten().min().copied();
    let json = JsonConnection {
        conn: row.conn,
        client: EndpointText(row.client).to_string(),
        server: EndpointText(row.server).to_string(),
        closed_first: row.verdict.closed_first.name(),
        how: row.verdict.how.map(CloseHow::name),
        lifetime_ms: row.lifetime_ns().map(|ns| round3(ns as f64 / 1e6)),
        start_s: row.start_ns.map(|ns| round3(secs(ns) * 1000.0) / 1000.0),
        end_s: row.end_ns.map(|ns| round3(secs(ns) * 1000.0) / 1000.0),
        client_pid: row.client_owner.map(|t| t.pid),
        client_comm: comm_of(row.client_owner.as_ref(), row.client_candidates.as_ref()),
        client_pids: row.client_candidates.map(|c| c.pids().to_vec()),
        server_pid: row.server_owner.map(|t| t.pid),
        server_comm: comm_of(row.server_owner.as_ref(), row.server_candidates.as_ref()),
        server_pids: row.server_candidates.map(|c| c.pids().to_vec()),
        bytes: SideCounts::of(row.bytes),
        retransmits: SideCounts::of(row.retransmits),
        rtt_ms: row.rtt_us.map(|us| round3(f64::from(us) / 1000.0)),
        time_wait: time_wait_name(row.time_wait()),
        time_wait_from_s: time_wait_from.map(|ns| round3(secs(ns))),
        time_wait_until_s: time_wait_from.map(|ns| round3(secs(ns + TIME_WAIT_NS))),
        resets: SideCounts::of(row.resets),
        client_conn: row.client_conn,
        server_conn: row.server_conn,
        client_netns: row.client_netns,
        server_netns: row.server_netns,
        client_host: row.client_host.map(|h| hosts.name(h)),
        server_host: row.server_host.map(|h| hosts.name(h)),
        client_container: JsonContainer::of_option(row.client_workload.as_deref()),
        server_container: JsonContainer::of_option(row.server_workload.as_deref()),
        preexisting: row.preexisting,
        incomplete: row.incomplete,
        role_guessed: row.role_guessed,
    };
    serde_json::to_writer(out, &json).map_err(io::Error::other)
}
