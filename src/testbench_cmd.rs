//! `bxflow testbench` and `bxflow demo`.
//!
//! * `testbench MODEL --target fpga|cpu`: streams events at a rate through
//!   the FPGA kernel's cycle-level simulation (Verilator or the netlist
//!   simulator) or the CPU engine's pipeline; latency, losses, bit-exactness
//!   against the golden model, pass/fail against a latency budget; terminal
//!   summary, JSON report and SVG plots.
//! * `demo`: the whole flow on the shipped jet tagger, on one page.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use testbench::{
    load_model, parse_mhz, parse_ns, run_cpu, run_fpga, Arrivals, CpuConfig, EventPool, FpgaConfig,
    Report, SimChoice,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    Fpga,
    Cpu,
}

#[derive(clap::Args, Debug)]
pub struct TestbenchArgs {
    /// Quantized model (.bxq), or an .onnx quantized at the default precision.
    pub model: PathBuf,
    /// What runs the network: the FPGA kernel (cycle-level simulation) or the CPU engine.
    #[arg(long, value_enum, default_value = "fpga")]
    pub target: Target,
    /// Offered mean event rate (e.g. 40MHz). CPU target: `max` streams as fast as possible.
    #[arg(long, default_value = "40MHz")]
    pub rate: String,
    /// FPGA kernel clock.
    #[arg(long, default_value = "200MHz")]
    pub clock: String,
    /// Events to stream.
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Latency budget: pass requires every event's latency within it (e.g. 1us, 500ns).
    #[arg(long, default_value = "1us")]
    pub budget: String,
    /// Arrival process with the given mean rate: fixed, poisson, burst.
    #[arg(long, default_value = "fixed")]
    pub arrivals: String,
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
    #[arg(long, default_value = "auto")]
    pub sim: String,
    /// FPGA: depth of the input FIFO in front of the kernel, events.
    #[arg(long, default_value_t = 16)]
    pub fifo: usize,
    /// FPGA kernel: reuse factor of every Dense layer (II = N: an event every
    /// N cycles); default: the model's configuration.
    #[arg(long)]
    pub reuse: Option<u32>,
    /// FPGA: also write a VCD waveform of the first K events (ports and
    /// every input and output field) to the --report directory, or here.
    #[arg(long, default_value_t = 0, value_name = "K")]
    pub vcd: usize,
    /// FPGA: initiation interval the driver keeps, when larger than the
    /// kernel's (models a reuse factor without building it).
    #[arg(long)]
    pub ii: Option<u32>,
    /// FPGA kernel: multiplications as shift-add (default) or dsp.
    #[arg(long, default_value = "shift-add")]
    pub strategy: String,
    /// CPU: pipeline worker threads (0: automatic).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// CPU: events per pipeline batch.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// CPU: capacity of the pipeline's input queue, in batches. Under
    /// overload a batch finding it full is dropped (and counted), so a short
    /// queue keeps the latency of the events that get through bounded, as a
    /// trigger's buffers do; a long one trades latency for fewer drops.
    #[arg(long, default_value_t = testbench::cpu::CpuConfig::default().queue)]
    pub queue: usize,
    /// Distinct generated events (cycled beyond that) when no --input is given.
    #[arg(long, default_value_t = testbench::stream::DEFAULT_POOL)]
    pub pool: usize,
    /// Skip the throughput-against-offered-rate measurement.
    #[arg(long)]
    pub no_sweep: bool,
    /// Print the JSON report instead of the table.
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

fn model_name(path: &Path, m: &quantize::qmodel::QModel) -> String {
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
        r.write(d)?;
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
        clock_mhz: parse_mhz(&a.clock).map_err(anyhow::Error::msg)?,
        rate_mhz: parse_mhz(&a.rate).map_err(anyhow::Error::msg)?,
        events: a.events,
        budget_ns: parse_ns(&a.budget).map_err(anyhow::Error::msg)?,
        arrivals: a.arrivals.parse::<Arrivals>().map_err(anyhow::Error::msg)?,
        fifo_depth: a.fifo.max(1),
        seed: a.seed,
        sim: a.sim.parse::<SimChoice>().map_err(anyhow::Error::msg)?,
        ii: a.ii,
        progress: a.events >= 100_000,
        sweep: !a.no_sweep,
        work_dir: work_dir(),
        ..FpgaConfig::default()
    })
}

/// Where Verilated models are cached: next to the build (target/), else the temp dir.
fn work_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|p| p.join("bxflow-verilator")))
        .unwrap_or_else(|| std::env::temp_dir().join("bxflow-verilator"))
}

pub fn run_testbench(a: TestbenchArgs) -> Result<()> {
    let m = load_model(&a.model)?;
    let name = model_name(&a.model, &m);
    let r = match a.target {
        Target::Fpga => {
            let cfg = fpga_config(&a)?;
            let opts = hdl::Options {
                strategy: a.strategy.parse().map_err(anyhow::Error::msg)?,
                clock_mhz: cfg.clock_mhz,
                reuse: a.reuse,
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
            let rate = if a.rate.eq_ignore_ascii_case("max") {
                None
            } else {
                Some(parse_mhz(&a.rate).map_err(anyhow::Error::msg)?)
            };
            let cfg = CpuConfig {
                rate_mhz: rate,
                events: a.events,
                arrivals: a.arrivals.parse::<Arrivals>().map_err(anyhow::Error::msg)?,
                budget_ns: parse_ns(&a.budget).map_err(anyhow::Error::msg)?,
                workers: a.workers,
                batch: a.batch.max(1),
                queue: a.queue.max(1),
                seed: a.seed,
                progress: a.events >= 1_000_000,
                sweep: !a.no_sweep,
                sweep_events: (a.events / 5).clamp(10_000, 500_000),
                ..CpuConfig::default()
            };
            let engine = Arc::new(engine::Engine::new(&m)?);
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

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// The ONNX model (default: the shipped jet tagger).
    #[arg(long, default_value = "models/three_layer_keras.onnx")]
    pub model: PathBuf,
    /// Where the artifact, reports and plots go.
    #[arg(long, default_value = "bxflow-demo")]
    pub out: PathBuf,
    /// Events through the FPGA testbench with Verilator (at most 5,000 with
    /// rust-hdl's simulator when Verilator is not installed).
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,
    /// Latency budget.
    #[arg(long, default_value = "1us")]
    pub budget: String,
    /// Skip tract in the CPU benchmark.
    #[arg(long)]
    pub no_tract: bool,
    /// Also run Yosys synth_xilinx (in the background, stopped at --synth-deadline):
    /// LUT/FF/DSP figures. Off by default: on a 2-core machine it takes minutes.
    #[arg(long)]
    pub synth: bool,
    /// Yosys (run in the background) is stopped when the demo has run this long, s.
    #[arg(long, default_value_t = 110)]
    pub synth_deadline: u64,
}

/// `yosys synth_xilinx` as a child process that can be stopped.
struct Yosys {
    child: std::process::Child,
    dir: PathBuf,
    module: String,
    family: String,
    t0: Instant,
}

impl Yosys {
    fn start(verilog: &Path, module: &str, family: &str) -> Result<Yosys> {
        let dir = verilog.parent().unwrap_or(Path::new(".")).to_path_buf();
        let script = format!(
            "read_verilog {}; synth_xilinx -family {family} -top {module}; tee -o {} stat; tee -o {} ltp -noff",
            verilog.display(),
            dir.join("yosys_stat.txt").display(),
            dir.join("yosys_ltp.txt").display()
        );
        let child = std::process::Command::new("yosys")
            .args([
                "-q",
                "-l",
                &dir.join("yosys.log").display().to_string(),
                "-p",
                &script,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting yosys")?;
        Ok(Yosys {
            child,
            dir,
            module: module.into(),
            family: family.into(),
            t0: Instant::now(),
        })
    }

    /// Waits at most `timeout`; stops yosys if it is still running.
    fn finish(&mut self, timeout: std::time::Duration) -> Result<hdl::synth::SynthReport, String> {
        let end = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(st)) if st.success() => break,
                Ok(Some(st)) => {
                    return Err(format!(
                        "yosys exited with {st}; see {}",
                        self.dir.join("yosys.log").display()
                    ))
                }
                Ok(None) if Instant::now() >= end => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(format!(
                        "yosys stopped after {:.0} s (the demo keeps under two minutes); for the figures run bxflow synth, or bxflow demo --synth --synth-deadline 900",
                        self.t0.elapsed().as_secs_f64()
                    ));
                }
                Ok(None) => std::thread::sleep(std::time::Duration::from_millis(200)),
                Err(e) => return Err(e.to_string()),
            }
        }
        let text = format!(
            "{}\n{}",
            std::fs::read_to_string(self.dir.join("yosys_stat.txt")).unwrap_or_default(),
            std::fs::read_to_string(self.dir.join("yosys_ltp.txt")).unwrap_or_default()
        );
        let mut r = hdl::synth::parse_yosys_log(&text, &self.module, &self.family);
        r.seconds = self.t0.elapsed().as_secs_f64();
        Ok(r)
    }
}

pub fn run_demo(a: DemoArgs) -> Result<()> {
    let t0 = Instant::now();
    let step = |s: &str| eprintln!("[{:5.1} s] {s}", t0.elapsed().as_secs_f64());
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let budget_ns = parse_ns(&a.budget).map_err(anyhow::Error::msg)?;

    step(&format!("import {}", a.model.display()));
    let g = quantize::onnx::import_path(&a.model)
        .with_context(|| format!("importing {}", a.model.display()))?;
    step("auto precision search");
    let calib = quantize::calibrate::default_events(&g, 10_000, 1);
    let auto = quantize::auto::auto_precision(&g, &calib, &quantize::auto::AutoOptions::default())?;
    let m = auto.model.clone();
    let bxq_path = a.out.join("model.bxq");
    quantize::bxq::save(&m, &bxq_path)?;
    // Accuracy on events not used by the search.
    let test_ev = quantize::calibrate::default_events(&g, 5_000, 2);
    let acc = quantize::calibrate::compare(
        &quantize::calibrate::float_outputs(&g, &test_ev),
        &quantize::calibrate::fixed_outputs(&m, &test_ev),
    );
    let name = model_name(&a.model, &m);

    step("CPU engine vs tract");
    let engine = engine::Engine::new(&m)?;
    let bo = crate::bench::BenchOptions {
        events: 50_000,
        runs: 3,
        stream_events: 2_000_000,
        no_tract: a.no_tract,
        ..crate::bench::BenchOptions::default()
    };
    let bench = crate::bench::report(engine, Some(&a.model), &bo);

    step("FPGA kernel");
    let k = hdl::build_kernel(&m, &hdl::Options::default())?;
    let vpath = a.out.join(format!("{}.v", k.name));
    std::fs::write(&vpath, k.verilog())?;
    let pool = EventPool::generated(
        &m,
        a.events.max(1_000_000),
        testbench::stream::DEFAULT_POOL,
        1,
    )?;

    // CPU first, while the machine is quiet.
    step("CPU testbench: 1,000,000 events at 40 MHz, then the rate sweep");
    let ccfg = CpuConfig {
        events: 1_000_000,
        budget_ns: budget_ns.max(1.0),
        sweep_events: 200_000,
        progress: true,
        ..CpuConfig::default()
    };
    let rep_dir = a.out.join("reports");
    let mut cr = run_cpu(&name, &pool, Arc::new(engine::Engine::new(&m)?), &ccfg)?;
    cr.write(&rep_dir)?;

    // Yosys runs beside the Verilator build and the FPGA run, and is stopped
    // if it has not finished by the demo's deadline.
    let mut yosys = if a.synth && hdl::export::tool_available("yosys") {
        step("yosys synth_xilinx started in the background");
        Some(Yosys::start(&vpath, &k.name, "xcup")?)
    } else {
        None
    };

    let have_verilator = testbench::verilator::available();
    // rust-hdl's simulator runs a few hundred events per second here.
    let fpga_events = if have_verilator {
        a.events
    } else {
        a.events.min(5_000)
    };
    step(&format!(
        "FPGA testbench: {fpga_events} events at 40 MHz via {}",
        if have_verilator {
            "Verilator (built on first use, then cached)"
        } else {
            "rust-hdl's simulator (Verilator not installed)"
        }
    ));
    let fcfg = FpgaConfig {
        events: fpga_events,
        budget_ns,
        sim: if have_verilator {
            SimChoice::Verilator
        } else {
            SimChoice::RustHdl
        },
        progress: true,
        work_dir: work_dir(),
        ..FpgaConfig::default()
    };
    let mut fr = run_fpga(&name, &pool, &k, &fcfg)?;
    fr.write(&rep_dir)?;

    let synth = yosys.as_mut().map(|y| {
        let left = a.synth_deadline.saturating_sub(t0.elapsed().as_secs());
        step(&format!("waiting up to {left} s for yosys"));
        y.finish(std::time::Duration::from_secs(left))
    });

    // The page.
    let kk = fr.kernel.as_ref().unwrap();
    let mut p = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(
        p,
        "\n================ bxflow demo: {} ================",
        name
    );
    let _ = writeln!(
        p,
        "model        {} ({} MACs/event), artifact {}",
        a.model.display(),
        m.macs(),
        bxq_path.display()
    );
    let _ = writeln!(
        p,
        "precision    input {}; {} evaluations of the auto search",
        m.input_ty.ap_string(),
        auto.evaluations
    );
    for l in &m.layers {
        let _ = writeln!(p, "             {:<24} {}", l.name, l.ty.ap_string());
    }
    let _ = writeln!(
        p,
        "accuracy     {:.2}% same class as float on {} held-out events; max |error| {:.4}, mean {:.5}",
        100.0 * acc.argmax_agreement,
        acc.events,
        acc.max_abs_error,
        acc.mean_abs_error
    );
    let e = &bench.engine;
    let _ = writeln!(
        p,
        "CPU engine   {} | single event p50 {:.0} ns, p99 {:.0} ns | batch {:.2} M ev/s | stream {}",
        bench.isa,
        e.single_p50_ns,
        e.single_p99_ns,
        e.batch_events_per_s / 1e6,
        e.stream_events_per_s.map(|x| format!("{:.2} M ev/s", x / 1e6)).unwrap_or("-".into())
    );
    match (&bench.tract, &bench.tract_error) {
        (Some(t), _) => {
            let _ = writeln!(
                p,
                "  vs tract   p50 {:.0} ns ({:.1}x), batch {:.2} M ev/s ({:.1}x)",
                t.single_p50_ns,
                bench.speedup_p50.unwrap_or(0.0),
                t.batch_events_per_s / 1e6,
                bench.speedup_batch.unwrap_or(0.0)
            );
        }
        (None, Some(err)) => {
            let _ = writeln!(p, "  vs tract   not run: {err}");
        }
        _ => {}
    }
    let c = cr.cpu.as_ref().unwrap();
    let _ = writeln!(
        p,
        "CPU @40MHz   {} | {} of {} events delivered, {} dropped | latency p50 {:.0} ns, p99 {:.0} ns, p99.9 {:.0} ns, max {:.0} ns | sustained {:.2} MHz | no drops up to {} | bit-exact {}/{}",
        if cr.pass { "PASS" } else { "FAIL" },
        cr.delivered,
        cr.events,
        cr.lost,
        cr.latency_ns.p50,
        cr.latency_ns.p99,
        cr.latency_ns.p999,
        cr.latency_ns.max,
        cr.throughput_mhz,
        c.max_rate_without_drops_mhz.map(|x| format!("{x:.2} MHz")).unwrap_or("-".into()),
        cr.checked - cr.mismatches,
        cr.checked
    );
    let lc = fr.latency_cycles.clone().unwrap_or_default();
    let _ = writeln!(
        p,
        "FPGA @40MHz  {} | {} events via {} at 200 MHz | latency {} cycles = {:.1} ns (max {:.0} cycles = {:.1} ns, budget {:.0} ns) | II {} (needs <= {}) | lost {} | bit-exact {}/{}",
        if fr.pass { "PASS" } else { "FAIL" },
        fr.events,
        kk.simulator,
        kk.declared_latency,
        kk.declared_latency as f64 * 1000.0 / 200.0,
        lc.max,
        fr.latency_ns.max,
        budget_ns,
        kk.driver_ii,
        kk.max_ii_for_rate,
        fr.lost,
        fr.checked - fr.mismatches,
        fr.checked
    );
    let st = k.stats();
    let _ = writeln!(
        p,
        "resources    netlist: {} adders ({} bits), {} registers ({} bits), ~{} LUT, {} DSP (estimate)",
        st.adders, st.adder_bits, st.registers, st.register_bits, st.lut_estimate, st.dsp_estimate
    );
    // The most multiplier sharing that still keeps up with the rate.
    let r = kk.max_ii_for_rate;
    if r > 1 {
        let o = hdl::Options {
            reuse: Some(r),
            ..hdl::Options::default()
        };
        if let Ok(kr) = hdl::build_kernel(&m, &o) {
            let _ = writeln!(
                p,
                "  sharing    --reuse {r} still keeps 40 MHz (II {}): latency {} cycles, {} multipliers for {} products (bxflow hdl --reuse {r})",
                kr.ii,
                kr.latency,
                kr.stats().multipliers,
                m.macs()
            );
        }
    }
    match synth {
        Some(Ok(s)) => {
            let _ = writeln!(
                p,
                "  yosys      {}: {} LUT, {} FF, {} DSP, {} BRAM, {} logic levels ({:.0} s)",
                s.family,
                s.lut,
                s.ff,
                s.dsp,
                s.bram,
                s.logic_levels.map(|l| l.to_string()).unwrap_or("?".into()),
                s.seconds
            );
        }
        Some(Err(e)) => {
            let _ = writeln!(p, "  yosys      failed: {e}");
        }
        None => {
            let _ = writeln!(
                p,
                "  yosys      {}",
                if hdl::export::tool_available("yosys") {
                    "installed, not run (minutes on 2 cores): bxflow demo --synth, or bxflow synth"
                } else {
                    "not installed: netlist estimate only"
                }
            );
        }
    }
    if !have_verilator {
        let _ = writeln!(p, "note         Verilator is not installed: the FPGA run used rust-hdl's simulator with {fpga_events} events");
    }
    for f in fr
        .failures
        .iter()
        .map(|f| format!("FPGA: {f}"))
        .chain(cr.failures.iter().map(|f| format!("CPU: {f}")))
    {
        let _ = writeln!(p, "failure      {f}");
    }
    let _ = writeln!(
        p,
        "written      {} (Verilog {})",
        rep_dir.display(),
        vpath.display()
    );
    for x in fr.plots.iter().chain(&cr.plots) {
        let _ = writeln!(p, "             {x}");
    }
    let _ = writeln!(p, "total        {:.1} s", t0.elapsed().as_secs_f64());
    print!("{p}");
    std::fs::write(a.out.join("summary.txt"), &p)?;
    Ok(())
}
