//! tcpchurn's kernel side: copy every TCP transition (and the resets and socket errors
//! around it) into one ring buffer, with the socket's netns and cgroup, and the task only
//! when the task can be trusted.
//!
//! Decoding happens in userspace with offsets read from tracefs; this program only
//! filters, locates the socket, tags the execution context and counts what it loses.
//! With kernel BTF, state changes come from a `tp_btf` program that builds the same
//! record from the socket (the classic tracepoint program is the fallback).
#![no_std]
#![no_main]

#[cfg(target_arch = "bpf")]
mod probe {
    use aya_ebpf::{
        EbpfContext,
        bindings::{BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
        helpers::{
            bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_ns,
            bpf_probe_read_kernel,
            generated::{
                bpf_get_current_comm as current_comm_into, bpf_get_current_task_btf,
                bpf_skc_to_tcp_sock,
            },
        },
        macros::{btf_tracepoint, map, raw_tracepoint, tracepoint},
        maps::{PerCpuArray, RingBuf, ring_buf::RingBufEntry},
        programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
    };
    use aya_log_ebpf::warn;
    use probe_common::{
        CountedEvent, ERROR_PAIRING_NS, EventKind, ExecContext, FieldSpec, KernelEvent,
        KernelFields, MAX_FILTER_NETNS, MAX_FILTER_PORTS, ProbeConfig, RECORD_BYTES, RECORD_START,
        RECORD_WORDS, TcpCounters, carries_counters, counter, counter_field, state_record,
    };

    /// Set by the recorder at load time; `.rodata` is frozen, so the verifier sees
    /// every offset in it as a constant.
    #[unsafe(no_mangle)]
    static CONFIG: ProbeConfig = ProbeConfig::DISABLED;

    /// Resized by the recorder at load time (`--ring-size`).
    #[map]
    static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 22, 0);

    /// The other CPUs' rings (`ProbeConfig::ring_mask`); unused ones are one page.
    #[map]
    static EVENTS_1: RingBuf = RingBuf::with_byte_size(1 << 22, 0);
    #[map]
    static EVENTS_2: RingBuf = RingBuf::with_byte_size(1 << 22, 0);
    #[map]
    static EVENTS_3: RingBuf = RingBuf::with_byte_size(1 << 22, 0);

    /// This CPU's ring: CPUs sharing one ring contend for its lock on every reserve.
    #[inline(always)]
    fn cpu_ring() -> &'static RingBuf {
        // SAFETY: a helper without arguments.
        let cpu = u64::from(unsafe { bpf_get_smp_processor_id() });
        match cpu & config(&CONFIG.ring_mask) {
            0 => &EVENTS,
            1 => &EVENTS_1,
            2 => &EVENTS_2,
            _ => &EVENTS_3,
        }
    }

    #[map]
    static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

    /// One [`ExecContext`] per CPU, maintained by the softirq tracepoints below (only
    /// attached when the socket lock's offset is unknown: the lock tells otherwise).
    /// Softirqs never nest on one CPU, so entry/exit bracket exactly the code where
    /// `current` is a bystander (docs/kernel-facts.md §2).
    #[map]
    static CPU_CONTEXT: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

    /// Per CPU: 1 from the moment `inet_sock_set_state_arm` ran for a state change until
    /// the main program has handled it. Still 1 when `inet_sock_set_state_rescue` runs:
    /// the kernel skipped the main program for this event (see there).
    #[map]
    static PENDING: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

    /// Per CPU, written only while a `--netns` filter is active: the last socket event's
    /// namespace (high 32 bits), destination and source port (slot 0), and its time
    /// (slot 1). `inet_sk_error_report` has no socket pointer; it follows its socket's
    /// state change on the same CPU within [`ERROR_PAIRING_NS`], so this is where its
    /// namespace comes from.
    #[map]
    static LAST_SOCKET: PerCpuArray<u64> = PerCpuArray::with_max_entries(2, 0);

    /// Per CPU, the namespaces this CPU saw, by their `net_cookie` (see [`netns_inum`]):
    /// slot `cookie % NETNS_SLOTS` holds the cookie's low 32 bits over the namespace's
    /// inode number, 0 when empty. Cookies are unique in a boot and grow with the
    /// namespaces created (in per-CPU batches of 4096): two alive with the same low 32
    /// bits would need about four billion created in between.
    #[map]
    static NETNS_SEEN: PerCpuArray<u64> = PerCpuArray::with_max_entries(NETNS_SLOTS as u32, 0);
    const NETNS_SLOTS: u64 = 16;

    /// Per CPU: 1 once this CPU has logged that a socket's namespace was unreadable.
    #[map]
    static WARNED: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

    const IPPROTO_TCP: u64 = 6;
    /// `include/linux/socket.h`.
    const AF_INET6: u64 = 10;
    /// `include/net/tcp_states.h`: the states of sockets without their own lock or
    /// processed without it.
    const TCP_TIME_WAIT: u8 = 6;
    const TCP_LISTEN: u8 = 10;
    const TCP_NEW_SYN_RECV: u8 = 12;

    // Raw tracepoints: these fire on every softirq of the machine and read nothing of
    // the event, so they skip building the classic tracepoint record (which costs
    // more than the program itself).
    #[raw_tracepoint(tracepoint = "softirq_entry")]
    pub fn softirq_entry(_ctx: RawTracePointContext) -> i32 {
        set_cpu_context(ExecContext::Softirq);
        0
    }

    #[raw_tracepoint(tracepoint = "softirq_exit")]
    pub fn softirq_exit(_ctx: RawTracePointContext) -> i32 {
        set_cpu_context(ExecContext::Task);
        0
    }

    #[tracepoint]
    pub fn inet_sock_set_state(ctx: TracePointContext) -> u32 {
        emit(&ctx, EventKind::StateChange, &CONFIG.state_change);
        0
    }

    // With BTF, state changes come from three BTF-enabled raw tracepoint programs,
    // attached in this order (a tracepoint calls its probes in attach order):
    // `_arm`, the main program `_btf`, `_rescue`.
    //
    // The kernel runs a raw tracepoint's program only if that same program is not
    // already running on the CPU (`prog->active`, `__bpf_trace_run()`); other programs
    // run. A state change in softirq that interrupts the main program (in task context,
    // or in its few instructions before and after, which the kernel counts as running)
    // would be lost. `_arm` marks every state change pending; the main program clears
    // the mark once it has handled it; `_rescue` finds it still set only when the main
    // program was skipped for this very event, and records it instead. Runs nest at most
    // two deep (task, then softirq: docs/kernel-facts.md §4.1), so of the three programs
    // at most the one being interrupted is skipped, and a skipped `_arm` or `_rescue`
    // leaves the main program to record the event. docs/kernel-facts.md §4.1 has the
    // interleavings.

    /// Marks the state change pending for the main program (see above).
    #[btf_tracepoint(function = "inet_sock_set_state")]
    pub fn inet_sock_set_state_arm(_ctx: BtfTracePointContext) -> i32 {
        set_pending(1);
        0
    }

    /// The state-change program used when the kernel has BTF: a BTF-enabled raw
    /// tracepoint gets the tracepoint's arguments (`sk`, `oldstate`, `newstate`) without
    /// the classic record being built, and reads the socket with direct loads.
    #[btf_tracepoint(function = "inet_sock_set_state")]
    pub fn inet_sock_set_state_btf(ctx: BtfTracePointContext) -> i32 {
        state_change_btf(&ctx, counter::BTF_MAIN);
        set_pending(0);
        0
    }

    /// Records the state change the main program could not (see above).
    #[btf_tracepoint(function = "inet_sock_set_state")]
    pub fn inet_sock_set_state_rescue(ctx: BtfTracePointContext) -> i32 {
        let Some(pending) = PENDING.get_ptr_mut(0) else {
            return 0;
        };
        // SAFETY: a per-CPU slot; programs on one CPU run one at a time, nested runs
        // included (a nested run completes before the interrupted one resumes).
        if unsafe { *pending } == 0 {
            return 0;
        }
        unsafe { *pending = 0 };
        bump(counter::RESCUED);
        state_change_btf(&ctx, counter::BTF_RESCUE);
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

    /// The error-report program used when the socket's offsets are known (from kernel
    /// BTF or a `--btf` file): the raw tracepoint's argument is the socket itself, which
    /// the classic record does not name (there, a report is paired with the last socket
    /// event on its CPU, which another socket's event can come between, or a stalled CPU
    /// can delay past the pairing window). Raw tracepoints need no kernel BTF.
    #[raw_tracepoint(tracepoint = "inet_sk_error_report")]
    pub fn inet_sk_error_report_raw(ctx: RawTracePointContext) -> i32 {
        error_report_raw(&ctx);
        0
    }

    fn set_pending(value: u32) {
        if let Some(slot) = PENDING.get_ptr_mut(0) {
            // SAFETY: a per-CPU array slot, written only from this CPU.
            unsafe { *slot = value };
        }
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

    /// Whose context an event runs in, and whether `current` may be recorded.
    #[derive(Clone, Copy)]
    struct Context {
        context: u8,
        record_task: bool,
    }

    impl Context {
        /// From the socket lock's `owned` flag (docs/attribution.md §5): set, the
        /// socket's owner runs the event.
        fn from_owned(owned: u32) -> Self {
            if owned != 0 {
                Self {
                    context: ExecContext::Task as u8,
                    record_task: true,
                }
            } else {
                Self {
                    context: ExecContext::Softirq as u8,
                    record_task: false,
                }
            }
        }

        /// For an event whose socket lock cannot be read: the softirq tracepoints' view
        /// of the CPU when they are used (the lock's offset is unknown), else unknown
        /// with no task recorded.
        fn without_socket() -> Self {
            if config(&CONFIG.sock).sk_lock_owned != 0 {
                return Self {
                    context: ExecContext::Unknown as u8,
                    record_task: false,
                };
            }
            let context = cpu_context();
            Self {
                context,
                record_task: context != ExecContext::Softirq as u8,
            }
        }

        /// For a socket address from a record or a raw tracepoint: the lock read with
        /// `bpf_probe_read_kernel` (the socket is held during the event). A state
        /// change's socket is always a full one; a reset's can be a listener (softirq
        /// processes listeners without the lock, while their owner may hold it on
        /// another CPU) or a TIME_WAIT or request socket (which has no lock: the bytes
        /// there are other fields): softirq's, never the owner's.
        fn of_socket_address(sk: u64, kind: EventKind) -> Self {
            let sock = config(&CONFIG.sock);
            if sock.sk_lock_owned == 0 || sk == 0 {
                return Self::without_socket();
            }
            if kind != EventKind::StateChange {
                match read_kernel::<u8>(sk + u64::from(sock.sk_state)) {
                    Some(TCP_LISTEN | TCP_TIME_WAIT | TCP_NEW_SYN_RECV) => {
                        return Self::from_owned(0);
                    }
                    Some(_) => {}
                    None => return Self::without_socket(),
                }
            }
            match read_kernel::<u32>(sk + u64::from(sock.sk_lock_owned)) {
                Some(owned) => Self::from_owned(owned),
                None => Self::without_socket(),
            }
        }
    }

    /// Increments a per-CPU counter and returns its new value.
    #[inline(always)]
    fn bump(index: u32) -> u64 {
        match COUNTERS.get_ptr_mut(index) {
            // SAFETY: a per-CPU array slot, written only by runs of one program family,
            // which never nest on a CPU (`probe_common::counter`).
            Some(slot) => unsafe {
                *slot += 1;
                *slot
            },
            None => 0,
        }
    }

    /// Reads a `.rodata` value without letting the compiler fold the compiled-in default.
    fn config<T: Copy>(value: &T) -> T {
        // SAFETY: `value` points into the static `CONFIG`.
        unsafe { core::ptr::read_volatile(value) }
    }

    /// The copied record as 8-byte words: word `i` holds record bytes
    /// `[RECORD_START + 8i, RECORD_START + 8i + 8)`.
    type Words = [u64; RECORD_WORDS];

    /// Reads the first `len` record bytes straight from the tracepoint context, one
    /// aligned load per word (and 4/2/1-byte loads for a partial last word); the rest
    /// of the words are zero.
    ///
    /// A classic tracepoint program may read its context directly: the verifier
    /// allows aligned loads at constant offsets, and the kernel refuses to attach a
    /// program whose loads reach past the end of the tracepoint's record. `len` comes
    /// from `.rodata`, so the verifier sees it as a constant and never walks (or
    /// counts) the loads past it. No helper call, no stack buffer to clear, nothing
    /// that can fail.
    #[inline(always)]
    fn load_record(ctx: &TracePointContext, len: u16) -> Words {
        let len = usize::from(len).min(RECORD_BYTES);
        let base = ctx.as_ptr().cast::<u8>().cast_const();
        // Offsets must be immediates in the load instructions (the verifier refuses a
        // modified context pointer), hence one macro expansion per constant index.
        macro_rules! load {
            ($ty:ty, $at:expr) => {
                // SAFETY: an aligned read inside the tracepoint record (see above).
                u64::from(unsafe { core::ptr::read_volatile(base.add($at).cast::<$ty>()) })
            };
        }
        macro_rules! word {
            ($i:literal) => {{
                const AT: usize = RECORD_START + 8 * $i;
                let full = len / 8;
                let tail = len % 8;
                if $i < full {
                    load!(u64, AT)
                } else if $i == full && tail != 0 {
                    let mut value = 0u64;
                    if tail & 4 != 0 {
                        value |= load!(u32, AT);
                        if tail & 2 != 0 {
                            value |= load!(u16, AT + 4) << 32;
                            if tail & 1 != 0 {
                                value |= load!(u8, AT + 6) << 48;
                            }
                        } else if tail & 1 != 0 {
                            value |= load!(u8, AT + 4) << 32;
                        }
                    } else if tail & 2 != 0 {
                        value |= load!(u16, AT);
                        if tail & 1 != 0 {
                            value |= load!(u8, AT + 2) << 16;
                        }
                    } else {
                        value |= load!(u8, AT);
                    }
                    value
                } else {
                    0
                }
            }};
        }
        [
            word!(0),
            word!(1),
            word!(2),
            word!(3),
            word!(4),
            word!(5),
            word!(6),
            word!(7),
            word!(8),
            word!(9),
        ]
    }

    /// Reads an unsigned field of up to 8 bytes from the record words.
    #[inline(always)]
    fn field(words: &Words, spec: FieldSpec) -> Option<u64> {
        let offset = spec.offset as usize;
        let size = spec.size as usize;
        if size == 0 || size > 8 || offset + size > RECORD_BYTES {
            return None;
        }
        let shift = (offset % 8) * 8;
        let low = *words.get(offset / 8)?;
        let mut value = low >> shift;
        if shift != 0 && shift + size * 8 > 64 {
            // The field straddles two words.
            value |= *words.get(offset / 8 + 1)? << (64 - shift);
        }
        if size < 8 {
            value &= (1u64 << (size * 8)) - 1;
        }
        if spec.big_endian != 0 {
            value = value.swap_bytes() >> (64 - size * 8);
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
        netns_inum(KernelAddress(net))
    }

    /// The inode number of the network namespace at `net`, through this CPU's
    /// [`NETNS_SEEN`] when the kernel has `net_cookie`.
    ///
    /// `ns.inum` shares its cache line with the namespace's reference count, which the
    /// creation and the release of every socket in the namespace write: on a node
    /// churning connections the line moves between CPUs, and loading the inode number
    /// was the state-change program's costliest instruction (docs/kernel-facts.md §4.6).
    /// `net_cookie` is written once, and never reused in a boot.
    #[inline(always)]
    fn netns_inum<L: Loader>(net: L) -> Option<u32> {
        let offsets = config(&CONFIG.sock);
        if offsets.net_cookie == 0 {
            return net.read(offsets.net_inum);
        }
        let cookie: u64 = net.read(offsets.net_cookie).unwrap_or(0);
        if cookie == 0 {
            return net.read(offsets.net_inum);
        }
        let tag = cookie << 32;
        let slot = NETNS_SEEN.get_ptr_mut((cookie % NETNS_SLOTS) as u32);
        if let Some(slot) = slot {
            // SAFETY: a per-CPU slot. One 8-byte load: a run nested in this one (a
            // softirq) writes whole slots, never half of one.
            let seen = unsafe { slot.read_volatile() };
            if seen != 0 && seen & !u64::from(u32::MAX) == tag {
                return Some(seen as u32);
            }
        }
        let inum: u32 = net.read(offsets.net_inum)?;
        if let Some(slot) = slot {
            // SAFETY: as above; one 8-byte store.
            unsafe { slot.write_volatile(tag | u64::from(inum)) };
        }
        Some(inum)
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
        if skb == 0 || offsets.skb_valid == 0 || offsets.netns_valid == 0 {
            return None;
        }
        let dev: u64 = read_kernel(skb + u64::from(offsets.skb_dev))?;
        let net: u64 = read_kernel(dev + u64::from(offsets.dev_net))?;
        netns_inum(KernelAddress(net))
    }

    /// Says once per CPU that a socket's namespace could not be read although BTF gave
    /// its offsets: the events go on with netns 0 (unknown), never a guessed value.
    #[inline(never)]
    fn warn_unreadable_netns<C: EbpfContext>(ctx: &C) {
        if let Some(flag) = WARNED.get_ptr_mut(0) {
            // SAFETY: a per-CPU slot, written only from this CPU.
            unsafe {
                if *flag != 0 {
                    return;
                }
                *flag = 1;
            }
            warn!(
                ctx,
                "could not read a socket's network namespace with the BTF offsets; recording it as unknown"
            );
        }
    }

    #[inline(always)]
    fn port_allowed(record: &Words, fields: &KernelFields) -> bool {
        ports_allowed(
            field(record, fields.sport).unwrap_or(0) as u16,
            field(record, fields.dport).unwrap_or(0) as u16,
        )
    }

    #[inline(always)]
    fn ports_allowed(sport: u16, dport: u16) -> bool {
        let filter = config(&CONFIG.filter);
        let count = filter.port_count as usize;
        if count == 0 {
            return true;
        }
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

    #[inline(always)]
    fn emit(ctx: &TracePointContext, kind: EventKind, fields: &KernelFields) {
        let fields = config(fields);
        let record = load_record(ctx, fields.copy_len);
        if fields.protocol.is_present() && field(&record, fields.protocol) != Some(IPPROTO_TCP) {
            return;
        }
        if fields.error.is_present() && field(&record, fields.error) == Some(0) {
            return;
        }
        let sk = field(&record, fields.skaddr).unwrap_or(0);
        if !port_allowed(&record, &fields) {
            return;
        }
        // Read from the socket on every event: a per-socket cache would have to see
        // each lifetime's first event to stay right, and the kernel may skip a run.
        let scope = if sk != 0 {
            let netns = socket_netns(sk).unwrap_or(0);
            if netns_allowed(netns) {
                Some((netns, socket_cgroup(sk).unwrap_or(0)))
            } else {
                None
            }
        } else {
            let skb = field(&record, fields.skbaddr).unwrap_or(0);
            let netns = packet_netns(skb).unwrap_or(0);
            netns_allowed(netns).then_some((netns, 0))
        };
        let Some((mut netns, cgroup_id)) = scope else {
            return;
        };
        let filtering_netns = config(&CONFIG.filter).netns_count != 0;
        let mut pairs = None;
        if sk != 0 {
            pairs = socket_seen(
                ctx,
                netns,
                field(&record, fields.sport).unwrap_or(0),
                field(&record, fields.dport).unwrap_or(0),
            );
        } else if kind == EventKind::ErrorReport && filtering_netns {
            // Pair the report with its socket's state change just before, on this CPU;
            // one that cannot be paired is not known to be in a recorded namespace.
            // Another namespace may use the same ports (a copy of the same service):
            // only a report right after the event, with the same ports, is paired.
            let last = LAST_SOCKET.get(0).copied().unwrap_or(0);
            let at = LAST_SOCKET.get(1).copied().unwrap_or(0);
            let sport = field(&record, fields.sport).unwrap_or(0);
            let dport = field(&record, fields.dport).unwrap_or(0);
            // SAFETY: a helper without arguments.
            let now = unsafe { bpf_ktime_get_ns() };
            let last_dport = (last >> 16) & 0xffff;
            if last == 0
                || last & 0xffff != sport
                || (dport != 0 && last_dport != 0 && dport != last_dport)
                || now.wrapping_sub(at) > ERROR_PAIRING_NS
                || !netns_allowed((last >> 32) as u32)
            {
                return;
            }
            netns = (last >> 32) as u32;
        }
        let context = Context::of_socket_address(sk, kind);
        let counters = match (
            field(&record, fields.oldstate),
            field(&record, fields.newstate),
        ) {
            (Some(old), Some(new)) if sk != 0 && carries_counters(old as u32, new as u32) => {
                CountersFrom::Probe(sk)
            }
            _ => CountersFrom::None,
        };
        submit(
            kind,
            &record,
            netns,
            cgroup_id,
            pairs,
            Origin {
                comm: Comm::Helper,
                context,
                family: counter::CLASSIC,
            },
            counters,
        );
    }

    /// What every event of a socket does once it is known to be recorded: warn about an
    /// unreadable namespace, and (under `--netns`) return the socket's `LAST_SOCKET` key
    /// for the error report that may follow on this CPU.
    #[inline(always)]
    fn socket_seen<C: EbpfContext>(ctx: &C, netns: u32, sport: u64, dport: u64) -> Option<u64> {
        if netns == 0 && config(&CONFIG.sock).netns_valid != 0 {
            warn_unreadable_netns(ctx);
        }
        (config(&CONFIG.filter).netns_count != 0)
            .then_some((u64::from(netns) << 32) | (dport << 16) | sport)
    }

    /// How [`submit`] reads the current task's name.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Comm {
        /// `bpf_get_current_comm` (it copies with `strscpy_pad`).
        Helper,
        /// Two 8-byte loads from `bpf_get_current_task_btf()->comm` (BTF programs only).
        TaskBtf,
    }

    /// Where an event comes from: how [`submit`] reads the current task's name, whose
    /// context the event runs in, and the program family whose counter slots it uses
    /// (`probe_common::counter`).
    #[derive(Clone, Copy)]
    struct Origin {
        comm: Comm,
        context: Context,
        family: u32,
    }

    /// Where a state change's counters come from, when it carries them.
    #[derive(Clone, Copy)]
    enum CountersFrom {
        /// The event carries none.
        None,
        /// Direct loads from the socket (a BTF pointer) as a `struct tcp_sock`.
        Btf(*const u8),
        /// `bpf_probe_read_kernel` at the socket's address (classic tracepoint).
        Probe(u64),
    }

    /// Reserves, fills and submits one event: a [`CountedEvent`] when `counters` says
    /// where to read them, otherwise a [`KernelEvent`]. `pairs`: the `LAST_SOCKET` key
    /// of an event an error report on this CPU may pair with, stored with the event's
    /// time once the event is in the ring.
    #[inline(always)]
    fn submit(
        kind: EventKind,
        record: &Words,
        netns: u32,
        cgroup_id: u64,
        pairs: Option<u64>,
        origin: Origin,
        counters: CountersFrom,
    ) {
        let event = Event {
            kind,
            record,
            netns,
            cgroup_id,
            pairs,
            origin,
        };
        let family = origin.family;
        let ring = cpu_ring();
        if matches!(counters, CountersFrom::None) {
            let Some(mut entry) = ring.reserve::<KernelEvent>(0) else {
                bump(counter::RING_FULL + family);
                return;
            };
            // SAFETY: a reserved, exclusively owned, 8-byte aligned slot of the right size.
            unsafe { event.write(entry.as_mut_ptr()) };
            submit_entry(entry, family, ring);
        } else {
            let Some(mut entry) = ring.reserve::<CountedEvent>(0) else {
                bump(counter::RING_FULL + family);
                return;
            };
            let slot = entry.as_mut_ptr();
            // SAFETY: as above; the event is the entry's first member.
            unsafe {
                event.write(&raw mut (*slot).event);
                write_counters(&raw mut (*slot).counters, counters);
            }
            submit_entry(entry, family, ring);
        }
    }

    /// One event's values, written into its ring slot by [`Event::write`].
    struct Event<'a> {
        kind: EventKind,
        record: &'a Words,
        netns: u32,
        cgroup_id: u64,
        pairs: Option<u64>,
        origin: Origin,
    }

    impl Event<'_> {
        /// Fills the slot `event` points to.
        ///
        /// # Safety
        /// `event` points to a reserved, exclusively owned, 8-byte aligned ring-buffer
        /// slot of at least `size_of::<KernelEvent>()` bytes.
        #[inline(always)]
        unsafe fn write(&self, event: *mut KernelEvent) {
            let Self {
                kind,
                record,
                netns,
                cgroup_id,
                pairs,
                origin:
                    Origin {
                        comm: comm_from,
                        context:
                            Context {
                                context,
                                record_task,
                            },
                        ..
                    },
            } = *self;
            // SAFETY: see above. Every field is written exactly once, with plain stores
            // (no stack copy, no memcpy).
            unsafe {
                let ts_ns = bpf_ktime_get_ns();
                (*event).ts_ns = ts_ns;
                if let Some(key) = pairs
                    && let Some(slot) = LAST_SOCKET.get_ptr_mut(0)
                    && let Some(at) = LAST_SOCKET.get_ptr_mut(1)
                {
                    *slot = key;
                    *at = ts_ns;
                }
                (*event).cgroup_id = cgroup_id;
                (*event).netns = netns;
                (*event).cpu = bpf_get_smp_processor_id() as u16;
                (*event).kind = kind as u8;
                (*event).context = context;
                let comm = (&raw mut (*event).comm).cast::<u64>();
                if !record_task {
                    (*event).pid_tgid = 0;
                    comm.write_volatile(0);
                    comm.add(1).write_volatile(0);
                } else {
                    (*event).pid_tgid = bpf_get_current_pid_tgid();
                    if comm_from == Comm::TaskBtf {
                        // A trusted BTF pointer: the loads are checked against BTF at load
                        // time (an 8-byte load inside a char array is allowed).
                        let task = bpf_get_current_task_btf().cast::<u8>().cast_const();
                        let at = config(&CONFIG.btf_state.task_comm) as usize;
                        let name = task.add(at).cast::<u64>();
                        comm.write_volatile(name.read_volatile());
                        comm.add(1).write_volatile(name.add(1).read_volatile());
                    } else if current_comm_into(comm.cast(), 16) != 0 {
                        comm.write_volatile(0);
                        comm.add(1).write_volatile(0);
                    }
                }
                let words = (&raw mut (*event).record).cast::<u64>();
                let mut i = 0;
                while i < RECORD_WORDS {
                    words.add(i).write_volatile(record[i]);
                    i += 1;
                }
            }
        }
    }

    /// Writes a state change's counters into its slot. With BTF they are direct loads
    /// from the `tcp_sock` (checked by the verifier, fault-safe); the classic program
    /// reads them with `bpf_probe_read_kernel` at the same offsets. A member this
    /// kernel lacks, or a read that fails, leaves its bit out of `known`.
    ///
    /// # Safety
    /// `out` points into a reserved, exclusively owned ring-buffer slot.
    #[inline(always)]
    unsafe fn write_counters(out: *mut TcpCounters, from: CountersFrom) {
        match from {
            CountersFrom::Btf(sk) => {
                // The `tcp_sock` view is taken here, right before its loads, and handed
                // to a function of its own: the optimiser may otherwise merge it with
                // the socket pointer on a path the verifier cannot rule out, and the
                // verifier then refuses the loads.
                // SAFETY: a BTF helper; it returns NULL for anything but a TCP socket.
                let tp = unsafe { bpf_skc_to_tcp_sock(sk.cast_mut().cast()) };
                if tp.is_null() {
                    // SAFETY: see above.
                    unsafe { fill_counters(out, KernelAddress(sk as u64)) };
                } else {
                    // SAFETY: see above.
                    unsafe { fill_counters(out, BtfStruct(tp.cast::<u8>().cast_const())) };
                }
            }
            // SAFETY: see above.
            CountersFrom::Probe(sk) => unsafe { fill_counters(out, KernelAddress(sk)) },
            CountersFrom::None => {}
        }
    }

    /// How a kernel structure's members are loaded: direct loads from a BTF pointer, or
    /// `bpf_probe_read_kernel` at its address.
    trait Loader: Copy {
        /// Loads the member at byte offset `at` into `into`; false when it could not.
        fn load<T: Copy>(self, at: u32, into: &mut T) -> bool;

        /// The member at byte offset `at`, or 0 when it could not be loaded.
        #[inline(always)]
        fn get<T: Copy + Default>(self, at: u32) -> T {
            let mut value = T::default();
            self.load(at, &mut value);
            value
        }

        /// The member at byte offset `at`, if it could be loaded.
        #[inline(always)]
        fn read<T: Copy + Default>(self, at: u32) -> Option<T> {
            let mut value = T::default();
            self.load(at, &mut value).then_some(value)
        }
    }

    /// A BTF pointer, not NULL: a socket as `struct sock` (members past it need the
    /// `struct tcp_sock` view), or a `struct net` loaded from one.
    #[derive(Clone, Copy)]
    struct BtfStruct(*const u8);

    impl Loader for BtfStruct {
        #[inline(always)]
        fn load<T: Copy>(self, at: u32, into: &mut T) -> bool {
            *into = btf_load(self.0, at);
            true
        }
    }

    /// A socket's (or namespace's) kernel address, read with `bpf_probe_read_kernel`.
    #[derive(Clone, Copy)]
    struct KernelAddress(u64);

    impl Loader for KernelAddress {
        #[inline(always)]
        fn load<T: Copy>(self, at: u32, into: &mut T) -> bool {
            match read_kernel::<T>(self.0 + u64::from(at)) {
                Some(value) => {
                    *into = value;
                    true
                }
                None => false,
            }
        }
    }

    /// Fills `out` from `source`. Every value starts at 0 and is written on every path
    /// (the verifier refuses a register that may hold nothing).
    ///
    /// # Safety
    /// `out` points into a reserved, exclusively owned ring-buffer slot.
    #[inline(never)]
    unsafe fn fill_counters<S: Loader>(out: *mut TcpCounters, source: S) {
        let off = config(&CONFIG.counters);
        let wanted = off.known as u8;
        let mut known = 0u8;
        let mut load = |bit: u8, at: u32, into: &mut u64| {
            if wanted & bit != 0 && source.load(at, into) {
                known |= bit;
            }
        };
        let (mut sent, mut acked, mut received) = (0u64, 0u64, 0u64);
        load(counter_field::BYTES_SENT, off.bytes_sent, &mut sent);
        load(counter_field::BYTES_ACKED, off.bytes_acked, &mut acked);
        load(
            counter_field::BYTES_RECEIVED,
            off.bytes_received,
            &mut received,
        );
        let (mut segs_in, mut segs_out, mut retrans, mut srtt) = (0u32, 0u32, 0u32, 0u32);
        let mut flags = 0u64;
        if wanted & counter_field::SEGS != 0
            && source.load(off.segs_in, &mut segs_in)
            && source.load(off.segs_out, &mut segs_out)
        {
            known |= counter_field::SEGS;
        }
        if wanted & counter_field::RETRANS != 0 && source.load(off.total_retrans, &mut retrans) {
            known |= counter_field::RETRANS;
        }
        if wanted & counter_field::SRTT != 0 && source.load(off.srtt_us, &mut srtt) {
            known |= counter_field::SRTT;
        }
        if wanted & counter_field::PEER_FIN != 0 && source.load(off.sk_flags, &mut flags) {
            known |= counter_field::PEER_FIN;
        }
        let peer_fin = (flags >> (off.sock_done & 63)) & 1;
        // SAFETY: see above; plain stores, each field once.
        unsafe {
            (*out).bytes_sent = sent;
            (*out).bytes_acked = acked;
            (*out).bytes_received = received;
            (*out).segs_in = segs_in;
            (*out).segs_out = segs_out;
            (*out).total_retrans = retrans;
            (*out).srtt_us8 = srtt;
            // `known`, `peer_fin` and the reserved bytes: one 8-byte store.
            let tail = (&raw mut (*out).known).cast::<u64>();
            tail.write_volatile(u64::from(known) | (peer_fin << 8));
        }
    }

    /// Submits a filled entry. Waking the reader per event costs more than the event:
    /// the recorder polls on a timer and is woken only when the ring is filling up. The
    /// fill level is checked on every 16th event of a CPU, unless the threshold is so
    /// low that 16 events could cross it. `family`: the program family whose counter
    /// slot counts it (`probe_common::counter`).
    #[inline(always)]
    fn submit_entry<T>(entry: RingBufEntry<T>, family: u32, ring: &RingBuf) {
        let submitted = bump(counter::SUBMITTED + family);
        let threshold = config(&CONFIG.wakeup_threshold);
        let check =
            threshold <= 16 * size_of::<CountedEvent>() as u64 || submitted.is_multiple_of(16);
        let flags = if check && ring.query(0) >= threshold {
            BPF_RB_FORCE_WAKEUP
        } else {
            BPF_RB_NO_WAKEUP
        };
        entry.submit(u64::from(flags));
    }

    /// Loads a `T` at byte offset `at` of a BTF pointer. The verifier checks each such
    /// load against the pointee's BTF type (it must stay inside one member) and turns it
    /// into a load that cannot fault: a bad address reads as zero.
    #[inline(always)]
    fn btf_load<T: Copy>(base: *const u8, at: u32) -> T {
        // SAFETY: see above; `at` is a `.rodata` constant from BTF.
        unsafe { core::ptr::read_volatile(base.add(at as usize).cast::<T>()) }
    }

    // The word packing in `state_change_btf` relies on this layout.
    const _: () = assert!(
        state_record::SKADDR == 0
            && state_record::OLDSTATE == 8
            && state_record::NEWSTATE == 12
            && state_record::ERROR == 8
            && state_record::SPORT == 16
            && state_record::DPORT == 18
            && state_record::FAMILY == 20
            && state_record::PROTOCOL == 22
            && state_record::SADDR == 24
            && state_record::DADDR == 28
            && state_record::SADDR_V6 == 32
            && state_record::DADDR_V6 == 48
    );

    /// The `tp_btf` state change: the same event as the classic program, with the
    /// record built from the socket in the [`state_record`] layout, the way the
    /// tracepoint's `TP_fast_assign` builds it.
    ///
    /// Netns and cgroup are five direct loads (no helper calls).
    #[inline(always)]
    fn state_change_btf(ctx: &BtfTracePointContext, program: u32) {
        let sk: *const u8 = ctx.arg(0);
        let oldstate: u32 = ctx.arg(1);
        let newstate: u32 = ctx.arg(2);
        if sk.is_null() {
            return;
        }
        let off = config(&CONFIG.btf_state);
        let protocol: u16 = btf_load(sk, off.protocol);
        if u64::from(protocol) != IPPROTO_TCP {
            return;
        }
        // `inet_sport` lies past `struct sock`, where a `struct sock` pointer may not
        // load: look at the socket as the `tcp_sock` it is.
        // SAFETY: a BTF helper; it returns NULL for anything that is not a TCP socket.
        let tp = unsafe { bpf_skc_to_tcp_sock(sk.cast_mut().cast()) }
            .cast::<u8>()
            .cast_const();
        let sport_be: u16 = if tp.is_null() {
            // Not a full TCP socket (never seen): read the field anyway.
            read_kernel(sk as u64 + u64::from(off.sport)).unwrap_or(0)
        } else {
            btf_load(tp, off.sport)
        };
        let sport = u16::from_be(sport_be);
        let dport = u16::from_be(btf_load::<u16>(sk, off.dport));
        let counters = if carries_counters(oldstate, newstate) {
            CountersFrom::Btf(sk)
        } else {
            CountersFrom::None
        };
        if !ports_allowed(sport, dport) {
            return;
        }

        let sock = config(&CONFIG.sock);
        let netns = if sock.netns_valid != 0 {
            let net: *const u8 = btf_load(sk, sock.sk_net);
            if net.is_null() {
                0
            } else {
                netns_inum(BtfStruct(net)).unwrap_or(0)
            }
        } else {
            0
        };
        if !netns_allowed(netns) {
            return;
        }
        let mut cgroup_id = 0;
        if sock.cgroup_valid != 0 {
            let cgroup: *const u8 = btf_load(sk, sock.sk_cgroup);
            if !cgroup.is_null() {
                let kn: *const u8 = btf_load(cgroup, sock.cgroup_kn);
                if !kn.is_null() {
                    cgroup_id = btf_load::<u64>(kn, sock.kn_id);
                }
            }
        }
        let pairs = socket_seen(ctx, netns, u64::from(sport), u64::from(dport));
        let context = if sock.sk_lock_owned != 0 {
            Context::from_owned(btf_load::<u32>(sk, sock.sk_lock_owned))
        } else {
            Context::without_socket()
        };

        let mut record: Words = [0; RECORD_WORDS];
        let family = load_addresses(BtfStruct(sk), &mut record);
        record[state_record::SKADDR / 8] = sk as u64;
        record[state_record::OLDSTATE / 8] = u64::from(oldstate) | (u64::from(newstate) << 32);
        record[state_record::SPORT / 8] = u64::from(sport)
            | (u64::from(dport) << 16)
            | (u64::from(family) << 32)
            | (u64::from(protocol) << 48);
        submit(
            EventKind::StateChange,
            &record,
            netns,
            cgroup_id,
            pairs,
            Origin {
                comm: Comm::TaskBtf,
                context,
                family: program,
            },
            counters,
        );
    }

    /// Fills the record's address words from the socket (BTF offsets), the way the
    /// tracepoints' `TP_STORE_ADDRS` does, and returns the socket's family for the
    /// ports word. A member that cannot be loaded reads as 0.
    #[inline(always)]
    fn load_addresses<S: Loader>(sk: S, record: &mut Words) -> u16 {
        let off = config(&CONFIG.btf_state);
        let family: u16 = sk.get(off.family);
        let saddr = u64::from(sk.get::<u32>(off.saddr));
        let daddr = u64::from(sk.get::<u32>(off.daddr));
        record[state_record::SADDR / 8] = saddr | (daddr << 32);
        const V6: usize = state_record::SADDR_V6 / 8;
        const V6D: usize = state_record::DADDR_V6 / 8;
        if off.ipv6 != 0 && u64::from(family) == AF_INET6 {
            record[V6] = sk.get(off.saddr_v6);
            record[V6 + 1] = sk.get(off.saddr_v6 + 8);
            record[V6D] = sk.get(off.daddr_v6);
            record[V6D + 1] = sk.get(off.daddr_v6 + 8);
        } else {
            // ::ffff:a.b.c.d, as `ipv6_addr_set_v4mapped` writes it.
            record[V6 + 1] = (0xffff << 16) | (saddr << 32);
            record[V6D + 1] = (0xffff << 16) | (daddr << 32);
        }
        family
    }

    /// The raw-tracepoint error report (rare: one per failed connection at most): the
    /// socket read with probe reads at the BTF offsets, in the [`state_record`] layout
    /// with `sk->sk_err` at [`state_record::ERROR`], and its own namespace and cgroup.
    /// Reports of error 0 are dropped, as in the classic program (a failed `connect()`
    /// emits one after the real error).
    #[inline(always)]
    fn error_report_raw(ctx: &RawTracePointContext) {
        let sk: u64 = ctx.arg(0);
        let off = config(&CONFIG.btf_state);
        let socket = KernelAddress(sk);
        if sk == 0 || off.valid == 0 || u64::from(socket.get::<u16>(off.protocol)) != IPPROTO_TCP {
            return;
        }
        let error = socket.get::<u32>(off.sk_err);
        if error == 0 {
            return;
        }
        // Ports in network order in the socket; the record has them in host order.
        let sport = u16::from_be(socket.get(off.sport));
        let dport = u16::from_be(socket.get(off.dport));
        if !ports_allowed(sport, dport) {
            return;
        }
        let netns = socket_netns(sk).unwrap_or(0);
        if !netns_allowed(netns) {
            return;
        }
        let cgroup_id = socket_cgroup(sk).unwrap_or(0);
        let mut record: Words = [0; RECORD_WORDS];
        let family = load_addresses(socket, &mut record);
        record[state_record::SKADDR / 8] = sk;
        record[state_record::ERROR / 8] = u64::from(error);
        record[state_record::SPORT / 8] = u64::from(sport)
            | (u64::from(dport) << 16)
            | (u64::from(family) << 32)
            | (IPPROTO_TCP << 48);
        submit(
            EventKind::ErrorReport,
            &record,
            netns,
            cgroup_id,
            None,
            Origin {
                comm: Comm::Helper,
                context: Context::of_socket_address(sk, EventKind::ErrorReport),
                family: counter::ERROR_RAW,
            },
            CountersFrom::None,
        );
    }

    #[unsafe(link_section = "license")]
    #[unsafe(no_mangle)]
    static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
        loop {}
    }
}
