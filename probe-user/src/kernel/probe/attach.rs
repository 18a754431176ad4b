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

/// Attaches the resets and error reports this kernel has a layout for; one that fails
/// is recorded without.
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
        (
            "inet_sk_error_report",
            ErrorReportLayout::TRACEPOINT,
            layouts.error_report.is_some(),
        ),
    ];
    let mut statuses = Vec::new();
    for (program, tracepoint, available) in optional {
        if !available {
            continue;
        }
        let name = format!("{}:{}", tracepoint.0, tracepoint.1);
        statuses.push(match attach(ebpf, program, tracepoint) {
            Ok(()) => TracepointStatus {
                name,
                attached: true,
                detail: None,
            },
            Err(err) => {
                warn!("{err}; recording without it");
                TracepointStatus {
                    name,
                    attached: false,
                    detail: Some(err.to_string()),
                }
            }
        });
    }
    statuses
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
            format!("tp_btf (without the rescue program: {why})"),
        ),
        Err(why) => {
            debug!("state changes through the classic tracepoint: tp_btf: {why}");
            // The first line says why; a verifier log stays in the debug output.
            let why: String = why.lines().next().unwrap_or("").chars().take(200).collect();
            attach(ebpf, "inet_sock_set_state", StateChangeLayout::TRACEPOINT)?;
            (classic, format!("classic tracepoint (tp_btf: {why})"))
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

/// Loads the `tp_btf` state-change programs against `target`, the kernel BTF the
/// offsets came from, and attaches them in the order they must run (a tracepoint calls
/// its probes in attach order): arm, main, rescue. Fails if the main program cannot be
/// used; `Ok(Some(why))` when it runs without the rescue.
fn attach_btf_state_change(ebpf: &mut Ebpf, target: &aya::Btf) -> Result<Option<String>, String> {
    load_btf(ebpf, BTF_STATE_MAIN, target)?;
    let helpers = load_btf(ebpf, BTF_STATE_ARM, target)
        .and_then(|()| load_btf(ebpf, BTF_STATE_RESCUE, target));
    let armed = helpers.and_then(|()| attach_btf(ebpf, BTF_STATE_ARM));
    attach_btf(ebpf, BTF_STATE_MAIN)?;
    // Only after the main program: attached before it, it would find every event armed.
    let rescue = armed.and_then(|()| attach_btf(ebpf, BTF_STATE_RESCUE));
    if let Err(why) = &rescue {
        warn!("{why}; a state change that interrupts the main program on its CPU is lost");
    }
    Ok(rescue.err())
}

fn btf_program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut BtfTracePoint, String> {
    ebpf.program_mut(name)
        .ok_or_else(|| format!("the kernel program has no {name}"))?
        .try_into()
        .map_err(|err| format!("{err}"))
}

fn load_btf(ebpf: &mut Ebpf, name: &str, target: &aya::Btf) -> Result<(), String> {
    btf_program(ebpf, name)?
        .load("inet_sock_set_state", target)
        .map_err(|err| format!("loading {name} (verifier): {}", program_error(&err)))
}

fn attach_btf(ebpf: &mut Ebpf, name: &str) -> Result<(), String> {
    btf_program(ebpf, name)?
        .attach()
        .map(drop)
        .map_err(|err| format!("attaching {name}: {}", program_error(&err)))
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
    let what = format!("attaching raw tracepoint {name}");
    let program: &mut RawTracePoint = program(ebpf, name, &what)?;
    program.load().map_err(verifier(name))?;
    program
        .attach(name)
        .map_err(|source| KernelError::Program { what, source })?;
    Ok(())
}
