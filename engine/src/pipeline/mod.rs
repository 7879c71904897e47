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
//!   (backpressure, nothing lost); `Drop` discards a whole batch when the
//!   input queue is full and counts its events in [`Stats::dropped`]. The
//!   consumer sees the gap in sequence numbers.
//! * Accounting: `pushed = delivered + dropped + failed + in flight`, at
//!   every moment; after the end of the stream nothing is in flight.
//! * Latency: measured per batch from the `push` of its first event to its
//!   in-order delivery to the consumer, recorded for each of its events
//!   (an upper bound of each event's own latency) in a [`crate::hist::Histogram`].
//! * Shutdown: [`Producer::close`] flushes the last batch; workers drain the
//!   queue; the consumer then receives everything in flight and `End`.
//! * A worker panic (or an inference error such as an out-of-range raw input)
//!   fails only its batch: the consumer gets [`PipelineError::Batch`] with
//!   the sequence numbers and count, the events are counted in `failed`.

mod batch;
mod config;
mod consumer;
mod producer;
mod worker;

pub use config::{
    BatchError, Overload, PipelineConfig, PipelineError, Stats, MAX_BATCH, MAX_BATCH_BYTES,
    MAX_QUEUE, MAX_WORKERS,
};
pub use consumer::{Consumer, Next};
pub use producer::Producer;

use crate::Engine;
use batch::Shared;
use crossbeam::channel::bounded;
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
    let mut handles = Vec::new();
    for w in 0..workers {
        let (rx, tx, eng, sh) = (
            in_rx.clone(),
            out_tx.clone(),
            engine.clone(),
            shared.clone(),
        );
        let (pin, poll) = (cfg.pin.then_some(w % ncpu), cfg.busy_poll);
        let h = std::thread::Builder::new()
            .name(format!("bxflow-worker-{w}"))
            .spawn(move || worker::worker(eng, rx, tx, sh, pin, poll))
            .map_err(|source| PipelineError::Spawn { worker: w, source })?;
        handles.push(h);
    }
    let out_len = engine.output_len();
    let producer = Producer::new(engine, in_tx, free_rx, batch, cfg.overload, shared.clone());
    Ok((
        producer,
        Consumer::new(out_rx, free_tx, out_len, handles, shared),
    ))
}
