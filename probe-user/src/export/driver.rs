//! One pass over the traces: every event goes to the events table with the owner the
//! analysis attributed to it and its socket's workload (from the traces' names), every connection to the connections table as it ends.

use std::io::Write;

use crate::{
    analysis::{Analyzer, AnalyzerOptions},
    export::{ExportOptions, output, tables::Tables},
    model::{ExportSummary, duration_ns},
    render::notes,
    trace::set::Traces,
};

/// Runs an export; notes about skipped files and warnings about damage go to `err`.
pub fn export(options: &ExportOptions, err: &mut impl Write) -> anyhow::Result<ExportSummary> {
    let traces = Traces::open(&options.files)?;
    notes::write_skipped(err, traces.set.skipped())?;
    output::directory(&options.dir)?;
    let mut tables = Tables::create(
        &options.dir,
        options.format,
        options.force,
        traces.timeline.start_unix_ns,
    )?;
    let mut reader = traces.events();
    let mut analyzer = Analyzer::new(AnalyzerOptions {
        connections: true,
        close_wait_ns: duration_ns(options.close_wait),
        ..AnalyzerOptions::default()
    });
    while let Some(event) = reader.next_event()? {
        for (host, table) in reader.take_workloads() {
            analyzer.learn(host, &table);
        }
        let owner = analyzer.on_event(&event);
        let workload = analyzer.workload_of(&event, owner.as_ref());
        let host = traces.names.name(event.host());
        tables.event(&event, owner.as_ref(), host, workload.as_deref())?;
        for row in analyzer.drain_rows() {
            tables.connection(&row, &traces.names)?;
        }
    }
    let (_, last_rows) = analyzer.finish(reader.end_ns());
    for row in &last_rows {
        tables.connection(row, &traces.names)?;
    }
    let damage: Vec<_> = reader.damage().into_iter().cloned().collect();
    notes::write_damage(err, &damage)?;
    let paths = tables.paths.clone();
    let (events, connections) = tables.finish()?;
    Ok(ExportSummary {
        events,
        connections,
        hosts: traces.set.hosts().len(),
        files: traces.set.hosts().iter().map(|h| h.parts.len()).sum(),
        tables: paths,
    })
}
