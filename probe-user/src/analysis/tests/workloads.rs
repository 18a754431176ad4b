//! Workloads attached to connections, pairs and leaks from the trace's names, and the
//! `--pod`/`--container` filters.

use super::*;
use crate::model::{
    HostId, Identity, Named, Runtime, Source, Workload, WorkloadFilter, WorkloadKey, WorkloadTable,
    WorkloadTableBuilder,
};

fn named(value: &str) -> Option<Named> {
    Some(Named::new(value, Source::OciConfig))
}

fn pod(namespace: &str, name: &str) -> Identity {
    Identity::Workload(Workload {
        runtime: Some(Runtime::Containerd),
        pod: named(name),
        namespace: named(namespace),
        ..Workload::default()
    })
}

fn container(namespace: &str, pod: &str, name: &str) -> Identity {
    Identity::Workload(Workload {
        runtime: Some(Runtime::Containerd),
        id: Some(format!("{name:0>64}")),
        container: named(name),
        pod: named(pod),
        namespace: named(namespace),
        ..Workload::default()
    })
}

/// The ZooKeeper pod's namespace and its java process, and the client pod's namespace
/// (its process, pid 7, is not named: the namespace names the pod).
pub(crate) fn node() -> WorkloadTable {
    let mut b = WorkloadTableBuilder::default();
    b.add(WorkloadKey::Netns(SERVER_NS), &pod("infra", "zk-0"));
    b.add(
        WorkloadKey::Process(42),
        &container("infra", "zk-0", "zookeeper"),
    );
    b.add(WorkloadKey::Netns(CLIENT_NS), &pod("shop", "app-0"));
    b.finish()
}

fn run_named(
    s: &Script,
    table: &WorkloadTable,
    options: AnalyzerOptions,
) -> (Analysis, Vec<ConnectionRow>) {
    let mut analyzer = Analyzer::new(options);
    analyzer.learn(HostId::FIRST, table);
    for event in &s.events {
        analyzer.on_event(event);
    }
    analyzer.finish(30 * S)
}

fn label(w: Option<&std::sync::Arc<Workload>>) -> Option<String> {
    w.map(|w| w.label())
}

#[test]
fn both_ends_of_every_connection_and_the_pair_are_named() {
    let mut s = Script::default();
    zookeeper_loop(&mut s, 10);
    let (analysis, rows) = run_named(&s, &node(), with_rows());
    let pair = only_pair(&analysis);
    assert!(pair.reconnect_loop.is_some());
    assert_eq!(pair.stats.pod(Side::Client), Some("shop/app-0"));
    assert_eq!(pair.stats.pod(Side::Server), Some("infra/zk-0"));
    assert_eq!(pair.stats.names[1].label(), Some("infra/zk-0/zookeeper"));
    assert_eq!(rows.len(), 10);
    for row in &rows {
        assert_eq!(
            label(row.client_workload.as_ref()).as_deref(),
            Some("shop/app-0")
        );
        assert_eq!(
            label(row.server_workload.as_ref()).as_deref(),
            Some("infra/zk-0/zookeeper"),
            "the owner's container, more than its pod's namespace"
        );
    }
}

#[test]
fn an_end_the_trace_did_not_record_is_named_by_its_address() {
    let mut s = Script::default();
    let server_host = Scope::new(SERVER_NS, 0);
    for port in 0..3 {
        s.at(S + port * MS).rst_sent(
            SocketRef::Unmatched {
                scope: server_host,
                tuple: tuple("10.0.0.1:81", &format!("10.0.0.5:{}", 45000 + port)),
            },
            ResetReason::NO_SOCKET,
            None,
        );
    }
    let mut b = WorkloadTableBuilder::default();
    b.add(
        WorkloadKey::Address("10.0.0.5".parse().unwrap()),
        &pod("shop", "app-1"),
    );
    b.add(
        WorkloadKey::Address("10.0.0.1".parse().unwrap()),
        &pod("infra", "zk-0"),
    );
    let (analysis, rows) = run_named(&s, &b.finish(), with_rows());
    let pair = only_pair(&analysis);
    assert_eq!(pair.stats.refused, 3);
    assert_eq!(pair.stats.pod(Side::Client), Some("shop/app-1"));
    assert_eq!(pair.stats.pod(Side::Server), Some("infra/zk-0"));
    assert_eq!(
        label(rows[0].client_workload.as_ref()).as_deref(),
        Some("shop/app-1")
    );
}

#[test]
fn a_host_process_is_the_host_and_mixed_pairs_name_no_pod() {
    let mut s = Script::default();
    zookeeper_loop(&mut s, 6);
    let mut b = WorkloadTableBuilder::default();
    b.add(WorkloadKey::Netns(CLIENT_NS), &pod("shop", "app-0"));
    // The client process is the host's, in the pod's namespace (an `nsenter`).
    b.add(WorkloadKey::Process(7), &Identity::Host);
    let (analysis, rows) = run_named(&s, &b.finish(), with_rows());
    let pair = only_pair(&analysis);
    assert_eq!(pair.stats.pod(Side::Client), None);
    assert!(rows.iter().all(|r| r.client_workload.is_none()));
    // Only some connections named: the pair names no pod.
    let mut s = Script::default();
    zookeeper_loop(&mut s, 6);
    let mut b = WorkloadTableBuilder::default();
    b.add(WorkloadKey::Netns(SERVER_NS), &pod("infra", "zk-0"));
    let names = b.finish();
    let mut analyzer = Analyzer::new(with_rows());
    let middle = s.events.len() / 2;
    for (i, event) in s.events.iter().enumerate() {
        if i == middle {
            analyzer.learn(HostId::FIRST, &names);
        }
        analyzer.on_event(event);
    }
    let (analysis, _) = analyzer.finish(30 * S);
    assert_eq!(only_pair(&analysis).stats.pod(Side::Server), None);
}

#[test]
fn pod_and_container_filters_keep_connections_with_either_end_selected() {
    let mut s = Script::default();
    zookeeper_loop(&mut s, 6);
    // Another pair, in namespaces nothing names.
    let mut s2 = Script::default();
    let e = crate::synth::Ends {
        client: s2.socket(300, "10.0.0.3:50000", "10.0.0.9:80"),
        server: s2.socket(400, "10.0.0.9:80", "10.0.0.3:50000"),
    };
    s2.at(S).open(e, task(8, "curl"));
    s2.fin_close(e.client, e.server, task(8, "curl"), task(9, "nginx"));
    s.events.extend(s2.events);
    let filtered = |pods: &[&str], containers: &[&str]| {
        let filter = WorkloadFilter::parse(
            &pods.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>(),
            &containers
                .iter()
                .map(|c| (*c).to_owned())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let options = AnalyzerOptions {
            workloads: filter,
            ..with_rows()
        };
        run_named(&s, &node(), options).0.connections
    };
    assert_eq!(filtered(&[], &[]), 7);
    assert_eq!(filtered(&["infra/zk-0"], &[]), 6);
    assert_eq!(filtered(&["shop/app-0"], &[]), 6, "the client end");
    assert_eq!(filtered(&["zk-0"], &[]), 6);
    assert_eq!(filtered(&[], &["zookeeper"]), 6);
    assert_eq!(filtered(&["other/zk-0"], &[]), 0);
}

#[test]
fn a_leak_is_named_by_its_socket() {
    let mut s = Script::default();
    let leak = s.ends("10.0.0.4:41000", "10.0.0.1:80");
    s.at(S).open(leak, app()).tr(
        leak.server,
        TcpState::Established,
        TcpState::CloseWait,
        None,
    );
    let (analysis, _) = run_named(&s, &node(), AnalyzerOptions::default());
    assert_eq!(analysis.close_wait.len(), 1);
    assert_eq!(
        label(analysis.close_wait[0].workload.as_ref()).as_deref(),
        Some("infra/zk-0"),
        "the server socket's namespace (its owner is not known)"
    );
}
