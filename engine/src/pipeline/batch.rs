//! What travels through the queues: a batch of events with its inputs,
//! outputs and failure, and the counters every thread updates.

use super::config::{BatchError, Stats};
use crate::hist::Histogram;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Instant;

/// A batch's inputs, stored as narrow as the input type allows: raw codes
/// of types that fit i16 travel as i16 (a quarter of the i64 bytes), float
/// features as f32 (quantized by the workers, in parallel).
pub(super) enum Inputs {
    I64(Vec<i64>),
    I16(Vec<i16>),
    F32(Vec<f32>),
}

impl Inputs {
    pub(super) fn clear(&mut self) {
        match self {
            Inputs::I64(v) => v.clear(),
            Inputs::I16(v) => v.clear(),
            Inputs::F32(v) => v.clear(),
        }
    }
}

/// A batch of events: `first` is the sequence number of its first event,
/// `bseq` its place in the stream of batches.
pub(super) struct Batch {
    pub(super) bseq: u64,
    pub(super) first: u64,
    pub(super) n: usize,
    pub(super) input: Inputs,
    pub(super) output: Vec<i64>,
    /// When its first event was pushed.
    pub(super) t0: Instant,
    /// When a worker finished it.
    pub(super) done: Instant,
    /// Set when the batch failed; the consumer reports it.
    pub(super) err: Option<BatchError>,
}

/// Counters shared by the producer, the workers and the consumer.
pub(super) struct Shared {
    pub(super) pushed: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) processed: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) delivered: AtomicU64,
    pub(super) hist: Mutex<Histogram>,
}

impl Shared {
    pub(super) fn new() -> Shared {
        Shared {
            pushed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            processed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            hist: Mutex::new(Histogram::new()),
        }
    }

    pub(super) fn stats(&self) -> Stats {
        let delivered = self.delivered.load(Relaxed);
        let failed = self.failed.load(Relaxed);
        let dropped = self.dropped.load(Relaxed);
        let pushed = self.pushed.load(Relaxed);
        Stats {
            pushed,
            dropped,
            processed: self.processed.load(Relaxed),
            failed,
            delivered,
            in_flight: pushed.saturating_sub(delivered + dropped + failed),
            latency: self.hist.lock().map(|h| h.summary()).unwrap_or_default(),
        }
    }
}
