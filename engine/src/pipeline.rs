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
//!   (an upper bound of each event's own latency) in a [`Histogram`].
//! * Shutdown: [`Producer::close`] flushes the last batch; workers drain the
//!   queue; the consumer then receives everything in flight and `End`.
//! * A worker panic (or an inference error such as an out-of-range raw input)
//!   fails only its batch: the consumer gets [`PipelineError::Batch`] with
//!   the sequence numbers and count, the events are counted in `failed`.

use crate::hist::{Histogram, Summary};
use crate::{copy_check, Engine, EngineError, InputValue};
use crossbeam::channel::{bounded, Receiver, Sender, TryRecvError, TrySendError};
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overload {
    /// `push` waits until the workers have room (backpressure).
    Block,
    /// A batch that finds the input queue full is dropped and counted.
    Drop,
}

#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Worker threads (0 = number of CPUs).
    pub workers: usize,
    /// Pin worker `i` to CPU `i % ncpu` (Linux).
    pub pin: bool,
    /// Events per batch.
    pub batch: usize,
    /// Capacity of each queue, in batches.
    pub queue: usize,
    pub overload: Overload,
    /// Workers poll their queue instead of sleeping on it. A sleeping worker
    /// takes tens of microseconds to wake (longer on a virtual machine), so
    /// under a steady rate that leaves it idle between batches it wakes for
    /// each one and falls behind. Polling keeps a core busy: use it with at
    /// most one worker per free core, as a DAQ node dedicates cores.
    pub busy_poll: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            workers: 0,
            pin: false,
            batch: 256,
            queue: 64,
            overload: Overload::Block,
            busy_poll: false,
        }
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum PipelineError {
    #[error("events {first}..{} ({count} events) failed in a worker: {message}", first + count)]
    Batch {
        first: u64,
        count: u64,
        message: String,
    },
    #[error("the pipeline is closed")]
    Closed,
    #[error("{0}")]
    Engine(#[from] EngineError),
    #[error("{lost} events were lost in flight (a worker thread died)")]
    Lost { lost: u64 },
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

/// A batch's inputs, stored as narrow as the input type allows: raw codes
/// of types that fit i16 travel as i16 (a quarter of the i64 bytes), float
/// features as f32 (quantized by the workers, in parallel).
enum Inputs {
    I64(Vec<i64>),
    I16(Vec<i16>),
    F32(Vec<f32>),
}

impl Inputs {
    fn clear(&mut self) {
        match self {
            Inputs::I64(v) => v.clear(),
            Inputs::I16(v) => v.clear(),
            Inputs::F32(v) => v.clear(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Inputs::I64(v) => v.len(),
            Inputs::I16(v) => v.len(),
            Inputs::F32(v) => v.len(),
        }
    }

    fn truncate(&mut self, n: usize) {
        match self {
            Inputs::I64(v) => v.truncate(n),
            Inputs::I16(v) => v.truncate(n),
            Inputs::F32(v) => v.truncate(n),
        }
    }
}

struct Batch {
    bseq: u64,
    first: u64,
    n: usize,
    input: Inputs,
    output: Vec<i64>,
    t0: Instant,
    err: Option<String>,
}

struct Shared {
    pushed: AtomicU64,
    dropped: AtomicU64,
    processed: AtomicU64,
    failed: AtomicU64,
    delivered: AtomicU64,
    hist: Mutex<Histogram>,
}

impl Shared {
    fn stats(&self) -> Stats {
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
}

/// What [`Consumer::next_timeout`] found.
pub enum Next<'a> {
    /// Sequence number and raw outputs of the next event.
    Event(u64, &'a [i64]),
    /// Nothing arrived within the timeout.
    Empty,
    /// The producer closed and everything was delivered.
    End,
}

/// Starts the workers; returns the two ends.
pub fn pipeline(
    engine: Arc<Engine>,
    cfg: &PipelineConfig,
) -> Result<(Producer, Consumer), PipelineError> {
    let workers = if cfg.workers == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        cfg.workers
    };
    let batch = cfg.batch.max(1);
    let q = cfg.queue.max(1);
    let (in_tx, in_rx) = bounded::<Box<Batch>>(q);
    let (out_tx, out_rx) = bounded::<Box<Batch>>(q);
    let (free_tx, free_rx) = bounded::<Box<Batch>>(2 * q + workers + 4);
    let shared = Arc::new(Shared {
        pushed: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        processed: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        hist: Mutex::new(Histogram::new()),
    });
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
            .spawn(move || worker(eng, rx, tx, sh, pin, poll))
            .map_err(|e| PipelineError::Engine(EngineError::Io(e.to_string())))?;
        handles.push(h);
    }
    let out_len = engine.output_len();
    Ok((
        Producer {
            engine,
            tx: Some(in_tx),
            free: free_rx,
            cur: None,
            next_seq: 0,
            next_bseq: 0,
            batch,
            overload: cfg.overload,
            shared: shared.clone(),
        },
        Consumer {
            rx: out_rx,
            free: free_tx,
            pending: BTreeMap::new(),
            next_bseq: 0,
            cur: None,
            pos: 0,
            out_len,
            workers: handles,
            shared,
            ended: false,
        },
    ))
}

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

fn worker(
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
            Ok(Err(e)) => b.err = Some(e.to_string()),
            Err(p) => {
                b.err = Some(format!(
                    "worker panicked: {}",
                    p.downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown payload".into())
                ));
                scratch = engine.scratch();
            }
        }
        if tx.send(b).is_err() {
            return; // consumer gone
        }
    }
}

impl Producer {
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
                            .to_string(),
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

impl Consumer {
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Blocks for the next event in sequence order; `Ok(None)` at the end.
    /// Not an `Iterator`: the output slice borrows the consumer (a lending iterator).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<(u64, &[i64])>, PipelineError> {
        match self.next_timeout(None)? {
            Next::Event(s, o) => Ok(Some((s, o))),
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
            if let Some(b) = self.pending.remove(&self.next_bseq) {
                self.next_bseq += 1;
                let n = b.n as u64;
                if let Some(msg) = &b.err {
                    self.shared.failed.fetch_add(n, Relaxed);
                    let e = PipelineError::Batch {
                        first: b.first,
                        count: n,
                        message: msg.clone(),
                    };
                    let _ = self.free.try_send(b);
                    return Err(e);
                }
                let lat = b.t0.elapsed().as_nanos() as u64;
                if let Ok(mut h) = self.shared.hist.lock() {
                    h.record_n(lat, n);
                }
                self.shared.delivered.fetch_add(n, Relaxed);
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
