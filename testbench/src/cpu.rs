//! CPU target: events streamed through the engine's pipeline
//! (`engine::pipeline`), paced at the offered rate or as fast as possible;
//! every delivered output checked against the golden model; per-event
//! latency from the event's (scheduled) arrival to its in-order delivery.

use engine::pipeline::{pipeline, Consumer, Next, Overload, PipelineConfig};
use engine::Engine;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::arrivals::{ArrivalGen, Arrivals};
use crate::error::TbError;
use crate::progress::progress_bar;
use crate::report::{
    BudgetAt, CpuInfo, Dist, Mismatch, RateSearch, Report, SearchPoint, Series, Stalls, SweepPoint,
    Target,
};
use crate::stream::EventPool;

#[derive(Clone, Debug)]
pub struct CpuConfig {
    /// Offered mean rate in MHz; `None` = as fast as possible (backpressure).
    pub rate_mhz: Option<f64>,
    pub events: u64,
    pub arrivals: Arrivals,
    pub budget_ns: f64,
    /// Which latency the budget bounds.
    pub budget_at: BudgetAt,
    /// Worker threads (0 = one per core but one, left to the producer and consumer).
    pub workers: usize,
    pub batch: usize,
    /// Input queue capacity, batches; a paced run's front end buffers as
    /// many events before the queue.
    pub queue: usize,
    /// Paced runs: an arrived event waits at most this long before it is
    /// handed to the pipeline and sent (a partial batch too), ns.
    pub max_wait_ns: u64,
    /// How long an idle pipeline worker polls before it sleeps, and the
    /// longest gap to the next arrival the paced driver waits out polling
    /// rather than asleep, ns.
    pub spin_ns: u64,
    pub seed: u64,
    pub progress: bool,
    /// Also measure throughput as fast as possible and against a ladder of
    /// offered rates, and search the highest rate that holds the budget.
    pub sweep: bool,
    /// Events per sweep point, and at most per run of the rate search.
    pub sweep_events: u64,
    /// Runs per rate of the search (every one must pass).
    pub search_repeats: usize,
}

impl Default for CpuConfig {
    fn default() -> Self {
        CpuConfig {
            rate_mhz: Some(40.0),
            events: 1_000_000,
            arrivals: Arrivals::Fixed,
            budget_ns: 1000.0,
            budget_at: BudgetAt::Max,
            workers: 0,
            batch: 64,
            queue: 64,
            max_wait_ns: 10_000,
            spin_ns: 20_000,
            seed: 1,
            progress: false,
            sweep: true,
            sweep_events: 200_000,
            search_repeats: 3,
        }
    }
}

/// Raw figures of one streaming run.
pub struct Run {
    pub events: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub failed: u64,
    pub checked: u64,
    pub mismatches: u64,
    pub first_mismatches: Vec<Mismatch>,
    /// Latency per delivered event, ns, in delivery order.
    pub latency_ns: Vec<f64>,
    /// (arrival us, latency ns) per delivered event.
    pub points: Vec<(f64, f64)>,
    /// Time of the last arrival, ns.
    pub last_arrival_ns: u64,
    /// Time of the last delivery, ns.
    pub last_delivery_ns: u64,
    /// Every sequence number was seen exactly once or counted dropped/failed.
    pub sequence_ok: bool,
}

impl Run {
    /// Events dropped or failed.
    pub fn lost(&self) -> u64 {
        self.dropped + self.failed
    }

    /// The run as a point of throughput against offered rate: offered over
    /// the arrivals' span, delivered over the whole run's.
    pub fn point(&self) -> SweepPoint {
        let dur_us = self.last_delivery_ns.max(self.last_arrival_ns).max(1) as f64 / 1000.0;
        SweepPoint {
            offered_mhz: self.events as f64 / (self.last_arrival_ns.max(1) as f64 / 1000.0),
            achieved_mhz: self.delivered as f64 / dur_us,
            events: self.events,
            lost: self.lost(),
        }
    }
}

/// An empty vector with room for `len` elements whose pages are already
/// mapped: a page fault in the paced driver's loop costs about a
/// microsecond of its schedule.
fn mapped<T: Clone + Default>(len: usize) -> Vec<T> {
    // Written element by element: `vec![0.0; len]` would take fresh zero
    // pages from the OS without touching them.
    let mut v = Vec::with_capacity(len);
    v.resize(len, T::default());
    v.clear();
    v
}

fn workers_for(cfg: &CpuConfig) -> usize {
    if cfg.workers > 0 {
        return cfg.workers;
    }
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The producer and the consumer need a core between them.
    n.saturating_sub(1).max(1)
}

/// Takes the pipeline's in-order outputs: checks each against the golden
/// model and records its latency from its arrival time.
struct Collector<'a> {
    pool: &'a EventPool,
    t0: Instant,
    /// Arrival time of each event, ns from `t0`.
    arrival: &'a [AtomicU64],
    record: bool,
    run: Run,
    last_seq: Option<u64>,
    /// Sequence number of the run's first event (after the warm-up's).
    first_seq: u64,
}

impl Collector<'_> {
    /// Takes event `seq`'s outputs, delivered at `now` (ns from `t0`).
    fn event(&mut self, seq: u64, out: &[i64], now: u64) {
        let r = &mut self.run;
        if self.last_seq.is_some_and(|p| seq <= p) {
            r.sequence_ok = false;
        }
        self.last_seq = Some(seq);
        let seq = seq - self.first_seq;
        r.delivered += 1;
        r.checked += 1;
        let want = self.pool.expected(seq);
        if out != want {
            r.mismatches += 1;
            if r.first_mismatches.len() < 10 {
                r.first_mismatches.push(Mismatch {
                    event: seq,
                    got: out.to_vec(),
                    expected: want.to_vec(),
                });
            }
        }
        let a = self.arrival[seq as usize].load(Relaxed);
        let lat = now.saturating_sub(a) as f64;
        r.last_delivery_ns = now;
        r.latency_ns.push(lat);
        if self.record {
            r.points.push((a as f64 / 1000.0, lat));
        }
    }

    /// Takes every output delivered so far, waiting up to `wait` for the
    /// first; `Ok(false)` once the pipeline has ended. An event's delivery
    /// time is when its outputs were ready in order ([`Consumer::ready`]),
    /// not when this thread got round to taking them.
    fn drain(&mut self, cons: &mut Consumer, wait: Duration) -> Result<bool, TbError> {
        let mut wait = wait;
        loop {
            match cons.next_timeout(Some(wait)) {
                Ok(Next::Event(seq, out, ready)) => {
                    let t = ready.saturating_duration_since(self.t0).as_nanos() as u64;
                    self.event(seq, out, t);
                    wait = Duration::ZERO;
                }
                Ok(Next::Empty) => return Ok(true),
                Ok(Next::End) => return Ok(false),
                // A failed batch: counted in stats().failed; keep going.
                Err(engine::pipeline::PipelineError::Batch { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn finish(mut self, cons: &Consumer) -> Run {
        let st = cons.stats();
        self.run.dropped = st.dropped;
        self.run.failed = st.failed;
        self.run
    }
}

/// Gaps shorter than this (or than `spin_ns`) are waited out polling: a
/// sleep and its wake-up cost about this much.
const SLEEP_MIN_NS: u64 = 3_000;

/// Runs a few batches of events through a fresh pipeline, one at a time,
/// before the clock starts: the first pass through the channels, the batch
/// buffers and the threads costs hundreds of microseconds that no event of
/// the measured run should carry. Returns the sequence numbers it used.
fn warm_up(
    prod: &mut engine::pipeline::Producer,
    cons: &mut Consumer,
    pool: &EventPool,
    batch: usize,
) -> Result<u64, TbError> {
    let k = batch.min(pool.count());
    let mut used = 0;
    for _ in 0..8 {
        used += prod.push_raw(&pool.raw[..k * pool.in_len])?.accepted;
        prod.flush()?;
        let mut got = 0;
        while got < k {
            match cons.next_timeout(Some(Duration::from_secs(10)))? {
                Next::Event(..) => got += 1,
                Next::Empty | Next::End => break,
            }
        }
    }
    Ok(used)
}

/// Streams `n` events (cycling through `pool`) through a fresh pipeline.
///
/// Paced runs (`rate_mhz`) drop on overload. One thread offers the events
/// on schedule and takes the outputs. It hands arrived events over when a
/// batch is full or `max_wait` after its last hand-over, and sleeps in
/// between: at low rates every event goes in on arrival, at high rates one
/// wake-up serves many, and no event waits more than `max_wait` before it
/// enters; gaps up to `spin_ns` it waits out polling, since a sleeping
/// thread wakes tens of microseconds late. An output's delivery time is
/// when the pipeline had it ready in order, so this thread's own sleep
/// does not count. With workers that
/// sleep when idle too, a paced run holds the cores its rate needs, not
/// one polling thread per core, which on a machine shared with other work
/// makes the scheduler preempt the pipeline for whole time slices
/// (milliseconds). Runs as fast as possible block on a full queue and take
/// the outputs on a thread of their own.
pub fn stream(
    pool: &EventPool,
    engine: &Arc<Engine>,
    cfg: &CpuConfig,
    rate_mhz: Option<f64>,
    n: u64,
    record: bool,
) -> Result<Run, TbError> {
    let overload = if rate_mhz.is_some() {
        Overload::Drop
    } else {
        Overload::Block
    };
    let pcfg = PipelineConfig {
        workers: workers_for(cfg),
        pin: false,
        batch: cfg.batch.max(1),
        queue: cfg.queue.max(1),
        overload,
        spin: Duration::from_nanos(cfg.spin_ns),
        // The driver sends partial batches itself: it knows when the next
        // event comes.
        max_wait: None,
        ..PipelineConfig::default()
    };
    let (mut prod, mut cons) = pipeline(engine.clone(), &pcfg)?;
    if rate_mhz.is_some() {
        // This thread is the paced driver: it sleeps between arrivals.
        engine::sched::tight_timers();
        if let Some(d) = pcfg.slice {
            engine::sched::short_slice(d);
        }
    }
    let warm = warm_up(&mut prod, &mut cons, pool, pcfg.batch)?;
    // The arrival schedule is drawn before the clock starts: drawn after,
    // a long run would start behind it and lose its first events.
    let sched: Vec<u64> = match rate_mhz {
        Some(rate) => ArrivalGen::new(cfg.arrivals, 1000.0 / rate, cfg.seed)
            .take(n as usize)
            .collect(),
        None => Vec::new(),
    };
    let arrival: Vec<AtomicU64> = (0..n)
        .map(|i| AtomicU64::new(sched.get(i as usize).copied().unwrap_or(0)))
        .collect();
    let pb = progress_bar(cfg.progress && record, n, "cpu");
    // Mapped before the clock starts (a few MB of page faults).
    let (latency_ns, points) = (
        mapped(n as usize),
        mapped(if record { n as usize } else { 0 }),
    );
    let mut col = Collector {
        pool,
        t0: Instant::now(),
        arrival: &arrival,
        record,
        run: Run {
            events: n,
            delivered: 0,
            dropped: 0,
            failed: 0,
            checked: 0,
            mismatches: 0,
            first_mismatches: vec![],
            latency_ns,
            points,
            last_arrival_ns: 0,
            last_delivery_ns: 0,
            sequence_ok: true,
        },
        last_seq: None,
        first_seq: warm,
    };
    let t0 = col.t0;
    let il = pool.in_len;
    let count = pool.count() as u64;
    let batch = pcfg.batch as u64;
    let push_range =
        |prod: &mut engine::pipeline::Producer, from: u64, to: u64| -> Result<(), TbError> {
            let mut i = from;
            while i < to {
                let k0 = i % count;
                let len = (to - i).min(count - k0);
                let slice = &pool.raw[k0 as usize * il..(k0 + len) as usize * il];
                prod.push_raw(slice)?;
                i += len;
            }
            Ok(())
        };
    let progress = |pushed: u64, k: u64| {
        if let Some(pb) = &pb {
            if pushed % 4096 < k {
                pb.set_position(pushed);
            }
        }
    };
    let mut pushed = 0u64;
    let run = match rate_mhz {
        None => std::thread::scope(|s| -> Result<Run, TbError> {
            let consumer = s.spawn(move || -> Result<Run, TbError> {
                while col.drain(&mut cons, Duration::from_millis(50))? {}
                Ok(col.finish(&cons))
            });
            let mut last = 0;
            while pushed < n {
                let k = (n - pushed).min(batch);
                last = t0.elapsed().as_nanos() as u64;
                for a in &arrival[pushed as usize..(pushed + k) as usize] {
                    a.store(last, Relaxed);
                }
                push_range(&mut prod, pushed, pushed + k)?;
                pushed += k;
                progress(pushed, k);
            }
            prod.close()?;
            let mut r = consumer.join().expect("consumer thread")?;
            r.last_arrival_ns = last;
            Ok(r)
        })?,
        Some(_) => {
            let hold = cfg.max_wait_ns;
            let mut arrived = 0u64;
            // When events were last handed to the pipeline.
            let mut last_push = 0u64;
            let front = pcfg.queue as u64 * batch;
            while pushed < n {
                let now = t0.elapsed().as_nanos() as u64;
                while arrived < n && sched[arrived as usize] <= now {
                    arrived += 1;
                }
                // The front end buffers as many arrived events as the input
                // queue holds; when this thread falls further behind, the
                // oldest are lost at the source (and counted), as a full
                // input buffer loses them.
                let late = (arrived - pushed).saturating_sub(front);
                if late > 0 {
                    prod.drop_events(late)?;
                    pushed += late;
                }
                // Arrived events are handed over (and sent, a partial batch
                // too) when a batch is full or the last hand-over was at
                // least `hold` ago, so no event waits longer than `hold`
                // and at high rates one wake-up serves many events.
                let pending = arrived - pushed;
                if pending > 0 && (pending >= batch || now >= last_push + hold) {
                    push_range(&mut prod, pushed, arrived)?;
                    prod.flush()?;
                    pushed = arrived;
                    last_push = now;
                    progress(pushed, pending);
                }
                col.drain(&mut cons, Duration::ZERO)?;
                if pushed >= n {
                    break;
                }
                // Next wake-up: the next hand-over allowed, but not before
                // the next event arrives, and no later than a full batch.
                let first = sched[pushed as usize];
                let full = sched[((pushed + batch).min(n) - 1) as usize];
                let wake = first.max(last_push + hold).min(full);
                let now = t0.elapsed().as_nanos() as u64;
                if wake > now + SLEEP_MIN_NS.max(cfg.spin_ns) {
                    std::thread::sleep(Duration::from_nanos(wake - now));
                } else {
                    std::hint::spin_loop();
                }
            }
            prod.close()?;
            while col.drain(&mut cons, Duration::from_millis(50))? {}
            let mut r = col.finish(&cons);
            r.last_arrival_ns = sched.last().copied().unwrap_or(0);
            r
        }
    };
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    Ok(run)
}

/// Reads the clock in a loop for `d` and measures the gaps ([`Stalls`]).
pub fn machine_stalls(d: Duration) -> Stalls {
    let t0 = Instant::now();
    let mut prev = 0u64;
    let (mut n5, mut n10, mut stalled, mut longest) = (0u64, 0u64, 0u64, 0u64);
    loop {
        let t = t0.elapsed().as_nanos() as u64;
        let gap = t - prev;
        prev = t;
        if gap > 5_000 {
            n5 += 1;
            stalled += gap;
            n10 += (gap > 10_000) as u64;
            longest = longest.max(gap);
        }
        if t >= d.as_nanos() as u64 {
            break;
        }
    }
    let secs = prev as f64 / 1e9;
    Stalls {
        seconds: secs,
        over_5us_per_s: n5 as f64 / secs,
        over_10us_per_s: n10 as f64 / secs,
        stalled_fraction: stalled as f64 / prev.max(1) as f64,
        longest_us: longest as f64 / 1e3,
    }
}

/// Bisection steps of the rate search: the answer to within 1/32 of the
/// backpressure throughput once a rate has passed.
const SEARCH_STEPS: usize = 7;

/// Events of a run of the search, at least (at 0.1 % a p99.9 needs 1,000).
const SEARCH_MIN_EVENTS: u64 = 2_000;

/// A run of the search spans at least this long (events at the rate tried),
/// so that it sees the machine's slower hiccups too.
const SEARCH_RUN_NS: f64 = 0.25e9;

/// The highest offered rate that holds `cfg`'s budget ([`RateSearch`]):
/// bisection on (0, `tp`], where `tp` is the backpressure throughput
/// (above it the pipeline must drop). Each rate runs `search_repeats`
/// times, for [`SEARCH_RUN_NS`] of events but at least
/// [`SEARCH_MIN_EVENTS`] and at most `sweep_events`; a rate passes when every run loses nothing, is
/// bit-exact and holds the budget. Until a rate passes, the next tried is
/// a quarter of the last, so a machine far below its throughput is found
/// in a few steps.
pub fn search_rate(
    pool: &EventPool,
    engine: &Arc<Engine>,
    cfg: &CpuConfig,
    tp: f64,
) -> Result<RateSearch, TbError> {
    let repeats = cfg.search_repeats.max(1);
    let (mut lo, mut hi) = (None::<f64>, None::<f64>);
    let mut points = Vec::new();
    let mut r = tp;
    for _ in 0..SEARCH_STEPS {
        let n = ((r * 1e6 * SEARCH_RUN_NS / 1e9) as u64)
            .clamp(SEARCH_MIN_EVENTS, cfg.sweep_events.max(SEARCH_MIN_EVENTS));
        let mut p = SearchPoint {
            offered_mhz: r,
            pass: true,
            events: n,
            lost: vec![],
            latency_ns: vec![],
        };
        for _ in 0..repeats {
            let run = stream(pool, engine, cfg, Some(r), n, false)?;
            let held = cfg.budget_at.of(&Dist::of(&run.latency_ns));
            let lost = run.lost();
            p.pass &= lost == 0 && run.mismatches == 0 && held <= cfg.budget_ns;
            p.lost.push(lost);
            p.latency_ns.push(held);
            if !p.pass {
                break; // one failed run decides the rate
            }
        }
        if p.pass {
            lo = Some(r);
        } else {
            hi = Some(r);
        }
        points.push(p);
        r = match (lo, hi) {
            (Some(l), Some(h)) => (l + h) / 2.0,
            (None, Some(h)) => h / 4.0,
            // The throughput itself passed: nothing higher can.
            (Some(_), None) => break,
            (None, None) => unreachable!("every step decides a rate"),
        };
    }
    let workers = workers_for(cfg);
    let per_core_mhz = lo.map(|l| l / workers as f64);
    Ok(RateSearch {
        budget_ns: cfg.budget_ns,
        budget_at: cfg.budget_at,
        repeats,
        highest_mhz: lo,
        lowest_failed_mhz: hi,
        workers,
        per_core_mhz,
        cores_for_rate: cfg
            .rate_mhz
            .zip(per_core_mhz)
            .map(|(want, per)| (want / per).ceil() as u64),
        points,
    })
}

/// The CPU testbench: the main run at the configured rate, then (with
/// `sweep`) throughput as fast as possible and against a ladder of offered
/// rates, and the rate search ([`search_rate`]).
pub fn run_cpu(
    model_name: &str,
    pool: &EventPool,
    engine: Arc<Engine>,
    cfg: &CpuConfig,
) -> Result<Report, TbError> {
    let t0 = Instant::now();
    let stalls = machine_stalls(Duration::from_millis(500));
    let run = stream(pool, &engine, cfg, cfg.rate_mhz, cfg.events, true)?;
    let workers = workers_for(cfg);

    let mut sweep = Vec::new();
    let mut max_tp = None;
    let mut search = None;
    if cfg.sweep {
        let ns = cfg.sweep_events.max(1000);
        let fast = stream(pool, &engine, cfg, None, ns, false)?;
        let tp = fast.delivered as f64 / (fast.last_delivery_ns.max(1) as f64 / 1000.0);
        max_tp = Some(tp);
        let mut ladder: Vec<f64> = [0.1, 0.25, 0.5, 0.7, 0.85, 1.0, 1.2, 1.5]
            .iter()
            .map(|f| f * tp)
            .collect();
        if let Some(r) = cfg.rate_mhz {
            ladder.push(r);
        }
        ladder.sort_by(|a, b| a.total_cmp(b));
        for r in ladder {
            sweep.push(stream(pool, &engine, cfg, Some(r), ns, false)?.point());
        }
        // The main run is a point too.
        if cfg.rate_mhz.is_some() {
            sweep.push(run.point());
        }
        search = Some(search_rate(pool, &engine, cfg, tp)?);
    }

    let dur_us = run.last_delivery_ns.max(1) as f64 / 1000.0;
    let mut failures = vec![];
    if !run.sequence_ok {
        failures.push("outputs were delivered out of order".into());
    }
    let mut rep = Report {
        target: Target::Cpu,
        model: model_name.into(),
        source: pool.source.clone(),
        arrivals: cfg.arrivals,
        rate_mhz: cfg.rate_mhz,
        clock_mhz: None,
        budget_ns: cfg.budget_ns,
        budget_at: cfg.budget_at,
        events: run.events,
        accepted: run.events - run.dropped,
        lost: run.dropped,
        delivered: run.delivered,
        failed: run.failed,
        checked: run.checked,
        mismatches: run.mismatches,
        first_mismatches: run.first_mismatches.clone(),
        latency_ns: Dist::of(&run.latency_ns),
        latency_cycles: None,
        interval_cycles: None,
        queue: None,
        offered_mhz: if cfg.rate_mhz.is_some() {
            run.events as f64 / (run.last_arrival_ns.max(1) as f64 / 1000.0)
        } else {
            run.delivered as f64 / dur_us
        },
        throughput_mhz: run.delivered as f64 / dur_us,
        kernel: None,
        cpu: Some(CpuInfo {
            isa: engine.isa().to_string(),
            workers,
            batch: cfg.batch,
            overload: if cfg.rate_mhz.is_some() {
                "drop"
            } else {
                "block"
            }
            .into(),
            max_throughput_mhz: max_tp,
            search,
            stalls: Some(stalls),
        }),
        sweep,
        pass: false,
        failures,
        wall_s: 0.0,
        plots: vec![],
        series: Series {
            timeline: Series::timeline_of(&run.points, 2000),
            latency_ns: run.latency_ns,
        },
    };
    rep.judge();
    rep.wall_s = t0.elapsed().as_secs_f64();
    Ok(rep)
}
