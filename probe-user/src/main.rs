//! The `tcpchurn` binary: parse, run, map errors to exit codes.

use std::{
    io::{self, Write as _},
    process::ExitCode,
};

use clap::Parser as _;
use tcpchurn::{cli::Cli, render::text::clean, replay::is_broken_pipe};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_target(false)
        .init();
    let cli = Cli::parse();
    // Not locked for the whole run: `record --live` writes to stdout from the threads
    // of its live view.
    let mut out = io::BufWriter::with_capacity(64 << 10, io::stdout());
    let mut err = io::stderr();
    let result = tcpchurn::run(&cli, &mut out, &mut err).and_then(|()| Ok(out.flush()?));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // An error can quote the trace (a damaged header's text).
            let line = tcpchurn::errors::one_line(&e);
            let _written = writeln!(err, "tcpchurn: {}", clean(&line));
            ExitCode::from(2)
        }
    }
}
