//! `bxflow testbench MODEL --target fpga|cpu`: streams events at a rate
//! through the FPGA kernel's cycle-level simulation (Verilator or the netlist
//! simulator) or the CPU engine's pipeline; latency, losses, bit-exactness
//! against the golden model, pass/fail against a latency budget; terminal
//! summary, JSON report and SVG plots.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use testbench::{
    run_cpu, run_fpga, write_report, Arrivals, BudgetAt, CpuConfig, EventPool, FpgaConfig, Report,
    SimChoice, Target,
};

use testbench::units::{self, Mhz, Ns, Rate};

#[derive(clap::Args, Debug)]
pub struct TestbenchArgs {
    /// Quantized model (.bxq), or an .onnx quantized at the default precision.
    pub model: PathBuf,
    /// What runs the network: the FPGA kernel (cycle-level simulation) or the CPU engine.
    #[arg(long, value_enum, default_value = "fpga")]
    pub target: Target,
    /// Offered mean event rate (e.g. 40MHz, 750kHz). CPU target: `max` streams as fast as possible.
    #[arg(long, default_value = "40MHz", value_parser = units::parse_rate)]
    pub rate: Rate,
    /// FPGA kernel clock: a frequency (200MHz) or a period (5ns).
    #[arg(long, default_value = "200MHz", value_parser = units::parse_frequency)]
    pub clock: Mhz,
    /// Events to stream.
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Latency budget: pass requires the --budget-at latency within it
    /// (e.g. 1us, 500ns).
    #[arg(long, default_value = "1us", value_parser = units::parse_time)]
    pub budget: Ns,
    /// Which latency the budget bounds: every event's (max), or for a CPU
    /// stage on a general-purpose OS a quantile (p99, p99.9), since one
    /// preemption in a million events is not a lost trigger. The CPU rate
    /// search holds the same one. FPGA runs always hold max.
    #[arg(long, value_enum, default_value_t = BudgetAt::Max)]
    pub budget_at: BudgetAt,
    /// Arrival process with the given mean rate.
    #[arg(long, value_enum, default_value_t = Arrivals::Fixed)]
    pub arrivals: Arrivals,
    /// Events file (.npy, [N, features...]); cycled if shorter than --events.
    /// Default: generated N(0,1) events.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Directory for the JSON report and the SVG plots.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// FPGA: simulator: auto (Verilator for large runs when installed),
    /// verilator, rust (the netlist simulator), or rust-hdl (the kernel as a
    /// rust-hdl block in rust-hdl's own simulator; slowest, for small runs).
    #[arg(long, value_enum, default_value_t = SimChoice::Auto)]
    pub sim: SimChoice,
    /// FPGA: depth of the input FIFO in front of the kernel, events.
    #[arg(long, default_value_t = 16)]
    pub fifo: usize,
    /// FPGA kernel: reuse factor of every Dense layer (II = N: an event every
    /// N cycles); default: the model's configuration.
    #[arg(long)]
    pub reuse: Option<u32>,
    /// FPGA kernel: recurrent layers unrolled (II 1) or reused, one cell
    /// per layer that each sequence goes round once per time step (see
    /// `bxflow hdl --help`).
    #[arg(long, value_enum, default_value_t = hdl::Recurrent::Unrolled)]
    pub recurrent: hdl::Recurrent,
    /// FPGA: also write a VCD waveform of the first K events (ports and
    /// every input and output field) to the --report directory, or here.
    #[arg(long, default_value_t = 0, value_name = "K")]
    pub vcd: usize,
    /// FPGA: initiation interval the driver keeps, when larger than the
    /// kernel's (models a reuse factor without building it).
    #[arg(long)]
    pub ii: Option<u32>,
    /// FPGA kernel: multiplications as shift-add (no DSP) or dsp.
    #[arg(long, value_enum, default_value_t = hdl::Strategy::ShiftAdd)]
    pub strategy: hdl::Strategy,
    /// CPU: force the engine's kernel family (e.g. avx2 on an AVX-512
    /// machine); default: the best this CPU has.
    #[arg(long, value_enum, ignore_case = true)]
    pub isa: Option<engine::isa::Isa>,
    /// CPU: pipeline worker threads (0: automatic).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// CPU: events per pipeline batch.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// CPU: the longest an arrived event waits before it is handed to the
    /// pipeline and sent, partial batch or not (e.g. 10us). Longer lets one
    /// wake-up serve more events, which a machine shared with other work
    /// needs (try 20us-50us there); shorter adds less latency.
    #[arg(long, default_value = "10us", value_parser = units::parse_time)]
    pub max_wait: Ns,
    /// CPU: how long an idle worker polls for the next batch before it
    /// sleeps, and the longest gap between arrivals the paced driver waits
    /// out polling (0: always sleep). Polling saves the tens of microseconds
    /// a sleeping thread takes to wake, but holds a core: on a machine
    /// shared with other work keep it short.
    #[arg(long, default_value = "20us", value_parser = units::parse_wait)]
    pub spin: Ns,
    /// CPU: capacity of the pipeline's input queue, in batches. Under
    /// overload a batch finding it full is dropped (and counted), so a short
    /// queue keeps the latency of the events that get through bounded, as a
    /// trigger's buffers do; a long one trades latency for fewer drops.
    #[arg(long, default_value_t = testbench::cpu::CpuConfig::default().queue)]
    pub queue: usize,
    /// Distinct generated events (cycled beyond that) when no --input is given.
    #[arg(long, default_value_t = testbench::stream::DEFAULT_POOL)]
    pub pool: usize,
    /// Skip the throughput-against-offered-rate measurement and (CPU) the
    /// search for the highest rate that holds the budget.
    #[arg(long)]
    pub no_sweep: bool,
    /// CPU: runs per rate tried by the rate search; a rate passes only if
    /// every run at it loses nothing, is bit-exact and holds the budget.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Print the JSON report instead of the table.
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

pub(crate) fn model_name(path: &Path, m: &quantize::qmodel::QModel) -> String {
    if m.name.is_empty() {
        path.file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default()
    } else {
        m.name.clone()
    }
}

fn pool_for(
    m: &quantize::qmodel::QModel,
    input: Option<&Path>,
    events: u64,
    pool: usize,
    seed: u64,
) -> Result<EventPool> {
    Ok(match input {
        Some(p) => EventPool::from_npy(m, p, (events as usize).max(1))?,
        None => EventPool::generated(m, events, pool, seed)?,
    })
}

fn finish(mut r: Report, dir: Option<&Path>, json: bool) -> Result<Report> {
    if let Some(d) = dir {
        write_report(&mut r, d)?;
    }
    if json {
        println!("{}", r.to_json());
    } else {
        print!("{}", r.table());
    }
    Ok(r)
}

fn fpga_config(a: &TestbenchArgs) -> Result<FpgaConfig> {
    Ok(FpgaConfig {
        clock_mhz: a.clock.0,
        rate_mhz: match a.rate {
            Rate::Of(r) => r.0,
            Rate::Max => bail!(
                "--rate max streams as fast as the target goes, which only the CPU target does; give the FPGA target a rate such as 40MHz"
            ),
        },
        events: a.events,
        budget_ns: a.budget.0,
        arrivals: a.arrivals,
        fifo_depth: a.fifo.max(1),
        seed: a.seed,
        sim: a.sim,
        ii: a.ii,
        progress: a.events >= 100_000,
        sweep: !a.no_sweep,
        work_dir: work_dir(),
        ..FpgaConfig::default()
    })
}

/// Where Verilated models are cached: next to the build (target/), else the temp dir.
pub(crate) fn work_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|p| p.join("bxflow-verilator")))
        .unwrap_or_else(|| std::env::temp_dir().join("bxflow-verilator"))
}

pub fn run_testbench(a: TestbenchArgs) -> Result<()> {
    let m = quantize::load_model(&a.model, None)?;
    let name = model_name(&a.model, &m);
    let r = match a.target {
        Target::Fpga => {
            let cfg = fpga_config(&a)?;
            let opts = hdl::Options {
                strategy: a.strategy,
                clock_mhz: cfg.clock_mhz,
                reuse: a.reuse,
                recurrent: a.recurrent,
                ..hdl::Options::default()
            };
            let k = hdl::build_kernel(&m, &opts).context("building the FPGA kernel")?;
            let pool = pool_for(&m, a.input.as_deref(), a.events, a.pool, a.seed)?;
            if a.vcd > 0 {
                let dir = a.report.clone().unwrap_or_else(|| PathBuf::from("."));
                std::fs::create_dir_all(&dir)?;
                let path = dir.join("waves.vcd");
                let events: Vec<Vec<i64>> = (0..a.vcd.min(pool.count()))
                    .map(|e| pool.input(e as u64).to_vec())
                    .collect();
                let f = std::fs::File::create(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
                let cycles = hdl::wave::write_vcd(&k, &events, std::io::BufWriter::new(f))
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!(
                    "waveform of the first {} events ({cycles} cycles, netlist simulator): {}",
                    events.len(),
                    path.display()
                );
            }
            finish(
                run_fpga(&name, &pool, &k, &cfg)?,
                a.report.as_deref(),
                a.json,
            )?
        }
        Target::Cpu => {
            let cfg = CpuConfig {
                rate_mhz: match a.rate {
                    Rate::Of(r) => Some(r.0),
                    Rate::Max => None,
                },
                events: a.events,
                arrivals: a.arrivals,
                budget_ns: a.budget.0,
                budget_at: a.budget_at,
                workers: a.workers,
                batch: a.batch.max(1),
                queue: a.queue.max(1),
                max_wait_ns: a.max_wait.0 as u64,
                spin_ns: a.spin.0 as u64,
                seed: a.seed,
                progress: a.events >= 1_000_000,
                sweep: !a.no_sweep,
                sweep_events: (a.events / 5).clamp(10_000, 500_000),
                search_repeats: a.repeats.max(1),
            };
            let eopts = engine::EngineOptions {
                isa: a.isa,
                ..engine::EngineOptions::default()
            };
            let engine = Arc::new(engine::Engine::with_options(&m, &eopts)?);
            let pool = pool_for(&m, a.input.as_deref(), a.events, a.pool, a.seed)?;
            finish(
                run_cpu(&name, &pool, engine, &cfg)?,
                a.report.as_deref(),
                a.json,
            )?
        }
    };
    if !r.pass {
        bail!("testbench failed: {}", r.failures.join("; "));
    }
    Ok(())
}
