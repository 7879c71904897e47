//! The pipeline's settings, counters and errors: what a caller configures
//! and gets back, apart from the threads that do the work.

use crate::hist::Summary;
use crate::EngineError;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overload {
    /// `push` waits until the workers have room (backpressure).
    Block,
    /// A batch that finds the input queue full is dropped and counted.
    Drop,
}

/// Most worker threads one pipeline starts (far above any node's cores; a
/// larger count is a mistake, not a request for more threads than the OS gives).
pub const MAX_WORKERS: usize = 1024;
/// Most events one batch holds.
pub const MAX_BATCH: usize = 1 << 16;
/// Most batches one queue holds.
pub const MAX_QUEUE: usize = 1 << 16;
/// Longest `spin` and `max_wait`: longer is a unit mistake (a spin of
/// seconds burns a core; a batch held for minutes is a stalled stream).
pub const MAX_WAIT: Duration = Duration::from_secs(10);
/// Most bytes of raw codes (inputs and outputs, 8 bytes each) one batch holds:
/// a pipeline keeps up to `2 x queue + workers + 4` batches alive.
pub const MAX_BATCH_BYTES: usize = 64 << 20;

#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Worker threads (0 = number of CPUs), at most [`MAX_WORKERS`].
    pub workers: usize,
    /// Pin worker `i` to CPU `i % ncpu` (Linux).
    pub pin: bool,
    /// Events per batch, at most [`MAX_BATCH`] and [`MAX_BATCH_BYTES`].
    pub batch: usize,
    /// Capacity of each queue, in batches, at most [`MAX_QUEUE`].
    pub queue: usize,
    pub overload: Overload,
    /// How long an idle worker polls its queue before it sleeps on it, at
    /// most [`MAX_WAIT`]. A sleeping worker takes tens of microseconds to
    /// wake, so a steady stream of batches is best met by a worker that
    /// polls across the gaps; but a polling thread holds a core, and on a
    /// machine whose cores are shared (a DAQ node runs other work) more
    /// pollers than free cores make the scheduler preempt them for whole
    /// time slices (milliseconds). So polling is brief, and at most
    /// `CPUs - 1` workers poll at once (one core is left to the producer);
    /// the others sleep. `Duration::ZERO`: always sleep.
    pub spin: Duration,
    /// A partly filled batch is sent once its first event has waited this
    /// long, by a timer thread when no push comes, so an event's wait for
    /// its batch to fill is bounded at any rate (the timer is the OS's:
    /// expect tens of microseconds beyond the bound). At most [`MAX_WAIT`].
    /// `None`: a partial batch leaves only when full, on `flush` or on `close`.
    pub max_wait: Option<Duration>,
    /// The time slice the workers and the timer thread ask the OS for
    /// ([`crate::sched::short_slice`]): short, so that on a core shared with
    /// a CPU-bound process they preempt it when they wake instead of
    /// waiting out its slice. `None`: the OS default.
    pub slice: Option<Duration>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            workers: 0,
            pin: false,
            batch: 256,
            queue: 64,
            overload: Overload::Block,
            spin: Duration::from_micros(50),
            max_wait: Some(Duration::from_micros(100)),
            slice: Some(Duration::from_micros(100)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("events {first}..{} ({count} events) failed in a worker: {cause}", first + count)]
    Batch {
        first: u64,
        count: u64,
        #[source]
        cause: BatchError,
    },
    #[error("the pipeline is closed")]
    Closed,
    /// A push under `Overload::Block` found no room within its timeout; the
    /// event was not taken.
    #[error("no room in the pipeline's input queue within the timeout; the event was not taken")]
    Timeout,
    #[error("{0}")]
    Engine(#[from] EngineError),
    #[error("cannot start pipeline worker thread {worker}: {source}")]
    Spawn {
        worker: usize,
        source: std::io::Error,
    },
    #[error("{lost} events were lost in flight (a worker thread died)")]
    Lost { lost: u64 },
    /// A setting over its limit, refused before anything is allocated.
    #[error("pipeline {what} is {value}, over the limit of {limit}")]
    Limit {
        what: &'static str,
        value: usize,
        limit: usize,
    },
}

impl PipelineConfig {
    /// Checks every setting against its limit for a model whose events have
    /// `event_codes` raw codes (inputs plus outputs), before any allocation.
    pub fn check(&self, event_codes: usize) -> Result<(), PipelineError> {
        let over = |what, value: usize, limit| {
            if value > limit {
                Err(PipelineError::Limit { what, value, limit })
            } else {
                Ok(())
            }
        };
        over("workers", self.workers, MAX_WORKERS)?;
        over("batch (events)", self.batch, MAX_BATCH)?;
        over("queue (batches)", self.queue, MAX_QUEUE)?;
        let us = |d: Duration| usize::try_from(d.as_micros()).unwrap_or(usize::MAX);
        over("spin (us)", us(self.spin), us(MAX_WAIT))?;
        for (what, d) in [("max wait (us)", self.max_wait), ("slice (us)", self.slice)] {
            if let Some(d) = d {
                over(what, us(d), us(MAX_WAIT))?;
            }
        }
        let bytes = self.batch.saturating_mul(event_codes).saturating_mul(8);
        over(
            "batch size in bytes (events x codes x 8)",
            bytes,
            MAX_BATCH_BYTES,
        )
    }
}

/// Why one batch failed (its events are counted in [`Stats::failed`]).
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// An inference error, such as a raw input outside the input type
    /// (found by the worker, or by the producer when it narrows raw codes).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The worker panicked; the payload's message.
    #[error("worker panicked: {0}")]
    Panic(String),
}

/// Counters; `pushed = delivered + dropped + failed + in_flight`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    pub pushed: u64,
    pub dropped: u64,
    pub processed: u64,
    pub failed: u64,
    pub delivered: u64,
    pub in_flight: u64,
    /// Ingress-to-egress latency in nanoseconds.
    pub latency: Summary,
}
