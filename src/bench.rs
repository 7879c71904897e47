//! `bxflow bench MODEL.bxq [--onnx MODEL.onnx] [--json]`: the CPU engine's
//! single-event latency, batch and streaming throughput, next to tract-onnx
//! running the same ONNX model in the same process. In the binary, not the
//! engine library, so that the C library a DAQ program links carries no tract.
//!
//! Method: inputs are N(0,1) float features (`quantize::calibrate::gaussian_events`)
//! quantized once with the model's input type (raw codes are what a DAQ
//! would hand the engine at 40 MHz).
//! Single-event latency times each `infer` call (raw in, raw out) with
//! `Instant`, minus the measured cost of an empty timing pair; figures are
//! medians over `runs` runs. Streaming pushes raw events in bulk through the
//! pipeline (Block policy) with `workers` threads and counts events per second
//! of wall time from the first push to the last in-order delivery (the
//! producer and consumer threads share the cores with the workers).

use anyhow::Context;
use engine::peak::ticks;
use engine::pipeline::{pipeline, Overload, PipelineConfig};
use engine::{Engine, EngineOptions, Isa};
use quantize::calibrate::gaussian_events;
use quantize::golden::quantize_input;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Quantized model (.bxq), or an .onnx quantized at the default precision.
    pub model: PathBuf,
    /// The ONNX model to run with tract-onnx for comparison.
    #[arg(long)]
    pub onnx: Option<PathBuf>,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
    /// Force a kernel family.
    #[arg(long, value_enum, ignore_case = true)]
    pub isa: Option<Isa>,
    /// Timed single events per run.
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Runs (figures are medians over runs).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Events streamed through the pipeline per run (0: skip streaming).
    #[arg(long, default_value_t = 20_000_000)]
    pub stream_events: usize,
    /// Pipeline worker threads (0: all CPUs).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Events per pipeline batch.
    #[arg(long, default_value_t = 1024)]
    pub batch: usize,
    /// Do not pin workers to cores.
    #[arg(long)]
    pub no_pin: bool,
}

#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Timed single events per run.
    pub events: usize,
    /// Runs; each figure is the median over runs.
    pub runs: usize,
    /// Events streamed through the pipeline per run.
    pub stream_events: usize,
    /// Pipeline workers (0 = all CPUs).
    pub workers: usize,
    pub batch: usize,
    pub pin: bool,
    /// Skip tract even if an ONNX file is given.
    pub no_tract: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            events: 200_000,
            runs: 5,
            stream_events: 20_000_000,
            workers: 0,
            batch: 1024,
            pin: true,
            no_tract: false,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Figures {
    pub single_p50_ns: f64,
    pub single_p99_ns: f64,
    pub batch_events_per_s: f64,
    /// Engine only (tract has no streaming pipeline).
    pub stream_events_per_s: Option<f64>,
    pub stream_latency_p50_ns: Option<u64>,
    pub stream_latency_p99_ns: Option<u64>,
    pub stream_latency_p999_ns: Option<u64>,
    pub stream_latency_max_ns: Option<u64>,
    /// Engine only: streaming with 1, 2, 4, ... workers up to the CPUs.
    pub stream_scaling: Vec<ScalePoint>,
    /// Engine only: the machine's peak beside each batch run ([`Peak`]).
    #[serde(skip)]
    pub peaks: Vec<Peak>,
    /// Engine only: the core's clock measured right after each latency
    /// run ([`engine::peak::clock_hz`]).
    #[serde(skip)]
    pub clocks: Vec<f64>,
}

/// Streaming throughput with a number of worker threads.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ScalePoint {
    pub workers: usize,
    pub events_per_s: f64,
    pub per_worker: f64,
}

/// One streaming run of `o.stream_events` events of `raw` through the
/// pipeline (Block policy) with `workers` threads (0: all CPUs): events per
/// second from the first push to the last in-order delivery, and the
/// pipeline's latency summary.
fn stream_once(
    engine: &Arc<Engine>,
    raw: &[i64],
    workers: usize,
    o: &BenchOptions,
) -> (f64, engine::hist::Summary) {
    let (il, ol) = (engine.input_len(), engine.output_len());
    let cfg = PipelineConfig {
        workers,
        pin: o.pin,
        batch: o.batch,
        queue: 8,
        overload: Overload::Block,
        ..Default::default()
    };
    let (mut prod, mut cons) = pipeline(engine.clone(), &cfg).unwrap();
    let total = o.stream_events;
    let t = Instant::now();
    let consumer = std::thread::spawn(move || {
        let mut n = 0usize;
        while cons
            .next_batch(|_, outs| n += outs.len() / ol.max(1))
            .unwrap()
        {}
        (n, cons.stats())
    });
    let mut pushed = 0;
    while pushed < total {
        let k = POOL.min(total - pushed);
        prod.push_raw(&raw[..k * il]).unwrap();
        pushed += k;
    }
    prod.close().unwrap();
    let (n, stats) = consumer.join().unwrap();
    assert_eq!(n, total);
    (total as f64 / t.elapsed().as_secs_f64(), stats.latency)
}

/// The machine's multiply-accumulate peak on one core for the engine's ISA
/// (`engine::peak`), measured in slices interleaved with a batch run so
/// that a change of clock or of neighbours moves both.
#[derive(Clone, Copy, Debug)]
pub struct Peak {
    /// i16 x i16 MACs per second.
    pub i16: f64,
    /// u8 x i8 MACs per second, where a layer runs on u8 lanes.
    pub u8: Option<f64>,
    /// The batch rate over the peak: events per second times the seconds
    /// one event's MACs take at the peak of each layer's lanes.
    pub fraction: f64,
}

/// A batch run interleaved with slices of the machine's peak loop
/// ([`engine::peak::slice`]) for each lane type the model's MAC layers use:
/// `batches` timed calls of `batch`, each followed by a peak slice of about
/// its length, so that each batch and its slice see the same clock and
/// neighbours. Returns the batch rate (events/s) and the [`Peak`]: the
/// median peaks and the median of the per-batch fractions.
fn batch_beside_peak(
    engine: &Engine,
    batches: usize,
    events_per_batch: usize,
    mut batch: impl FnMut(),
) -> (f64, Option<Peak>) {
    use engine::dense::Operand;
    let (isa, m, kernels) = (engine.isa(), engine.model(), engine.kernels());
    let lanes = |k: &engine::LayerKernel| match k.operand {
        Some(Operand::U8) => Operand::U8,
        _ => Operand::I16,
    };
    let mut ops = vec![Operand::I16];
    if kernels.iter().any(|k| lanes(k) == Operand::U8) {
        ops.push(Operand::U8);
    }
    // Seconds of one event's MACs at a peak of each lane type.
    let per_event = |peaks: &[f64]| -> f64 {
        m.layers
            .iter()
            .zip(&kernels)
            .map(|(l, k)| {
                let i = ops.iter().position(|&o| o == lanes(k)).unwrap_or(0);
                l.op.macs(l.shape.iter().product()) as f64 / peaks[i]
            })
            .sum()
    };
    // Per batch: its seconds, the peaks of the slice after it, the fraction.
    let (mut secs, mut peaks, mut fractions) = (0.0, vec![vec![]; ops.len()], vec![]);
    for _ in 0..batches {
        let t = Instant::now();
        batch();
        let dt = t.elapsed().as_secs_f64();
        secs += dt;
        let p: Option<Vec<f64>> = ops
            .iter()
            .map(|&op| engine::peak::slice(isa, op, dt * 1e3).map(|(m, s)| m / s))
            .collect();
        if let Some(p) = p {
            fractions.push(events_per_batch as f64 / dt * per_event(&p));
            for (v, x) in peaks.iter_mut().zip(p) {
                v.push(x);
            }
        }
    }
    let rate = (batches * events_per_batch) as f64 / secs;
    let peak = (!fractions.is_empty()).then(|| {
        let mut p = peaks.into_iter().map(median);
        Peak {
            i16: p.next().unwrap_or(0.0),
            u8: p.next(),
            fraction: median(fractions),
        }
    });
    (rate, peak)
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub model: String,
    pub isa: String,
    pub macs: usize,
    pub input_type: String,
    pub kernels: Vec<String>,
    pub cpus: usize,
    pub engine: Figures,
    pub tract: Option<Figures>,
    /// tract time / engine time (> 1: engine faster), for p50, p99, batch.
    pub speedup_p50: Option<f64>,
    pub speedup_p99: Option<f64>,
    pub speedup_batch: Option<f64>,
    pub tract_error: Option<String>,
    /// The machine's own i16 multiply-accumulate peak on one core for the
    /// engine's ISA (`engine::peak`), MACs per second (median over runs).
    pub peak_macs_per_s: Option<f64>,
    /// The same for u8 x i8, where a layer runs on u8 lanes.
    pub peak_u8_macs_per_s: Option<f64>,
    /// The single-core batch rate over the peak of the model's kernels
    /// ([`Peak::fraction`]), the median over runs, each run against the
    /// peak measured beside it.
    pub peak_fraction_batch: Option<f64>,
    /// The core's clock beside the latency runs, Hz (median over runs;
    /// x86-64 only).
    pub clock_hz: Option<f64>,
    /// The single-event p50 in cycles of that clock: the figure to compare
    /// between cores of different clocks (at 3 GHz, 3 cycles are 1 ns).
    pub single_p50_cycles: Option<f64>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The seed of the N(0,1) events: the engine and tract see the same ones.
const SEED: u64 = 1;

/// A timer for single calls of about 100 ns. The OS clock is read through
/// a call that itself takes 20 to 30 ns; on x86-64 the time-stamp counter
/// (invariant on every x86-64 CPU the engine's kernels target) is read
/// directly, fenced so that the call timed neither starts before the first
/// reading nor ends after the second, and its ticks are converted to ns by
/// a rate measured against the OS clock. Some counters advance in steps
/// (AMD Zen: 10 ns at a time, 26 ticks of a 2.6 GHz counter): the step is
/// measured and quantiles interpolated within it ([`quantile`]).
struct Stopwatch {
    ns_per_tick: f64,
    /// The counter's step, in ticks (1 where it counts every tick).
    step: u64,
}

impl Stopwatch {
    /// Measures the counter's rate over about 20 ms, and its step: the
    /// greatest common divisor of the differences between readings.
    fn new() -> Stopwatch {
        let (t0, c0) = (Instant::now(), ticks());
        let (mut step, mut last) = (0u64, c0);
        while t0.elapsed().as_secs_f64() < 0.02 {
            let c = ticks();
            step = gcd(step, c - last);
            last = c;
        }
        let (dt, dc) = (t0.elapsed().as_nanos() as f64, ticks() - c0);
        Stopwatch {
            ns_per_tick: if dc > 0 { dt / dc as f64 } else { 1.0 },
            step: step.max(1),
        }
    }

    /// The median cost of a reading, in ticks.
    fn overhead(&self) -> f64 {
        let mut v: Vec<u64> = (0..10_000)
            .map(|_| {
                let t = ticks();
                ticks() - t
            })
            .collect();
        v.sort_unstable();
        quantile(&v, 0.5, self.step)
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The `p` quantile of `sorted` readings that are multiples of `step`,
/// each standing for a true value anywhere within half a step of it:
/// interpolated within the step of the reading the quantile falls on
/// (the median of grouped data), where the reading itself would move a
/// 120 ns median by up to 5 ns on a counter with 10 ns steps.
fn quantile(sorted: &[u64], p: f64, step: u64) -> f64 {
    let n = sorted.len();
    let m = sorted[((n - 1) as f64 * p).round() as usize];
    if step <= 1 {
        return m as f64;
    }
    let below = sorted.partition_point(|&v| v < m) as f64;
    let at = (sorted.partition_point(|&v| v <= m) as f64 - below).max(1.0);
    let within = ((p * n as f64 - below) / at).clamp(0.0, 1.0);
    m as f64 - step as f64 / 2.0 + within * step as f64
}

/// p50 and p99 of `n` timed calls, minus the timer's own cost: quantiles of
/// the readings themselves ([`quantile`], interpolated only within the
/// counter's step), not of an [`engine::hist::Histogram`], whose 1/16
/// buckets would move a 150 ns figure by up to 9 ns.
fn latency<F: FnMut(usize)>(n: usize, pool: usize, mut f: F) -> (f64, f64) {
    for i in 0..n.min(1000) {
        f(i % pool); // warm-up
    }
    let sw = Stopwatch::new();
    let mut spans: Vec<u64> = Vec::with_capacity(n);
    for i in 0..n {
        let t = ticks();
        f(i % pool);
        spans.push(ticks() - t);
    }
    spans.sort_unstable();
    let ov = sw.overhead();
    let ns = |p: f64| ((quantile(&spans, p, sw.step) - ov) * sw.ns_per_tick).max(1.0);
    (ns(0.5), ns(0.99))
}

const POOL: usize = 4096;

/// Engine figures for `engine` on N(0,1) events.
pub fn bench_engine(engine: &Arc<Engine>, o: &BenchOptions) -> Figures {
    let m = engine.model();
    let (il, ol) = (engine.input_len(), engine.output_len());
    let feats = gaussian_events(POOL, il, SEED);
    let raw: Vec<i64> = feats
        .chunks(il.max(1))
        .flat_map(|x| quantize_input(m, x))
        .collect();
    let mut out = vec![0i64; ol];
    let mut s = engine.scratch();
    let (mut p50, mut p99, mut thr, mut st) = (vec![], vec![], vec![], vec![]);
    let (mut peaks, mut clocks) = (vec![], vec![]);
    let mut last = None;
    for _ in 0..o.runs.max(1) {
        let (a, b) = latency(o.events, POOL, |i| {
            engine
                .infer_with(&mut s, &raw[i * il..(i + 1) * il], &mut out)
                .unwrap();
        });
        p50.push(a);
        p99.push(b);
        clocks.extend(engine::peak::clock_hz(10.0));
        // Batch throughput, one thread.
        let mut outs = vec![0i64; POOL * ol];
        let reps = (o.events / POOL).max(1);
        let (rate, peak) = batch_beside_peak(engine, reps, POOL, || {
            engine.infer_batch_with(&mut s, &raw, &mut outs).unwrap();
        });
        thr.push(rate);
        peaks.extend(peak);
        // Streaming, all workers.
        if o.stream_events > 0 {
            let (rate, lat) = stream_once(engine, &raw, o.workers, o);
            st.push(rate);
            last = Some(lat); // latency summary of the last run
        }
    }
    // Scaling: one run for each worker count up to the machine's CPUs.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut scaling = Vec::new();
    if o.stream_events > 0 {
        let mut w = 1;
        while w <= cpus {
            let (rate, _) = stream_once(engine, &raw, w, o);
            scaling.push(ScalePoint {
                workers: w,
                events_per_s: rate,
                per_worker: rate / w as f64,
            });
            w = if w * 2 > cpus && w < cpus {
                cpus
            } else {
                w * 2
            };
        }
    }
    let l = last;
    Figures {
        single_p50_ns: median(p50),
        single_p99_ns: median(p99),
        batch_events_per_s: median(thr),
        stream_events_per_s: (!st.is_empty()).then(|| median(st)),
        stream_latency_p50_ns: l.map(|l| l.p50),
        stream_latency_p99_ns: l.map(|l| l.p99),
        stream_latency_p999_ns: l.map(|l| l.p999),
        stream_latency_max_ns: l.map(|l| l.max),
        stream_scaling: scaling,
        peaks,
        clocks,
    }
}

/// tract-onnx figures for the same model, with a `[1, shape...]` tensor for
/// each input (`input_shapes`, one event shape per input).
pub fn bench_tract(
    onnx_path: &Path,
    input_shapes: &[Vec<usize>],
    o: &BenchOptions,
) -> Result<Figures, String> {
    use tract_onnx::prelude::*;
    let shapes: Vec<Vec<usize>> = input_shapes
        .iter()
        .map(|s| std::iter::once(1).chain(s.iter().copied()).collect())
        .collect();
    let model = tract_onnx::onnx()
        .model_for_path(onnx_path)
        .and_then(|mut m| {
            for (k, s) in shapes.iter().enumerate() {
                m = m.with_input_fact(k, f32::fact(s).into())?;
            }
            Ok(m)
        })
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(|e| {
            format!(
                "tract cannot load {}: {}",
                onnx_path.display(),
                quantize::describe(e.as_ref())
            )
        })?;
    let pool = 256;
    let events: Vec<TVec<TValue>> = (0..pool)
        .map(|e| {
            shapes
                .iter()
                .enumerate()
                .map(|(k, s)| {
                    let x = gaussian_events(
                        1,
                        s.iter().product(),
                        SEED + (e * shapes.len() + k) as u64,
                    );
                    Tensor::from_shape(s, &x).unwrap().into_tvalue()
                })
                .collect()
        })
        .collect();
    let run = |i: usize| {
        let r = model.run(events[i].clone()).unwrap();
        std::hint::black_box(r);
    };
    let n = (o.events / 20).max(1000);
    let (mut p50, mut p99, mut thr) = (vec![], vec![], vec![]);
    for _ in 0..o.runs.max(1) {
        let (a, b) = latency(n, pool, run);
        p50.push(a);
        p99.push(b);
        // Batch: tract with a [B, ...] input would need a re-optimised model
        // per batch size; the closest like-for-like is events back to back.
        let t = Instant::now();
        for i in 0..n {
            run(i % pool);
        }
        thr.push(n as f64 / t.elapsed().as_secs_f64());
    }
    Ok(Figures {
        single_p50_ns: median(p50),
        single_p99_ns: median(p99),
        batch_events_per_s: median(thr),
        ..Figures::default()
    })
}

/// Runs every benchmark for `engine` (and tract on `onnx` if given).
pub fn report(engine: Engine, onnx: Option<&Path>, o: &BenchOptions) -> BenchReport {
    let engine = Arc::new(engine);
    let m = engine.model().clone();
    let tract_r = match onnx {
        Some(p) if !o.no_tract => {
            let shapes: Vec<Vec<usize>> = m.inputs.iter().map(|i| i.shape.clone()).collect();
            Some(bench_tract(p, &shapes, o))
        }
        _ => None,
    };
    let e = bench_engine(&engine, o);
    let pk = &e.peaks;
    let of = |f: fn(&Peak) -> Option<f64>| {
        let v: Vec<f64> = pk.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| median(v))
    };
    let clock = (!e.clocks.is_empty()).then(|| median(e.clocks.clone()));
    let (tract, tract_error) = match tract_r {
        Some(Ok(t)) => (Some(t), None),
        Some(Err(err)) => (None, Some(err)),
        None => (None, None),
    };
    BenchReport {
        model: m.name.clone(),
        isa: engine.isa().to_string(),
        macs: m.macs(),
        input_type: m
            .inputs
            .iter()
            .map(|i| i.ty.ap_string())
            .collect::<Vec<_>>()
            .join(", "),
        kernels: engine
            .kernels()
            .into_iter()
            .filter(|k| k.kernel != "scalar")
            .map(|k| format!("{} {}: {}", k.op, k.layer, k.kernel))
            .collect(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        speedup_p50: tract.as_ref().map(|t| t.single_p50_ns / e.single_p50_ns),
        speedup_p99: tract.as_ref().map(|t| t.single_p99_ns / e.single_p99_ns),
        speedup_batch: tract
            .as_ref()
            .map(|t| e.batch_events_per_s / t.batch_events_per_s),
        peak_macs_per_s: of(|p| Some(p.i16)),
        peak_u8_macs_per_s: of(|p| p.u8),
        peak_fraction_batch: of(|p| Some(p.fraction)),
        clock_hz: clock,
        single_p50_cycles: clock.map(|c| e.single_p50_ns * c / 1e9),
        engine: e,
        tract,
        tract_error,
    }
}

fn rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M ev/s", x / 1e6)
    } else {
        format!("{:.1} k ev/s", x / 1e3)
    }
}

/// Human-readable table.
pub fn format_report(r: &BenchReport) -> String {
    let mut s = format!(
        "model {} ({} MACs, input {}), ISA {}, {} CPUs\n",
        r.model, r.macs, r.input_type, r.isa, r.cpus
    );
    for k in &r.kernels {
        s += &format!("  {k}\n");
    }
    let e = &r.engine;
    let t = r.tract.as_ref();
    let ratio = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.1}x"));
    s += &format!(
        "{:<28}{:>16}{:>16}{:>10}\n",
        "", "bxflow", "tract-onnx", "ratio"
    );
    let row = |label: &str, ours: String, tract: Option<String>, r: Option<f64>| {
        format!(
            "{label:<28}{ours:>16}{:>16}{:>10}\n",
            tract.unwrap_or_else(|| "-".into()),
            ratio(r)
        )
    };
    let ns = |v: f64| format!("{v:.0} ns");
    s += &row(
        "single event p50 (1 core)",
        ns(e.single_p50_ns),
        t.map(|t| ns(t.single_p50_ns)),
        r.speedup_p50,
    );
    if let (Some(c), Some(hz)) = (r.single_p50_cycles, r.clock_hz) {
        s += &format!(
            "  = {c:.0} cycles at the core's measured {:.2} GHz ({:.0} ns at 3 GHz)\n",
            hz / 1e9,
            c / 3.0
        );
    }
    s += &row(
        "single event p99 (1 core)",
        ns(e.single_p99_ns),
        t.map(|t| ns(t.single_p99_ns)),
        r.speedup_p99,
    );
    s += &row(
        "batch (1 core)",
        rate(e.batch_events_per_s),
        t.map(|t| rate(t.batch_events_per_s)),
        r.speedup_batch,
    );
    if let Some(st) = e.stream_events_per_s {
        s += &row(
            "streaming (all cores)",
            rate(st),
            t.map(|t| rate(t.batch_events_per_s)),
            t.map(|t| st / t.batch_events_per_s),
        );
        s += &format!(
            "streaming latency p50 {} ns, p99 {} ns, p99.9 {} ns, max {} ns\n",
            e.stream_latency_p50_ns.unwrap_or(0),
            e.stream_latency_p99_ns.unwrap_or(0),
            e.stream_latency_p999_ns.unwrap_or(0),
            e.stream_latency_max_ns.unwrap_or(0)
        );
        if !e.stream_scaling.is_empty() {
            let pts: Vec<String> = e
                .stream_scaling
                .iter()
                .map(|p| {
                    format!(
                        "{} worker{} {} ({} per worker)",
                        p.workers,
                        if p.workers == 1 { "" } else { "s" },
                        rate(p.events_per_s),
                        rate(p.per_worker)
                    )
                })
                .collect();
            s += &format!("streaming by workers: {}\n", pts.join(", "));
        }
    }
    if let (Some(p), Some(f)) = (r.peak_macs_per_s, r.peak_fraction_batch) {
        let u8 = r.peak_u8_macs_per_s.map_or(String::new(), |u| {
            format!(", u8 x i8 {:.1} G MAC/s", u / 1e9)
        });
        s += &format!(
            "machine peak ({}, 1 core): i16 x i16 {:.1} G MAC/s{u8}; batch at {:.1} % of the peak of the model's kernels\n",
            r.isa,
            p / 1e9,
            100.0 * f
        );
    }
    if let Some(err) = &r.tract_error {
        s += &format!("tract: {err}\n");
    }
    s
}

/// What `bxflow bench` does: load a `.bxq` (or quantize an `.onnx` at the
/// default precision), run, print a table or JSON.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let o = BenchOptions {
        events: args.events,
        runs: args.runs,
        stream_events: args.stream_events,
        workers: args.workers,
        batch: args.batch,
        pin: !args.no_pin,
        no_tract: false,
    };
    let q = quantize::load_model(&args.model, None)?;
    let options = EngineOptions {
        isa: args.isa,
        ..EngineOptions::default()
    };
    let engine = Engine::with_options(&q, &options)?;
    let is_onnx = quantize::load::is_onnx(&args.model);
    let onnx = args
        .onnx
        .as_deref()
        .or(is_onnx.then_some(args.model.as_path()));
    let r = report(engine, onnx, &o);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&r).context("writing the report as JSON")?
        );
    } else {
        println!("{}", format_report(&r));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::quantile;

    /// Readings on a counter of 26-tick steps: a median that falls a
    /// quarter into the readings of one step lies a quarter into that step;
    /// a counter of single ticks gives the reading itself.
    #[test]
    fn quantile_interpolates_within_the_counter_step() {
        // 30 readings of 286 (11 steps), 40 of 312, 30 of 338.
        let v: Vec<u64> = [(286, 30), (312, 40), (338, 30)]
            .iter()
            .flat_map(|&(x, n)| std::iter::repeat_n(x, n))
            .collect();
        // p50: 50 of 100 readings, 30 below 312 and 40 at it: 20/40 in.
        assert_eq!(quantile(&v, 0.5, 26), 312.0 - 13.0 + 0.5 * 26.0);
        // p99: 99 of 100, 70 below 338 and 30 at it: 29/30 in.
        assert!((quantile(&v, 0.99, 26) - (338.0 - 13.0 + 29.0 / 30.0 * 26.0)).abs() < 1e-9);
        assert_eq!(quantile(&v, 0.5, 1), 312.0);
    }
}
