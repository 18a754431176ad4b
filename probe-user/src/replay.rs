//! `tcpchurn replay`: read a trace, attribute owners, print events or verdicts.

use std::{
    fs::File,
    io::{self, BufReader, Read, Write},
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use anyhow::Context as _;

use crate::{
    cli::ColorChoice,
    model::{SocketRef, SocketTuple, TraceEvent},
    owner::{Owner, OwnerTracker},
    render::events,
    trace::{TraceError, TraceReader},
};

/// A `--server`/`--client` address filter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointFilter {
    pub server: Option<(IpAddr, Option<u16>)>,
    pub client: Option<IpAddr>,
}

impl EndpointFilter {
    /// Parses `ADDR`, `ADDR:PORT`, `[V6]:PORT` or `V6`.
    pub fn parse_server(text: &str) -> Result<(IpAddr, Option<u16>), String> {
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok((addr.ip().to_canonical(), Some(addr.port())));
        }
        let bare = text.trim_start_matches('[').trim_end_matches(']');
        bare.parse::<IpAddr>()
            .map(|ip| (ip.to_canonical(), None))
            .map_err(|_| format!("`{text}` is not an address or address:port"))
    }

    pub fn parse_client(text: &str) -> Result<IpAddr, String> {
        let bare = text.trim_start_matches('[').trim_end_matches(']');
        bare.parse::<IpAddr>()
            .map(|ip| ip.to_canonical())
            .map_err(|_| format!("`{text}` is not an IP address"))
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
}

/// Validated `replay` options.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    pub file: PathBuf,
    pub events: bool,
    pub json: bool,
    pub connections: bool,
    pub filter: EndpointFilter,
    pub since: Option<Duration>,
    pub until: Option<Duration>,
    pub close_wait: Duration,
    pub color: ColorChoice,
    /// Text events show seconds since the start instead of wall-clock time.
    pub relative_time: bool,
}

impl ReplayOptions {
    /// The defaults of `tcpchurn replay FILE`: the text verdict of the whole trace.
    pub fn new(file: impl Into<PathBuf>) -> Self {
        Self {
            file: file.into(),
            events: false,
            json: false,
            connections: false,
            filter: EndpointFilter::default(),
            since: None,
            until: None,
            close_wait: Duration::from_secs(5),
            color: ColorChoice::Never,
            relative_time: false,
        }
    }

    pub fn in_window(&self, ts_ns: u64) -> bool {
        let since = self
            .since
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let until = self.until.map_or(u64::MAX, |d| {
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
        });
        (since..=until).contains(&ts_ns)
    }
}

pub fn open(path: &std::path::Path) -> anyhow::Result<TraceReader<BufReader<File>>> {
    let file = File::open(path).with_context(|| format!("{}", path.display()))?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        anyhow::bail!("{}: is a directory", path.display());
    }
    TraceReader::open(BufReader::with_capacity(1 << 20, file)).map_err(|err| match err {
        TraceError::Io(e) => anyhow::anyhow!("{}: {e}", path.display()),
        other => anyhow::anyhow!("{}: {other}", path.display()),
    })
}

/// Which socket an event is about, for filtering.
fn event_tuple(event: &TraceEvent) -> Option<SocketTuple> {
    Some(match event {
        TraceEvent::Transition(t) => t.conn.tuple,
        TraceEvent::Snapshot(s) => s.conn.tuple,
        TraceEvent::ResetReceived(r) => r.conn.tuple,
        TraceEvent::ResetSent(r) => match r.socket {
            SocketRef::Conn(c) => c.tuple,
            SocketRef::Unmatched { tuple, .. } => tuple,
        },
        TraceEvent::SocketError(e) => match e.socket {
            SocketRef::Conn(c) => c.tuple,
            SocketRef::Unmatched { tuple, .. } => tuple,
        },
        TraceEvent::Lost(_) => return None,
    })
}

/// The owner of the socket an event is about; updates the tracker.
pub fn attribute(tracker: &mut OwnerTracker, event: &TraceEvent) -> Option<Owner> {
    match event {
        TraceEvent::Transition(t) => tracker.on_transition(t),
        TraceEvent::Snapshot(s) => {
            tracker.on_snapshot(s);
            None
        }
        TraceEvent::ResetReceived(r) => tracker.on_socket_event(&r.conn, r.context, r.task),
        TraceEvent::ResetSent(r) => match &r.socket {
            SocketRef::Conn(conn) => tracker.on_socket_event(conn, r.context, r.task),
            SocketRef::Unmatched { .. } => None,
        },
        TraceEvent::SocketError(e) => match &e.socket {
            SocketRef::Conn(conn) => tracker.on_socket_event(conn, e.context, e.task),
            SocketRef::Unmatched { .. } => None,
        },
        TraceEvent::Lost(_) => None,
    }
}

/// Streams every event of the trace to `out`.
pub fn write_events<R: Read>(
    reader: &mut TraceReader<R>,
    options: &ReplayOptions,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut tracker = OwnerTracker::new();
    let meta = reader.meta();
    let clock = if options.relative_time {
        events::Clock::Relative
    } else {
        events::Clock::WallClock {
            start_unix_ns: meta.start_unix_ns,
        }
    };
    if !options.json {
        writeln!(
            out,
            "# {} ({}), recording started {}",
            meta.hostname,
            meta.kernel,
            events::utc_datetime(meta.start_unix_ns)
        )?;
        writeln!(out, "{}", events::text_header(clock))?;
    }
    while let Some(event) = reader.next_event()? {
        // Attribution sees every event, filtered or not, so owners stay right.
        let owner = attribute(&mut tracker, &event);
        if !options.in_window(event.ts_ns()) {
            continue;
        }
        if let Some(tuple) = event_tuple(&event)
            && !options.filter.matches(&tuple)
        {
            continue;
        }
        if options.json {
            events::write_json(out, &event, owner.as_ref())?;
        } else {
            events::write_text(out, &event, owner.as_ref(), clock)?;
        }
    }
    Ok(())
}

/// Runs a replay; warnings about damage go to `err`.
pub fn replay(
    options: &ReplayOptions,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<()> {
    let mut reader = open(&options.file)?;
    let result = if options.events {
        write_events(&mut reader, options, out)
    } else {
        crate::report::write_report(&mut reader, options, out)
    };
    match result {
        Err(e) if is_broken_pipe(&e) => return Ok(()),
        other => other?,
    }
    for damage in reader.damage() {
        writeln!(
            err,
            "tcpchurn: warning: {}: {damage}",
            options.file.display()
        )?;
    }
    Ok(())
}

pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(EndpointFilter::parse_client("10.0.0.1:80").is_err());
    }
}
