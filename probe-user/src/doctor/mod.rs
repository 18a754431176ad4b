//! `tcpchurn doctor`: checks a node in about a second and reports what matters for a
//! reconnect-loop / TIME_WAIT outage: whether tcpchurn can record here ([`checks`]),
//! the TCP settings that decide TIME_WAIT and reconnect behaviour ([`sysctls`]), and
//! the sockets per state in every network namespace it can reach, with the holders of
//! TIME_WAIT and CLOSE_WAIT ([`census`]). Read-only: it mounts, loads and changes
//! nothing.

pub mod census;
pub mod checks;
pub mod sysctls;

use std::{collections::BTreeMap, fs, path::PathBuf};

use crate::{
    kernel::{
        attached,
        btf::{self, Btf},
        diag::{self, Namespace},
        host, preflight, probe,
        tracefs::Tracefs,
    },
    model::{
        TcpState,
        doctor::{DoctorHost, DoctorReport, NamespaceCensus, SocketCensus, Status},
    },
};

#[derive(Clone, Debug)]
pub struct DoctorOptions {
    /// Kernel BTF to check (what `record --btf` would read).
    pub btf: PathBuf,
    /// How many TIME_WAIT and CLOSE_WAIT holders to list.
    pub top: usize,
}

pub fn doctor(options: &DoctorOptions) -> DoctorReport {
    let uname = host::uname();
    let cap_eff = preflight::own_capabilities();
    let btf_data = btf::read_file(&options.btf).map_err(|e| e.reason());
    let btf = btf_data
        .as_deref()
        .map_err(Clone::clone)
        .and_then(|data| Btf::parse(data).map_err(|e| e.to_string()));
    let tracefs = Tracefs::locate();
    let mut programs = attached::attached_programs(btf.as_ref().ok());
    let names = probe::program_names();
    for program in &mut programs {
        program.program_name = names.get(&program.program_id).cloned();
    }
    // Listing other processes' BPF attachments needs both.
    let complete = cap_eff.is_some_and(|caps| {
        let held = preflight::held_capabilities(caps);
        held.contains(&"CAP_SYS_ADMIN") && held.contains(&"CAP_SYS_PTRACE")
    });
    let lockdown = checks::lockdown_text();
    let release = uname.release.clone();
    let checks = vec![
        checks::kernel(&release),
        checks::privileges(cap_eff),
        checks::btf(&options.btf, btf.as_ref().map_err(String::as_str)),
        checks::tracefs(tracefs.as_ref()),
        checks::tracepoints(tracefs.as_ref(), btf.as_ref().ok()),
        checks::memlock(
            preflight::kernel_version(&release),
            preflight::memlock_limit(),
        ),
        checks::lockdown(lockdown.as_deref()),
        checks::other_programs(&programs, complete),
    ];
    let (sockets, own_values, warnings) = census_all(options.top);
    let own_time_wait = sockets
        .namespaces
        .iter()
        .find(|ns| ns.own)
        .and_then(|ns| ns.counts.get(TcpState::TimeWait.name()).copied())
        .unwrap_or(0);
    DoctorReport {
        host: DoctorHost {
            hostname: uname.hostname,
            kernel: uname.release,
            machine: uname.machine,
        },
        can_record: checks.iter().all(|c| c.status != Status::Fail),
        checks,
        attached_programs: programs,
        sysctls: sysctls::assess(&own_values, own_time_wait),
        sockets,
        warnings,
    }
}

type SysctlValues = Vec<(&'static str, Option<String>)>;

/// Snapshots every reachable namespace's sockets (with owners) and reads its sysctls.
fn census_all(top: usize) -> (SocketCensus, SysctlValues, Vec<String>) {
    let own_inode = diag::own_namespace();
    let own_values = sysctls::read_values();
    let snapshot = diag::snapshot(&[], true);
    let mut warnings = snapshot.warnings;
    let mut namespaces = Vec::new();
    for ns in diag::namespaces() {
        let own = Some(ns.inode) == own_inode;
        let sysctl_differences = if own {
            BTreeMap::new()
        } else {
            match diag::in_namespace(&ns, || Ok(sysctls::read_values())) {
                Ok(values) => differences(&own_values, values),
                Err(err) => {
                    warnings.push(format!(
                        "sysctls of network namespace {} ({}): {err}",
                        ns.inode,
                        ns.path.display()
                    ));
                    BTreeMap::new()
                }
            }
        };
        namespaces.push(NamespaceCensus {
            inode: ns.inode,
            path: ns.path.display().to_string(),
            label: label(&ns),
            own,
            counts: census::counts(
                snapshot
                    .sockets
                    .iter()
                    .filter(|s| s.scope.netns == ns.inode),
            ),
            sysctl_differences,
        });
    }
    // The doctor's namespace first, then the busiest.
    namespaces.sort_by_key(|ns| (!ns.own, std::cmp::Reverse(ns.counts.values().sum::<u64>())));
    let census = SocketCensus {
        totals: census::counts(&snapshot.sockets),
        namespaces,
        holders: census::holders(&snapshot.sockets, top),
    };
    (census, own_values, warnings)
}

fn differences(
    own: &[(&'static str, Option<String>)],
    theirs: SysctlValues,
) -> BTreeMap<&'static str, Option<String>> {
    theirs
        .into_iter()
        .filter(|(name, value)| own.iter().any(|(n, v)| n == name && v != value))
        .collect()
}

/// `ip netns` name, or a process in the namespace (the one whose `/proc` entry led
/// there), or nothing for the doctor's own.
fn label(ns: &Namespace) -> Option<String> {
    let path = ns.path.to_str()?;
    if let Some(name) = path.strip_prefix("/run/netns/") {
        return Some(format!("ip netns {name}"));
    }
    let pid = path.strip_prefix("/proc/")?.strip_suffix("/ns/net")?;
    if pid == "self" {
        return None;
    }
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    Some(format!("pid {pid} ({})", comm.trim_end()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_btf_path_is_read_only_if_it_can_be_btf() {
        let report = |path: &str| {
            let report = doctor(&DoctorOptions {
                btf: PathBuf::from(path),
                top: 1,
            });
            let check = report.checks.iter().find(|c| c.name == "btf").cloned();
            check.unwrap().found
        };
        let big = std::env::temp_dir().join(format!("tcpchurn-doctor-btf-{}", std::process::id()));
        fs::File::create(&big)
            .unwrap()
            .set_len(btf::MAX_BTF_BYTES + 1)
            .unwrap();
        assert!(report(big.to_str().unwrap()).contains("too large"));
        fs::remove_file(&big).unwrap();
        assert_eq!(report("/dev/zero"), "/dev/zero: not a regular file");
    }

    #[test]
    fn only_differing_sysctls_are_kept() {
        let own = vec![
            ("a", Some("1".to_owned())),
            ("b", None),
            ("c", Some("x".to_owned())),
        ];
        let theirs = vec![
            ("a", Some("1".to_owned())),
            ("b", Some("2".to_owned())),
            ("c", None),
        ];
        let diff = differences(&own, theirs);
        assert_eq!(diff.len(), 2);
        assert_eq!(diff["b"].as_deref(), Some("2"));
        assert_eq!(diff["c"], None);
    }
}
