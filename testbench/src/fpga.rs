//! FPGA target: the kernel's cycle-level simulation driven by an event
//! stream at a given rate, through a fixed-depth input FIFO.
//!
//! Per clock cycle, as firmware would: the events arriving on that cycle are
//! written into the FIFO (an event finding it full is lost and counted);
//! then, if the FIFO is not empty and the kernel can accept (at least `II`
//! cycles since the last accepted event), the head enters the kernel
//! (`in_valid`). A kernel of II > 1 (reuse factor) drops `in_ready` for
//! II - 1 cycles after each event; the driver keeps to that II, so the cycle
//! each event enters is fixed by the arrivals, the FIFO and the II, and the
//! simulators check that `in_ready` agrees on every event. The simulation
//! (the `hdl` netlist simulator, or Verilator on the exported Verilog) then
//! runs every cycle and every output is read on the cycle `out_valid` is
//! high, matched in order to the accepted events and compared bit for bit
//! with the golden model. Latency = output cycle - arrival cycle.
//!
//! [`FpgaConfig::ii`] makes the driver keep a larger II than the kernel's,
//! to model a reuse factor without building it.

use hdl::netlist::Sim;
use hdl::Kernel;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Instant;

use crate::arrivals::{ArrivalGen, Arrivals};
use crate::error::TbError;
use crate::progress::progress_bar;
use crate::report::{Dist, KernelInfo, Mismatch, Queue, Report, Series, SweepPoint, Target};
use crate::stream::EventPool;

/// The simulator that runs the kernel (command-line names: auto, rust,
/// rust-hdl, verilator).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum SimChoice {
    /// Verilator when installed and the run is large, the netlist simulator otherwise.
    Auto,
    /// The `hdl` netlist simulator (Rust; for small runs).
    #[cfg_attr(feature = "clap", value(alias = "netlist", alias = "builtin"))]
    Rust,
    /// The kernel as a rust-hdl block in rust-hdl's own `Simulation`
    /// (slowest; for small runs).
    #[cfg_attr(feature = "clap", value(alias = "rusthdl"))]
    RustHdl,
    /// Verilator on the exported Verilog (built once per kernel, cached).
    Verilator,
}

#[derive(Clone, Debug)]
pub struct FpgaConfig {
    pub clock_mhz: f64,
    pub rate_mhz: f64,
    pub events: u64,
    pub budget_ns: f64,
    pub arrivals: Arrivals,
    pub fifo_depth: usize,
    pub seed: u64,
    pub sim: SimChoice,
    /// Runs at or below this many events use the netlist simulator under `Auto`.
    pub rust_max_events: u64,
    /// Initiation interval enforced by the driver; `None`: the kernel's.
    pub ii: Option<u32>,
    pub progress: bool,
    /// Measure throughput against offered rate (short runs at other rates).
    pub sweep: bool,
    pub sweep_events: u64,
    /// Where Verilated models are built and cached.
    pub work_dir: PathBuf,
}

impl Default for FpgaConfig {
    fn default() -> Self {
        FpgaConfig {
            clock_mhz: 200.0,
            rate_mhz: 40.0,
            events: 100_000,
            budget_ns: 1000.0,
            arrivals: Arrivals::Fixed,
            fifo_depth: 16,
            seed: 1,
            sim: SimChoice::Auto,
            rust_max_events: 20_000,
            ii: None,
            progress: false,
            sweep: true,
            sweep_events: 2_000,
            work_dir: std::env::temp_dir().join("bxflow-testbench"),
        }
    }
}

/// The input FIFO and the kernel's acceptance, cycle by cycle.
pub struct Schedule {
    /// Arrival cycle of every offered event.
    pub arrival: Vec<u64>,
    /// Accepted events: (event index, cycle it entered the kernel).
    pub issued: Vec<(u64, u64)>,
    /// Events lost to a full FIFO.
    pub lost: Vec<u64>,
    /// FIFO depth seen by each arriving event (itself included; 0 if lost).
    pub depth_max: usize,
    pub depth_sum: u64,
}

/// When the kernel takes an event: `spacing` cycles after the last one,
/// and, for a kernel with reused recurrent cells, never on a cycle where
/// the event would meet a sequence coming round a loop (an event taken at
/// cycle `c` comes round a loop of `steps` steps and period `P` at
/// `c + m P`, `1 <= m < steps`, each at the same offset from its taking).
pub struct Acceptance {
    spacing: u64,
    /// Per loop: (steps, period) and the cycles, from the last event taken
    /// on, when a sequence comes round.
    loops: Vec<((u64, u64), std::collections::BTreeSet<u64>)>,
}

impl Acceptance {
    /// An event every `ii` cycles at most, as a kernel without loops takes them.
    pub fn interval(ii: u32) -> Self {
        Acceptance {
            spacing: ii.max(1) as u64,
            loops: Vec::new(),
        }
    }

    /// The acceptance of `kernel`, with at least `spacing` cycles between
    /// events (its II when it has no loops).
    pub fn of(kernel: &Kernel, spacing: u32) -> Self {
        let mut a = Acceptance::interval(spacing);
        a.loops = kernel
            .cells
            .iter()
            .map(|c| ((c.steps as u64, c.period_cycles as u64), Default::default()))
            .collect();
        a
    }

    fn free(&self, t: u64) -> bool {
        self.loops.iter().all(|(_, busy)| !busy.contains(&t))
    }

    /// The first cycle from `t` on when the kernel takes an event.
    fn next(&self, t: u64) -> u64 {
        (t..)
            .find(|&c| self.free(c))
            .expect("a loop is free within its period")
    }

    fn take(&mut self, t: u64) {
        for ((steps, period), busy) in &mut self.loops {
            // Events are taken in order: rounds before `t` can meet no later
            // event, so the set holds at most a loop's worth of sequences.
            *busy = busy.split_off(&t);
            busy.extend((1..*steps).map(|m| t + m * *period));
        }
    }
}

/// Plays the FIFO: arrivals on a cycle are written first, then the head
/// enters the kernel when `accept` says it takes it.
pub fn schedule(arrival: Vec<u64>, depth: usize, mut accept: Acceptance) -> Schedule {
    let mut q: VecDeque<u64> = VecDeque::with_capacity(depth + 1);
    let mut issued = Vec::with_capacity(arrival.len());
    let mut lost = Vec::new();
    let mut next_free = 0u64;
    let (mut depth_max, mut depth_sum) = (0usize, 0u64);
    let mut drain_before =
        |q: &mut VecDeque<u64>, next_free: &mut u64, issued: &mut Vec<(u64, u64)>, limit: u64| {
            while let Some(&h) = q.front() {
                let t = accept.next((*next_free).max(arrival[h as usize]));
                if t >= limit {
                    break;
                }
                issued.push((h, t));
                accept.take(t);
                *next_free = t + accept.spacing;
                q.pop_front();
            }
        };
    for (i, &a) in arrival.iter().enumerate() {
        drain_before(&mut q, &mut next_free, &mut issued, a);
        if q.len() >= depth.max(1) {
            lost.push(i as u64);
        } else {
            q.push_back(i as u64);
            depth_max = depth_max.max(q.len());
            depth_sum += q.len() as u64;
        }
    }
    drain_before(&mut q, &mut next_free, &mut issued, u64::MAX);
    Schedule {
        arrival,
        issued,
        lost,
        depth_max,
        depth_sum,
    }
}

/// Simulates the kernel with the given accepted events; returns (cycle,
/// outputs) for each `out_valid` cycle, and the simulator's name.
fn simulate(
    kernel: &Kernel,
    pool: &EventPool,
    issued: &[(u64, u64)],
    cfg: &FpgaConfig,
    use_verilator: bool,
    progress: bool,
) -> Result<Vec<(u64, Vec<i64>)>, TbError> {
    let total = issued.last().map_or(0, |l| l.1) + kernel.latency as u64 + 2;
    if use_verilator {
        let exe = crate::verilator::build(kernel, &cfg.work_dir)?;
        let stim: Vec<(u64, &[i64])> = issued.iter().map(|&(e, c)| (c, pool.input(e))).collect();
        return crate::verilator::run(&exe, kernel, &stim, total, &cfg.work_dir);
    }
    if cfg.sim == SimChoice::RustHdl {
        let stim: Vec<(u64, Vec<i64>)> = issued
            .iter()
            .map(|&(e, c)| (c, pool.input(e).to_vec()))
            .collect();
        return Ok(hdl::block::run_rust_hdl(kernel, &stim, total)?);
    }
    let mut sim = Sim::new(&kernel.net);
    let zero = vec![0i64; kernel.inputs.len()];
    sim.step(true, false, &zero);
    let pb = progress_bar(progress, total, "fpga (netlist sim)");
    let mut out = Vec::with_capacity(issued.len());
    let mut k = 0usize;
    for t in 0..total {
        let (valid, ev) = if k < issued.len() && issued[k].1 == t {
            k += 1;
            (true, pool.input(issued[k - 1].0))
        } else {
            (false, &zero[..])
        };
        let (ov, o) = sim.step(false, valid, ev);
        if valid && !sim.was_ready() {
            return Err(TbError::NotReady {
                event: (k - 1) as u64,
                cycle: t,
            });
        }
        if ov {
            out.push((t, kernel.decode(&o)));
        }
        if let Some(pb) = &pb {
            if t % 4096 == 0 {
                pb.set_position(t);
            }
        }
    }
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    Ok(out)
}

fn use_verilator(cfg: &FpgaConfig, events: u64) -> Result<bool, TbError> {
    Ok(match cfg.sim {
        SimChoice::Rust | SimChoice::RustHdl => false,
        SimChoice::Verilator => {
            if !crate::verilator::available() {
                return Err(TbError::NoVerilator);
            }
            true
        }
        SimChoice::Auto => events > cfg.rust_max_events && crate::verilator::available(),
    })
}

/// Largest II that keeps up with events every `clock / rate` cycles.
pub fn max_ii_for_rate(clock_mhz: f64, rate_mhz: f64) -> u32 {
    ((clock_mhz / rate_mhz) + 1e-9).floor().max(0.0) as u32
}

/// Runs the FPGA testbench of `kernel` against the golden outputs in `pool`.
pub fn run_fpga(
    model_name: &str,
    pool: &EventPool,
    kernel: &Kernel,
    cfg: &FpgaConfig,
) -> Result<Report, TbError> {
    let t0 = Instant::now();
    let ii = cfg.ii.unwrap_or(kernel.ii).max(kernel.ii).max(1);
    let period = cfg.clock_mhz / cfg.rate_mhz;
    let arrival: Vec<u64> = ArrivalGen::new(cfg.arrivals, period, cfg.seed)
        .take(cfg.events as usize)
        .collect();
    // A kernel with loops takes bursts: only `--ii` spaces its events.
    let spacing = if kernel.cells.is_empty() {
        ii
    } else {
        cfg.ii.unwrap_or(1)
    };
    let sch = schedule(arrival, cfg.fifo_depth, Acceptance::of(kernel, spacing));
    let verilator = use_verilator(cfg, cfg.events)?;
    let simulator = match (verilator, cfg.sim) {
        (true, _) => "verilator",
        (false, SimChoice::RustHdl) => "rust-hdl simulation",
        _ => "netlist simulator",
    };
    let t_sim = Instant::now();
    let outs = simulate(kernel, pool, &sch.issued, cfg, verilator, cfg.progress)?;
    let sim_seconds = t_sim.elapsed().as_secs_f64();

    // Match outputs to accepted events in order.
    let ns_per_cycle = 1000.0 / cfg.clock_mhz;
    let mut failures = Vec::new();
    if outs.len() != sch.issued.len() {
        failures.push(format!(
            "the kernel produced {} outputs for {} accepted events",
            outs.len(),
            sch.issued.len()
        ));
    }
    let mut mismatches = 0u64;
    let mut first = Vec::new();
    let mut lat_cyc = Vec::with_capacity(outs.len());
    let mut points = Vec::with_capacity(outs.len());
    let (mut kmin, mut kmax) = (u64::MAX, 0u64);
    for ((ev, issue), (t, got)) in sch.issued.iter().zip(&outs) {
        let want = pool.expected(*ev);
        if got.as_slice() != want {
            mismatches += 1;
            if first.len() < 10 {
                first.push(Mismatch {
                    event: *ev,
                    got: got.clone(),
                    expected: want.to_vec(),
                });
            }
        }
        let k = t.saturating_sub(*issue);
        kmin = kmin.min(k);
        kmax = kmax.max(k);
        let a = sch.arrival[*ev as usize];
        let l = t.saturating_sub(a) as f64;
        lat_cyc.push(l);
        points.push((a as f64 * ns_per_cycle / 1000.0, l * ns_per_cycle));
    }
    if kmin != kmax || (kmin != kernel.latency as u64 && !outs.is_empty()) {
        failures.push(format!(
            "measured kernel latency {kmin}..{kmax} cycles, declared {}",
            kernel.latency
        ));
    }
    let intervals: Vec<f64> = sch
        .issued
        .windows(2)
        .map(|w| (w[1].1 - w[0].1) as f64)
        .collect();
    let lat_ns: Vec<f64> = lat_cyc.iter().map(|c| c * ns_per_cycle).collect();
    let last_arrival = sch.arrival.last().copied().unwrap_or(0).max(1) as f64;
    let last_out = outs.last().map_or(1, |o| o.0).max(1) as f64;
    let delivered = outs.len().min(sch.issued.len()) as u64;

    // Throughput against offered rate: short runs of the same kernel and FIFO.
    // The sweep measures the schedule rather than the simulator, so it
    // takes the netlist simulator in place of rust-hdl's slower one.
    let mut sweep = Vec::new();
    if cfg.sweep {
        let n = cfg.sweep_events.max(100);
        let v = use_verilator(cfg, n)?;
        let scfg = FpgaConfig {
            sim: match cfg.sim {
                SimChoice::RustHdl => SimChoice::Rust,
                s => s,
            },
            ..cfg.clone()
        };
        let cfg = &scfg;
        for f in [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0] {
            let rate = cfg.rate_mhz * f;
            if rate > cfg.clock_mhz * 1.0001 {
                continue;
            }
            let arr: Vec<u64> = ArrivalGen::new(cfg.arrivals, cfg.clock_mhz / rate, cfg.seed + 1)
                .take(n as usize)
                .collect();
            let s = schedule(arr, cfg.fifo_depth, Acceptance::of(kernel, spacing));
            let o = simulate(kernel, pool, &s.issued, cfg, v, false)?;
            let la = s.arrival.last().copied().unwrap_or(0).max(1) as f64;
            let lo = o.last().map_or(1, |x| x.0).max(1) as f64;
            sweep.push(SweepPoint {
                offered_mhz: n as f64 / (la / cfg.clock_mhz),
                achieved_mhz: o.len() as f64 / (lo.max(la) / cfg.clock_mhz),
                events: n,
                lost: s.lost.len() as u64 + (s.issued.len() - o.len().min(s.issued.len())) as u64,
            });
        }
    }

    let stats = kernel.stats();
    let mut rep = Report {
        target: Target::Fpga,
        model: model_name.into(),
        source: pool.source.clone(),
        arrivals: cfg.arrivals,
        rate_mhz: Some(cfg.rate_mhz),
        clock_mhz: Some(cfg.clock_mhz),
        budget_ns: cfg.budget_ns,
        // A hardware pipeline's latency is its design: every event counts.
        budget_at: crate::report::BudgetAt::Max,
        events: cfg.events,
        accepted: sch.issued.len() as u64,
        lost: sch.lost.len() as u64,
        delivered,
        failed: sch.issued.len() as u64 - delivered,
        checked: delivered,
        mismatches,
        first_mismatches: first,
        latency_ns: Dist::of(&lat_ns),
        latency_cycles: Some(Dist::of(&lat_cyc)),
        interval_cycles: Some(Dist::of(&intervals)),
        queue: Some(Queue {
            fifo_depth: cfg.fifo_depth,
            max_depth: sch.depth_max,
            mean_depth: sch.depth_sum as f64 / sch.issued.len().max(1) as f64,
        }),
        offered_mhz: cfg.events as f64 / (last_arrival / cfg.clock_mhz),
        throughput_mhz: delivered as f64 / (last_out.max(last_arrival) / cfg.clock_mhz),
        kernel: Some(KernelInfo {
            name: kernel.name.clone(),
            simulator: simulator.into(),
            declared_latency: kernel.latency,
            measured_latency: (if outs.is_empty() { 0 } else { kmin }, kmax),
            kernel_ii: kernel.ii,
            driver_ii: ii,
            ii_modelled: ii != kernel.ii,
            max_ii_for_rate: max_ii_for_rate(cfg.clock_mhz, cfg.rate_mhz),
            sim_seconds,
            resources: serde_json::to_value(&stats).unwrap_or_default(),
        }),
        cpu: None,
        sweep,
        pass: false,
        failures,
        wall_s: 0.0,
        plots: vec![],
        series: Series {
            timeline: Series::timeline_of(&points, 2000),
            latency_ns: lat_ns,
        },
    };
    rep.judge();
    rep.wall_s = t0.elapsed().as_secs_f64();
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_and_ii() {
        // Every 5 cycles, II 1: no queueing.
        let s = schedule((0..10).map(|i| i * 5).collect(), 4, Acceptance::interval(1));
        assert!(s.lost.is_empty());
        assert!(s.issued.iter().all(|&(e, c)| c == e * 5));
        // II 7 > spacing 5: the FIFO fills and events are lost.
        let s = schedule(
            (0..1000).map(|i| i * 5).collect(),
            4,
            Acceptance::interval(7),
        );
        assert!(!s.lost.is_empty());
        assert_eq!(s.issued.len() + s.lost.len(), 1000);
        assert!(s.issued.windows(2).all(|w| w[1].1 - w[0].1 >= 7));
        // Two on one cycle: both queued, one per cycle.
        let s = schedule(vec![0, 0, 0], 4, Acceptance::interval(1));
        assert_eq!(s.issued, vec![(0, 0), (1, 1), (2, 2)]);
        let s = schedule(vec![0, 0, 0], 2, Acceptance::interval(1));
        assert_eq!(s.lost, vec![2]);
    }

    /// A loop of 3 steps and period 2: events taken at 0 and 1 come round
    /// at 2, 4 and 3, 5, so a third waits for cycle 6; a fourth arriving
    /// at 7 is taken at once (its rounds, 9 and 11, meet nobody's).
    #[test]
    fn loops_take_bursts_and_refuse_their_rounds() {
        let mut a = Acceptance::interval(1);
        a.loops = vec![((3, 2), Default::default())];
        let s = schedule(vec![0, 0, 0, 7], 4, a);
        assert_eq!(s.issued, vec![(0, 0), (1, 1), (2, 6), (3, 7)]);
    }
}
