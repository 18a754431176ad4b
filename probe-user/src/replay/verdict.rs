//! `tcpchurn replay FILE...`: streams the traces through the analysis and renders the
//! verdict (text or `--json`), with the rows of `--connections`.

use std::{
    io::{self, IsTerminal as _, Write},
    ops::ControlFlow,
};

use crate::{
    analysis::{Analysis, Analyzer, AnalyzerOptions, KernelLimit, LoopRule, TraceInfo},
    model::duration_ns,
    render::{
        connections::CONNECTIONS_HEADER,
        style::{ColorChoice, Style},
        verdict_json, verdict_text,
    },
    replay::{ReplayOptions, Replayed, file, rows::RowSink},
    trace::set::{SetReader, Traces},
};

/// Replays the traces into the verdict on `out`. With `--connections`, the JSON
/// document holds the rows; the text verdict's table follows it, from a second pass
/// over the traces, so that rows are neither held in memory nor written to a file.
pub fn write_verdict(
    traces: &Traces,
    options: &ReplayOptions,
    out: &mut impl Write,
) -> anyhow::Result<Replayed> {
    let rule = LoopRule::default();
    let mut reader = traces.events();
    let mut rows = if options.connections && options.json {
        RowSink::json(out)?
    } else {
        RowSink::None
    };
    let analysis = analyse(&mut reader, traces, options, rule, &mut rows, out)?;
    let trace = trace_info(traces, &reader, options);
    if options.json {
        verdict_json::write_json(out, &trace, &analysis, &rule, options.connections)?;
    } else {
        let style = stdout_style(options.color);
        verdict_text::write_text(out, &trace, &analysis, &rule, style)?;
    }
    if options.connections && !options.json {
        writeln!(out)?;
        writeln!(out, "{CONNECTIONS_HEADER}")?;
        let mut again = traces.events();
        analyse(&mut again, traces, options, rule, &mut RowSink::Text, out)?;
    }
    Ok(Replayed {
        damage: reader.damage().into_iter().cloned().collect(),
        end_ns: reader.end_ns(),
    })
}

/// Streams the traces through the analysis, writing rows as connections end.
fn analyse(
    reader: &mut SetReader<'_>,
    traces: &Traces,
    options: &ReplayOptions,
    rule: LoopRule,
    rows: &mut RowSink,
    out: &mut impl Write,
) -> anyhow::Result<Analysis> {
    let mut analyzer = Analyzer::new(AnalyzerOptions {
        filter: options.filter,
        workloads: options.workloads.clone(),
        window: options.window,
        close_wait_ns: duration_ns(options.close_wait),
        rule,
        connections: rows.wants_rows(),
    });
    reader.for_each_event(|names, event| -> anyhow::Result<_> {
        if options.window.is_past_reading(event.ts_ns()) {
            return Ok(ControlFlow::Break(()));
        }
        for (host, table) in names {
            analyzer.learn(host, &table);
        }
        analyzer.on_event(event);
        for row in analyzer.drain_rows() {
            rows.push(out, &row, &traces.names)?;
        }
        Ok(ControlFlow::Continue(()))
    })?;
    let (analysis, last_rows) = analyzer.finish(reader.end_ns());
    for row in &last_rows {
        rows.push(out, row, &traces.names)?;
    }
    Ok(analysis)
}

/// What the verdict says about the traces themselves: their meta and end blocks, the
/// hosts and their clocks, the damage the readers worked around, and the options that
/// shaped the replay.
fn trace_info(traces: &Traces, reader: &SetReader<'_>, options: &ReplayOptions) -> TraceInfo {
    let hosts = file::host_infos(traces, &reader.ends());
    let several = hosts.len() > 1;
    let files: Vec<&str> = hosts
        .iter()
        .flat_map(|h| h.files.iter().map(String::as_str))
        .collect();
    let mut kernels: Vec<&str> = hosts.iter().map(|h| h.kernel.as_str()).collect();
    kernels.dedup();
    let missing_tracepoints = traces
        .set
        .hosts()
        .iter()
        .flat_map(|host| {
            host.meta()
                .tracepoints
                .iter()
                .filter(|t| !t.attached)
                .map(move |t| {
                    let what = match &t.detail {
                        Some(why) => format!("{} ({why})", t.name),
                        None => t.name.clone(),
                    };
                    if several {
                        format!("{}: {what}", host.name)
                    } else {
                        what
                    }
                })
        })
        .collect();
    let damage = reader
        .damage()
        .iter()
        .map(|d| {
            if files.len() > 1 {
                format!("{}: {}", d.file, d.damage)
            } else {
                d.damage.to_string()
            }
        })
        .collect();
    // A limit of any host's kernel limits what the verdict can know.
    let mut kernel_limits: Vec<KernelLimit> = Vec::new();
    for host in traces.set.hosts() {
        for limit in KernelLimit::of(host.meta().kernel_features.as_ref()) {
            if !kernel_limits.contains(&limit) {
                kernel_limits.push(limit);
            }
        }
    }
    TraceInfo {
        file: files.join(", "),
        host: if several {
            traces.names.0.join(", ")
        } else {
            hosts[0].hostname.clone()
        },
        kernel: kernels.join(", "),
        start_unix_ns: traces.timeline.start_unix_ns,
        stop_reason: hosts[0].stop_reason.clone(),
        missing_tracepoints,
        tracepoints: traces.set.hosts()[0].meta().tracepoints.clone(),
        kernel_limits,
        damage,
        window: options.window,
        close_wait_ns: duration_ns(options.close_wait),
        unmerged: file::unmerged(traces),
        hosts,
    }
}

/// The style of text on stdout: colours with `--color always`, or `auto` on a terminal
/// without `NO_COLOR` set (<https://no-color.org>).
fn stdout_style(choice: ColorChoice) -> Style {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    Style::new(choice, io::stdout().is_terminal(), no_color)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        analysis::tests::{MS, S, app, incident as stage_incident, java, zookeeper_loop},
        model::{
            Conn, EndpointFilter, KernelFeatures, Scope, SocketTuple, TcpState, TimeWindow,
            TracepointStatus,
        },
        render::connections::CONNECTIONS_HEADER,
        synth::{SERVER_NS, Script},
        trace::{
            TraceEnd, TraceMeta, TraceWriter,
            set::{Input, PartSource},
        },
    };

    fn trace_file(script: &Script, end_ns: u64) -> Vec<u8> {
        trace_file_with(
            TraceMeta {
                tool: "tcpchurn".into(),
                hostname: "zk-1".into(),
                kernel: "6.18.44".into(),
                ..TraceMeta::default()
            },
            script,
            end_ns,
        )
    }

    fn trace_file_with(meta: TraceMeta, script: &Script, end_ns: u64) -> Vec<u8> {
        let mut writer = TraceWriter::new(Vec::new(), &meta).unwrap();
        for event in &script.events {
            writer.push(event).unwrap();
        }
        writer
            .finish(&TraceEnd {
                end_ns,
                stop_reason: "interrupted".into(),
                ..TraceEnd::default()
            })
            .unwrap()
    }

    fn options(json: bool, connections: bool) -> ReplayOptions {
        ReplayOptions {
            json,
            connections,
            ..ReplayOptions::new("zk.trace")
        }
    }

    /// The ZooKeeper loop, a well-behaved HTTP/1.0-style client, a CLOSE_WAIT leak and
    /// a gap of lost events.
    fn incident() -> Vec<u8> {
        let mut s = Script::default();
        stage_incident(&mut s, 30, 10, 100, 12);
        // The kernel's end snapshot lists one of the HTTP client's TIME_WAIT sockets.
        s.at(40 * S).snapshot(
            Conn {
                id: 9_999,
                scope: Scope::new(100, 0),
                tuple: SocketTuple {
                    local: "10.0.0.3:50009".parse().unwrap(),
                    remote: "10.0.0.1:80".parse().unwrap(),
                },
            },
            TcpState::TimeWait,
            None,
            true,
        );
        // A connect refused three times, too few for a loop.
        for port in 0..3 {
            s.at(5 * S)
                .refused_at("10.0.0.5", 45000 + port, "10.0.0.1:81", app());
        }
        trace_file(&s, 40 * S)
    }

    fn run(bytes: &[u8], options: &ReplayOptions) -> String {
        let traces = Traces::of(vec![Input {
            name: "zk.trace".into(),
            source: PartSource::Memory(bytes.into()),
            from_directory: false,
        }])
        .unwrap();
        let mut out = Vec::new();
        write_verdict(&traces, options, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_text_report_starts_with_the_verdict_and_fits_80_columns() {
        let text = run(&incident(), &options(false, true));
        let lines: Vec<&str> = text.lines().collect();
        // The report fits a terminal; the per-connection table after it is as wide as
        // tcplife's wide output.
        let (report, table) = text.split_once("\nCONN   CLIENT").unwrap();
        for line in report.lines() {
            assert!(line.chars().count() <= 80, "too wide: {line:?}\n{text}");
        }
        let header = CONNECTIONS_HEADER.chars().count();
        for line in table.lines().skip(1) {
            assert!(line.chars().count() <= header + 6, "{line:?}");
        }
        assert!(!text.contains('\x1b'), "no colour with --color never");
        assert!(
            lines[0].starts_with("zk.trace: host zk-1, kernel 6.18.44"),
            "{text}"
        );
        assert_eq!(lines[2], "VERDICT", "{text}");
        assert!(lines[3].contains("12 events were lost"), "{text}");
        let verdict = text.split("\n\n").nth(1).unwrap();
        assert!(
            verdict.contains(
                "10.0.0.2 -> 10.0.0.1:2181: reconnect loop, 30 connections in 20.3 s, server\n    \
                 closed first 30/30 by RST within 2.0 ms of accept; server holds 0 TIME_WAIT,\n    \
                 client 0"
            ),
            "{text}"
        );
        assert!(
            verdict.contains("flagged because 30 of 30 ended connections"),
            "{text}"
        );
        assert!(verdict.contains("10.0.0.3 -> 10.0.0.1:80: 10 connections in 900 ms, client closed first 10/10\n    by FIN; client holds 10 TIME_WAIT, server 0"), "{text}");
        assert!(
            verdict.contains("CLOSE_WAIT leak: pid 42 (java) holds 1 socket"),
            "{text}"
        );
        assert!(text.contains("CONN   CLIENT"), "{text}");
        assert!(text.contains("LOST EVENTS"), "{text}");
        assert_eq!(text.matches(" rst ").count(), 30, "{text}");
    }

    /// An HTTP/1.0-style server answering 2000 bytes to 18-byte requests, then closing.
    fn served_pages() -> Vec<u8> {
        let mut s = Script::default();
        s.listener(SERVER_NS, "10.0.0.1:80", java());
        for i in 0..8 {
            let e = s.ends(&format!("10.0.0.3:{}", 50000 + i), "10.0.0.1:80");
            s.at(S + i * 200 * MS).open(e, app());
            s.at(S + i * 200 * MS + MS)
                .answered_then_closed(e, (18, 2_000), app(), java());
        }
        trace_file(&s, 10 * S)
    }

    #[test]
    fn a_server_answering_then_closing_is_named_served_with_its_bytes() {
        let text = run(&served_pages(), &options(false, true));
        let verdict = text.split("\n\n").nth(1).unwrap().replace("\n    ", " ");
        assert!(!verdict.contains("reconnect loop"), "{text}");
        assert!(
            verdict.contains(
                "10.0.0.3 -> 10.0.0.1:80: 8 connections in 1.4 s, server closed first 8/8 by \
                 FIN, all after answering (median request 18 B, answer 2.0 KiB): short \
                 connections the server ends after each answer, so the TIME_WAIT is the \
                 server's; keep-alive would avoid it; server holds 8 TIME_WAIT, client 0"
            ),
            "{text}"
        );
        // The table, like tcplife: owners, bytes each way, lifetime, who closed, how.
        let row = text.lines().find(|l| l.contains("10.0.0.3:50000")).unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "2",
                "10.0.0.3:50000",
                "7",
                "app",
                "10.0.0.1:80",
                "42",
                "java",
                "18",
                "2000",
                "2.0",
                "ms",
                "server",
                "fin",
                "server"
            ],
            "{row}"
        );
        let json = run(&served_pages(), &options(true, true));
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let pair = &value["pairs"][0];
        assert_eq!(
            (pair["served"].as_u64(), pair["rejected"].as_u64()),
            (Some(8), Some(0))
        );
        assert_eq!(pair["bytes"]["client"], 8 * 18);
        assert_eq!(pair["bytes"]["server"], 8 * 2_000);
        let row = &value["connections"][0];
        assert_eq!(row["bytes"]["client"], 18);
        assert_eq!(row["bytes"]["server"], 2_000);
        assert_eq!(row["retransmits"]["server"], 0);
        assert_eq!(row["rtt_ms"], 0.05);
    }

    #[test]
    fn a_trace_without_counters_says_its_rule_could_not_tell() {
        let file = include_bytes!("../trace/testdata/served-format-1.0.trace");
        let text = run(file, &options(false, false)).replace("\n    ", " ");
        assert!(text.contains("reconnect loop, 6 connections"), "{text}");
        assert!(
            text.contains(
                "for 6 of them the trace has no byte counters, so whether the server had \
                 answered before closing could not be told"
            ),
            "{text}"
        );
    }

    #[test]
    fn strings_from_the_trace_cannot_drive_the_terminal() {
        let evil = "\x1b[2J\x1b]0;PWN\x07";
        let mut s = Script::default();
        let leak = s.ends("10.0.0.4:41000", "10.0.0.1:80");
        s.at(S).open(leak, app()).tr(
            leak.server,
            TcpState::Established,
            TcpState::CloseWait,
            Some(crate::synth::task(66, evil)),
        );
        let meta = TraceMeta {
            tool: "tcpchurn".into(),
            hostname: evil.into(),
            kernel: evil.into(),
            tracepoints: vec![TracepointStatus {
                name: "tcp:tcp_send_reset".into(),
                attached: false,
                detail: Some(evil.into()),
            }],
            ..TraceMeta::default()
        };
        let mut writer = TraceWriter::new(Vec::new(), &meta).unwrap();
        for event in &s.events {
            writer.push(event).unwrap();
        }
        let bytes = writer
            .finish(&TraceEnd {
                end_ns: 40 * S,
                stop_reason: evil.into(),
                ..TraceEnd::default()
            })
            .unwrap();
        let text = run(&bytes, &options(false, true));
        assert!(!text.contains(['\x1b', '\x07']), "{text}");
        assert!(text.contains("host \\x1b[2J\\x1b]0;PWN\\x07"), "{text}");
        assert!(
            text.contains("(\\x1b[2J\\x1b]0;PWN\\x07)"),
            "the detail: {text}"
        );
        assert!(text.contains("pid 66 (\\x1b[2J"), "the leak: {text}");
        // JSON keeps the string, escaped its own way.
        let doc: serde_json::Value =
            serde_json::from_str(&run(&bytes, &options(true, true))).unwrap();
        assert_eq!(doc["close_wait"][0]["comm"], evil);
    }

    #[test]
    fn colours_only_when_asked() {
        let mut always = options(false, false);
        always.color = ColorChoice::Always;
        let text = run(&incident(), &always);
        assert!(
            text.contains("\x1b[1;31m  10.0.0.2 -> 10.0.0.1:2181: reconnect loop"),
            "{text}"
        );
    }

    #[test]
    fn the_json_document_has_the_documented_keys() {
        let bytes = incident();
        for connections in [false, true] {
            let text = run(&bytes, &options(true, connections));
            let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
            let trace = &doc["trace"];
            assert_eq!(trace["host"], "zk-1");
            assert_eq!(trace["kernel"], "6.18.44");
            assert_eq!(trace["lost"], 12);
            assert_eq!(trace["duration_s"], 40.0);
            assert!(trace["events"].as_u64().unwrap() > 300);
            assert_eq!(doc["incomplete"], true);
            let pairs = doc["pairs"].as_array().unwrap();
            let zk = &pairs[0];
            assert_eq!(zk["client"], "10.0.0.2");
            assert_eq!(zk["server"], "10.0.0.1:2181");
            assert_eq!(zk["connections"], 30);
            assert_eq!(zk["reconnect_loop"], true);
            assert_eq!(zk["closed_first"]["server"], 30);
            assert_eq!(zk["resets"]["server"], 30);
            assert_eq!(zk["refused"], 0);
            assert_eq!(zk["timed_out"], 0);
            assert_eq!(zk["time_wait"]["client"], 0);
            assert!(zk["median_lifetime_ms"].as_f64().unwrap() < 2.2);
            assert!(zk["connects_per_s"].as_f64().unwrap() > 1.4);
            assert!(
                zk["reconnect_loop_reason"]
                    .as_str()
                    .unwrap()
                    .contains("30 of 30")
            );
            let http = &pairs[1];
            assert_eq!(http["reconnect_loop"], false);
            assert_eq!(http["time_wait"]["client"], 10);
            let leak = &doc["close_wait"][0];
            assert_eq!(leak["pid"], 42);
            assert_eq!(leak["comm"], "java");
            assert_eq!(leak["local"], "10.0.0.1:80");
            assert_eq!(leak["peer"], "10.0.0.4:41000");
            assert_eq!(leak["age_s"], 37.0);
            if connections {
                let rows = doc["connections"].as_array().unwrap();
                assert_eq!(rows.len(), 44);
                let row = rows
                    .iter()
                    .find(|r| r["server"] == "10.0.0.1:2181")
                    .unwrap();
                assert_eq!(row["closed_first"], "server");
                assert_eq!(row["how"], "rst");
                assert_eq!(row["server_pid"], 42);
                assert_eq!(row["client_pid"], 7);
                assert!(row["time_wait"].is_null());
                let http = rows.iter().find(|r| r["server"] == "10.0.0.1:80").unwrap();
                assert_eq!(http["time_wait"], "client");
                let (from, until) = (
                    http["time_wait_from_s"].as_f64().unwrap(),
                    http["time_wait_until_s"].as_f64().unwrap(),
                );
                assert!((until - from - 60.0).abs() < 1e-6, "{http}");
                assert!(row["lifetime_ms"].as_f64().unwrap() > 1.9);
            } else {
                assert!(doc.get("connections").is_none());
            }
        }
    }

    /// A 6.1 recording: no reset reasons, no RSTs without a socket, error reports paired
    /// by CPU. The verdict says what it cannot know, in text (within 80 columns) and
    /// JSON; a trace from before the header said (format 1.0) claims nothing.
    #[test]
    fn the_verdict_says_what_the_kernel_did_not_give() {
        let mut s = Script::default();
        zookeeper_loop(&mut s, 3);
        let meta = TraceMeta {
            kernel: "6.1.0-56-amd64".into(),
            kernel_features: Some(KernelFeatures::default()),
            tracepoints: vec![TracepointStatus {
                name: "sock:inet_sk_error_report".into(),
                attached: true,
                detail: Some("classic tracepoint (tp_btf: no kernel BTF)".into()),
            }],
            ..TraceMeta::default()
        };
        let bytes = trace_file_with(meta, &s, 10 * S);
        let text = run(&bytes, &options(false, false));
        assert!(
            text.contains("not known on this kernel: why each RST was sent"),
            "{text}"
        );
        assert!(text.contains("RSTs sent without a socket"), "{text}");
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "too wide: {line:?}\n{text}");
        }
        let json: serde_json::Value =
            serde_json::from_str(&run(&bytes, &options(true, false))).unwrap();
        let limits = json["trace"]["kernel_limits"].as_array().unwrap();
        assert_eq!(limits.len(), 3, "{json}");
        assert!(
            limits[0]
                .as_str()
                .unwrap()
                .starts_with("why each RST was sent")
        );
        let warnings = json["warnings"].as_array().unwrap();
        assert!(
            warnings.iter().any(|w| w
                .as_str()
                .unwrap()
                .starts_with("not known on this kernel: ")),
            "{json}"
        );
        let tracepoint = &json["trace"]["tracepoints"][0];
        assert_eq!(tracepoint["name"], "sock:inet_sk_error_report");
        assert_eq!(tracepoint["attached"], true);
        assert_eq!(
            tracepoint["detail"],
            "classic tracepoint (tp_btf: no kernel BTF)"
        );

        let text = run(&trace_file(&s, 10 * S), &options(false, false));
        assert!(!text.contains("not known on this kernel"), "{text}");
    }

    #[test]
    fn filters_reach_the_verdict() {
        let mut filtered = options(true, false);
        filtered.filter.server = Some(EndpointFilter::parse_server("10.0.0.1:80").unwrap());
        let doc: serde_json::Value = serde_json::from_str(&run(&incident(), &filtered)).unwrap();
        let pairs = doc["pairs"].as_array().unwrap();
        assert!(
            pairs.iter().all(|p| p["server"] == "10.0.0.1:80"),
            "{pairs:?}"
        );
        let mut window = options(true, false);
        window.window = TimeWindow::new(None, Some(Duration::from_secs(1)));
        let doc: serde_json::Value = serde_json::from_str(&run(&incident(), &window)).unwrap();
        assert_eq!(doc["trace"]["duration_s"], 1.0);
        assert_eq!(doc["pairs"][0]["connections"], 1);
    }

    /// The ZooKeeper loop, with the names a recorder on a Kubernetes node writes.
    fn named_loop() -> Vec<u8> {
        use crate::model::{
            Identity, Named, Runtime, Source, Workload, WorkloadKey, WorkloadTableBuilder,
        };
        let named = |v: &str| Some(Named::new(v, Source::OciConfig));
        let zookeeper = Identity::Workload(Workload {
            runtime: Some(Runtime::CriO),
            id: Some("c".repeat(64)),
            container: named("zookeeper"),
            pod: named("zookeeper-0"),
            namespace: named("infra"),
            ..Workload::default()
        });
        let client = Identity::Workload(Workload {
            pod: named("dubbo-client-7d9f8c6b5-x2x4q"),
            namespace: named("shop"),
            ..Workload::default()
        });
        let mut names = WorkloadTableBuilder::default();
        names.add(WorkloadKey::Process(42), &zookeeper);
        names.add(WorkloadKey::Netns(crate::synth::CLIENT_NS), &client);
        let mut s = Script::default();
        zookeeper_loop(&mut s, 10);
        let meta = TraceMeta::default();
        let mut writer = TraceWriter::new(Vec::new(), &meta).unwrap();
        writer.push_workloads(&names.finish());
        for event in &s.events {
            writer.push(event).unwrap();
        }
        writer.finish(&TraceEnd::default()).unwrap()
    }

    #[test]
    fn names_reach_the_verdict_in_both_formats() {
        let bytes = named_loop();
        let text = run(&bytes, &options(false, true));
        assert!(
            text.contains(
                "  10.0.0.2 (shop/dubbo-client-7d9f8c6b5-x2x4q) -> 10.0.0.1:2181\n    \
                 (infra/zookeeper-0/zookeeper): reconnect loop, 10 connections"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "       shop/dubbo-client-7d9f8c6b5-x2x4q -> infra/zookeeper-0/zookeeper"
            ),
            "{text}"
        );
        let doc: serde_json::Value =
            serde_json::from_str(&run(&bytes, &options(true, true))).unwrap();
        let pair = &doc["pairs"][0];
        assert_eq!(pair["client_pod"], "shop/dubbo-client-7d9f8c6b5-x2x4q");
        assert_eq!(pair["server_pod"], "infra/zookeeper-0");
        let row = &doc["connections"][0];
        assert_eq!(
            row["server_container"],
            serde_json::json!({
                "namespace": "infra", "pod": "zookeeper-0", "container": "zookeeper",
                "id": "c".repeat(64), "runtime": "cri-o"
            })
        );
        assert_eq!(
            row["client_container"]["container"],
            serde_json::Value::Null
        );
        assert_eq!(
            row["client_container"]["pod"],
            "dubbo-client-7d9f8c6b5-x2x4q"
        );
        // Filters by the recorded names.
        let mut only = options(true, false);
        only.workloads =
            crate::model::WorkloadFilter::parse(&["infra/zookeeper-0".into()], &[]).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&run(&bytes, &only)).unwrap();
        assert_eq!(doc["connections_counted"], 10);
        only.workloads = crate::model::WorkloadFilter::parse(&[], &["nginx".into()]).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&run(&bytes, &only)).unwrap();
        assert_eq!(doc["connections_counted"], 0);
    }

    #[test]
    fn without_names_the_keys_are_null() {
        let doc: serde_json::Value =
            serde_json::from_str(&run(&incident(), &options(true, true))).unwrap();
        let pair = &doc["pairs"][0];
        assert!(
            pair["client_pod"].is_null() && pair["server_pod"].is_null(),
            "{pair}"
        );
        let row = &doc["connections"][0];
        assert!(row.as_object().unwrap().contains_key("client_container"));
        assert!(row["client_container"].is_null() && row["server_container"].is_null());
    }
}
