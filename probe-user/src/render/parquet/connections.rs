//! `connections.parquet`: one row per connection, the fields of
//! `replay --connections --json` flattened (`resets` becomes `resets_client` and
//! `resets_server`; each address also split into address and port), times as UTC
//! timestamps. Each end's workload (`client_container`, `server_container` in JSON) is
//! flattened into `client_pod_namespace`, `client_pod`, `client_container`,
//! `client_container_id`, `client_container_runtime` and the same for `server_`.

use std::{net::SocketAddr, sync::Arc};

use arrow_array::{
    ArrayRef,
    builder::{
        BooleanBuilder, Float64Builder, StringBuilder, TimestampNanosecondBuilder, UInt16Builder,
        UInt32Builder, UInt64Builder,
    },
};

use crate::{
    analysis::{CloseHow, ConnectionRow, Side, TIME_WAIT_NS},
    model::HostNames,
    render::{
        address::{EndpointText, ip_value, port_value},
        connections::time_wait_name,
        format::round3,
        parquet::{Columns, Names, wall_clock, workload::WorkloadColumns},
    },
};

fn timestamps() -> TimestampNanosecondBuilder {
    TimestampNanosecondBuilder::new().with_timezone("UTC")
}

/// The builders of `connections.parquet`, in [`ConnectionColumns::COLUMNS`] order.
pub struct ConnectionColumns {
    start_unix_ns: u64,
    rows: usize,
    conn: UInt64Builder,
    client: StringBuilder,
    server: StringBuilder,
    client_addr: StringBuilder,
    client_port: UInt16Builder,
    server_addr: StringBuilder,
    server_port: UInt16Builder,
    closed_first: Names,
    how: Names,
    lifetime_ms: Float64Builder,
    start_time: TimestampNanosecondBuilder,
    end_time: TimestampNanosecondBuilder,
    client_pid: UInt32Builder,
    client_comm: StringBuilder,
    server_pid: UInt32Builder,
    server_comm: StringBuilder,
    time_wait: Names,
    time_wait_from: TimestampNanosecondBuilder,
    time_wait_until: TimestampNanosecondBuilder,
    resets_client: BooleanBuilder,
    resets_server: BooleanBuilder,
    bytes_client: UInt64Builder,
    bytes_server: UInt64Builder,
    retransmits_client: UInt32Builder,
    retransmits_server: UInt32Builder,
    rtt_ms: Float64Builder,
    client_conn: UInt64Builder,
    server_conn: UInt64Builder,
    client_netns: UInt32Builder,
    server_netns: UInt32Builder,
    client_host: Names,
    server_host: Names,
    preexisting: BooleanBuilder,
    incomplete: BooleanBuilder,
    role_guessed: BooleanBuilder,
    client_workload: WorkloadColumns,
    server_workload: WorkloadColumns,
}

impl ConnectionColumns {
    /// Rows of a replay whose time 0 is `start_unix_ns`.
    pub fn new(start_unix_ns: u64) -> Self {
        Self {
            start_unix_ns,
            rows: 0,
            conn: UInt64Builder::new(),
            client: StringBuilder::new(),
            server: StringBuilder::new(),
            client_addr: StringBuilder::new(),
            client_port: UInt16Builder::new(),
            server_addr: StringBuilder::new(),
            server_port: UInt16Builder::new(),
            closed_first: Names::new(),
            how: Names::new(),
            lifetime_ms: Float64Builder::new(),
            start_time: timestamps(),
            end_time: timestamps(),
            client_pid: UInt32Builder::new(),
            client_comm: StringBuilder::new(),
            server_pid: UInt32Builder::new(),
            server_comm: StringBuilder::new(),
            time_wait: Names::new(),
            time_wait_from: timestamps(),
            time_wait_until: timestamps(),
            resets_client: BooleanBuilder::new(),
            resets_server: BooleanBuilder::new(),
            bytes_client: UInt64Builder::new(),
            bytes_server: UInt64Builder::new(),
            retransmits_client: UInt32Builder::new(),
            retransmits_server: UInt32Builder::new(),
            rtt_ms: Float64Builder::new(),
            client_conn: UInt64Builder::new(),
            server_conn: UInt64Builder::new(),
            client_netns: UInt32Builder::new(),
            server_netns: UInt32Builder::new(),
            client_host: Names::new(),
            server_host: Names::new(),
            preexisting: BooleanBuilder::new(),
            incomplete: BooleanBuilder::new(),
            role_guessed: BooleanBuilder::new(),
            client_workload: WorkloadColumns::default(),
            server_workload: WorkloadColumns::default(),
        }
    }

    fn addresses(&mut self, client: SocketAddr, server: SocketAddr) {
        self.client.append_value(EndpointText(client).to_string());
        self.server.append_value(EndpointText(server).to_string());
        self.client_addr.append_option(ip_value(client.ip()));
        self.client_port.append_option(port_value(client.port()));
        self.server_addr.append_option(ip_value(server.ip()));
        self.server_port.append_option(port_value(server.port()));
    }

    /// One connection.
    pub fn push(&mut self, row: &ConnectionRow, hosts: &HostNames) {
        let at = |ns: Option<u64>| ns.map(|ns| wall_clock(self.start_unix_ns, ns));
        let time_wait_from = row.time_wait_ns.iter().flatten().min().copied();
        let (start, end) = (at(row.start_ns), at(row.end_ns));
        let (tw_from, tw_until) = (
            at(time_wait_from),
            at(time_wait_from.map(|ns| ns.saturating_add(TIME_WAIT_NS))),
        );
        self.rows += 1;
        self.conn.append_option(row.conn);
        self.addresses(row.client, row.server);
        self.closed_first
            .append_value(row.verdict.closed_first.name());
        self.how.append_option(row.verdict.how.map(CloseHow::name));
        self.lifetime_ms
            .append_option(row.lifetime_ns().map(|ns| round3(ns as f64 / 1e6)));
        self.start_time.append_option(start);
        self.end_time.append_option(end);
        self.client_pid
            .append_option(row.client_owner.map(|t| t.pid));
        self.client_comm
            .append_option(row.client_owner.as_ref().map(|t| t.comm.as_str()));
        self.server_pid
            .append_option(row.server_owner.map(|t| t.pid));
        self.server_comm
            .append_option(row.server_owner.as_ref().map(|t| t.comm.as_str()));
        self.time_wait
            .append_option(time_wait_name(row.time_wait()));
        self.time_wait_from.append_option(tw_from);
        self.time_wait_until.append_option(tw_until);
        self.resets_client.append_value(row.resets[0]);
        self.resets_server.append_value(row.resets[1]);
        self.bytes_client
            .append_option(row.bytes[Side::Client.index()]);
        self.bytes_server
            .append_option(row.bytes[Side::Server.index()]);
        self.retransmits_client
            .append_option(row.retransmits[Side::Client.index()]);
        self.retransmits_server
            .append_option(row.retransmits[Side::Server.index()]);
        self.rtt_ms
            .append_option(row.rtt_us.map(|us| round3(f64::from(us) / 1000.0)));
        self.client_conn.append_option(row.client_conn);
        self.server_conn.append_option(row.server_conn);
        self.client_netns.append_option(row.client_netns);
        self.server_netns.append_option(row.server_netns);
        self.client_host
            .append_option(row.client_host.map(|h| hosts.name(h)));
        self.server_host
            .append_option(row.server_host.map(|h| hosts.name(h)));
        self.preexisting.append_value(row.preexisting);
        self.incomplete.append_value(row.incomplete);
        self.role_guessed.append_value(row.role_guessed);
        self.client_workload.push(row.client_workload.as_deref());
        self.server_workload.push(row.server_workload.as_deref());
    }
}

impl Columns for ConnectionColumns {
    const COLUMNS: &'static [(&'static str, bool)] = &[
        ("conn", true),
        ("client", false),
        ("server", false),
        ("client_addr", true),
        ("client_port", true),
        ("server_addr", true),
        ("server_port", true),
        ("closed_first", false),
        ("how", true),
        ("lifetime_ms", true),
        ("start_time", true),
        ("end_time", true),
        ("client_pid", true),
        ("client_comm", true),
        ("server_pid", true),
        ("server_comm", true),
        ("time_wait", true),
        ("time_wait_from", true),
        ("time_wait_until", true),
        ("resets_client", false),
        ("resets_server", false),
        ("bytes_client", true),
        ("bytes_server", true),
        ("retransmits_client", true),
        ("retransmits_server", true),
        ("rtt_ms", true),
        ("client_conn", true),
        ("server_conn", true),
        ("client_netns", true),
        ("server_netns", true),
        ("client_host", true),
        ("server_host", true),
        ("preexisting", false),
        ("incomplete", false),
        ("role_guessed", false),
        ("client_pod_namespace", true),
        ("client_pod", true),
        ("client_container", true),
        ("client_container_id", true),
        ("client_container_runtime", true),
        ("server_pod_namespace", true),
        ("server_pod", true),
        ("server_container", true),
        ("server_container_id", true),
        ("server_container_runtime", true),
    ];

    fn rows(&self) -> usize {
        self.rows
    }

    fn take(&mut self) -> Vec<ArrayRef> {
        self.rows = 0;
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(self.conn.finish()),
            Arc::new(self.client.finish()),
            Arc::new(self.server.finish()),
            Arc::new(self.client_addr.finish()),
            Arc::new(self.client_port.finish()),
            Arc::new(self.server_addr.finish()),
            Arc::new(self.server_port.finish()),
            Arc::new(self.closed_first.finish()),
            Arc::new(self.how.finish()),
            Arc::new(self.lifetime_ms.finish()),
            Arc::new(self.start_time.finish()),
            Arc::new(self.end_time.finish()),
            Arc::new(self.client_pid.finish()),
            Arc::new(self.client_comm.finish()),
            Arc::new(self.server_pid.finish()),
            Arc::new(self.server_comm.finish()),
            Arc::new(self.time_wait.finish()),
            Arc::new(self.time_wait_from.finish()),
            Arc::new(self.time_wait_until.finish()),
            Arc::new(self.resets_client.finish()),
            Arc::new(self.resets_server.finish()),
            Arc::new(self.bytes_client.finish()),
            Arc::new(self.bytes_server.finish()),
            Arc::new(self.retransmits_client.finish()),
            Arc::new(self.retransmits_server.finish()),
            Arc::new(self.rtt_ms.finish()),
            Arc::new(self.client_conn.finish()),
            Arc::new(self.server_conn.finish()),
            Arc::new(self.client_netns.finish()),
            Arc::new(self.server_netns.finish()),
            Arc::new(self.client_host.finish()),
            Arc::new(self.server_host.finish()),
            Arc::new(self.preexisting.finish()),
            Arc::new(self.incomplete.finish()),
            Arc::new(self.role_guessed.finish()),
        ];
        arrays.extend(self.client_workload.take());
        arrays.extend(self.server_workload.take());
        arrays
    }
}
