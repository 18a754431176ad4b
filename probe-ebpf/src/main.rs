//! tcpchurn's kernel side: copy every TCP transition (and the resets and socket errors
//! around it) into one ring buffer, with the socket's netns and cgroup, and the task only
//! when the task can be trusted.
//!
//! Decoding happens in userspace with offsets read from tracefs; this program only
//! filters, locates the socket, tags the execution context and counts what it loses.
#![no_std]
#![no_main]

#[cfg(target_arch = "bpf")]
mod probe {
    use aya_ebpf::{
        EbpfContext as _,
        bindings::{BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
        helpers::{
            bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_smp_processor_id,
            bpf_ktime_get_ns, bpf_probe_read_kernel, bpf_probe_read_kernel_buf,
        },
        macros::{map, tracepoint},
        maps::{PerCpuArray, RingBuf},
        programs::TracePointContext,
    };
    use aya_log_ebpf::warn;
    use probe_common::{
        EventKind, ExecContext, FieldSpec, KernelEvent, KernelFields, MAX_FILTER_NETNS,
        MAX_FILTER_PORTS, ProbeConfig, RECORD_BYTES, RECORD_START, counter,
    };

    /// Set by the recorder at load time; `.rodata` is frozen, so the verifier sees
    /// every offset in it as a constant.
    #[unsafe(no_mangle)]
    static CONFIG: ProbeConfig = ProbeConfig::DISABLED;

    /// Resized by the recorder at load time (`--ring-size`).
    #[map]
    static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 22, 0);

    #[map]
    static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

    /// One [`ExecContext`] per CPU, maintained by the softirq tracepoints below.
    /// Softirqs never nest on one CPU, so entry/exit bracket exactly the code where
    /// `current` is a bystander (kernel-facts §2).
    #[map]
    static CPU_CONTEXT: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

    const IPPROTO_TCP: u64 = 6;

    #[tracepoint]
    pub fn softirq_entry(_ctx: TracePointContext) -> u32 {
        set_cpu_context(ExecContext::Softirq);
        0
    }

    #[tracepoint]
    pub fn softirq_exit(_ctx: TracePointContext) -> u32 {
        set_cpu_context(ExecContext::Task);
        0
    }

    #[tracepoint]
    pub fn inet_sock_set_state(ctx: TracePointContext) -> u32 {
        emit(&ctx, EventKind::StateChange, &CONFIG.state_change);
        0
    }

    #[tracepoint]
    pub fn tcp_send_reset(ctx: TracePointContext) -> u32 {
        emit(&ctx, EventKind::SendReset, &CONFIG.send_reset);
        0
    }

    #[tracepoint]
    pub fn tcp_receive_reset(ctx: TracePointContext) -> u32 {
        emit(&ctx, EventKind::ReceiveReset, &CONFIG.receive_reset);
        0
    }

    #[tracepoint]
    pub fn inet_sk_error_report(ctx: TracePointContext) -> u32 {
        emit(&ctx, EventKind::ErrorReport, &CONFIG.error_report);
        0
    }

    fn set_cpu_context(value: ExecContext) {
        if let Some(slot) = CPU_CONTEXT.get_ptr_mut(0) {
            // SAFETY: a per-CPU array slot, written only from this CPU.
            unsafe { *slot = value as u32 };
        }
    }

    fn cpu_context() -> u8 {
        match CPU_CONTEXT.get(0) {
            Some(value) => *value as u8,
            None => ExecContext::Unknown as u8,
        }
    }

    fn bump(index: u32) {
        if let Some(slot) = COUNTERS.get_ptr_mut(index) {
            // SAFETY: a per-CPU array slot; programs on one CPU do not run concurrently.
            unsafe { *slot += 1 };
        }
    }

    /// Reads a `.rodata` value without letting the compiler fold the compiled-in default.
    fn config<T: Copy>(value: &T) -> T {
        // SAFETY: `value` points into the static `CONFIG`.
        unsafe { core::ptr::read_volatile(value) }
    }

    /// Reads an unsigned field of up to 8 bytes from the copied record.
    fn field(record: &[u8; RECORD_BYTES], spec: FieldSpec) -> Option<u64> {
        let offset = spec.offset as usize;
        let size = spec.size as usize;
        if size == 0 || size > 8 || offset + size > RECORD_BYTES {
            return None;
        }
        let mut value = 0u64;
        let mut i = 0;
        while i < 8 {
            if i < size {
                let byte = u64::from(record[offset + i]);
                if spec.big_endian != 0 {
                    value = (value << 8) | byte;
                } else {
                    value |= byte << (8 * i);
                }
            }
            i += 1;
        }
        Some(value)
    }

    fn read_kernel<T>(addr: u64) -> Option<T> {
        if addr == 0 {
            return None;
        }
        // SAFETY: bpf_probe_read_kernel faults safely on bad addresses.
        unsafe { bpf_probe_read_kernel(addr as *const T) }.ok()
    }

    fn socket_netns(sk: u64) -> Option<u32> {
        let offsets = config(&CONFIG.sock);
        if offsets.netns_valid == 0 {
            return None;
        }
        let net: u64 = read_kernel(sk + u64::from(offsets.sk_net))?;
        read_kernel(net + u64::from(offsets.net_inum))
    }

    fn socket_cgroup(sk: u64) -> Option<u64> {
        let offsets = config(&CONFIG.sock);
        if offsets.cgroup_valid == 0 {
            return None;
        }
        let cgroup: u64 = read_kernel(sk + u64::from(offsets.sk_cgroup))?;
        let kn: u64 = read_kernel(cgroup + u64::from(offsets.cgroup_kn))?;
        read_kernel(kn + u64::from(offsets.kn_id))
    }

    /// Netns of the device a packet arrived on: the only namespace hint for an RST sent
    /// without a socket (a refused connect).
    fn packet_netns(skb: u64) -> Option<u32> {
        let offsets = config(&CONFIG.sock);
        if offsets.skb_valid == 0 || offsets.netns_valid == 0 {
            return None;
        }
        let dev: u64 = read_kernel(skb + u64::from(offsets.skb_dev))?;
        let net: u64 = read_kernel(dev + u64::from(offsets.dev_net))?;
        read_kernel(net + u64::from(offsets.net_inum))
    }

    fn port_allowed(record: &[u8; RECORD_BYTES], fields: &KernelFields) -> bool {
        let filter = config(&CONFIG.filter);
        let count = filter.port_count as usize;
        if count == 0 {
            return true;
        }
        let sport = field(record, fields.sport).unwrap_or(0) as u16;
        let dport = field(record, fields.dport).unwrap_or(0) as u16;
        let mut i = 0;
        while i < MAX_FILTER_PORTS {
            if i < count && (filter.ports[i] == sport || filter.ports[i] == dport) {
                return true;
            }
            i += 1;
        }
        false
    }

    fn netns_allowed(netns: u32) -> bool {
        let filter = config(&CONFIG.filter);
        let count = filter.netns_count as usize;
        // An event whose namespace is unknown is kept: userspace decides once it has
        // matched the event to a socket.
        if count == 0 || netns == 0 {
            return true;
        }
        let mut i = 0;
        while i < MAX_FILTER_NETNS {
            if i < count && filter.netns[i] == netns {
                return true;
            }
            i += 1;
        }
        false
    }

    fn emit(ctx: &TracePointContext, kind: EventKind, fields: &KernelFields) {
        let fields = config(fields);
        let mut record = [0u8; RECORD_BYTES];
        // SAFETY: the tracepoint record lives in the per-CPU perf trace buffer, which is
        // far larger than RECORD_START + RECORD_BYTES; bytes past the record's end are
        // ignored by the decoder.
        let copied = unsafe {
            bpf_probe_read_kernel_buf(ctx.as_ptr().cast::<u8>().add(RECORD_START), &mut record)
        };
        if copied.is_err() {
            // Should never happen (the record is in the perf trace buffer): worth a log
            // line in the recorder, which also counts it as a gap.
            warn!(
                ctx,
                "could not read a tracepoint record (event kind {})", kind as u8
            );
            bump(counter::READ_FAILED);
            return;
        }
        if fields.protocol.is_present() && field(&record, fields.protocol) != Some(IPPROTO_TCP) {
            return;
        }
        if fields.error.is_present() && field(&record, fields.error) == Some(0) {
            return;
        }
        if !port_allowed(&record, &fields) {
            return;
        }

        let sk = field(&record, fields.skaddr).unwrap_or(0);
        let (netns, cgroup_id) = if sk != 0 {
            (
                socket_netns(sk).unwrap_or(0),
                socket_cgroup(sk).unwrap_or(0),
            )
        } else {
            let skb = field(&record, fields.skbaddr).unwrap_or(0);
            (packet_netns(skb).unwrap_or(0), 0)
        };
        if !netns_allowed(netns) {
            return;
        }

        let context = cpu_context();
        let Some(mut entry) = EVENTS.reserve::<KernelEvent>(0) else {
            bump(counter::RING_FULL);
            return;
        };
        let event = entry.as_mut_ptr();
        // SAFETY: `event` points to a reserved, exclusively owned ring-buffer slot of
        // the right size and alignment.
        unsafe {
            (*event).ts_ns = bpf_ktime_get_ns();
            (*event).cgroup_id = cgroup_id;
            (*event).netns = netns;
            (*event).cpu = bpf_get_smp_processor_id() as u16;
            (*event).kind = kind as u8;
            (*event).context = context;
            if context == ExecContext::Softirq as u8 {
                (*event).pid_tgid = 0;
                (*event).comm = [0; 16];
            } else {
                (*event).pid_tgid = bpf_get_current_pid_tgid();
                (*event).comm = bpf_get_current_comm().unwrap_or([0; 16]);
            }
            (*event).record = record;
        }
        bump(counter::SUBMITTED);
        let threshold = config(&CONFIG.wakeup_threshold);
        // Waking the reader per event costs more than the event: let the recorder poll
        // on a timer and wake it only when the ring is filling up.
        let flags = if EVENTS.query(0) >= threshold {
            BPF_RB_FORCE_WAKEUP
        } else {
            BPF_RB_NO_WAKEUP
        };
        entry.submit(u64::from(flags));
    }

    #[unsafe(link_section = "license")]
    #[unsafe(no_mangle)]
    static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
        loop {}
    }
}
