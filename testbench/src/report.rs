//! What a run measured: the figures, judged pass or fail, as the JSON
//! report for CI and the terminal summary. Plots and files are drawn and
//! written from it by [`crate::plots`] and [`crate::output`].

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

use crate::arrivals::Arrivals;

/// What ran the network; its JSON and display name is the lowercase variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Target {
    /// The FPGA kernel in a cycle-level simulation.
    Fpga,
    /// The CPU engine's pipeline.
    Cpu,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Target::Fpga => "fpga",
            Target::Cpu => "cpu",
        })
    }
}

/// Which latency a budget bounds. A hardware pipeline's worst case is its
/// design (`max`); a CPU process on a general-purpose OS meets its budget
/// statistically (a page fault or a preemption in a million events is not a
/// lost trigger), so CPU stages state a quantile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum BudgetAt {
    /// The 99th percentile.
    #[serde(rename = "p99")]
    #[cfg_attr(feature = "clap", value(name = "p99"))]
    P99,
    /// The 99.9th percentile.
    #[serde(rename = "p99.9")]
    #[cfg_attr(feature = "clap", value(name = "p99.9"))]
    P999,
    /// Every event.
    #[default]
    #[serde(rename = "max")]
    #[cfg_attr(feature = "clap", value(name = "max"))]
    Max,
}

impl BudgetAt {
    /// The bounded latency of `d`.
    pub fn of(self, d: &Dist) -> f64 {
        match self {
            BudgetAt::P99 => d.p99,
            BudgetAt::P999 => d.p999,
            BudgetAt::Max => d.max,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BudgetAt::P99 => "p99",
            BudgetAt::P999 => "p99.9",
            BudgetAt::Max => "max",
        }
    }
}

/// Distribution of a measured quantity (exact order statistics).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Dist {
    pub count: u64,
    pub min: f64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Dist {
    pub fn of(values: &[f64]) -> Dist {
        if values.is_empty() {
            return Dist::default();
        }
        let mut v = values.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        let q = |p: f64| {
            let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
            v[rank - 1]
        };
        Dist {
            count: v.len() as u64,
            min: v[0],
            p50: q(0.5),
            p99: q(0.99),
            p999: q(0.999),
            max: v[v.len() - 1],
            mean: v.iter().sum::<f64>() / v.len() as f64,
        }
    }
}

/// An output that differs from the golden model.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Mismatch {
    /// Index of the event in the stream.
    pub event: u64,
    pub got: Vec<i64>,
    pub expected: Vec<i64>,
}

/// One point of throughput against offered rate.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SweepPoint {
    pub offered_mhz: f64,
    pub achieved_mhz: f64,
    pub events: u64,
    pub lost: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Queue {
    pub fifo_depth: usize,
    /// Largest depth seen by an arriving event (itself included).
    pub max_depth: usize,
    /// Mean depth seen by arriving events.
    pub mean_depth: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct KernelInfo {
    pub name: String,
    pub simulator: String,
    /// Pipeline latency the kernel declares, cycles.
    pub declared_latency: u32,
    /// Issue-to-output latency measured in the simulation (min, max), cycles.
    pub measured_latency: (u64, u64),
    /// Initiation interval the kernel declares.
    pub kernel_ii: u32,
    /// Initiation interval the driver enforced (the kernel's, or a modelled one).
    pub driver_ii: u32,
    pub ii_modelled: bool,
    /// Largest II that keeps up with the offered mean spacing (clock / rate).
    pub max_ii_for_rate: u32,
    /// Wall time of the main run's simulation (build included), s.
    pub sim_seconds: f64,
    /// Resource figures of the netlist (`hdl::Kernel::stats`).
    pub resources: serde_json::Value,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CpuInfo {
    pub isa: String,
    pub workers: usize,
    pub batch: usize,
    pub overload: String,
    /// Throughput as fast as possible (backpressure, nothing dropped), MHz.
    pub max_throughput_mhz: Option<f64>,
    /// The highest rate that holds the budget ([`RateSearch`]), when searched.
    pub search: Option<RateSearch>,
    /// How often this machine stops a polling thread ([`Stalls`]), measured
    /// before the runs: the floor under any latency quantile here.
    pub stalls: Option<Stalls>,
}

/// Stalls of a thread that only reads the clock in a loop: the time the
/// OS, the hypervisor or interrupts took from it. A latency quantile cannot
/// be held below the stalls that hit that fraction of the time, whatever the
/// engine does.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Stalls {
    /// How long the probe ran, s.
    pub seconds: f64,
    /// Gaps longer than 5 us and than 10 us between consecutive clock
    /// readings, per second.
    pub over_5us_per_s: f64,
    pub over_10us_per_s: f64,
    /// The fraction of the time spent in gaps longer than 5 us.
    pub stalled_fraction: f64,
    /// The longest gap, us.
    pub longest_us: f64,
}

impl Stalls {
    pub fn summary(&self) -> String {
        format!(
            "a polling thread stalled > 5 us {:.0} times/s, > 10 us {:.0} times/s ({:.2} % of the time; longest {:.0} us)",
            self.over_5us_per_s,
            self.over_10us_per_s,
            100.0 * self.stalled_fraction,
            self.longest_us
        )
    }
}

/// The highest offered rate this machine sustains with no event lost, every
/// output bit-exact and the latency budget held, found by bisection between
/// nothing and the backpressure throughput. A rate passes only if every one
/// of `repeats` runs at it passes, so that one lucky run does not set it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RateSearch {
    pub budget_ns: f64,
    pub budget_at: BudgetAt,
    /// Runs per rate tried.
    pub repeats: usize,
    /// The highest rate that passed, MHz (`None`: none tried passed).
    pub highest_mhz: Option<f64>,
    /// The lowest rate that failed, MHz: the answer lies between the two.
    pub lowest_failed_mhz: Option<f64>,
    /// Worker threads (one core each) the pipeline ran.
    pub workers: usize,
    /// `highest_mhz` per worker core.
    pub per_core_mhz: Option<f64>,
    /// Worker cores the run's offered rate would need at `per_core_mhz`
    /// (assuming linear scaling, which `bxflow bench` measures).
    pub cores_for_rate: Option<u64>,
    /// Every rate tried, in order.
    pub points: Vec<SearchPoint>,
}

/// One rate of a [`RateSearch`]: each run's figures.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SearchPoint {
    pub offered_mhz: f64,
    pub pass: bool,
    pub events: u64,
    /// Events lost, per run.
    pub lost: Vec<u64>,
    /// The budgeted latency (`budget_at`) of each run, ns.
    pub latency_ns: Vec<f64>,
}

/// Plot data kept out of the JSON.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// Latency of every delivered event, ns.
    pub latency_ns: Vec<f64>,
    /// (arrival time in us, mean latency ns, max latency ns) per time bin.
    pub timeline: Vec<(f64, f64, f64)>,
}

impl Series {
    /// Bins (arrival_us, latency_ns) pairs in arrival order into at most `bins` points.
    pub fn timeline_of(points: &[(f64, f64)], bins: usize) -> Vec<(f64, f64, f64)> {
        if points.is_empty() {
            return vec![];
        }
        let per = points.len().div_ceil(bins.max(1));
        points
            .chunks(per)
            .map(|c| {
                let mean = c.iter().map(|p| p.1).sum::<f64>() / c.len() as f64;
                let max = c.iter().map(|p| p.1).fold(f64::MIN, f64::max);
                (c[0].0, mean, max)
            })
            .collect()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub target: Target,
    pub model: String,
    pub source: String,
    pub arrivals: Arrivals,
    /// Offered mean rate, MHz (`None`: as fast as possible).
    pub rate_mhz: Option<f64>,
    pub clock_mhz: Option<f64>,
    pub budget_ns: f64,
    /// Which latency the budget bounds.
    #[serde(default)]
    pub budget_at: BudgetAt,
    pub events: u64,
    pub accepted: u64,
    /// Events lost at the input (full FIFO / dropped batches).
    pub lost: u64,
    pub delivered: u64,
    pub failed: u64,
    /// Delivered outputs checked against the golden model.
    pub checked: u64,
    pub mismatches: u64,
    pub first_mismatches: Vec<Mismatch>,
    /// Arrival-to-output latency, ns.
    pub latency_ns: Dist,
    pub latency_cycles: Option<Dist>,
    /// Cycles between consecutive accepted events (FPGA).
    pub interval_cycles: Option<Dist>,
    pub queue: Option<Queue>,
    /// Measured offered rate (events / time of the last arrival), MHz.
    pub offered_mhz: f64,
    /// Delivered events per second over the run, MHz.
    pub throughput_mhz: f64,
    pub kernel: Option<KernelInfo>,
    pub cpu: Option<CpuInfo>,
    pub sweep: Vec<SweepPoint>,
    pub pass: bool,
    pub failures: Vec<String>,
    pub wall_s: f64,
    pub plots: Vec<String>,
    #[serde(skip)]
    pub series: Series,
}

impl RateSearch {
    /// One line: the rate, its margin, per core and the cores the run's
    /// rate needs.
    pub fn summary(&self) -> String {
        let mut s = match self.highest_mhz {
            Some(h) => format!("{h:.3} MHz"),
            None => "none".into(),
        };
        let _ = write!(
            s,
            " with no loss, bit-exact, {} latency <= {:.1} us ({} rates tried, {} runs each until one fails",
            self.budget_at.name(),
            self.budget_ns / 1000.0,
            self.points.len(),
            self.repeats,
        );
        let at = |r: Option<f64>| self.points.iter().find(|p| Some(p.offered_mhz) == r);
        if let Some(p) = at(self.highest_mhz) {
            let (lo, hi) = p
                .latency_ns
                .iter()
                .fold((f64::MAX, 0f64), |(a, b), &v| (a.min(v), b.max(v)));
            let _ = write!(
                s,
                "; there {} {:.1}-{:.1} us over {} runs of {} events",
                self.budget_at.name(),
                lo / 1e3,
                hi / 1e3,
                p.latency_ns.len(),
                p.events
            );
        }
        if let Some(p) = at(self.lowest_failed_mhz) {
            let why = match (p.lost.last(), p.latency_ns.last()) {
                (Some(&l), _) if l > 0 => format!("{l} lost"),
                (_, Some(&v)) if v > self.budget_ns => {
                    format!("{} {:.1} us", self.budget_at.name(), v / 1e3)
                }
                _ => "outputs differ from the golden model".into(),
            };
            let _ = write!(s, "; {:.3} MHz failed: {why}", p.offered_mhz);
        }
        s += ")";
        if let Some(p) = self.per_core_mhz {
            let _ = write!(s, "; {p:.3} MHz per worker core ({} workers)", self.workers);
        }
        s
    }
}

impl Report {
    /// Sets `pass`/`failures` from the figures: no losses, no mismatches,
    /// every event accounted for, max latency within the budget.
    pub fn judge(&mut self) {
        let mut f = std::mem::take(&mut self.failures);
        if self.lost > 0 {
            let mut s = format!(
                "{} of {} events lost ({:.3}%)",
                self.lost,
                self.events,
                100.0 * self.lost as f64 / self.events.max(1) as f64
            );
            if let Some(k) = &self.kernel {
                if k.driver_ii > k.max_ii_for_rate {
                    let _ = write!(
                        s,
                        ": the kernel's II is {} cycles but events arrive every {:.2} cycles on average; II <= {} is needed",
                        k.driver_ii,
                        self.clock_mhz.unwrap_or(0.0) / self.rate_mhz.unwrap_or(1.0),
                        k.max_ii_for_rate
                    );
                }
            }
            f.push(s);
        }
        if self.mismatches > 0 {
            let first = self.first_mismatches.first().map(|m| m.event).unwrap_or(0);
            f.push(format!(
                "{} of {} outputs differ from the golden model (first at event {first})",
                self.mismatches, self.checked
            ));
        }
        if self.failed > 0 {
            f.push(format!("{} events failed in the engine", self.failed));
        }
        let accounted = self.delivered + self.lost + self.failed;
        if accounted != self.events {
            f.push(format!(
                "events not accounted for: {} offered, {} delivered + {} lost + {} failed",
                self.events, self.delivered, self.lost, self.failed
            ));
        }
        let held = self.budget_at.of(&self.latency_ns);
        if self.latency_ns.count > 0 && held > self.budget_ns {
            f.push(format!(
                "{} latency {held:.1} ns exceeds the budget of {:.1} ns",
                self.budget_at.name(),
                self.budget_ns
            ));
        }
        self.pass = f.is_empty();
        self.failures = f;
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serializes")
    }

    /// The terminal summary.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let t = &self.target;
        let _ = writeln!(s, "bxflow testbench: {} on {t}", self.model);
        let row = |s: &mut String, k: &str, v: String| {
            let _ = writeln!(s, "  {k:<24} {v}");
        };
        row(
            &mut s,
            "events",
            format!("{} ({})", self.events, self.source),
        );
        let rate = match self.rate_mhz {
            Some(r) => format!(
                "{r} MHz {} (measured {:.3} MHz)",
                self.arrivals, self.offered_mhz
            ),
            None => "as fast as possible".into(),
        };
        row(&mut s, "offered", rate);
        if let Some(c) = self.clock_mhz {
            row(&mut s, "clock", format!("{c} MHz"));
        }
        if let Some(k) = &self.kernel {
            row(
                &mut s,
                "kernel",
                format!(
                    "{} via {} ({:.1} s): latency {} cycles (measured {}..{}), II {}{}",
                    k.name,
                    k.simulator,
                    k.sim_seconds,
                    k.declared_latency,
                    k.measured_latency.0,
                    k.measured_latency.1,
                    k.driver_ii,
                    if k.ii_modelled {
                        " (modelled in the driver)"
                    } else {
                        ""
                    }
                ),
            );
        }
        if let Some(c) = &self.cpu {
            row(
                &mut s,
                "engine",
                format!(
                    "{} x{} workers, batch {}, {} on overload",
                    c.isa, c.workers, c.batch, c.overload
                ),
            );
        }
        row(
            &mut s,
            "accepted / lost",
            format!("{} / {}", self.accepted, self.lost),
        );
        row(
            &mut s,
            "bit-exact",
            format!(
                "{} of {} outputs match the golden model{}",
                self.checked - self.mismatches,
                self.checked,
                if self.mismatches > 0 {
                    "  <-- MISMATCH"
                } else {
                    ""
                }
            ),
        );
        let l = &self.latency_ns;
        row(
            &mut s,
            "latency ns",
            format!(
                "p50 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  (budget {:.1})",
                l.p50, l.p99, l.p999, l.max, self.budget_ns
            ),
        );
        if let Some(l) = &self.latency_cycles {
            row(
                &mut s,
                "latency cycles",
                format!("min {}  p50 {}  p99 {}  max {}", l.min, l.p50, l.p99, l.max),
            );
        }
        if let Some(l) = &self.interval_cycles {
            row(
                &mut s,
                "interval cycles",
                format!("min {}  mean {:.2}  max {}", l.min, l.mean, l.max),
            );
        }
        if let Some(q) = &self.queue {
            row(
                &mut s,
                "input FIFO",
                format!(
                    "depth {}: max {} mean {:.2}",
                    q.fifo_depth, q.max_depth, q.mean_depth
                ),
            );
        }
        row(
            &mut s,
            "throughput",
            format!("{:.3} MHz", self.throughput_mhz),
        );
        if let Some(c) = &self.cpu {
            if let Some(m) = c.max_throughput_mhz {
                row(
                    &mut s,
                    "max throughput",
                    format!("{m:.3} MHz (backpressure)"),
                );
            }
            if let Some(r) = &c.search {
                row(&mut s, "rate search", r.summary());
            }
            if let Some(st) = &c.stalls {
                row(&mut s, "machine", st.summary());
            }
        }
        row(&mut s, "wall time", format!("{:.2} s", self.wall_s));
        if self.pass {
            let _ = writeln!(s, "  PASS");
        } else {
            let _ = writeln!(s, "  FAIL");
            for f in &self.failures {
                let _ = writeln!(s, "    - {f}");
            }
        }
        for p in &self.plots {
            let _ = writeln!(s, "  wrote {p}");
        }
        s
    }
}
