//! The result table: one row per kernel, what it gave and how each suite went.

use std::fmt::Write as _;

use super::guest::{KernelResult, Suite, SuiteOutcome};

fn outcome(result: &KernelResult, suite: &str) -> String {
    match result.suites.iter().find(|(name, _)| name == suite) {
        Some((_, SuiteOutcome::Passed(secs))) => format!("pass {secs:.0}s"),
        Some((_, SuiteOutcome::Failed(124, _))) => "TIMEOUT".into(),
        Some((_, SuiteOutcome::Failed(_, secs))) => format!("FAIL {secs:.0}s"),
        None => "-".into(),
    }
}

fn status(result: &KernelResult) -> String {
    let mut status = match &result.problem {
        None if result.passed() => "ok".to_owned(),
        None => "FAILED".to_owned(),
        Some(super::guest::Problem::Crash(_)) => "GUEST CRASH".to_owned(),
        Some(super::guest::Problem::Hang(_)) => "GUEST HUNG".to_owned(),
        Some(super::guest::Problem::Died(_)) => "GUEST DIED".to_owned(),
        Some(super::guest::Problem::Attach(_)) => "NO ATTACH".to_owned(),
    };
    if result.attempts > 1 {
        write!(status, " (attempt {})", result.attempts).unwrap_or_default();
    }
    status
}

/// The table as text.
pub fn render(results: &[KernelResult], suites: &[Suite]) -> String {
    let mut header = vec![
        "KERNEL".to_owned(),
        "RELEASE".to_owned(),
        "PREEMPT".to_owned(),
        "BTF".to_owned(),
        "CPUS".to_owned(),
        "STATE".to_owned(),
        "ERRORS".to_owned(),
    ];
    header.extend(suites.iter().map(|s| s.name.to_uppercase()));
    header.extend(["TIME".to_owned(), "RESULT".to_owned()]);
    let mut rows = vec![header];
    for r in results {
        let attach = r.attachments.clone().unwrap_or_default();
        let mut row = vec![
            r.name.clone(),
            format!("{} ({})", r.release, r.version),
            if r.preempt.is_empty() {
                "?".into()
            } else {
                r.preempt.clone()
            },
            r.btf.clone(),
            r.cpus.clone(),
            attach.state_changes,
            attach.error_reports,
        ];
        row.extend(suites.iter().map(|s| outcome(r, &s.name)));
        row.push(format!("{:.1} min", r.elapsed.as_secs_f64() / 60.0));
        row.push(status(r));
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end()).unwrap_or_default();
    }
    for r in results {
        if let Some(problem) = &r.problem {
            writeln!(out, "{}: {problem} (console: {})", r.name, r.log.display())
                .unwrap_or_default();
        }
        if let Some(a) = &r.attachments {
            for missing in &a.missing {
                writeln!(out, "{}: not recorded: {missing}", r.name).unwrap_or_default();
            }
        }
    }
    out
}
