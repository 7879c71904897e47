//! Streaming pipeline: a producer hands events in, N worker threads run
//! them, a consumer receives results in event order.
//!
//! ```text
//! Producer --batches--> [bounded queue] --> worker 1..N --> [bounded queue] --> Consumer
//!     ^                                                                          |
//!     +---------------------- recycled batch buffers ----------------------------+
//! ```
//!
//! * Events travel in batches (`PipelineConfig::batch` events): a queue
//!   operation per event cannot keep up with tens of millions of events per
//!   second. Queues are crossbeam's bounded array channels (lock-free on the
//!   fast path, parking when empty or full).
//! * Every event gets a sequence number at `push` (0, 1, 2, ...). Batches are
//!   numbered when they enter the queue; the consumer reorders batches, so
//!   results come out in sequence order.
//! * Overload policy ([`Overload`]): `Block` makes `push` wait for room
//!   (backpressure, nothing lost; [`Producer::push_timeout`] bounds the
//!   wait); `Drop` refuses the events that arrive while a full batch cannot
//!   enter the queue, says so in the push's [`Pushed`], and counts them in
//!   [`Stats::dropped`]. An event once accepted is never dropped. The
//!   consumer sees a dropped event as a gap in sequence numbers.
//! * Waiting: a partial batch is sent after [`PipelineConfig::max_wait`]
//!   (a timer thread, asleep unless a partial batch is pending); idle
//!   workers poll briefly ([`PipelineConfig::spin`], at most `CPUs - 1` at
//!   once), then sleep, so a pipeline on a shared machine never holds more
//!   cores than it has work for.
//! * Accounting: `pushed = delivered + dropped + failed + in flight`, at
//!   every moment; after the end of the stream nothing is in flight.
//! * Latency: measured per batch from the `push` of its first event to its
//!   in-order delivery to the consumer, recorded for each of its events
//!   (an upper bound of each event's own latency) in a [`crate::hist::Histogram`].
//! * Shutdown: [`Producer::close`] sends the last batch; workers drain the
//!   queue; the consumer then receives everything in flight and `End`.
//! * A worker panic (or an inference error such as an out-of-range raw input)
//!   fails only its batch: the consumer gets [`PipelineError::Batch`] with
//!   the sequence numbers and count, the events are counted in `failed`.

mod batch;
mod config;
mod consumer;
mod inlet;
mod producer;
mod worker;

pub use config::{
    BatchError, Overload, PipelineConfig, PipelineError, Stats, MAX_BATCH, MAX_BATCH_BYTES,
    MAX_QUEUE, MAX_WAIT, MAX_WORKERS,
};
pub use consumer::{Consumer, Next};
pub use producer::{Producer, Pushed};

use crate::Engine;
use batch::Shared;
use crossbeam::channel::bounded;
use inlet::Inlet;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

/// Starts the workers; returns the two ends.
pub fn pipeline(
    engine: Arc<Engine>,
    cfg: &PipelineConfig,
) -> Result<(Producer, Consumer), PipelineError> {
    cfg.check(engine.input_len() + engine.output_len())?;
    let workers = if cfg.workers == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        cfg.workers
    };
    let batch = cfg.batch.max(1);
    let q = cfg.queue.max(1);
    let (in_tx, in_rx) = bounded(q);
    let (out_tx, out_rx) = bounded(q);
    let (free_tx, free_rx) = bounded(2 * q + workers + 4);
    let shared = Arc::new(Shared::new());
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let polling = Arc::new(worker::Polling {
        spin: cfg.spin,
        now: AtomicUsize::new(0),
        most: ncpu.saturating_sub(1).max(1),
    });
    let mut handles = Vec::new();
    for w in 0..workers {
        let (rx, tx, eng, sh, poll) = (
            in_rx.clone(),
            out_tx.clone(),
            engine.clone(),
            shared.clone(),
            polling.clone(),
        );
        let (pin, slice) = (cfg.pin.then_some(w % ncpu), cfg.slice);
        let h = std::thread::Builder::new()
            .name(format!("bxflow-worker-{w}"))
            .spawn(move || worker::worker(eng, rx, tx, sh, pin, slice, &poll))
            .map_err(|source| PipelineError::Spawn { worker: w, source })?;
        handles.push(h);
    }
    let inlet = Arc::new(Inlet::new(in_tx));
    let flusher = match cfg.max_wait {
        Some(wait) if batch > 1 => {
            let (inlet, slice) = (inlet.clone(), cfg.slice);
            let h = std::thread::Builder::new()
                .name("bxflow-flusher".into())
                .spawn(move || {
                    if let Some(d) = slice {
                        crate::sched::short_slice(d);
                    }
                    inlet::flusher(inlet, wait)
                })
                .map_err(|source| PipelineError::Spawn {
                    worker: workers,
                    source,
                })?;
            Some(h)
        }
        _ => None,
    };
    let out_len = engine.output_len();
    let producer = Producer::new(
        engine,
        inlet,
        free_rx,
        batch,
        cfg.overload,
        shared.clone(),
        flusher,
    );
    Ok((
        producer,
        Consumer::new(out_rx, free_tx, out_len, handles, shared),
    ))
}
