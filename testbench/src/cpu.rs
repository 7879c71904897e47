//! CPU target: events streamed through the engine's pipeline
//! (`engine::pipeline`), paced at the offered rate or as fast as possible;
//! every delivered output checked against the golden model; per-event
//! latency from the event's (scheduled) arrival to its in-order delivery.

use engine::pipeline::{pipeline, Next, Overload, PipelineConfig};
use engine::Engine;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::arrivals::{ArrivalGen, Arrivals};
use crate::report::{CpuInfo, Dist, Mismatch, Report, Series, SweepPoint};
use crate::stream::EventPool;
use crate::TbError;

#[derive(Clone, Debug)]
pub struct CpuConfig {
    /// Offered mean rate in MHz; `None` = as fast as possible (backpressure).
    pub rate_mhz: Option<f64>,
    pub events: u64,
    pub arrivals: Arrivals,
    pub budget_ns: f64,
    /// Worker threads (0 = one per core but one, left to the producer and consumer).
    pub workers: usize,
    pub batch: usize,
    /// Input queue capacity, batches.
    pub queue: usize,
    /// A partial batch is sent once its first event has waited this long (paced runs), ns.
    pub max_wait_ns: u64,
    pub seed: u64,
    pub progress: bool,
    /// Also measure throughput against offered rate and the highest rate without drops.
    pub sweep: bool,
    /// Events per sweep point.
    pub sweep_events: u64,
}

impl Default for CpuConfig {
    fn default() -> Self {
        CpuConfig {
            rate_mhz: Some(40.0),
            events: 1_000_000,
            arrivals: Arrivals::Fixed,
            budget_ns: 1000.0,
            workers: 0,
            batch: 64,
            queue: 1024,
            max_wait_ns: 10_000,
            seed: 1,
            progress: false,
            sweep: true,
            sweep_events: 200_000,
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

fn workers_for(cfg: &CpuConfig) -> usize {
    if cfg.workers > 0 {
        return cfg.workers;
    }
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The producer and the consumer need a core between them.
    n.saturating_sub(1).max(1)
}

/// Streams `n` events (cycling through `pool`) through a fresh pipeline.
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
    };
    let (mut prod, mut cons) =
        pipeline(engine.clone(), &pcfg).map_err(|e| TbError::Engine(e.to_string()))?;
    // Let the workers start and park before the clock starts.
    std::thread::sleep(Duration::from_millis(2));
    let arrival: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let t0 = Instant::now();
    let pb = crate::progress_bar(cfg.progress && record, n, "cpu");

    let cons_arr = arrival.clone();
    let result = std::thread::scope(|s| -> Result<Run, TbError> {
        let consumer = s.spawn(move || {
            let mut r = Run {
                events: n,
                delivered: 0,
                dropped: 0,
                failed: 0,
                checked: 0,
                mismatches: 0,
                first_mismatches: vec![],
                latency_ns: Vec::with_capacity(if record { n as usize } else { 0 }),
                points: Vec::with_capacity(if record { n as usize } else { 0 }),
                last_arrival_ns: 0,
                last_delivery_ns: 0,
                sequence_ok: true,
            };
            let mut last_seq: Option<u64> = None;
            let mut lat_all: Vec<f64> = Vec::new();
            loop {
                match cons.next_timeout(Some(Duration::from_millis(50))) {
                    Ok(Next::Event(seq, out)) => {
                        let now = t0.elapsed().as_nanos() as u64;
                        if let Some(p) = last_seq {
                            if seq <= p {
                                r.sequence_ok = false;
                            }
                        }
                        last_seq = Some(seq);
                        r.delivered += 1;
                        r.checked += 1;
                        let want = pool.expected(seq);
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
                        let a = cons_arr[seq as usize].load(Relaxed);
                        let lat = now.saturating_sub(a) as f64;
                        r.last_delivery_ns = now;
                        if record {
                            r.latency_ns.push(lat);
                            r.points.push((a as f64 / 1000.0, lat));
                        } else {
                            lat_all.push(lat);
                        }
                    }
                    Ok(Next::Empty) => {}
                    Ok(Next::End) => break,
                    Err(e) => {
                        // A failed batch: counted in stats().failed; keep going.
                        if let engine::pipeline::PipelineError::Batch { .. } = e {
                            continue;
                        }
                        return Err(TbError::Engine(e.to_string()));
                    }
                }
            }
            let st = cons.stats();
            r.dropped = st.dropped;
            r.failed = st.failed;
            if !record {
                r.latency_ns = lat_all;
            }
            Ok(r)
        });

        // Producer (this thread).
        let il = pool.in_len;
        let count = pool.count() as u64;
        let mut pushed = 0u64;
        let mut in_batch = 0usize;
        let mut batch_first = 0u64;
        let batch = pcfg.batch;
        let push_range =
            |prod: &mut engine::pipeline::Producer, from: u64, to: u64| -> Result<(), TbError> {
                let mut i = from;
                while i < to {
                    let k0 = i % count;
                    let len = (to - i).min(count - k0);
                    let slice = &pool.raw[k0 as usize * il..(k0 + len) as usize * il];
                    prod.push_raw(slice)
                        .map_err(|e| TbError::Engine(e.to_string()))?;
                    i += len;
                }
                Ok(())
            };
        let mut last_arrival = 0u64;
        match rate_mhz {
            None => {
                while pushed < n {
                    let k = (n - pushed).min(batch as u64);
                    let now = t0.elapsed().as_nanos() as u64;
                    for j in pushed..pushed + k {
                        arrival[j as usize].store(now, Relaxed);
                    }
                    last_arrival = now;
                    push_range(&mut prod, pushed, pushed + k)?;
                    pushed += k;
                    if let Some(pb) = &pb {
                        pb.set_position(pushed);
                    }
                }
            }
            Some(rate) => {
                let period_ns = 1000.0 / rate;
                let sched: Vec<u64> = ArrivalGen::new(cfg.arrivals, period_ns, cfg.seed)
                    .take(n as usize)
                    .collect();
                for (j, &t) in sched.iter().enumerate() {
                    arrival[j].store(t, Relaxed);
                }
                last_arrival = sched.last().copied().unwrap_or(0);
                let mut spins = 0u32;
                while pushed < n {
                    let now = t0.elapsed().as_nanos() as u64;
                    let mut due = pushed;
                    while due < n && sched[due as usize] <= now && due - pushed < batch as u64 {
                        due += 1;
                    }
                    if due > pushed {
                        if in_batch == 0 {
                            batch_first = pushed;
                        }
                        push_range(&mut prod, pushed, due)?;
                        let k = (due - pushed) as usize;
                        let fill = in_batch + k;
                        in_batch = fill % batch;
                        if in_batch > 0 && fill >= batch {
                            batch_first = due - in_batch as u64;
                        }
                        pushed = due;
                        spins = 0;
                        if let Some(pb) = &pb {
                            if pushed % 4096 < k as u64 {
                                pb.set_position(pushed);
                            }
                        }
                    } else {
                        if in_batch > 0
                            && now.saturating_sub(sched[batch_first as usize]) >= cfg.max_wait_ns
                        {
                            prod.flush().map_err(|e| TbError::Engine(e.to_string()))?;
                            in_batch = 0;
                        }
                        spins += 1;
                        if spins > 64 {
                            std::thread::yield_now();
                        } else {
                            std::hint::spin_loop();
                        }
                    }
                }
            }
        }
        prod.close().map_err(|e| TbError::Engine(e.to_string()))?;
        let mut r = consumer.join().expect("consumer thread")?;
        r.last_arrival_ns = last_arrival;
        Ok(r)
    })?;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    Ok(result)
}

/// The CPU testbench: the main run at the configured rate, then (with
/// `sweep`) throughput as fast as possible and against a ladder of offered
/// rates, and the highest rate measured without drops.
pub fn run_cpu(
    model_name: &str,
    pool: &EventPool,
    engine: Arc<Engine>,
    cfg: &CpuConfig,
) -> Result<Report, TbError> {
    let t0 = Instant::now();
    let run = stream(pool, &engine, cfg, cfg.rate_mhz, cfg.events, true)?;
    let workers = workers_for(cfg);

    let mut sweep = Vec::new();
    let mut max_tp = None;
    let mut max_ok = None;
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
            let p = stream(pool, &engine, cfg, Some(r), ns, false)?;
            let dur_us = p.last_delivery_ns.max(p.last_arrival_ns).max(1) as f64 / 1000.0;
            let lost = p.dropped + p.failed;
            sweep.push(SweepPoint {
                offered_mhz: p.events as f64 / (p.last_arrival_ns.max(1) as f64 / 1000.0),
                achieved_mhz: p.delivered as f64 / dur_us,
                events: p.events,
                lost,
            });
            if lost == 0 && p.mismatches == 0 {
                max_ok = Some(sweep.last().unwrap().offered_mhz);
            }
        }
        // The main run is a point too.
        if let Some(_r) = cfg.rate_mhz {
            let dur_us = run.last_delivery_ns.max(run.last_arrival_ns).max(1) as f64 / 1000.0;
            let offered = run.events as f64 / (run.last_arrival_ns.max(1) as f64 / 1000.0);
            sweep.push(SweepPoint {
                offered_mhz: offered,
                achieved_mhz: run.delivered as f64 / dur_us,
                events: run.events,
                lost: run.dropped + run.failed,
            });
            if run.dropped + run.failed == 0 && max_ok.is_none_or(|m| offered > m) {
                max_ok = Some(offered);
            }
        }
    }

    let dur_us = run.last_delivery_ns.max(1) as f64 / 1000.0;
    let mut failures = vec![];
    if !run.sequence_ok {
        failures.push("outputs were delivered out of order".into());
    }
    let mut rep = Report {
        target: "cpu".into(),
        model: model_name.into(),
        source: pool.source.clone(),
        arrivals: cfg.arrivals.to_string(),
        rate_mhz: cfg.rate_mhz,
        clock_mhz: None,
        budget_ns: cfg.budget_ns,
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
            max_rate_without_drops_mhz: max_ok,
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
