//! DuckDB and pyarrow, the Python packages from PyPI, in a virtual environment of their
//! own (`target/duckdb-venv`): the export tests read the tables back with the engines
//! users query them with. `cargo xtask setup` installs it; the tests install it too if
//! it is missing, so they never skip for want of it.

use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, bail};

use crate::{
    exec::{run_shown, try_stdout},
    workspace,
};

/// The versions the tests were written against.
pub const PACKAGES: [&str; 2] = ["duckdb==2.0.1", "pyarrow==26.0.1"];

/// Prints the installed versions, as `PACKAGES` names them.
const VERSIONS: &str = "import duckdb, pyarrow; \
                        print(f'duckdb=={duckdb.__version__} pyarrow=={pyarrow.__version__}')";

/// The environment's directory.
pub fn venv() -> PathBuf {
    workspace::root().join("target/duckdb-venv")
}

/// The environment's Python.
pub fn python() -> PathBuf {
    venv().join("bin/python")
}

fn installed() -> bool {
    try_stdout(python(), &["-c", VERSIONS]).is_some_and(|v| v.trim() == PACKAGES.join(" "))
}

/// Creates the environment with [`PACKAGES`] unless it is already there.
pub fn install() -> anyhow::Result<()> {
    if installed() {
        return Ok(());
    }
    let venv = venv();
    // Debian's Python: the environment must not depend on a user's pyenv or conda.
    let system = ["/usr/bin/python3", "python3"]
        .into_iter()
        .find(|p| try_stdout(p, &["-c", "import venv, ensurepip"]).is_some())
        .context(
            "no Python 3 with the venv and ensurepip modules (apt-get install python3-venv)",
        )?;
    eprintln!(
        "xtask: installing {} into {}",
        PACKAGES.join(", "),
        venv.display()
    );
    run_shown(
        Command::new(system)
            .args(["-m", "venv", "--clear"])
            .arg(&venv),
    )?;
    run_shown(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(PACKAGES),
    )?;
    if !installed() {
        bail!(
            "{} does not import {} after installing them",
            python().display(),
            PACKAGES.join(" and ")
        );
    }
    Ok(())
}
