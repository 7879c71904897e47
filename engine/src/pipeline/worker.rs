//! The worker threads: take a batch, run the engine on it (a panic or an
//! inference error fails only that batch), pass it on.

use super::batch::{Batch, Inputs, Shared};
use super::config::BatchError;
use crate::Engine;
use crossbeam::channel::{Receiver, Sender, TryRecvError};
use crossbeam::utils::Backoff;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How idle workers wait: poll for `spin`, at most `most` of them at once.
pub(super) struct Polling {
    pub(super) spin: Duration,
    /// Workers polling now.
    pub(super) now: AtomicUsize,
    pub(super) most: usize,
}

/// The next batch for a worker, `None` once the producer has closed: polled
/// for up to `spin` when fewer than `most` workers poll already, then
/// waited for asleep (crossbeam parks the thread until a send wakes it).
fn next_batch(rx: &Receiver<Box<Batch>>, polling: &Polling) -> Option<Box<Batch>> {
    match rx.try_recv() {
        Ok(b) => return Some(b),
        Err(TryRecvError::Disconnected) => return None,
        Err(TryRecvError::Empty) => {}
    }
    if !polling.spin.is_zero() && polling.now.fetch_add(1, Relaxed) < polling.most {
        let start = Instant::now();
        let backoff = Backoff::new();
        let got = loop {
            match rx.try_recv() {
                Ok(b) => break Some(Some(b)),
                Err(TryRecvError::Disconnected) => break Some(None),
                Err(TryRecvError::Empty) => {}
            }
            if backoff.is_completed() {
                if start.elapsed() >= polling.spin {
                    break None;
                }
                std::hint::spin_loop();
            } else {
                backoff.snooze();
            }
        };
        polling.now.fetch_sub(1, Relaxed);
        if let Some(b) = got {
            return b;
        }
    } else if !polling.spin.is_zero() {
        polling.now.fetch_sub(1, Relaxed);
    }
    rx.recv().ok()
}

pub(super) fn worker(
    engine: Arc<Engine>,
    rx: Receiver<Box<Batch>>,
    tx: Sender<Box<Batch>>,
    shared: Arc<Shared>,
    pin: Option<usize>,
    slice: Option<Duration>,
    polling: &Polling,
) {
    if let Some(c) = pin {
        crate::sched::pin_to(c);
    }
    if let Some(d) = slice {
        crate::sched::short_slice(d);
    }
    let mut scratch = engine.scratch();
    let (il, ol) = (engine.input_len(), engine.output_len());
    // The first run through the kernels touches the scratch and the tables
    // for the first time (page faults: hundreds of microseconds). Done
    // here, on zeros (a code of every type), before any event waits on it.
    let mut out = vec![0i64; 64 * ol];
    let _ = engine.infer_batch_raw16(&mut scratch, &vec![0i16; 64 * il], &mut out);
    let _ = engine.infer_batch_with(&mut scratch, &vec![0i64; il], &mut out[..ol]);
    while let Some(mut b) = next_batch(&rx, polling) {
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
        b.done = Instant::now();
        if tx.send(b).is_err() {
            return; // consumer gone
        }
    }
}
