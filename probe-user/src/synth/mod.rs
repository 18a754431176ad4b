//! Synthetic traces, for tests and benchmarks: [`Script`] builds hand-made event
//! sequences step by step; [`Churn`] streams large churn traces into a trace writer.
//! Support code only: nothing in `record` or `replay` uses it.

mod churn;
mod script;

pub use self::{
    churn::{Churn, Churned, Closer},
    script::{CLIENT_NS, Ends, SERVER_NS, Script},
};
use crate::model::{Comm, Conn, ExecContext, SocketTuple, Task, TcpState, TraceEvent, Transition};

/// A single-threaded process.
pub fn task(pid: u32, comm: &str) -> Task {
    Task {
        pid,
        tid: pid,
        comm: Comm::from_str_lossy(comm),
    }
}

/// A socket's tuple from two `ADDR:PORT` strings.
///
/// # Panics
/// When one is not an address: the callers write them as literals.
#[expect(clippy::unwrap_used, reason = "test support: addresses are literals")]
pub fn tuple(local: &str, remote: &str) -> SocketTuple {
    SocketTuple {
        local: local.parse().unwrap(),
        remote: remote.parse().unwrap(),
    }
}

/// A state change as the recorder reports it: in task context with the task when a
/// syscall made it (`by`), in softirq without a task otherwise.
pub fn transition(
    ts_ns: u64,
    conn: Conn,
    old: TcpState,
    new: TcpState,
    by: Option<Task>,
) -> TraceEvent {
    TraceEvent::Transition(Transition {
        ts_ns,
        conn,
        old,
        new,
        context: context(by),
        task: by,
        counters: None,
    })
}

/// Task context when a task acted, softirq otherwise.
fn context(by: Option<Task>) -> ExecContext {
    if by.is_some() {
        ExecContext::Task
    } else {
        ExecContext::Softirq
    }
}
