//! A terminal for tests of a full-screen program: a detached tmux session on a tmux
//! server of its own (a private socket, killed when dropped), read with
//! `capture-pane` and typed into with `send-keys`.

use std::{
    process::Command,
    thread,
    time::{Duration, Instant},
};

use anyhow::bail;

use crate::{exec, interrupt::check_interrupted};

/// The Debian package.
pub const PACKAGE: &str = "tmux";

/// A tmux server with one session running a command.
#[derive(Debug)]
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Runs `command` (a shell command line) in a `width`x`height` terminal. The pane
    /// stays once the command has exited, so that what it printed last can be read.
    pub fn start(tag: &str, width: u16, height: u16, command: &str) -> anyhow::Result<Self> {
        let tmux = Self {
            socket: format!("tcpchurn-{tag}-{}", std::process::id()),
        };
        exec::stdout(tmux.command().args([
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            command,
            ";",
            "set-option",
            "-g",
            "remain-on-exit",
            "on",
            ";",
            "set-option",
            "-g",
            "history-limit",
            "10000",
        ]))?;
        Ok(tmux)
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.args(["-L", &self.socket]);
        cmd
    }

    /// What the terminal shows now, lines wrapped by the terminal joined again.
    pub fn screen(&self) -> anyhow::Result<String> {
        exec::stdout(self.command().args(["capture-pane", "-p", "-J"]))
    }

    /// Everything printed on the normal screen, its scrollback included (not what a
    /// full-screen program drew on the alternate screen).
    pub fn history(&self) -> anyhow::Result<String> {
        exec::stdout(self.command().args(["capture-pane", "-p", "-J", "-S", "-"]))
    }

    /// Types keys (tmux key names: `q`, `C-c`, `Enter`...).
    pub fn keys(&self, keys: &str) -> anyhow::Result<()> {
        exec::stdout(self.command().args(["send-keys", keys])).map(drop)
    }

    /// Waits until the screen satisfies `ready`, and returns it.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        ready: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            check_interrupted()?;
            let screen = self.screen()?;
            if ready(&screen) {
                return Ok(screen);
            }
            if Instant::now() > deadline {
                bail!("the terminal did not show {what} within {timeout:?}:\n{screen}");
            }
            thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _killed = self
            .command()
            .arg("kill-server")
            .stderr(std::process::Stdio::null())
            .status();
    }
}
