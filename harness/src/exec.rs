//! Short commands: run one that must succeed and get its stdout, or run one with its
//! command line shown and its output on the terminal.

use std::{
    ffi::OsStr,
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

/// The command line of `cmd`, for messages.
pub fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// Runs a short command that must succeed (stdin is /dev/null) and returns its stdout;
/// the error says what ran and what it wrote on stderr.
pub fn stdout(cmd: &mut Command) -> anyhow::Result<String> {
    let line = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting `{line}`"))?;
    if !out.status.success() {
        bail!(
            "`{line}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The stdout of a command that may be missing or fail (a probe: is it installed,
/// which version), `None` then.
pub fn try_stdout(program: impl AsRef<OsStr>, args: &[&str]) -> Option<String> {
    stdout(Command::new(program).args(args).stderr(Stdio::null())).ok()
}

/// `ip ARGS...`, which must succeed.
pub fn ip(args: &[&str]) -> anyhow::Result<String> {
    stdout(Command::new("ip").args(args))
}

/// Runs a command with its output on the terminal, after showing its command line;
/// fails unless it exits 0.
pub fn run_shown(cmd: &mut Command) -> anyhow::Result<()> {
    let line = describe(cmd);
    eprintln!("$ {line}");
    let status = cmd.status().with_context(|| format!("starting `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}
