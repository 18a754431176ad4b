//! Loading and attaching the kernel program's parts, each with the status the trace
//! header reports for it.

use aya::{
    Ebpf,
    programs::{BtfTracePoint, Program, ProgramError, RawTracePoint, TracePoint},
};
use log::{debug, warn};

use super::KernelError;
use crate::{
    kernel::layouts::{
        ErrorReportLayout, Layouts, ReceiveResetLayout, SendResetLayout, StateChangeLayout,
    },
    model::TracepointStatus,
};

/// Attaches the softirq trackers, used when the socket lock's offset is unknown;
/// without them owners come only from syscall-only transitions.
pub(super) fn softirq_tracking(ebpf: &mut Ebpf) -> TracepointStatus {
    // Attached first, so that the execution context is known as early as possible once
    // transitions start arriving.
    let attached = match attach_raw(ebpf, "softirq_entry")
        .and_then(|()| attach_raw(ebpf, "softirq_exit"))
    {
        Ok(()) => true,
        Err(err) => {
            warn!(
                "{err}; owners are then taken only from transitions that run in syscalls (connect, listen, close)"
            );
            false
        }
    };
    TracepointStatus {
        name: "irq:softirq_entry+softirq_exit".into(),
        attached,
        detail: (!attached).then(|| "softirq tracking unavailable".into()),
    }
}

/// Attaches the resets and the classic error reports this kernel has a layout for; one
/// that fails is recorded without.
pub(super) fn optional_tracepoints(ebpf: &mut Ebpf, layouts: &Layouts) -> Vec<TracepointStatus> {
    let optional = [
        (
            "tcp_send_reset",
            SendResetLayout::TRACEPOINT,
            layouts.send_reset.is_some(),
        ),
        (
            "tcp_receive_reset",
            ReceiveResetLayout::TRACEPOINT,
            layouts.receive_reset.is_some(),
        ),
    ];
    let mut statuses = Vec::new();
    for (program, tracepoint, available) in optional {
        if !available {
            continue;
        }
        statuses.push(attach_optional(ebpf, program, tracepoint, None));
    }
    statuses
}

/// Attaches classic tracepoint program `name`; a failure is recorded without it.
/// `detail` says how an attached one was attached.
fn attach_optional(
    ebpf: &mut Ebpf,
    program: &str,
    tracepoint: (&str, &str),
    detail: Option<String>,
) -> TracepointStatus {
    let name = format!("{}:{}", tracepoint.0, tracepoint.1);
    match attach(ebpf, program, tracepoint) {
        Ok(()) => TracepointStatus {
            name,
            attached: true,
            detail,
        },
        Err(err) => {
            warn!("{err}; recording without it");
            TracepointStatus {
                name,
                attached: false,
                detail: Some(err.to_string()),
            }
        }
    }
}

/// Attaches the error-report program: the raw tracepoint when the socket's offsets are
/// known (from kernel BTF or a `--btf` file; its first argument is the socket, which the
/// classic record does not name, so a classic report is paired with the last socket
/// event on its CPU, docs/kernel-facts.md §6), the classic tracepoint otherwise.
/// `classic` is this kernel's tracefs layout (`None`: no such tracepoint, before 5.14);
/// `offsets`: whether the raw program can read the socket, or why not. Returns the
/// layout of the records the attached program writes, and its status.
pub(super) fn error_report(
    ebpf: &mut Ebpf,
    classic: Option<ErrorReportLayout>,
    offsets: Result<(), String>,
) -> Option<(Option<ErrorReportLayout>, TracepointStatus)> {
    let classic = classic?;
    let tried = offsets.and_then(|()| {
        attach_raw_to(ebpf, "inet_sk_error_report_raw", "inet_sk_error_report")
            .map_err(|err| err.to_string())
    });
    Some(match tried {
        Ok(()) => (
            Some(ErrorReportLayout::FROM_SOCKET),
            TracepointStatus {
                name: "sock:inet_sk_error_report".into(),
                attached: true,
                detail: Some("raw tracepoint".into()),
            },
        ),
        Err(why) => {
            debug!("error reports through the classic tracepoint: raw tracepoint: {why}");
            let detail = format!("classic tracepoint (raw tracepoint: {})", first_line(&why));
            let status = attach_optional(
                ebpf,
                "inet_sk_error_report",
                ErrorReportLayout::TRACEPOINT,
                Some(detail),
            );
            (status.attached.then_some(classic), status)
        }
    })
}

/// Attaches the state-change program: the BTF-enabled raw tracepoint when kernel BTF
/// allows it (no record build, no `trace_call_bpf`), the classic tracepoint otherwise.
/// `tp_btf` is the kernel BTF to attach it against, or why it cannot be used. Returns
/// the layout of the records the attached program writes, and its status.
pub(super) fn state_change(
    ebpf: &mut Ebpf,
    classic: StateChangeLayout,
    tp_btf: Result<&aya::Btf, String>,
) -> Result<(StateChangeLayout, TracepointStatus), KernelError> {
    let (layout, detail) = match tp_btf.and_then(|target| attach_btf_state_change(ebpf, target)) {
        Ok(None) => (StateChangeLayout::TP_BTF, "tp_btf".to_owned()),
        Ok(Some(why)) => (
            StateChangeLayout::TP_BTF,
            format!("tp_btf (without the rescue program: {})", first_line(&why)),
        ),
        Err(why) => {
            debug!("state changes through the classic tracepoint: tp_btf: {why}");
            attach(ebpf, "inet_sock_set_state", StateChangeLayout::TRACEPOINT)?;
            (
                classic,
                format!("classic tracepoint (tp_btf: {})", first_line(&why)),
            )
        }
    };
    debug!("sock:inet_sock_set_state attached as {detail}");
    let status = TracepointStatus {
        name: "sock:inet_sock_set_state".into(),
        attached: true,
        detail: Some(detail),
    };
    Ok((layout, status))
}

/// The `tp_btf` program that records state changes.
pub(super) const BTF_STATE_MAIN: &str = "inet_sock_set_state_btf";
/// The programs that cover its skipped runs: one marks every state change pending
/// before it, one records what it left pending (`probe-ebpf`).
const BTF_STATE_ARM: &str = "inet_sock_set_state_arm";
const BTF_STATE_RESCUE: &str = "inet_sock_set_state_rescue";

/// Loads the `tp_btf` state-change programs against `target`, the running kernel's own
/// BTF, and attaches them in the order they must run (a tracepoint calls its probes in
/// attach order, `func_add()` in `kernel/tracepoint.c`): arm, main, rescue. Fails if the
/// main program cannot be used (nothing of the three stays attached); `Ok(Some(why))`
/// when it runs without the rescue.
fn attach_btf_state_change(ebpf: &mut Ebpf, target: &aya::Btf) -> Result<Option<String>, String> {
    const FUNCTION: &str = "inet_sock_set_state";
    load_btf(ebpf, BTF_STATE_MAIN, FUNCTION, target)?;
    let armed = load_btf(ebpf, BTF_STATE_ARM, FUNCTION, target)
        .and_then(|()| load_btf(ebpf, BTF_STATE_RESCUE, FUNCTION, target))
        .and_then(|()| attach_loaded_btf(ebpf, BTF_STATE_ARM));
    if let Err(why) = attach_loaded_btf(ebpf, BTF_STATE_MAIN) {
        unload_btf(ebpf, BTF_STATE_ARM);
        return Err(why);
    }
    // Only after the main program: attached before it, it would find every event armed.
    let rescue = armed.and_then(|()| attach_loaded_btf(ebpf, BTF_STATE_RESCUE));
    if let Err(why) = &rescue {
        // Without the rescue, arming is only a cost.
        unload_btf(ebpf, BTF_STATE_ARM);
        warn!("{why}; a state change that interrupts the main program on its CPU is lost");
    }
    Ok(rescue.err())
}

/// Detaches the rescue program, first of the three at shutdown: with the main program
/// detached before it, it would find every state change pending and count it rescued.
pub(super) fn detach_rescue(ebpf: &mut Ebpf) {
    unload_btf(ebpf, BTF_STATE_RESCUE);
}

fn unload_btf(ebpf: &mut Ebpf, name: &str) {
    if let Ok(program) = btf_program(ebpf, name)
        && let Err(err) = program.unload()
    {
        // Not loaded is as good as unloaded.
        debug!("unloading {name}: {err}");
    }
}

fn btf_program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut BtfTracePoint, String> {
    ebpf.program_mut(name)
        .ok_or_else(|| format!("the kernel program has no {name}"))?
        .try_into()
        .map_err(|err| format!("{err}"))
}

fn load_btf(ebpf: &mut Ebpf, name: &str, function: &str, target: &aya::Btf) -> Result<(), String> {
    btf_program(ebpf, name)?
        .load(function, target)
        .map_err(|err| format!("loading {name} (verifier): {}", program_error(&err)))
}

/// Attaches `tp_btf` program `name`, loaded by [`load_btf`].
fn attach_loaded_btf(ebpf: &mut Ebpf, name: &str) -> Result<(), String> {
    btf_program(ebpf, name)?
        .attach()
        .map(drop)
        .map_err(|err| format!("attaching {name}: {}", program_error(&err)))
}

/// The first line of why a `tp_btf` program was not used; a verifier log stays in the
/// debug output.
fn first_line(why: &str) -> String {
    why.lines().next().unwrap_or("").chars().take(200).collect()
}

/// A program error with its sources (the verifier log of a refused program).
fn program_error(err: &ProgramError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Program `name` as its type `P`; `what` names the step an error belongs to.
fn program<'a, P>(ebpf: &'a mut Ebpf, name: &str, what: &str) -> Result<&'a mut P, KernelError>
where
    &'a mut P: TryFrom<&'a mut Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(KernelError::Missing("program"))?
        .try_into()
        .map_err(|source| KernelError::Program {
            what: what.to_owned(),
            source,
        })
}

fn verifier(name: &str) -> impl FnOnce(ProgramError) -> KernelError {
    move |source| KernelError::Program {
        what: format!("loading {name} (verifier)"),
        source,
    }
}

/// Attaches classic tracepoint program `name` to `category:tracepoint`.
fn attach(
    ebpf: &mut Ebpf,
    name: &str,
    (category, tracepoint): (&str, &str),
) -> Result<(), KernelError> {
    let what = format!("attaching {category}:{tracepoint}");
    let program: &mut TracePoint = program(ebpf, name, &what)?;
    program.load().map_err(verifier(name))?;
    program
        .attach(category, tracepoint)
        .map_err(|source| KernelError::Program { what, source })?;
    Ok(())
}

/// Attaches a raw tracepoint program to the tracepoint of the same name.
fn attach_raw(ebpf: &mut Ebpf, name: &str) -> Result<(), KernelError> {
    attach_raw_to(ebpf, name, name)
}

/// Attaches raw tracepoint program `name` to `tracepoint`.
fn attach_raw_to(ebpf: &mut Ebpf, name: &str, tracepoint: &str) -> Result<(), KernelError> {
    let what = format!("attaching raw tracepoint {tracepoint}");
    let program: &mut RawTracePoint = program(ebpf, name, &what)?;
    program.load().map_err(verifier(name))?;
    program
        .attach(tracepoint)
        .map_err(|source| KernelError::Program { what, source })?;
    Ok(())
}
