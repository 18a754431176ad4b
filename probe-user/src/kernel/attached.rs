//! BPF programs that processes keep attached to the tracepoints tcpchurn uses, found
//! through the file descriptors that hold them attached (`/proc/PID/fd`): a perf event
//! or a raw-tracepoint link answers `BPF_TASK_FD_QUERY` with its program and
//! tracepoint (what `bpftool perf` does); a `tp_btf` link's fdinfo names the kernel
//! BTF type it attached to (`btf_trace_NAME`). Programs held only by a pin in bpffs
//! have no such descriptor and are not seen.

use std::{fs, path::Path};

use crate::{
    kernel::{btf::Btf, diag},
    model::doctor::{AttachKind, AttachedProgram},
};

/// The tracepoints the kernel program attaches to (`docs/kernel-facts.md §3`).
pub const WATCHED: [&str; 6] = [
    "inet_sock_set_state",
    "tcp_send_reset",
    "tcp_receive_reset",
    "inet_sk_error_report",
    "softirq_entry",
    "softirq_exit",
];

const BPF_TASK_FD_QUERY: libc::c_long = 20;
const BPF_FD_TYPE_RAW_TRACEPOINT: u32 = 0;
const BPF_FD_TYPE_TRACEPOINT: u32 = 1;

/// `union bpf_attr`'s `task_fd_query` member (`include/uapi/linux/bpf.h`).
#[repr(C)]
#[derive(Default)]
struct TaskFdQuery {
    pid: u32,
    fd: u32,
    flags: u32,
    buf_len: u32,
    buf: u64,
    prog_id: u32,
    fd_type: u32,
    probe_offset: u64,
    probe_addr: u64,
}

/// The program and tracepoint behind `fd` of process `pid`, if it is a tracepoint.
fn task_fd_query(pid: u32, fd: u32) -> Option<(u32, AttachKind, String)> {
    let mut name = [0u8; 256];
    let mut attr = TaskFdQuery {
        pid,
        fd,
        buf_len: 256,
        buf: name.as_mut_ptr() as u64,
        ..TaskFdQuery::default()
    };
    // SAFETY: `attr` is a valid task_fd_query of the size passed; the kernel writes at
    // most `buf_len` bytes into `name`, which outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_TASK_FD_QUERY,
            &raw mut attr,
            size_of::<TaskFdQuery>(),
        )
    };
    if rc != 0 {
        return None;
    }
    let kind = match attr.fd_type {
        BPF_FD_TYPE_TRACEPOINT => AttachKind::Tracepoint,
        BPF_FD_TYPE_RAW_TRACEPOINT => AttachKind::RawTracepoint,
        _ => return None,
    };
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    let tracepoint = String::from_utf8_lossy(&name[..end]).into_owned();
    Some((attr.prog_id, kind, tracepoint))
}

/// A `tp_btf` link's program and tracepoint, from its fdinfo (`link_type: tracing`,
/// `prog_id`, `target_btf_id` naming `btf_trace_NAME` in the kernel's BTF).
pub fn tracing_link(fdinfo: &str, btf: &Btf) -> Option<(u32, AttachKind, String)> {
    let field = |key: &str| {
        fdinfo
            .lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
            .map(str::trim)
    };
    if field("link_type")? != "tracing" {
        return None;
    }
    let prog_id = field("prog_id")?.parse().ok()?;
    let btf_id = field("target_btf_id")?.parse().ok()?;
    let tracepoint = btf.type_name(btf_id)?.strip_prefix("btf_trace_")?;
    Some((prog_id, AttachKind::TpBtf, tracepoint.to_owned()))
}

/// Every program attached to one of [`WATCHED`] by another process than this one.
/// Needs CAP_SYS_ADMIN (the query) and CAP_SYS_PTRACE (other users' `/proc/PID/fd`);
/// without them the list is incomplete, which the caller says.
pub fn attached_programs(btf: Option<&Btf>) -> Vec<AttachedProgram> {
    let own = std::process::id();
    let mut found = Vec::new();
    for (pid, proc_dir) in diag::processes().filter(|(pid, _)| *pid != own) {
        for (prog_id, kind, tracepoint) in process_attachments(&proc_dir, pid, btf) {
            if !WATCHED.contains(&tracepoint.as_str())
                || found.iter().any(|p: &AttachedProgram| {
                    p.pid == pid && p.program_id == prog_id && p.tracepoint == tracepoint
                })
            {
                continue;
            }
            let comm = fs::read_to_string(proc_dir.join("comm")).unwrap_or_default();
            found.push(AttachedProgram {
                pid,
                comm: comm.trim_end().to_owned(),
                program_id: prog_id,
                program_name: None,
                kind,
                tracepoint,
            });
        }
    }
    found.sort_by(|a, b| (&a.tracepoint, a.pid).cmp(&(&b.tracepoint, b.pid)));
    found
}

fn process_attachments(
    proc_dir: &Path,
    pid: u32,
    btf: Option<&Btf>,
) -> Vec<(u32, AttachKind, String)> {
    let mut out = Vec::new();
    let Ok(fds) = fs::read_dir(proc_dir.join("fd")) else {
        return out;
    };
    for fd in fds.flatten() {
        let Some(number) = fd.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(target) = fs::read_link(fd.path()) else {
            continue;
        };
        match target.to_str() {
            Some("anon_inode:[perf_event]") => out.extend(task_fd_query(pid, number)),
            Some("anon_inode:bpf_link") => {
                let raw = task_fd_query(pid, number);
                let tracing = || {
                    let info = fs::read_to_string(proc_dir.join("fdinfo").join(fd.file_name()));
                    tracing_link(&info.ok()?, btf?)
                };
                out.extend(raw.or_else(tracing));
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracing_links_are_named_from_btf_only_when_they_are_tracepoints() {
        let btf = Btf::parse(&crate::kernel::btf::tests::kernel_like()).unwrap();
        // Type 1 of the miniature is `unsigned int`: not a `btf_trace_` typedef.
        let info = "link_type:\ttracing\nlink_id:\t7\nprog_tag:\tab\nprog_id:\t42\n\
                    attach_type:\t23\ntarget_obj_id:\t1\ntarget_btf_id:\t1\n";
        assert_eq!(tracing_link(info, &btf), None);
        let raw = "link_type:\traw_tracepoint\nprog_id:\t42\ntp_name:\tsoftirq_entry\n";
        assert_eq!(tracing_link(raw, &btf), None);
        assert_eq!(tracing_link("garbage", &btf), None);

        let btf = Btf::parse(&crate::kernel::btf::tests::tracepoint_typedef(
            "inet_sock_set_state",
        ))
        .unwrap();
        let info = info.replace("target_btf_id:\t1", "target_btf_id:\t2");
        assert_eq!(
            tracing_link(&info, &btf),
            Some((42, AttachKind::TpBtf, "inet_sock_set_state".to_owned()))
        );
    }
}
