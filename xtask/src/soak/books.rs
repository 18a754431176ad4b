//! The soak's books: events out (every file of the rotated recording) against events
//! in (what the churn did), and the recorder's memory; `result.json`.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::bail;
use serde::{Deserialize, Serialize};
use tcpchurn_harness::replay;

use super::churn::Churned;

/// Events out: what the files of the rotated recording hold.
#[derive(Debug, Default)]
pub struct Recorded {
    files: usize,
    bytes: u64,
    transitions: u64,
    lost: u64,
}

/// `target/soak/result.json`.
#[derive(Debug, Serialize, Deserialize)]
struct SoakResult {
    minutes: f64,
    connections: u64,
    attempts_without_port: u64,
    events_in: u64,
    events_out: u64,
    lost: u64,
    files: usize,
    bytes: u64,
    rss_kib: Vec<(u64, u64)>,
    balanced: bool,
    flat: bool,
}

/// Files of a rotated recording, in order: `soak.trace`, `soak.trace.1`, ...
fn parts(base: &Path) -> Vec<PathBuf> {
    let mut parts: Vec<(u32, PathBuf)> = fs::read_dir(base.parent().unwrap_or(Path::new(".")))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let base_name = base.file_name()?.to_str()?;
            let index = match name.strip_prefix(base_name)? {
                "" => 0,
                rest => rest.strip_prefix('.')?.parse().ok()?,
            };
            Some((index, entry.path()))
        })
        .collect();
    parts.sort();
    parts.into_iter().map(|(_, path)| path).collect()
}

/// The fields of a replayed event the soak counts.
#[derive(Deserialize)]
struct EventCount {
    kind: String,
    #[serde(default)]
    lost: u64,
}

/// Transitions and lost events in every file of the recording; fails on any damage.
pub fn count_recorded(tcpchurn: &Path, trace: &Path) -> anyhow::Result<Recorded> {
    let files = parts(trace);
    let mut recorded = Recorded {
        files: files.len(),
        ..Recorded::default()
    };
    for part in &files {
        let damage = replay::each_event(tcpchurn, part, |event: EventCount| {
            match event.kind.as_str() {
                "transition" => recorded.transitions += 1,
                "lost" => recorded.lost += event.lost,
                _ => {}
            }
        })?;
        if !damage.trim().is_empty() {
            bail!("{} replays with damage: {damage}", part.display());
        }
        recorded.bytes += fs::metadata(part).map_or(0, |m| m.len());
    }
    Ok(recorded)
}

/// Prints the books, writes `result.json`, and fails unless they balance and memory
/// stayed flat.
pub fn judge(
    dir: &Path,
    minutes: f64,
    churned: &Churned,
    recorded: &Recorded,
) -> anyhow::Result<()> {
    let (expected, out, lost) = (churned.expected(), recorded.transitions, recorded.lost);
    let (first, last, flat) = churned.rss_flat();
    let balanced = out <= expected && expected <= out + lost;
    println!(
        "soak: {minutes:.1} minutes, {} connections in {} rounds ({} attempts found no free port)",
        churned.connected, churned.rounds, churned.no_port
    );
    println!(
        "soak: events in {expected}, out {out}, lost {lost}: every missing event accounted for: {}",
        if balanced { "yes" } else { "NO" }
    );
    if balanced && out + lost > expected {
        println!(
            "soak: lost counts {} more than went missing (kernel skip counts include other namespaces)",
            out + lost - expected
        );
    }
    println!(
        "soak: {} files, {} bytes ({:.1} bytes/event)",
        recorded.files,
        recorded.bytes,
        recorded.bytes as f64 / out.max(1) as f64
    );
    println!(
        "soak: recorder RSS max {first} KiB in the first half, {last} KiB in the second: {}",
        if flat { "flat" } else { "GROWING" }
    );
    let result = SoakResult {
        minutes,
        connections: churned.connected,
        attempts_without_port: churned.no_port,
        events_in: expected,
        events_out: out,
        lost,
        files: recorded.files,
        bytes: recorded.bytes,
        rss_kib: churned.rss.clone(),
        balanced,
        flat,
    };
    fs::write(dir.join("result.json"), serde_json::to_vec_pretty(&result)?)?;
    if !balanced {
        bail!("events went missing without a loss record: in {expected} > out {out} + lost {lost}");
    }
    if !flat {
        bail!("the recorder's memory grew: {first} KiB -> {last} KiB");
    }
    Ok(())
}
