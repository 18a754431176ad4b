//! Namespaces, the recorder and `tcpchurn` itself, as tests use them: a failed step
//! panics.

use std::{
    ffi::{OsStr, OsString},
    path::Path,
    process::{Command, Output},
};

use serde_json::Value;
use tcpchurn_harness::{Addresses, Netns, Recorder, Topology, replay};

use crate::{
    binaries::tcpchurn_bin,
    kernel::{test_btf, test_classic_path},
};

/// A fresh namespace with loopback up; `tag` says what for.
pub fn netns(tag: &str) -> Netns {
    Netns::create(tag).unwrap()
}

/// A server namespace and a client namespace joined by veth: `10.77.0.1` and `fd77::1`
/// on the server side, `.2` and `::2` on the client side.
pub fn topology(tag: &str) -> Topology {
    Topology::create(tag, Addresses::subnet(77)).unwrap()
}

/// `tcpchurn record -o TRACE ARGS...`, running once its programs are attached; with
/// `--btf` [`test_btf`] where the kernel's own BTF is hidden, and `--no-tp-btf` where
/// [`test_classic_path`] asks for the classic path.
pub fn record<I, S>(trace: &Path, args: I) -> Recorder
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    if let Some(btf) = test_btf()
        && !args.iter().any(|a| a == "--btf")
    {
        args.extend(["--btf".into(), btf.into_os_string()]);
    }
    if test_classic_path() && !args.iter().any(|a| a == "--no-tp-btf") {
        args.push("--no-tp-btf".into());
    }
    Recorder::start(&tcpchurn_bin(), trace, args).unwrap()
}

/// Runs `tcpchurn` with arguments and returns its output.
pub fn tcpchurn(args: &[&str]) -> Output {
    Command::new(tcpchurn_bin())
        .args(args)
        .output()
        .expect("running tcpchurn")
}

/// `tcpchurn replay --events --json`, parsed.
pub fn replay_events(path: &Path) -> Vec<Value> {
    replay_with_warnings(path).0
}

/// `tcpchurn replay --events --json`, parsed, and what the replay said on stderr.
pub fn replay_with_warnings(path: &Path) -> (Vec<Value>, String) {
    let replayed = replay::events(&tcpchurn_bin(), path).unwrap();
    (replayed.events, replayed.warnings)
}

/// `tcpchurn replay --json` (the verdict document), parsed.
pub fn replay_verdict(path: &Path, extra: &[&str]) -> Value {
    replay::verdict(&tcpchurn_bin(), path, extra).unwrap()
}
