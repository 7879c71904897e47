//! The producer half: events in, batched, numbered, sent to the workers
//! under the overload policy; every push says what became of its events.

use super::batch::{Batch, Inputs, Shared};
use super::config::{Overload, PipelineError, Stats};
use super::inlet::{Front, Inlet, Wait};
use crate::{copy_check, Engine, EngineError, InPort, InputValue};
use crossbeam::channel::Receiver;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What one push did with its events. Every event takes a sequence number,
/// accepted or not, so the consumer sees a dropped event as a gap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pushed {
    /// Sequence number of the call's first event.
    pub first: u64,
    /// Events taken in: each is delivered, or reported in a failed batch.
    pub accepted: u64,
    /// Events refused because the input queue was full (`Overload::Drop`),
    /// counted in [`Stats::dropped`].
    pub dropped: u64,
}

/// How a batch stores its inputs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    I64,
    I16,
    F32,
}

/// The producer half: push events in.
pub struct Producer {
    engine: Arc<Engine>,
    inlet: Arc<Inlet>,
    free: Receiver<Box<Batch>>,
    next_seq: u64,
    batch: usize,
    overload: Overload,
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
    /// One event's raw codes, for the single-event push.
    codes: Vec<i64>,
}

impl Producer {
    pub(super) fn new(
        engine: Arc<Engine>,
        inlet: Arc<Inlet>,
        free: Receiver<Box<Batch>>,
        batch: usize,
        overload: Overload,
        shared: Arc<Shared>,
        flusher: Option<JoinHandle<()>>,
    ) -> Producer {
        Producer {
            engine,
            inlet,
            free,
            next_seq: 0,
            batch,
            overload,
            shared,
            flusher,
            codes: Vec::new(),
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Raw codes of every input type fit i16 storage (a quarter of the bytes).
    fn raw_kind(&self) -> Kind {
        let fits = |p: &InPort| p.lo >= i16::MIN as i64 && p.hi <= i16::MAX as i64;
        if self.engine.ports().iter().all(fits) {
            Kind::I16
        } else {
            Kind::I64
        }
    }

    /// An empty batch of `kind` storage: `old` (an emptied batch) or a
    /// recycled one or a new one.
    fn empty_batch(&self, old: Option<Box<Batch>>, kind: Kind) -> Box<Batch> {
        let mut b = old
            .or_else(|| self.free.try_recv().ok())
            .unwrap_or_else(|| {
                Box::new(Batch {
                    bseq: 0,
                    first: 0,
                    n: 0,
                    input: Inputs::I64(Vec::new()),
                    output: Vec::with_capacity(self.batch * self.engine.output_len()),
                    t0: Instant::now(),
                    done: Instant::now(),
                    err: None,
                })
            });
        b.n = 0;
        b.err = None;
        if kind_of(&b) == kind {
            b.input.clear();
        } else {
            let cap = self.batch * self.engine.input_len();
            b.input = match kind {
                Kind::I64 => Inputs::I64(Vec::with_capacity(cap)),
                Kind::I16 => Inputs::I16(Vec::with_capacity(cap)),
                Kind::F32 => Inputs::F32(Vec::with_capacity(cap)),
            };
        }
        b.first = self.next_seq;
        b.t0 = Instant::now();
        b
    }

    /// Pushes one event (float features are quantized with the input type,
    /// raw codes range-checked). Under `Overload::Block` it waits for room
    /// as long as it takes; under `Overload::Drop` a full queue drops the
    /// event, and [`Pushed::dropped`] says so.
    pub fn push<I: InputValue>(&mut self, event: &[I]) -> Result<Pushed, PipelineError> {
        self.push_one(event, Wait::Forever)
    }

    /// As [`Producer::push`], but under `Overload::Block` waits at most
    /// `timeout` for room: then [`PipelineError::Timeout`], and the event
    /// was not taken (it has no sequence number; push it again).
    pub fn push_timeout<I: InputValue>(
        &mut self,
        event: &[I],
        timeout: Duration,
    ) -> Result<Pushed, PipelineError> {
        self.push_one(event, Wait::at_most(timeout))
    }

    fn push_one<I: InputValue>(
        &mut self,
        event: &[I],
        wait: Wait,
    ) -> Result<Pushed, PipelineError> {
        let il = self.engine.input_len();
        if event.len() != il {
            return Err(EngineError::InputLength {
                got: event.len(),
                expected: il,
            }
            .into());
        }
        let mut codes = std::mem::take(&mut self.codes);
        codes.clear();
        let converted = event
            .iter()
            .zip(self.engine.model().input_types())
            .enumerate()
            .try_for_each(|(i, (&v, ty))| v.to_raw(&ty, i).map(|r| codes.push(r)));
        let r = match converted {
            Ok(()) => self.push_codes(&codes, wait),
            Err(e) => Err(e.into()),
        };
        self.codes = codes;
        r
    }

    /// Pushes `events.len() / input_len` events of raw codes at once (a
    /// value outside the input type fails its batch); returns what became
    /// of them. Under `Overload::Block` it waits for room as long as it takes.
    pub fn push_raw(&mut self, events: &[i64]) -> Result<Pushed, PipelineError> {
        self.push_codes(events, Wait::Forever)
    }

    fn push_codes(&mut self, events: &[i64], wait: Wait) -> Result<Pushed, PipelineError> {
        // A handle of its own, so the ports stay borrowed while batches fill.
        let engine = Arc::clone(&self.engine);
        let il = self.engine.input_len().max(1);
        self.push_many(events.len(), self.raw_kind(), wait, |b, r| {
            let ev = &events[r];
            match &mut b.input {
                Inputs::I16(x) => {
                    // Narrowed here, so range-checked here: a bad value fails
                    // its whole batch, as the workers' check would.
                    let start = x.len();
                    x.resize(start + ev.len(), 0);
                    for (src, dst) in ev.chunks(il).zip(x[start..].chunks_mut(il)) {
                        for p in engine.ports() {
                            let (lo, hi, r) = (p.lo, p.hi, p.event.clone());
                            let (src, dst) = (&src[r.clone()], &mut dst[r.clone()]);
                            if copy_check(src, lo, hi, dst) && b.err.is_none() {
                                let (i, &raw) = src
                                    .iter()
                                    .enumerate()
                                    .find(|(_, &v)| v < lo || v > hi)
                                    .expect("a bad value");
                                b.err = Some(
                                    EngineError::InputRange {
                                        index: r.start + i,
                                        raw,
                                        ty: p.ty.ap_string(),
                                    }
                                    .into(),
                                );
                            }
                        }
                    }
                }
                Inputs::I64(x) => x.extend_from_slice(ev),
                Inputs::F32(_) => unreachable!("a raw batch"),
            }
        })
    }

    /// Pushes `events.len() / input_len` events of float features at once,
    /// without converting them here: the workers quantize them with the
    /// input type (as [`Producer::push`] does).
    pub fn push_f32(&mut self, events: &[f32]) -> Result<Pushed, PipelineError> {
        self.push_many(events.len(), Kind::F32, Wait::Forever, |b, r| {
            if let Inputs::F32(x) = &mut b.input {
                x.extend_from_slice(&events[r]);
            }
        })
    }

    /// Pushes the `len / input_len` events of a caller's slice into batches
    /// of `kind` storage: `fill(batch, range)` appends the slice's values
    /// `range`. A batch that must leave first waits for room as the policy
    /// says (`wait` under `Block`, not at all under `Drop`, where the events
    /// that find no room are dropped, a batch's worth at a time).
    fn push_many(
        &mut self,
        len: usize,
        kind: Kind,
        wait: Wait,
        mut fill: impl FnMut(&mut Batch, std::ops::Range<usize>),
    ) -> Result<Pushed, PipelineError> {
        let il = self.engine.input_len().max(1);
        if !len.is_multiple_of(il) {
            return Err(EngineError::InputLength {
                got: len,
                expected: len / il * il,
            }
            .into());
        }
        let inlet = self.inlet.clone();
        let mut g = inlet.lock();
        if g.tx.is_none() {
            return Err(PipelineError::Closed);
        }
        let mut out = Pushed {
            first: self.next_seq,
            accepted: 0,
            dropped: 0,
        };
        let mut pos = 0;
        while pos < len {
            let other_kind = g
                .cur
                .as_ref()
                .is_some_and(|b| b.n > 0 && kind_of(b) != kind);
            if other_kind {
                g.sealed = true;
            }
            if g.must_leave(self.batch) && !g.send_cur(self.policy_wait(wait))? {
                if self.overload == Overload::Block {
                    // A timed-out single event: not taken, no sequence number.
                    return Err(PipelineError::Timeout);
                }
                let k = ((len - pos) / il).min(self.batch);
                self.count_dropped(k as u64);
                out.dropped += k as u64;
                pos += k * il;
                continue;
            }
            let mut b = match g.cur.take() {
                Some(b) if b.n > 0 => b,
                old => self.empty_batch(old, kind),
            };
            let was_empty = b.n == 0;
            let k = (self.batch - b.n).min((len - pos) / il);
            fill(&mut b, pos..pos + k * il);
            pos += k * il;
            b.n += k;
            self.next_seq += k as u64;
            self.shared.pushed.fetch_add(k as u64, Relaxed);
            out.accepted += k as u64;
            g.cur = Some(b);
            if g.must_leave(self.batch) {
                // Full: sent now if there is room, else it waits (sealed)
                // for the next push or the flusher.
                g.send_cur(self.policy_wait(wait))?;
            } else if was_empty && g.flusher_idle {
                inlet.notify();
            }
        }
        Ok(out)
    }

    fn policy_wait(&self, wait: Wait) -> Wait {
        match self.overload {
            Overload::Block => wait,
            Overload::Drop => Wait::Now,
        }
    }

    fn count_dropped(&mut self, k: u64) {
        self.next_seq += k;
        self.shared.pushed.fetch_add(k, Relaxed);
        self.shared.dropped.fetch_add(k, Relaxed);
    }

    /// Counts `k` events that arrived but never entered the pipeline (a
    /// front end that fell behind its source): they take sequence numbers
    /// and count as dropped, so pushed = delivered + dropped + failed still
    /// accounts for every event. The partly filled batch leaves first.
    pub fn drop_events(&mut self, k: u64) -> Result<(), PipelineError> {
        let inlet = self.inlet.clone();
        let mut g = inlet.lock();
        if g.tx.is_none() {
            return Err(PipelineError::Closed);
        }
        if g.cur.as_ref().is_some_and(|b| b.n > 0) {
            g.sealed = true;
            g.send_cur(self.policy_wait(Wait::Forever))?;
        }
        self.count_dropped(k);
        Ok(())
    }

    /// Sends the partly filled batch now, waiting for room in the queue if
    /// it is full (under either policy: its events were accepted, and
    /// accepted events are never dropped).
    pub fn flush(&mut self) -> Result<(), PipelineError> {
        let inlet = self.inlet.clone();
        let mut g = inlet.lock();
        flush_front(&mut g)
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Flushes and closes the input: workers drain and stop, the consumer
    /// gets everything in flight and then `End`.
    pub fn close(mut self) -> Result<Stats, PipelineError> {
        self.shut().map(|_| self.shared.stats())
    }

    fn shut(&mut self) -> Result<(), PipelineError> {
        let r = {
            let mut g = self.inlet.lock();
            let r = if g.tx.is_some() {
                flush_front(&mut g)
            } else {
                Ok(())
            };
            g.tx = None;
            r
        };
        self.inlet.notify();
        if let Some(h) = self.flusher.take() {
            let _ = h.join();
        }
        r
    }
}

fn flush_front(g: &mut Front) -> Result<(), PipelineError> {
    if g.tx.is_none() {
        return Err(PipelineError::Closed);
    }
    g.send_cur(Wait::Forever).map(|_| ())
}

fn kind_of(b: &Batch) -> Kind {
    match b.input {
        Inputs::I64(_) => Kind::I64,
        Inputs::I16(_) => Kind::I16,
        Inputs::F32(_) => Kind::F32,
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let _ = self.shut();
    }
}
