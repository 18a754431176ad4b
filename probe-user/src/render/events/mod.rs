//! `replay --events`: one line per event, as text (like tcpstates, plus owners and
//! connection ids; [`text`]) or as JSON lines ([`json`]).

pub mod json;
pub mod text;

pub use self::{
    json::write_json,
    text::{
        Clock, EventsHeader, HeaderHost, text_header, utc_datetime, write_text, write_text_header,
    },
};
use crate::model::{Conn, SocketRef, SocketTuple};

/// The Linux name of an errno that TCP reports.
pub fn errno_name(errno: i32) -> &'static str {
    match errno {
        104 => "ECONNRESET",
        111 => "ECONNREFUSED",
        110 => "ETIMEDOUT",
        32 => "EPIPE",
        113 => "EHOSTUNREACH",
        101 => "ENETUNREACH",
        103 => "ECONNABORTED",
        71 => "EPROTO",
        _ => "E?",
    }
}

/// The socket an event is about, as every format shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventSocket {
    /// `None` for a socket the recorder could not match.
    pub conn: Option<u64>,
    pub netns: u32,
    pub cgroup: u64,
    pub tuple: SocketTuple,
}

impl EventSocket {
    pub fn of_conn(conn: &Conn) -> Self {
        Self {
            conn: Some(conn.id),
            netns: conn.scope.netns,
            cgroup: conn.scope.cgroup,
            tuple: conn.tuple,
        }
    }

    pub fn of(socket: &SocketRef) -> Self {
        match socket {
            SocketRef::Conn(conn) => Self::of_conn(conn),
            SocketRef::Unmatched { scope, tuple } => Self {
                conn: None,
                netns: scope.netns,
                cgroup: scope.cgroup,
                tuple: *tuple,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        model::{
            Comm, ExecContext, Gap, GapCause, ResetReason, ResetSent, Scope, SocketRef, Task,
            TcpCounters, TcpState, TraceEvent, Transition,
        },
        owner::{Candidates, Owner, OwnerSource, Who},
    };

    fn transition() -> TraceEvent {
        TraceEvent::Transition(Transition {
            ts_ns: 1_500_000,
            conn: Conn {
                id: 17,
                scope: Scope::new(4_026_532_177, 3),
                tuple: SocketTuple {
                    local: "10.0.0.2:40000".parse().unwrap(),
                    remote: "10.0.0.1:2181".parse().unwrap(),
                },
            },
            old: TcpState::Close,
            new: TcpState::SynSent,
            context: ExecContext::Task,
            task: None,
            counters: None,
        })
    }

    fn owner() -> Owner {
        Owner {
            who: Who::Task(Task {
                pid: 1234,
                tid: 1235,
                comm: Comm::from_str_lossy("zk\"Cli"),
            }),
            source: OwnerSource::Task,
        }
    }

    #[test]
    fn json_lines_have_the_documented_keys() {
        let mut out = Vec::new();
        write_json(&mut out, &transition(), Some(&owner()), "zk-1", None).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["kind"], "transition");
        assert_eq!(value["host"], "zk-1");
        assert_eq!(value["ts_ns"], 1_500_000);
        assert_eq!(value["conn"], 17);
        assert_eq!(value["netns"], 4_026_532_177u64);
        assert_eq!(value["family"], "ipv4");
        assert_eq!(value["laddr"], "10.0.0.2");
        assert_eq!(value["lport"], 40000);
        assert_eq!(value["raddr"], "10.0.0.1");
        assert_eq!(value["rport"], 2181);
        assert_eq!(value["old"], "CLOSE");
        assert_eq!(value["new"], "SYN_SENT");
        assert_eq!(value["pid"], 1234);
        assert_eq!(value["comm"], "zk\"Cli");
        assert_eq!(value["owner_source"], "task");
        assert!(out.ends_with(b"}\n"));
    }

    #[test]
    fn events_carry_their_container_in_both_formats() {
        use crate::model::{Named, Runtime, Source, Workload};
        let w = Workload {
            runtime: Some(Runtime::Containerd),
            id: Some("ab".repeat(32)),
            container: Some(Named::new("zookeeper", Source::OciConfig)),
            pod: Some(Named::new("zk-0", Source::OciConfig)),
            namespace: Some(Named::new("infra", Source::OciConfig)),
            ..Workload::default()
        };
        let mut out = Vec::new();
        write_json(&mut out, &transition(), None, "zk-1", Some(&w)).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let c = &value["container"];
        assert_eq!(
            (&c["namespace"], &c["pod"], &c["container"], &c["runtime"]),
            (
                &serde_json::json!("infra"),
                &serde_json::json!("zk-0"),
                &serde_json::json!("zookeeper"),
                &serde_json::json!("containerd")
            )
        );
        assert_eq!(c["id"].as_str().unwrap().len(), 64);
        let mut none = Vec::new();
        write_json(&mut none, &transition(), None, "zk-1", None).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&none).unwrap();
        assert!(value["container"].is_null(), "{value}");
        let mut text = Vec::new();
        write_text(
            &mut text,
            &transition(),
            None,
            Some(&w),
            Clock::Relative,
            None,
        )
        .unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.trim_end().ends_with("- -  [infra/zk-0/zookeeper]"),
            "{text}"
        );
    }

    /// A connect before its source port is picked, a child socket before its peer
    /// (docs/kernel-facts.md §1.1): the parts the kernel did not give are null in JSON
    /// and `*` in text, never 0 or 0.0.0.0.
    #[test]
    fn tuple_parts_the_kernel_did_not_give_are_unknown() {
        let with_tuple = |local: &str, remote: &str| {
            let TraceEvent::Transition(mut t) = transition() else {
                unreachable!()
            };
            t.conn.tuple = SocketTuple {
                local: local.parse().unwrap(),
                remote: remote.parse().unwrap(),
            };
            TraceEvent::Transition(t)
        };
        let render = |event: &TraceEvent| {
            let mut json = Vec::new();
            write_json(&mut json, event, None, "zk-1", None).unwrap();
            let mut text = Vec::new();
            write_text(&mut text, event, None, None, Clock::Relative, None).unwrap();
            let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
            (value, String::from_utf8(text).unwrap())
        };
        let (value, text) = render(&with_tuple("10.0.0.2:0", "10.0.0.1:2181"));
        assert_eq!(value["laddr"], "10.0.0.2");
        assert!(value["lport"].is_null(), "{value}");
        assert_eq!(value["rport"], 2181);
        assert!(text.contains(" 10.0.0.2:* "), "{text}");
        assert!(!text.contains(":0 "), "{text}");
        let (value, text) = render(&with_tuple("[fd00::1]:2181", "[::]:0"));
        assert_eq!(value["family"], "ipv6");
        assert_eq!(
            (&value["laddr"], &value["lport"]),
            (&serde_json::json!("fd00::1"), &serde_json::json!(2181))
        );
        assert!(
            value["raddr"].is_null() && value["rport"].is_null(),
            "{value}"
        );
        assert!(text.contains(" [fd00::1]:2181 "), "{text}");
        assert!(text.contains(" *:* "), "{text}");
    }

    #[test]
    fn unknown_owners_are_null() {
        let mut out = Vec::new();
        write_json(&mut out, &transition(), None, "zk-1", None).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(value["pid"].is_null());
        assert!(value["comm"].is_null());
    }

    #[test]
    fn transitions_that_carry_counters_show_them_unknown_ones_null() {
        let TraceEvent::Transition(mut t) = transition() else {
            unreachable!()
        };
        t.old = TcpState::LastAck;
        t.new = TcpState::Close;
        t.counters = Some(
            TcpCounters::builder()
                .bytes_sent(2_000)
                .bytes_acked(2_001)
                .bytes_received(19)
                .srtt_us(61)
                .build(),
        );
        let mut out = Vec::new();
        write_json(&mut out, &TraceEvent::Transition(t), None, "zk-1", None).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["bytes_sent"], 2_000);
        assert_eq!(value["bytes_acked"], 2_001);
        assert_eq!(value["bytes_received"], 19);
        assert_eq!(value["srtt_us"], 61);
        assert!(value["retransmits"].is_null(), "not read: {value}");
        // Without counters the keys are absent.
        let mut out = Vec::new();
        write_json(&mut out, &transition(), None, "zk-1", None).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(value.get("bytes_sent").is_none(), "{value}");
    }

    #[test]
    fn candidates_are_listed_never_picked() {
        let candidates = Owner {
            who: Who::Candidates(Candidates::new(
                &[100, 101],
                0,
                Some(Comm::from_str_lossy("nginx")),
            )),
            source: OwnerSource::Listener,
        };
        let mut out = Vec::new();
        write_json(&mut out, &transition(), Some(&candidates), "zk-1", None).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(value["pid"].is_null() && value["tid"].is_null(), "{value}");
        assert_eq!(value["comm"], "nginx");
        assert_eq!(value["pids"], serde_json::json!([100, 101]));
        assert_eq!(value["owner_source"], "listener");
        let mut text = Vec::new();
        write_text(
            &mut text,
            &transition(),
            Some(&candidates),
            None,
            Clock::Relative,
            None,
        )
        .unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.trim_end().ends_with("- nginx (one of 2)"), "{text}");
    }

    #[test]
    fn gaps_are_lost_records() {
        let mut out = Vec::new();
        let gap = TraceEvent::Lost(Gap {
            from_ns: 1,
            to_ns: 2,
            lost: 99,
            cpu: None,
            cause: GapCause::RingFull,
            host: crate::model::HostId::FIRST,
        });
        write_json(&mut out, &gap, None, "zk-1", None).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["kind"], "lost");
        assert_eq!(value["host"], "zk-1");
        assert_eq!(value["lost"], 99);
        assert_eq!(value["cause"], "ring_full");
        let mut text = Vec::new();
        write_text(&mut text, &gap, None, None, Clock::Relative, None).unwrap();
        assert!(String::from_utf8(text).unwrap().contains("99 events lost"));
    }

    #[test]
    fn text_lines_show_the_owner_or_a_dash() {
        let mut out = Vec::new();
        write_text(
            &mut out,
            &transition(),
            Some(&owner()),
            None,
            Clock::Relative,
            None,
        )
        .unwrap();
        write_text(
            &mut out,
            &transition(),
            None,
            None,
            Clock::WallClock { start_unix_ns: 0 },
            None,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("CLOSE -> SYN_SENT"), "{text}");
        assert!(lines[0].ends_with("1234 zk\"Cli"), "{text}");
        assert!(lines[1].ends_with("- -"), "{text}");
        assert!(lines[0].starts_with("0.001500 "), "{text}");
        assert!(lines[1].starts_with("00:00:00.001500 "), "{text}");
        // Columns line up with the header.
        let header = text_header(Clock::Relative, false);
        assert_eq!(
            header.find("PID").unwrap() + 3,
            lines[0].find(" zk").unwrap()
        );
    }

    /// A reset from a kernel without `reason` (before 6.10): JSON null and text "-",
    /// never NOT_SPECIFIED (a real reason value).
    #[test]
    fn an_unknown_reset_reason_is_null_and_a_dash() {
        let TraceEvent::Transition(t) = transition() else {
            unreachable!()
        };
        let reset = |reason| {
            TraceEvent::ResetSent(ResetSent {
                ts_ns: 1,
                socket: SocketRef::Conn(t.conn),
                state: Some(TcpState::Close),
                reason,
                context: ExecContext::Task,
                task: None,
            })
        };
        let json = |event: &TraceEvent| {
            let mut out = Vec::new();
            write_json(&mut out, event, None, "zk-1", None).unwrap();
            serde_json::from_slice::<serde_json::Value>(&out).unwrap()
        };
        let text = |event: &TraceEvent| {
            let mut out = Vec::new();
            write_text(&mut out, event, None, None, Clock::Relative, None).unwrap();
            String::from_utf8(out).unwrap()
        };
        let unknown = reset(None);
        let value = json(&unknown);
        assert!(value["reason"].is_null(), "{value}");
        assert!(value.as_object().unwrap().contains_key("reason"));
        assert!(text(&unknown).contains("RST sent (-)"));
        let known = reset(Some(ResetReason::TCP_STATE));
        assert_eq!(json(&known)["reason"], "TCP_STATE");
        assert!(text(&known).contains("RST sent (TCP_STATE)"));
        // Other events have no reason key at all.
        assert!(
            !json(&transition())
                .as_object()
                .unwrap()
                .contains_key("reason")
        );
    }

    #[test]
    fn every_event_fits_its_column_and_strings_from_the_trace_are_escaped() {
        use crate::model::{ResetReason, ResetSent, SnapshotSocket, SocketError};
        let TraceEvent::Transition(base) = transition() else {
            unreachable!()
        };
        let evil_task = Task {
            comm: Comm::from_str_lossy("\x1b[2J\x1b]0;PWN\x07"),
            ..*owner().task().unwrap()
        };
        let evil = Owner {
            who: Who::Task(evil_task),
            source: OwnerSource::Task,
        };
        let states = (0..16).filter_map(TcpState::from_kernel);
        let mut events: Vec<TraceEvent> = states
            .clone()
            .flat_map(|old| states.clone().map(move |new| (old, new)))
            .map(|(old, new)| TraceEvent::Transition(Transition { old, new, ..base }))
            .collect();
        for state in states.clone() {
            for at_end in [false, true] {
                events.push(TraceEvent::Snapshot(SnapshotSocket {
                    ts_ns: 0,
                    conn: base.conn,
                    state,
                    owner: Some(evil_task),
                    inode: 0,
                    uid: 0,
                    timer_ms: None,
                    at_end,
                    shared_with: Default::default(),
                }));
            }
        }
        for reason in 0..30 {
            events.push(TraceEvent::ResetSent(ResetSent {
                ts_ns: 0,
                socket: SocketRef::Conn(base.conn),
                state: None,
                reason: Some(ResetReason(reason)),
                context: ExecContext::Task,
                task: None,
            }));
        }
        for errno in [104, 111, 110, 32, 113, 101, 103, 71, 5] {
            events.push(TraceEvent::SocketError(SocketError {
                ts_ns: 0,
                socket: SocketRef::Conn(base.conn),
                errno,
                context: ExecContext::Task,
                task: None,
            }));
        }
        let pid_at = text_header(Clock::Relative, false).find("PID").unwrap();
        for event in &events {
            let mut out = Vec::new();
            write_text(&mut out, event, Some(&evil), None, Clock::Relative, None).unwrap();
            let line = String::from_utf8(out).unwrap();
            assert_eq!(line.find("   1234 ").unwrap() + 4, pid_at, "{line}");
            assert!(
                line.trim_end().ends_with("1234 \\x1b[2J\\x1b]0;PWN\\x07"),
                "{line}"
            );
        }
        // Several processes it may be: no pid, their shared name, escaped too.
        let candidates = Owner {
            who: Who::Candidates(Candidates::new(&[1, 2], 0, Some(evil_task.comm))),
            source: OwnerSource::Listener,
        };
        let mut out = Vec::new();
        write_text(
            &mut out,
            &events[0],
            Some(&candidates),
            None,
            Clock::Relative,
            None,
        )
        .unwrap();
        let line = String::from_utf8(out).unwrap();
        assert_eq!(&line[pid_at + 2..pid_at + 4], "- ", "{line}");
        assert!(
            line.trim_end()
                .ends_with("- \\x1b[2J\\x1b]0;PWN\\x07 (one of 2)"),
            "{line}"
        );
        let header = EventsHeader {
            hosts: vec![HeaderHost {
                name: "\x1b]0;PWN\x07".into(),
                ..HeaderHost::default()
            }],
            ..EventsHeader::default()
        };
        let mut out = Vec::new();
        write_text_header(&mut out, &header, Clock::Relative).unwrap();
        let header = String::from_utf8(out).unwrap();
        assert!(header.starts_with("# \\x1b]0;PWN\\x07 ("), "{header}");
    }

    #[test]
    fn several_hosts_get_a_host_column() {
        let mut out = Vec::new();
        let header = EventsHeader {
            hosts: vec![
                HeaderHost {
                    name: "node-17".into(),
                    kernel: "6.18".into(),
                    clock: Some("the reference clock".into()),
                },
                HeaderHost {
                    name: "zk".into(),
                    kernel: "6.1".into(),
                    clock: Some("clock +250.000 ms".into()),
                },
            ],
            start_unix_ns: 0,
        };
        write_text_header(&mut out, &header, Clock::Relative).unwrap();
        write_text(
            &mut out,
            &transition(),
            Some(&owner()),
            None,
            Clock::Relative,
            Some("node-17"),
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "# node-17 (6.18, the reference clock), zk (6.1, clock +250.000 ms); replay \
             starts 1970-01-01 00:00:00 UTC"
        );
        assert_eq!(lines[1].find("HOST"), lines[2].find("node-17"), "{text}");
        assert_eq!(
            lines[1].find("PID").unwrap() + 3,
            lines[2].find(" zk").unwrap()
        );
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc_datetime(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            utc_datetime(1_795_600_563_000_000_000),
            "2026-11-25 09:56:03 UTC"
        );
        assert_eq!(
            utc_datetime(951_782_400_000_000_000),
            "2000-02-29 00:00:00 UTC"
        );
    }
}
