//! The consumer half: batches reordered by sequence number, results in
//! event order, failures and losses reported, latency recorded.

use super::batch::{Batch, Shared};
use super::config::{PipelineError, Stats};
use crossbeam::channel::{Receiver, Sender, TryRecvError};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The consumer half: results in event order.
pub struct Consumer {
    rx: Receiver<Box<Batch>>,
    free: Sender<Box<Batch>>,
    pending: BTreeMap<u64, Box<Batch>>,
    next_bseq: u64,
    cur: Option<Box<Batch>>,
    pos: usize,
    out_len: usize,
    workers: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
    ended: bool,
    /// When the current batch's outputs were ready in order.
    ready: Option<Instant>,
}

/// What [`Consumer::next_timeout`] found.
pub enum Next<'a> {
    /// Sequence number and raw outputs of the next event, and when they
    /// were ready to be taken in order (see [`Consumer::ready`]).
    Event(u64, &'a [i64], Instant),
    /// Nothing arrived within the timeout.
    Empty,
    /// The producer closed and everything was delivered.
    End,
}

impl Consumer {
    pub(super) fn new(
        rx: Receiver<Box<Batch>>,
        free: Sender<Box<Batch>>,
        out_len: usize,
        workers: Vec<JoinHandle<()>>,
        shared: Arc<Shared>,
    ) -> Consumer {
        Consumer {
            rx,
            free,
            pending: BTreeMap::new(),
            next_bseq: 0,
            cur: None,
            pos: 0,
            out_len,
            workers,
            shared,
            ended: false,
            ready: None,
        }
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// When the outputs of the event last returned were ready to be taken
    /// in order: the later of the time a worker finished its batch and the
    /// time the batch before it was ready. Unlike the time the consumer
    /// takes them, this does not depend on how promptly the consumer looks.
    pub fn ready(&self) -> Option<Instant> {
        self.ready
    }

    /// Blocks for the next event in sequence order; `Ok(None)` at the end.
    /// Not an `Iterator`: the output slice borrows the consumer (a lending iterator).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<(u64, &[i64])>, PipelineError> {
        match self.next_timeout(None)? {
            Next::Event(s, o, _) => Ok(Some((s, o))),
            Next::End => Ok(None),
            Next::Empty => unreachable!("no timeout"),
        }
    }

    /// The next event, waiting at most `timeout` (`None`: forever).
    pub fn next_timeout(&mut self, timeout: Option<Duration>) -> Result<Next<'_>, PipelineError> {
        loop {
            if let Some(b) = &self.cur {
                if self.pos < b.n {
                    let i = self.pos;
                    self.pos += 1;
                    let b = self.cur.as_ref().unwrap();
                    let ol = self.out_len;
                    return Ok(Next::Event(
                        b.first + i as u64,
                        &b.output[i * ol..(i + 1) * ol],
                        self.ready.unwrap_or(b.done),
                    ));
                }
                let b = self.cur.take().unwrap();
                let _ = self.free.try_send(b);
            }
            if !self.advance(timeout)? {
                return Ok(if self.ended { Next::End } else { Next::Empty });
            }
        }
    }

    /// Takes the next whole batch in order: `f(first_seq, outputs)` with
    /// `outputs` holding `n * output_len` raw values. `Ok(false)` at the end.
    pub fn next_batch(&mut self, mut f: impl FnMut(u64, &[i64])) -> Result<bool, PipelineError> {
        if let Some(b) = self.cur.take() {
            if self.pos < b.n {
                let ol = self.out_len;
                f(
                    b.first + self.pos as u64,
                    &b.output[self.pos * ol..b.n * ol],
                );
            }
            let _ = self.free.try_send(b);
        }
        if !self.advance(None)? {
            return Ok(false);
        }
        let b = self.cur.take().unwrap();
        f(b.first, &b.output[..b.n * self.out_len]);
        let _ = self.free.try_send(b);
        Ok(true)
    }

    /// Makes the next in-order batch current. `Ok(false)`: timeout or end.
    fn advance(&mut self, timeout: Option<Duration>) -> Result<bool, PipelineError> {
        loop {
            if let Some(mut b) = self.pending.remove(&self.next_bseq) {
                self.next_bseq += 1;
                let n = b.n as u64;
                if let Some(cause) = b.err.take() {
                    self.shared.failed.fetch_add(n, Relaxed);
                    let e = PipelineError::Batch {
                        first: b.first,
                        count: n,
                        cause,
                    };
                    let _ = self.free.try_send(b);
                    return Err(e);
                }
                let lat = b.t0.elapsed().as_nanos() as u64;
                if let Ok(mut h) = self.shared.hist.lock() {
                    h.record_n(lat, n);
                }
                self.shared.delivered.fetch_add(n, Relaxed);
                self.ready = Some(self.ready.map_or(b.done, |r| r.max(b.done)));
                self.pos = 0;
                self.cur = Some(b);
                return Ok(true);
            }
            if self.ended {
                return Ok(false);
            }
            let got = match timeout {
                None => self.rx.recv().map_err(|_| TryRecvError::Disconnected),
                // A poll: `recv_timeout(0)` would first set up a deadline and
                // a blocking wait, which costs a paced driver its schedule.
                Some(t) if t.is_zero() => match self.rx.try_recv() {
                    Err(TryRecvError::Empty) => return Ok(false),
                    r => r,
                },
                Some(t) => match self.rx.recv_timeout(t) {
                    Ok(b) => Ok(b),
                    Err(crossbeam::channel::RecvTimeoutError::Timeout) => return Ok(false),
                    Err(_) => Err(TryRecvError::Disconnected),
                },
            };
            match got {
                Ok(b) => {
                    self.pending.insert(b.bseq, b);
                }
                Err(_) => {
                    // All workers gone: the input was closed and drained.
                    self.ended = true;
                    for h in self.workers.drain(..) {
                        let _ = h.join();
                    }
                    if let Some((&k, _)) = self.pending.iter().next() {
                        // A batch is missing (a worker thread died holding it):
                        // deliver the rest, but report the loss.
                        self.next_bseq = k;
                        continue;
                    }
                    let s = self.shared.stats();
                    if s.in_flight > 0 {
                        self.shared.failed.fetch_add(s.in_flight, Relaxed);
                        return Err(PipelineError::Lost { lost: s.in_flight });
                    }
                    return Ok(false);
                }
            }
        }
    }
}
