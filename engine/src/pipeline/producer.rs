//! The producer half: events in, batched, numbered, sent to the workers
//! under the overload policy.

use super::batch::{Batch, Inputs, Shared};
use super::config::{Overload, PipelineError, Stats};
use crate::{copy_check, Engine, EngineError, InputValue};
use crossbeam::channel::{Receiver, Sender, TrySendError};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

/// The producer half: push events in.
pub struct Producer {
    engine: Arc<Engine>,
    tx: Option<Sender<Box<Batch>>>,
    free: Receiver<Box<Batch>>,
    cur: Option<Box<Batch>>,
    next_seq: u64,
    next_bseq: u64,
    batch: usize,
    overload: Overload,
    shared: Arc<Shared>,
}

impl Producer {
    pub(super) fn new(
        engine: Arc<Engine>,
        tx: Sender<Box<Batch>>,
        free: Receiver<Box<Batch>>,
        batch: usize,
        overload: Overload,
        shared: Arc<Shared>,
    ) -> Producer {
        Producer {
            engine,
            tx: Some(tx),
            free,
            cur: None,
            next_seq: 0,
            next_bseq: 0,
            batch,
            overload,
            shared,
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether raw codes of the input type fit i16 storage.
    fn narrow(&self) -> bool {
        let ty = self.engine.model().input_ty;
        ty.min_raw() >= i16::MIN as i64 && ty.max_raw() <= i16::MAX as i64
    }

    /// The current batch, converted to `kind` storage (0 i64, 1 i16, 2 f32)
    /// if it is still empty; if it holds events of another kind it is sent first.
    fn cur_batch(&mut self, kind: u8) -> Result<Box<Batch>, PipelineError> {
        let same = |b: &Batch| {
            matches!(
                (&b.input, kind),
                (Inputs::I64(_), 0) | (Inputs::I16(_), 1) | (Inputs::F32(_), 2)
            )
        };
        if let Some(mut b) = self.cur.take() {
            if same(&b) {
                // A buffer recycled from a dropped batch is empty but still
                // carries the dropped batch's first sequence number.
                if b.n == 0 {
                    b.first = self.next_seq;
                    b.t0 = Instant::now();
                }
                return Ok(b);
            }
            if b.n > 0 {
                self.send(b)?;
            } else {
                self.cur = Some(b);
            }
        }
        let mut b = match self.cur.take() {
            Some(b) => b,
            None => self.take_batch(),
        };
        if !same(&b) {
            let cap = self.batch * self.engine.input_len();
            b.input = match kind {
                0 => Inputs::I64(Vec::with_capacity(cap)),
                1 => Inputs::I16(Vec::with_capacity(cap)),
                _ => Inputs::F32(Vec::with_capacity(cap)),
            };
        }
        if b.n == 0 {
            b.first = self.next_seq;
            b.t0 = Instant::now();
        }
        Ok(b)
    }

    fn take_batch(&mut self) -> Box<Batch> {
        let mut b = self.free.try_recv().unwrap_or_else(|_| {
            Box::new(Batch {
                bseq: 0,
                first: 0,
                n: 0,
                input: Inputs::I64(Vec::new()),
                output: Vec::with_capacity(self.batch * self.engine.output_len()),
                t0: Instant::now(),
                err: None,
            })
        });
        b.n = 0;
        b.first = self.next_seq;
        b.input.clear();
        b.err = None;
        b.t0 = Instant::now();
        b
    }

    /// Pushes one event (quantized on the way in if float); returns its
    /// sequence number. With `Overload::Drop` the event may later be counted
    /// as dropped.
    pub fn push<I: InputValue>(&mut self, event: &[I]) -> Result<u64, PipelineError> {
        let il = self.engine.input_len();
        if event.len() != il {
            return Err(EngineError::InputLength {
                got: event.len(),
                expected: il,
            }
            .into());
        }
        if self.tx.is_none() {
            return Err(PipelineError::Closed);
        }
        let ty = self.engine.model().input_ty;
        let narrow = self.narrow();
        let mut b = self.cur_batch(if narrow { 1 } else { 0 })?;
        let start = b.input.len();
        for (i, &v) in event.iter().enumerate() {
            match (v.to_raw(&ty, i), &mut b.input) {
                (Ok(r), Inputs::I16(x)) => x.push(r as i16),
                (Ok(r), Inputs::I64(x)) => x.push(r),
                (Ok(_), Inputs::F32(_)) => unreachable!("raw batch"),
                (Err(e), _) => {
                    b.input.truncate(start);
                    self.cur = Some(b);
                    return Err(e.into());
                }
            }
        }
        let seq = self.next_seq;
        self.added(b, 1)?;
        Ok(seq)
    }

    /// Counts `k` events just added to `b`; sends it when full.
    fn added(&mut self, mut b: Box<Batch>, k: usize) -> Result<(), PipelineError> {
        b.n += k;
        self.next_seq += k as u64;
        self.shared.pushed.fetch_add(k as u64, Relaxed);
        if b.n >= self.batch {
            self.send(b)
        } else {
            self.cur = Some(b);
            Ok(())
        }
    }

    /// Pushes the `len / input_len` events of a caller's slice into batches
    /// of `kind` storage (see [`Producer::cur_batch`]): `fill(batch, range)`
    /// appends the slice's values `range`. Returns the first sequence number.
    fn push_many(
        &mut self,
        len: usize,
        kind: u8,
        mut fill: impl FnMut(&mut Batch, std::ops::Range<usize>),
    ) -> Result<u64, PipelineError> {
        let il = self.engine.input_len().max(1);
        if !len.is_multiple_of(il) {
            return Err(EngineError::InputLength {
                got: len,
                expected: len / il * il,
            }
            .into());
        }
        if self.tx.is_none() {
            return Err(PipelineError::Closed);
        }
        let first = self.next_seq;
        let mut pos = 0;
        while pos < len {
            let mut b = self.cur_batch(kind)?;
            let k = (self.batch - b.n).min((len - pos) / il);
            fill(&mut b, pos..pos + k * il);
            pos += k * il;
            self.added(b, k)?;
        }
        Ok(first)
    }

    /// Pushes `events.len() / input_len` events of raw codes at once (range
    /// checked by the workers); returns the first sequence number.
    pub fn push_raw(&mut self, events: &[i64]) -> Result<u64, PipelineError> {
        let il = self.engine.input_len().max(1);
        let ty = self.engine.model().input_ty;
        let (lo, hi) = (ty.min_raw(), ty.max_raw());
        let kind = if self.narrow() { 1 } else { 0 };
        self.push_many(events.len(), kind, |b, r| {
            let ev = &events[r];
            match &mut b.input {
                Inputs::I16(x) => {
                    // Narrowed here, so range-checked here: a bad value fails
                    // its whole batch, as the workers' check would.
                    let start = x.len();
                    x.resize(start + ev.len(), 0);
                    if copy_check(ev, lo, hi, &mut x[start..]) && b.err.is_none() {
                        let (i, &raw) = ev
                            .iter()
                            .enumerate()
                            .find(|(_, &v)| v < lo || v > hi)
                            .expect("a bad value");
                        b.err = Some(
                            EngineError::InputRange {
                                index: i % il,
                                raw,
                                ty: ty.ap_string(),
                            }
                            .into(),
                        );
                    }
                }
                Inputs::I64(x) => x.extend_from_slice(ev),
                Inputs::F32(_) => unreachable!("raw batch"),
            }
        })
    }

    /// Pushes `events.len() / input_len` events of float features at once,
    /// without converting them here: the workers quantize them with the
    /// input type (as [`Producer::push`] does). Returns the first sequence number.
    pub fn push_f32(&mut self, events: &[f32]) -> Result<u64, PipelineError> {
        self.push_many(events.len(), 2, |b, r| {
            if let Inputs::F32(x) = &mut b.input {
                x.extend_from_slice(&events[r]);
            }
        })
    }

    fn send(&mut self, mut b: Box<Batch>) -> Result<(), PipelineError> {
        let tx = self.tx.as_ref().ok_or(PipelineError::Closed)?;
        b.bseq = self.next_bseq;
        match self.overload {
            Overload::Block => {
                if tx.send(b).is_err() {
                    return Err(PipelineError::Closed);
                }
                self.next_bseq += 1;
            }
            Overload::Drop => match tx.try_send(b) {
                Ok(()) => self.next_bseq += 1,
                Err(TrySendError::Full(b)) => {
                    self.shared.dropped.fetch_add(b.n as u64, Relaxed);
                    self.cur = None;
                    // Reuse the buffer for the next batch.
                    self.recycle(b);
                }
                Err(TrySendError::Disconnected(_)) => return Err(PipelineError::Closed),
            },
        }
        Ok(())
    }

    fn recycle(&mut self, mut b: Box<Batch>) {
        b.n = 0;
        b.input.clear();
        b.err = None;
        self.cur = Some(b);
    }

    /// Whether the input queue is full: under `Overload::Drop` the next
    /// batch sent now would be dropped, so a producer can count its events
    /// as dropped ([`Producer::drop_events`]) without copying them in.
    pub fn input_full(&self) -> bool {
        self.tx.as_ref().is_some_and(|t| t.is_full())
    }

    /// Counts `k` events that arrived but never entered the pipeline (a
    /// front end that fell behind its source): they take sequence numbers
    /// and count as dropped, so pushed = delivered + dropped + failed still
    /// accounts for every event. The partly filled batch is sent first.
    pub fn drop_events(&mut self, k: u64) -> Result<(), PipelineError> {
        if self.tx.is_none() {
            return Err(PipelineError::Closed);
        }
        self.flush()?;
        self.next_seq += k;
        self.shared.pushed.fetch_add(k, Relaxed);
        self.shared.dropped.fetch_add(k, Relaxed);
        Ok(())
    }

    /// Sends the partly filled batch now.
    pub fn flush(&mut self) -> Result<(), PipelineError> {
        match self.cur.take() {
            Some(b) if b.n > 0 => self.send(b),
            _ => Ok(()),
        }
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Flushes and closes the input: workers drain and stop, the consumer
    /// gets everything in flight and then `End`.
    pub fn close(mut self) -> Result<Stats, PipelineError> {
        let r = self.flush();
        self.tx = None;
        r.map(|_| self.shared.stats())
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}
