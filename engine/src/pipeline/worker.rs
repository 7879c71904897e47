//! The worker threads: take a batch, run the engine on it (a panic or an
//! inference error fails only that batch), pass it on.

use super::batch::{Batch, Inputs, Shared};
use super::config::BatchError;
use crate::Engine;
use crossbeam::channel::{Receiver, Sender, TryRecvError};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

#[cfg(target_os = "linux")]
fn pin_to(cpu: usize) {
    // SAFETY: plain libc call on a zeroed cpu_set_t for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

#[cfg(not(target_os = "linux"))]
fn pin_to(_cpu: usize) {}

/// The next batch for a worker, `None` once the producer has closed.
fn next_batch(rx: &Receiver<Box<Batch>>, busy_poll: bool) -> Option<Box<Batch>> {
    if !busy_poll {
        return rx.recv().ok();
    }
    let mut idle = 0u32;
    loop {
        match rx.try_recv() {
            Ok(b) => return Some(b),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => {
                idle = idle.wrapping_add(1);
                if idle.is_multiple_of(1 << 16) {
                    // Now and then, let a thread that shares this core run.
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
        }
    }
}

pub(super) fn worker(
    engine: Arc<Engine>,
    rx: Receiver<Box<Batch>>,
    tx: Sender<Box<Batch>>,
    shared: Arc<Shared>,
    pin: Option<usize>,
    busy_poll: bool,
) {
    if let Some(c) = pin {
        pin_to(c);
    }
    let mut scratch = engine.scratch();
    let (il, ol) = (engine.input_len(), engine.output_len());
    while let Some(mut b) = next_batch(&rx, busy_poll) {
        let n = b.n;
        b.output.resize(n * ol, 0);
        if b.err.is_some() {
            // Rejected by the producer (an out-of-range raw input).
            if tx.send(b).is_err() {
                return;
            }
            continue;
        }
        let r = {
            let Batch { input, output, .. } = &mut *b;
            let (s, out) = (&mut scratch, &mut output[..n * ol]);
            catch_unwind(AssertUnwindSafe(|| match input {
                Inputs::I64(x) => engine.infer_batch_with(s, &x[..n * il], out),
                Inputs::I16(x) => engine.infer_batch_raw16(s, &x[..n * il], out),
                Inputs::F32(x) => engine.infer_batch_with(s, &x[..n * il], out),
            }))
        };
        match r {
            Ok(Ok(_)) => {
                shared.processed.fetch_add(n as u64, Relaxed);
            }
            Ok(Err(e)) => b.err = Some(e.into()),
            Err(p) => {
                b.err = Some(BatchError::Panic(
                    p.downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown payload".into()),
                ));
                scratch = engine.scratch();
            }
        }
        if tx.send(b).is_err() {
            return; // consumer gone
        }
    }
}
