//! What a recording still needs once it is attached, its first file is open and the
//! start snapshot is taken; the rest is given up for good (docs/privileges.md).

use std::{fs, os::unix::fs::MetadataExt as _, path::Path};

use crate::{
    kernel::{
        capabilities::{CAP_BPF, CAP_DAC_OVERRIDE, CAP_SYS_ADMIN, CAP_SYS_PTRACE, CapSet},
        preflight,
    },
    record::options::RecordOptions,
};

/// The capabilities the rest of a recording needs:
/// - the end snapshot joins each network namespace (`setns`: CAP_SYS_ADMIN), found
///   through `/proc/PID/ns/net` of processes of any user (CAP_SYS_PTRACE);
/// - rotation creates files in the output directory: CAP_DAC_OVERRIDE, only when the
///   directory's permissions do not let this user write there anyway;
/// - reading the kernel program's counters is a `bpf(2)` call on its map, which
///   kernels before 6.5 refuse without CAP_BPF (or CAP_SYS_ADMIN) when unprivileged BPF
///   is disabled.
///
/// Writing to open files, draining the ring buffer (memory-mapped) and detaching
/// (closing descriptors) need none.
pub fn needed_after_start(options: &RecordOptions, output_dir: &Path, release: &str) -> CapSet {
    let mut keep = CapSet::EMPTY;
    if options.snapshot {
        keep = keep.with(CAP_SYS_ADMIN).with(CAP_SYS_PTRACE);
    }
    if options.max_size.is_some() && !permissions_let_us_write(output_dir) {
        keep = keep.with(CAP_DAC_OVERRIDE);
    }
    if !keep.has(CAP_SYS_ADMIN) && map_reads_need_cap_bpf(release) {
        keep = keep.with(CAP_BPF);
    }
    keep
}

/// Before Linux 6.5, `bpf(2)` refused every command without CAP_BPF while
/// `kernel.unprivileged_bpf_disabled` was set; since, only loading programs and creating
/// maps need it.
fn map_reads_need_cap_bpf(release: &str) -> bool {
    let disabled = fs::read_to_string("/proc/sys/kernel/unprivileged_bpf_disabled")
        .map_or(true, |text| text.trim() != "0");
    disabled && preflight::kernel_version(release).is_none_or(|version| version < (6, 5))
}

/// Whether the directory's mode bits let this process's user create files in it
/// without any capability.
fn permissions_let_us_write(dir: &Path) -> bool {
    let Ok(meta) = fs::metadata(dir) else {
        return false;
    };
    // SAFETY: geteuid and getegid have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let bits = if meta.uid() == uid {
        meta.mode() >> 6
    } else if meta.gid() == gid || supplementary_groups().contains(&meta.gid()) {
        meta.mode() >> 3
    } else {
        meta.mode()
    };
    bits & 0o3 == 0o3
}

fn supplementary_groups() -> Vec<libc::gid_t> {
    // SAFETY: a count query writes nothing.
    let count = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    let mut groups = vec![0; usize::try_from(count).unwrap_or(0)];
    // SAFETY: the buffer holds `count` groups.
    let filled = unsafe { libc::getgroups(count, groups.as_mut_ptr()) };
    groups.truncate(usize::try_from(filled).unwrap_or(0));
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_rest_of_a_recording_needs() {
        let dir = std::env::temp_dir();
        let options = RecordOptions::default();
        let modern = "6.18.44";
        assert_eq!(
            needed_after_start(&options, &dir, modern),
            CapSet::of(&[CAP_SYS_ADMIN, CAP_SYS_PTRACE])
        );
        let quiet = RecordOptions {
            snapshot: false,
            max_size: Some(1 << 20),
            ..RecordOptions::default()
        };
        // The temporary directory is writable by everyone.
        assert_eq!(needed_after_start(&quiet, &dir, modern), CapSet::EMPTY);
        // Read-only for its owner: root writes there only with CAP_DAC_OVERRIDE.
        let unwritable = Path::new("/proc/self");
        assert_eq!(
            needed_after_start(&quiet, unwritable, modern),
            CapSet::of(&[CAP_DAC_OVERRIDE])
        );
        if map_reads_need_cap_bpf("5.15.0") {
            assert_eq!(
                needed_after_start(&quiet, &dir, "5.15.0"),
                CapSet::of(&[CAP_BPF])
            );
        }
    }
}
