//! The recorder's scheduling priority. In an outage the machine is often saturated:
//! a recorder at the default priority then waits behind every busy thread for its
//! turn while the kernel fills the ring, and the kernel drops what does not fit
//! (docs/bench.md, "Recorder priority"). The threads that drain the ring and write
//! the trace run at a raised priority instead; they take only the CPU the events need.
//! The analysis threads of `--live` and `--metrics` keep the default: they may fall
//! behind without losing anything.

use std::io;

/// The nice value a recorder takes unless told otherwise, or started with its own.
pub const DEFAULT_NICE: i32 = -10;

/// What [`raise`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// The calling thread (and the threads it starts from now on) runs at this nice.
    Set(i32),
    /// Started with a nice value of its own (nice(1)): kept.
    Kept(i32),
}

/// Which nice value to take: the one asked for, else the default unless the process
/// was started at a nice value of its own.
pub const fn chosen(asked: Option<i32>, current: i32) -> Option<i32> {
    match asked {
        Some(nice) => Some(nice),
        None if current == 0 => Some(DEFAULT_NICE),
        None => None,
    }
}

/// Sets the calling thread's nice value (Linux keeps one per thread; threads started
/// later inherit it). Lowering it needs `CAP_SYS_NICE`.
pub fn raise(asked: Option<i32>) -> io::Result<Priority> {
    let current = current_nice()?;
    let Some(nice) = chosen(asked, current) else {
        return Ok(Priority::Kept(current));
    };
    // SAFETY: setpriority with PRIO_PROCESS and 0 sets the calling thread's nice value;
    // no memory is passed.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Priority::Set(nice))
}

/// The calling thread's nice value.
fn current_nice() -> io::Result<i32> {
    // getpriority returns the nice value itself, so -1 is also a valid answer: errno
    // tells an error apart.
    // SAFETY: errno is this thread's; getpriority takes no memory.
    unsafe {
        *libc::__errno_location() = 0;
        let nice = libc::getpriority(libc::PRIO_PROCESS, 0);
        match io::Error::last_os_error().raw_os_error() {
            Some(0) | None => Ok(nice),
            Some(_) => Err(io::Error::last_os_error()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_raises_only_a_recorder_started_at_nice_zero() {
        assert_eq!(chosen(None, 0), Some(DEFAULT_NICE));
        assert_eq!(chosen(None, 5), None);
        assert_eq!(chosen(None, -3), None);
        assert_eq!(chosen(Some(0), 5), Some(0));
        assert_eq!(chosen(Some(-20), 0), Some(-20));
    }

    #[test]
    fn the_current_nice_value_is_read() {
        let nice = current_nice().unwrap();
        assert!((-20..=19).contains(&nice), "{nice}");
    }
}
