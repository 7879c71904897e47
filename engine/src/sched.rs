//! What the pipeline and its drivers ask of the OS scheduler for their
//! threads: a CPU to stay on, a short time slice, timers that fire on time.

use std::time::Duration;

/// Pins the calling thread to `cpu` (Linux; elsewhere nothing).
pub fn pin_to(cpu: usize) {
    #[cfg(target_os = "linux")]
    // SAFETY: plain libc call on a zeroed cpu_set_t for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cpu;
}

/// Makes the calling thread's timers fire within a microsecond of their
/// time (Linux; elsewhere nothing). The default slack of 50 us would make a
/// thread that sleeps until each event's arrival late by that much.
pub fn tight_timers() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_TIMERSLACK) takes an integer and changes only
    // the calling thread's timer slack.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong, 0, 0, 0);
    }
}

/// Asks for a time slice of `slice` for the calling thread (a normal,
/// unprivileged request; Linux 6.12 and later honour it, clamped to
/// 0.1-100 ms). Why: the pipeline's threads sleep most of the time and run
/// for microseconds. On a core shared with a CPU-bound neighbour, a thread
/// that wakes with the default slice waits until the neighbour's slice
/// ends (a scheduler tick, milliseconds); one with a shorter slice than
/// the neighbour's preempts it on waking. It never gets more CPU time than
/// its fair share. Returns whether the kernel took it; an older kernel
/// refuses, which costs only the latency this would have saved.
pub fn short_slice(slice: Duration) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: getpriority reads the calling thread's nice value (0: this
        // thread); kept, since the request below would otherwise reset it.
        let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let attr = libc::sched_attr {
            size: std::mem::size_of::<libc::sched_attr>() as u32,
            sched_policy: libc::SCHED_OTHER as u32,
            sched_flags: 0,
            sched_nice: nice,
            sched_priority: 0,
            sched_runtime: slice.as_nanos().min(u64::MAX as u128) as u64,
            sched_deadline: 0,
            sched_period: 0,
        };
        // SAFETY: sched_setattr(0, &attr, 0) reads `attr` (its size field
        // is the struct's) and changes only the calling thread's policy.
        let r = unsafe {
            libc::syscall(
                libc::SYS_sched_setattr,
                0,
                &attr as *const libc::sched_attr,
                0,
            )
        };
        r == 0
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = slice;
        false
    }
}
