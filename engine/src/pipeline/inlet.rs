//! The input side that the producer and the flusher thread share: the batch
//! being filled, the numbering of batches, and the one rule for sending a
//! batch. A mutex guards it; the producer takes it once per push call, the
//! flusher only when a partial batch has waited its maximum.
//!
//! A batch holds events with consecutive sequence numbers. Once it is full,
//! or *sealed* (a dropped event or a change of input kind broke the run of
//! numbers), nothing more is appended: it must leave first. Under
//! `Overload::Drop`, events that arrive while it cannot leave are refused
//! and reported as dropped; events already in it are never dropped.

use super::batch::Batch;
use super::config::PipelineError;
use crossbeam::channel::{SendTimeoutError, Sender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long a send may wait for room in the input queue.
#[derive(Clone, Copy, Debug)]
pub(super) enum Wait {
    Now,
    Until(Instant),
    Forever,
}

impl Wait {
    /// Waiting at most `d` from now (forever when the deadline overflows).
    pub(super) fn at_most(d: Duration) -> Wait {
        Instant::now()
            .checked_add(d)
            .map_or(Wait::Forever, Wait::Until)
    }
}

pub(super) struct Front {
    /// `None` once the producer has closed: the workers drain and stop.
    pub(super) tx: Option<Sender<Box<Batch>>>,
    /// The batch being filled (or full and waiting for room).
    pub(super) cur: Option<Box<Batch>>,
    /// No more events may join `cur`.
    pub(super) sealed: bool,
    pub(super) next_bseq: u64,
    /// The flusher sleeps without a deadline: a new partial batch wakes it.
    pub(super) flusher_idle: bool,
}

impl Front {
    /// Whether `cur` holds events that must leave before another joins.
    pub(super) fn must_leave(&self, batch: usize) -> bool {
        self.cur
            .as_ref()
            .is_some_and(|b| b.n > 0 && (self.sealed || b.n >= batch))
    }

    /// Sends `cur` if it holds events, waiting for room as `wait` allows.
    /// `Ok(false)`: the queue stayed full, `cur` is kept (sealed).
    pub(super) fn send_cur(&mut self, wait: Wait) -> Result<bool, PipelineError> {
        let Some(mut b) = self.cur.take() else {
            return Ok(true);
        };
        if b.n == 0 {
            self.cur = Some(b);
            return Ok(true);
        }
        let Some(tx) = self.tx.as_ref() else {
            self.cur = Some(b);
            return Err(PipelineError::Closed);
        };
        b.bseq = self.next_bseq;
        let kept = match wait {
            Wait::Now => tx.try_send(b).map_err(|e| match e {
                TrySendError::Full(b) => Some(b),
                TrySendError::Disconnected(_) => None,
            }),
            Wait::Until(t) => tx.send_deadline(b, t).map_err(|e| match e {
                SendTimeoutError::Timeout(b) => Some(b),
                SendTimeoutError::Disconnected(_) => None,
            }),
            Wait::Forever => tx.send(b).map_err(|_| None),
        };
        match kept {
            Ok(()) => {
                self.next_bseq += 1;
                self.sealed = false;
                Ok(true)
            }
            Err(Some(b)) => {
                self.cur = Some(b);
                self.sealed = true;
                Ok(false)
            }
            // Every worker is gone; the consumer reports the batch as lost.
            Err(None) => Err(PipelineError::Closed),
        }
    }
}

pub(super) struct Inlet {
    front: Mutex<Front>,
    wake: Condvar,
}

impl Inlet {
    pub(super) fn new(tx: Sender<Box<Batch>>) -> Inlet {
        Inlet {
            front: Mutex::new(Front {
                tx: Some(tx),
                cur: None,
                sealed: false,
                next_bseq: 0,
                flusher_idle: false,
            }),
            wake: Condvar::new(),
        }
    }

    /// The front; a panic elsewhere while it was held leaves it consistent
    /// (every change to it is a single assignment), so poisoning is ignored.
    pub(super) fn lock(&self) -> MutexGuard<'_, Front> {
        self.front.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes the flusher (a new partial batch, or the close).
    pub(super) fn notify(&self) {
        self.wake.notify_one();
    }
}

/// The flusher thread: sends a partial batch once its first event has waited
/// `max_wait`, so that a batch that fills slowly (a low rate, the end of a
/// burst) still runs. When the queue is full it keeps the batch and tries
/// again after another `max_wait`. Stops when the producer closes.
pub(super) fn flusher(inlet: Arc<Inlet>, max_wait: Duration) {
    let mut g = inlet.lock();
    loop {
        if g.tx.is_none() {
            return;
        }
        let due = g
            .cur
            .as_ref()
            .filter(|b| b.n > 0)
            .map(|b| b.t0.checked_add(max_wait).unwrap_or(b.t0));
        let Some(due) = due else {
            g.flusher_idle = true;
            g = inlet.wake.wait(g).unwrap_or_else(PoisonError::into_inner);
            g.flusher_idle = false;
            continue;
        };
        let now = Instant::now();
        let until = if now >= due {
            match g.send_cur(Wait::Now) {
                Ok(true) => continue,
                Ok(false) => now + max_wait,
                Err(_) => return,
            }
        } else {
            due
        };
        g = inlet
            .wake
            .wait_timeout(g, until - now)
            .map_or_else(|e| e.into_inner().0, |r| r.0);
    }
}
