//! DuckDB and pyarrow (the Python packages from PyPI) in a virtual environment kept
//! in `target/duckdb-venv`, created on first use: exported tables are read back by the
//! engines users query them with.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use serde_json::Value;
use tcpchurn_harness::{exec, workspace};

/// The versions the tests were written against.
const PACKAGES: [&str; 2] = ["duckdb==2.0.1", "pyarrow==26.0.1"];

/// Runs SQL (argv[1]) in DuckDB and prints the rows as a JSON list of objects.
const QUERY: &str = r#"
import datetime, decimal, json, sys
import duckdb
rel = duckdb.sql(sys.argv[1])
names = rel.columns
def plain(v):
    if isinstance(v, (datetime.datetime, datetime.date)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return float(v)
    return v
print(json.dumps([{n: plain(v) for n, v in zip(names, row)} for row in rel.fetchall()]))
"#;

/// Prints a Parquet file's schema as a JSON object of column name to Arrow type.
const SCHEMA: &str = r#"
import json, sys
import pyarrow.parquet as pq
schema = pq.read_schema(sys.argv[1])
print(json.dumps({f.name: str(f.type) for f in schema}))
"#;

/// The environment's Python.
#[derive(Debug)]
pub struct DuckDb {
    python: PathBuf,
}

fn venv() -> PathBuf {
    workspace::root().join("target/duckdb-venv")
}

fn has_packages(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import duckdb, pyarrow"])
        .output()
        .is_ok_and(|o| o.status.success())
}

impl DuckDb {
    /// The environment, created (python3 -m venv, pip install from PyPI) if missing.
    pub fn get() -> &'static Self {
        static ONE: OnceLock<DuckDb> = OnceLock::new();
        ONE.get_or_init(|| {
            let dir = venv();
            let python = dir.join("bin/python");
            if !has_packages(&python) {
                let _removed = std::fs::remove_dir_all(&dir);
                exec::run_shown(Command::new("python3").arg("-m").arg("venv").arg(&dir))
                    .expect("python3 -m venv (cargo xtask setup installs python3-venv)");
                exec::run_shown(
                    Command::new(dir.join("bin/pip"))
                        .args(["install", "--quiet", "--disable-pip-version-check"])
                        .args(PACKAGES),
                )
                .expect("pip install duckdb pyarrow");
                assert!(has_packages(&python), "duckdb and pyarrow did not install");
            }
            Self { python }
        })
    }

    fn run(&self, script: &str, arg: &str) -> Value {
        let out = exec::stdout(Command::new(&self.python).args(["-c", script, arg]))
            .unwrap_or_else(|e| panic!("python: {e:#}\n{arg}"));
        serde_json::from_str(&out).unwrap()
    }

    /// The rows of a query.
    pub fn query(&self, sql: &str) -> Vec<Value> {
        match self.run(QUERY, sql) {
            Value::Array(rows) => rows,
            other => panic!("not rows: {other}"),
        }
    }

    /// A Parquet file's columns and their Arrow types, as pyarrow reads them.
    pub fn schema(&self, parquet: &Path) -> Value {
        self.run(SCHEMA, parquet.to_str().unwrap())
    }
}
