//! `tcpchurn generate`: the man pages (`tcpchurn.1`, one page per subcommand) and the
//! shell completions (bash, zsh, fish) that `cargo xtask dist` ships, written from the
//! command-line definition itself so they never drift from it.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use clap::CommandFactory as _;
use clap_complete::Shell;

use crate::cli::{Cli, Generated};

/// Writes `what` into `dir` and returns the files written.
pub fn generate(what: Generated, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let before = listing(dir)?;
    match what {
        Generated::Man => clap_mangen::generate_to(public_command(), dir)
            .with_context(|| format!("writing man pages into {}", dir.display()))?,
        Generated::Completions => {
            for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
                clap_complete::generate_to(shell, &mut public_command(), "tcpchurn", dir)
                    .with_context(|| {
                        format!("writing {shell} completions into {}", dir.display())
                    })?;
            }
        }
    }
    let mut written: Vec<PathBuf> = listing(dir)?
        .into_iter()
        .filter(|p| !before.contains(p) || what == Generated::Man)
        .collect();
    if what == Generated::Man {
        written.retain(|p| p.extension().is_some_and(|e| e == "1"));
    }
    written.sort();
    Ok(written)
}

/// The command line without its hidden subcommands (completion scripts would offer
/// them otherwise).
fn public_command() -> clap::Command {
    let full = Cli::command();
    let visible: Vec<clap::Command> = full
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set())
        .cloned()
        .collect();
    let mut rebuilt = clap::Command::new("tcpchurn");
    if let Some(about) = full.get_about() {
        rebuilt = rebuilt.about(about.clone());
    }
    if let Some(after) = full.get_after_help() {
        rebuilt = rebuilt.after_help(after.clone());
    }
    if full.get_version().is_some() {
        rebuilt = rebuilt.version(env!("CARGO_PKG_VERSION"));
    }
    rebuilt.subcommands(visible).subcommand_required(true)
}

fn listing(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    Ok(fs::read_dir(dir)
        .with_context(|| format!("{} is not a readable directory", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_page_per_visible_subcommand_and_three_completions() {
        let dir = std::env::temp_dir().join(format!("tcpchurn-generate-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let pages = generate(Generated::Man, &dir).unwrap();
        let names: Vec<String> = pages
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "tcpchurn-doctor.1",
                "tcpchurn-export.1",
                "tcpchurn-record.1",
                "tcpchurn-replay.1",
                "tcpchurn.1"
            ]
        );
        let shells = generate(Generated::Completions, &dir).unwrap();
        assert_eq!(shells.len(), 3, "{shells:?}");
        let bash = fs::read_to_string(dir.join("tcpchurn.bash")).unwrap();
        assert!(
            bash.contains("doctor") && !bash.contains("generate"),
            "hidden stays hidden"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
