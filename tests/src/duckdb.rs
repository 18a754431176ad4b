//! Queries and schemas through DuckDB and pyarrow (the Python packages from PyPI, in
//! the harness's virtual environment): exported tables are read back by the engines
//! users query them with.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use serde_json::Value;
use tcpchurn_harness::{duckdb, exec};

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

impl DuckDb {
    /// The environment, installed (`cargo xtask setup` does it) if missing.
    pub fn get() -> &'static Self {
        static ONE: OnceLock<DuckDb> = OnceLock::new();
        ONE.get_or_init(|| {
            duckdb::install().expect("DuckDB and pyarrow from PyPI");
            Self {
                python: duckdb::python(),
            }
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
