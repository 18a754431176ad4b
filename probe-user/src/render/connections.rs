//! `--connections`: one row per connection, as text or as a JSON object.

use std::{
    borrow::Cow,
    io::{self, Write},
    net::SocketAddr,
};

use serde::Serialize;

use crate::{
    analysis::{CloseHow, ClosedFirst, ConnectionRow, TIME_WAIT_NS},
    render::{
        format::{human_duration, round3, secs},
        workload::{JsonContainer, text_label},
    },
};

/// The header of the text table.
pub const CONNECTIONS_HEADER: &str =
    "CONN   CLIENT                SERVER                FIRST  HOW        LIFE TW";

/// One text row, and under it the workloads at either end when the trace names any.
pub fn write_connection_text(out: &mut impl Write, row: &ConnectionRow) -> io::Result<()> {
    write_row_text(out, row)?;
    if row.client_workload.is_some() || row.server_workload.is_some() {
        let label = |w: &Option<std::sync::Arc<crate::model::Workload>>| {
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
    let addr = |a: SocketAddr| {
        let text = a.to_string();
        if text.len() > 21 {
            format!("{}…", &text[..20])
        } else {
            text
        }
    };
    writeln!(
        out,
        "{:<6} {:<21} {:<21} {:<6} {:<7} {:>7} {}",
        row.conn.map_or_else(|| "-".to_owned(), |c| c.to_string()),
        addr(row.client),
        addr(row.server),
        match row.verdict.closed_first {
            ClosedFirst::Simultaneous => "both",
            ClosedFirst::Unknown => "?",
            other => other.name(),
        },
        row.verdict.how.map_or("-", CloseHow::name),
        row.lifetime_ns()
            .map_or_else(|| "-".to_owned(), human_duration),
        time_wait_name(row.time_wait()).unwrap_or("-"),
    )
}

fn time_wait_name(time_wait: [bool; 2]) -> Option<&'static str> {
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
    server_pid: Option<u32>,
    server_comm: Option<Cow<'a, str>>,
    time_wait: Option<&'static str>,
    /// When the first side entered TIME_WAIT, and 60 s later.
    time_wait_from_s: Option<f64>,
    time_wait_until_s: Option<f64>,
    resets: SideCounts<bool>,
    client_conn: Option<u64>,
    server_conn: Option<u64>,
    client_netns: Option<u32>,
    server_netns: Option<u32>,
    client_container: Option<JsonContainer<'a>>,
    server_container: Option<JsonContainer<'a>>,
    preexisting: bool,
    incomplete: bool,
    role_guessed: bool,
}

/// One row as a JSON object (no trailing newline).
pub fn write_connection_json(out: &mut impl Write, row: &ConnectionRow) -> io::Result<()> {
    let time_wait_from = row.time_wait_ns.iter().flatten().min().copied();
    let json = JsonConnection {
        conn: row.conn,
        client: row.client.to_string(),
        server: row.server.to_string(),
        closed_first: row.verdict.closed_first.name(),
        how: row.verdict.how.map(CloseHow::name),
        lifetime_ms: row.lifetime_ns().map(|ns| round3(ns as f64 / 1e6)),
        start_s: row.start_ns.map(|ns| round3(secs(ns) * 1000.0) / 1000.0),
        end_s: row.end_ns.map(|ns| round3(secs(ns) * 1000.0) / 1000.0),
        client_pid: row.client_owner.map(|t| t.pid),
        client_comm: row.client_owner.as_ref().map(|t| t.comm.as_str()),
        server_pid: row.server_owner.map(|t| t.pid),
        server_comm: row.server_owner.as_ref().map(|t| t.comm.as_str()),
        time_wait: time_wait_name(row.time_wait()),
        time_wait_from_s: time_wait_from.map(|ns| round3(secs(ns))),
        time_wait_until_s: time_wait_from.map(|ns| round3(secs(ns + TIME_WAIT_NS))),
        resets: SideCounts::of(row.resets),
        client_conn: row.client_conn,
        server_conn: row.server_conn,
        client_netns: row.client_netns,
        server_netns: row.server_netns,
        client_container: JsonContainer::of_option(row.client_workload.as_deref()),
        server_container: JsonContainer::of_option(row.server_workload.as_deref()),
        preexisting: row.preexisting,
        incomplete: row.incomplete,
        role_guessed: row.role_guessed,
    };
    serde_json::to_writer(out, &json).map_err(io::Error::other)
}
