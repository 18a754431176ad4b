//! Questions about the events of `replay --events --json`.

use std::net::IpAddr;

use serde_json::Value;

/// Transitions of one connection, as `OLD->NEW` strings.
pub fn transitions_of(events: &[Value], conn: u64) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["kind"] == "transition" && e["conn"] == conn)
        .map(|e| {
            format!(
                "{}->{}",
                e["old"].as_str().unwrap(),
                e["new"].as_str().unwrap()
            )
        })
        .collect()
}

/// The connection ids of transitions matching a predicate, in order of appearance.
pub fn conns_where(events: &[Value], pred: impl Fn(&Value) -> bool) -> Vec<u64> {
    let mut ids = Vec::new();
    for event in events
        .iter()
        .filter(|e| e["kind"] == "transition" && pred(e))
    {
        let id = event["conn"].as_u64().unwrap();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// How many events are of one kind.
pub fn count_kind(events: &[Value], kind: &str) -> usize {
    events.iter().filter(|e| e["kind"] == kind).count()
}

/// Events lost, summed over the trace's gap records.
pub fn lost_total(events: &[Value]) -> u64 {
    events
        .iter()
        .filter(|e| e["kind"] == "lost")
        .map(|e| e["lost"].as_u64().unwrap())
        .sum()
}

/// Events lost, summed over the trace's gap records: those with a cause tcpchurn
/// controls (a full ring, runs the kernel skipped and counted), and those no kernel
/// counter reported (cause `unreported`: transitions the kernel never showed the
/// programs, found from broken chains, docs/kernel-facts.md §4.1).
pub fn lost_by_cause(events: &[Value]) -> (u64, u64) {
    let gaps = events.iter().filter(|e| e["kind"] == "lost");
    let (mut counted, mut unreported) = (0, 0);
    for gap in gaps {
        let lost = gap["lost"].as_u64().unwrap();
        if gap["cause"] == "unreported" {
            unreported += lost;
        } else {
            counted += lost;
        }
    }
    (counted, unreported)
}

/// An address field of an event (`laddr`, `raddr`), IPv4-mapped ones as IPv4; `None`
/// when it is null (the kernel gave no address).
pub fn event_ip(event: &Value, key: &str) -> Option<IpAddr> {
    let text = event[key].as_str()?;
    Some(text.parse::<IpAddr>().unwrap().to_canonical())
}
