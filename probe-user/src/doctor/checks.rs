//! "Can tcpchurn record here?": the kernel, this process's capabilities, BTF, tracefs
//! and the tracepoints, the memlock limit, lockdown, and other programs on the same
//! tracepoints. Each check reads what `tcpchurn record` would use (the same modules)
//! and changes nothing: a tracefs that is not mounted is reported, not mounted.

use std::{fs, path::Path};

use crate::{
    kernel::{
        btf::Btf,
        layouts::{ErrorReportLayout, ReceiveResetLayout, SendResetLayout, StateChangeLayout},
        offsets::{btf_state_offsets, sock_offsets},
        preflight,
        tracefs::{FormatError, FormatFile, Tracefs},
    },
    model::doctor::{AttachedProgram, Check, Status},
};

fn check(
    name: &'static str,
    status: Status,
    found: impl Into<String>,
    note: Option<String>,
) -> Check {
    Check {
        name,
        status,
        found: found.into(),
        note,
    }
}

pub fn kernel(release: &str) -> Check {
    match preflight::check_kernel(release) {
        Ok(()) => check("kernel", Status::Ok, release, None),
        Err(err) => check("kernel", Status::Fail, release, Some(err.to_string())),
    }
}

/// The effective capabilities, judged by what recording needs (`None`: unreadable).
pub fn privileges(cap_eff: Option<u64>) -> Check {
    let Some(cap_eff) = cap_eff else {
        return check(
            "privileges",
            Status::Fail,
            "unknown (no CapEff in /proc/self/status)",
            None,
        );
    };
    let held = preflight::held_capabilities(cap_eff);
    let found = if held.is_empty() {
        "none of CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN".to_owned()
    } else {
        held.join(" ")
    };
    if let Some(missing) = preflight::missing_privileges(cap_eff) {
        return check(
            "privileges",
            Status::Fail,
            found,
            Some(format!(
                "recording needs root, or CAP_BPF and CAP_PERFMON (missing: {missing})"
            )),
        );
    }
    let lacking: Vec<String> = preflight::RECORDER_CAPABILITIES
        .iter()
        .filter(|(_, name, _)| !held.contains(name) && !matches!(*name, "CAP_BPF" | "CAP_PERFMON"))
        .map(|(_, name, why)| format!("without {name} it cannot {why}"))
        .collect();
    if lacking.is_empty() {
        check("privileges", Status::Ok, found, None)
    } else {
        check("privileges", Status::Warn, found, Some(lacking.join("; ")))
    }
}

/// Kernel BTF: the socket offsets (network namespace, cgroup) and the `tp_btf` program.
pub fn btf(path: &Path, parsed: Result<&Btf, &str>) -> Check {
    let btf = match parsed {
        Ok(btf) => btf,
        Err(err) => {
            return check(
                "btf",
                Status::Warn,
                format!("{}: {err}", path.display()),
                Some(
                    "record works, without network namespaces and cgroups; pass a BTF file for \
                     this kernel with --btf"
                        .into(),
                ),
            );
        }
    };
    let report = sock_offsets(btf);
    let netns = report.offsets.netns_valid == 1;
    let cgroup = report.offsets.cgroup_valid == 1;
    let tp_btf = btf_state_offsets(btf).is_ok();
    let found = format!(
        "{}: socket netns {}, cgroup {}, tp_btf {}",
        path.display(),
        yes_no(netns),
        yes_no(cgroup),
        yes_no(tp_btf)
    );
    if netns && cgroup && tp_btf {
        check("btf", Status::Ok, found, None)
    } else {
        let mut why = report.missing;
        if !tp_btf {
            why.push("state changes go through the classic tracepoint".into());
        }
        check("btf", Status::Warn, found, Some(why.join("; ")))
    }
}

fn yes_no(yes: bool) -> &'static str {
    if yes { "yes" } else { "no" }
}

pub fn tracefs(found: Option<&Tracefs>) -> Check {
    match found {
        Some(tracefs) => check(
            "tracefs",
            Status::Ok,
            tracefs.root().display().to_string(),
            None,
        ),
        None => check(
            "tracefs",
            Status::Warn,
            "not mounted",
            Some(
                "record mounts it at /sys/kernel/tracing (needs CAP_SYS_ADMIN and a writable \
                 /sys in a container)"
                    .into(),
            ),
        ),
    }
}

type LayoutCheck = fn(&FormatFile) -> Result<(), FormatError>;

/// The tracepoints and whether their record layout is understood (from tracefs), or
/// only whether the kernel declares them (from BTF, when tracefs is not mounted).
pub fn tracepoints(tracefs: Option<&Tracefs>, btf: Option<&Btf>) -> Check {
    let all: [((&str, &str), bool, LayoutCheck); 4] = [
        (StateChangeLayout::TRACEPOINT, true, |f| {
            StateChangeLayout::from_format(f).map(drop)
        }),
        (SendResetLayout::TRACEPOINT, false, |f| {
            SendResetLayout::from_format(f).map(drop)
        }),
        (ReceiveResetLayout::TRACEPOINT, false, |f| {
            ReceiveResetLayout::from_format(f).map(drop)
        }),
        (ErrorReportLayout::TRACEPOINT, false, |f| {
            ErrorReportLayout::from_format(f).map(drop)
        }),
    ];
    let mut present = Vec::new();
    let mut problems = Vec::new();
    let mut status = Status::Ok;
    for ((category, name), required, layout) in all {
        let full = format!("{category}:{name}");
        let problem = match (tracefs, btf) {
            (Some(tracefs), _) => match tracefs.layout((category, name), layout) {
                Ok(Some(())) => None,
                Ok(None) => Some(format!("{full} is missing")),
                Err(err) => Some(format!("{full}: layout not understood: {err}")),
            },
            (None, Some(btf)) => (!btf.has_typedef(&format!("btf_trace_{name}")))
                .then(|| format!("{full} is missing")),
            (None, None) => Some(format!("{full}: unknown (no tracefs, no BTF)")),
        };
        match problem {
            None => present.push(full),
            Some(problem) => {
                status = status.max(if required { Status::Fail } else { Status::Warn });
                problems.push(problem);
            }
        }
    }
    let how = if tracefs.is_some() {
        "layouts read from tracefs"
    } else {
        "declared in BTF"
    };
    let found = if present.is_empty() {
        "none".to_owned()
    } else {
        format!("{} ({how})", present.join(", "))
    };
    let note = (!problems.is_empty()).then(|| {
        format!(
            "{}; without an optional one, record goes on without those events",
            problems.join("; ")
        )
    });
    check("tracepoints", status, found, note)
}

pub fn memlock(kernel: Option<(u32, u32)>, limit: Option<u64>) -> Check {
    let found = limit.map_or_else(|| "unlimited".to_owned(), |l| format!("{} KiB", l / 1024));
    if kernel.is_some_and(|v| v >= (5, 11)) || limit.is_none() {
        return check(
            "memlock",
            Status::Ok,
            found,
            Some("not used: since Linux 5.11 BPF memory is charged to the memory cgroup".into()),
        );
    }
    // The default 16 MiB ring buffer plus the small maps.
    let needed = 17 << 20;
    if limit.is_some_and(|l| l >= needed) {
        check("memlock", Status::Ok, found, None)
    } else {
        check(
            "memlock",
            Status::Fail,
            found,
            Some(
                "this kernel charges BPF maps to RLIMIT_MEMLOCK: raise it (`ulimit -l unlimited`, \
                 or a container's --ulimit memlock=-1)"
                    .into(),
            ),
        )
    }
}

pub fn lockdown(text: Option<&str>) -> Check {
    match text.and_then(preflight::lockdown_mode) {
        None => check("lockdown", Status::Ok, "no lockdown LSM", None),
        Some(mode) if mode == "confidentiality" => check(
            "lockdown",
            Status::Fail,
            mode,
            Some("confidentiality lockdown forbids BPF reads of kernel memory".into()),
        ),
        Some(mode) => check("lockdown", Status::Ok, mode, None),
    }
}

/// Reads the lockdown file (absent without the LSM).
pub fn lockdown_text() -> Option<String> {
    fs::read_to_string("/sys/kernel/security/lockdown").ok()
}

pub fn other_programs(programs: &[AttachedProgram], complete: bool) -> Check {
    let mut holders: Vec<String> = programs
        .iter()
        .map(|p| format!("{} (pid {})", p.comm, p.pid))
        .collect();
    holders.dedup();
    let found = if programs.is_empty() {
        "none".to_owned()
    } else {
        format!("{} program(s) of {}", programs.len(), holders.join(", "))
    };
    let note = if !complete {
        Some("incomplete: finding them needs CAP_SYS_ADMIN and CAP_SYS_PTRACE".to_owned())
    } else if programs.is_empty() {
        None
    } else {
        Some(
            "they run on every event too (their cost adds to tcpchurn's); tcpchurn records \
             alongside them"
                .to_owned(),
        )
    };
    let status = if complete { Status::Ok } else { Status::Warn };
    check("other_programs", status, found, note)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_and_privileges() {
        assert_eq!(kernel("6.1.0").status, Status::Ok);
        assert_eq!(kernel("5.4.0-150-generic").status, Status::Fail);
        assert_eq!(privileges(None).status, Status::Fail);
        assert_eq!(privileges(Some(0)).status, Status::Fail);
        // CAP_BPF + CAP_PERFMON only: can record, with warnings about the rest.
        let partial = privileges(Some((1 << 39) | (1 << 38)));
        assert_eq!(partial.status, Status::Warn);
        assert!(partial.note.unwrap().contains("without CAP_SYS_ADMIN"));
        assert_eq!(privileges(Some(u64::MAX >> 23)).status, Status::Ok);
    }

    #[test]
    fn memlock_matters_only_before_5_11() {
        assert_eq!(memlock(Some((6, 1)), Some(64 << 10)).status, Status::Ok);
        assert_eq!(memlock(Some((5, 10)), Some(64 << 10)).status, Status::Fail);
        assert_eq!(memlock(Some((5, 10)), None).status, Status::Ok);
        assert_eq!(memlock(Some((5, 10)), Some(64 << 20)).status, Status::Ok);
    }

    #[test]
    fn lockdown_modes() {
        assert_eq!(lockdown(None).status, Status::Ok);
        assert_eq!(
            lockdown(Some("none [integrity] confidentiality")).status,
            Status::Ok
        );
        assert_eq!(
            lockdown(Some("none integrity [confidentiality]")).status,
            Status::Fail
        );
    }

    #[test]
    fn tracepoints_without_tracefs_come_from_btf() {
        let btf = Btf::parse(&crate::kernel::btf::tests::tracepoint_typedef(
            "inet_sock_set_state",
        ))
        .unwrap();
        let found = tracepoints(None, Some(&btf));
        // The state change is there; the three optional ones are not.
        assert_eq!(found.status, Status::Warn);
        assert!(
            found
                .found
                .starts_with("sock:inet_sock_set_state (declared in BTF)")
        );
        let empty = Btf::parse(&crate::kernel::btf::tests::tracepoint_typedef("other")).unwrap();
        assert_eq!(tracepoints(None, Some(&empty)).status, Status::Fail);
        assert_eq!(tracepoints(None, None).status, Status::Fail);
    }
}
