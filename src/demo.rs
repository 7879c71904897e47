//! `bxflow demo`: the whole flow on the shipped jet tagger, on one page:
//! import, auto precision, accuracy against float, the CPU engine against
//! tract, the FPGA kernel, and the 40 MHz testbench on both targets.

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use testbench::{
    run_cpu, run_fpga, write_report, Arrivals, BudgetAt, CpuConfig, EventPool, FpgaConfig,
    SimChoice,
};

use crate::testbench_cmd::{model_name, work_dir};
use testbench::units::{self, Mhz, Ns};

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
    /// The FPGA kernel's latency budget, every event (e.g. 1us, 500ns).
    #[arg(long, default_value = "1us", value_parser = units::parse_time)]
    pub budget: Ns,
    /// The CPU stage's stated use: its event rate (default: the HL-LHC
    /// Level-1 accept rate, Poisson arrivals) ...
    #[arg(long, default_value = "750kHz", value_parser = units::parse_frequency)]
    pub cpu_rate: Mhz,
    /// ... and its latency budget, held at the 99th percentile.
    #[arg(long, default_value = "10us", value_parser = units::parse_time)]
    pub cpu_budget: Ns,
    /// Skip tract in the CPU benchmark.
    #[arg(long)]
    pub no_tract: bool,
    /// Force the CPU engine's kernel family (e.g. avx2 on an AVX-512
    /// machine, to see what an AVX2-only farm node gets); default: the
    /// best this CPU has.
    #[arg(long, value_enum, ignore_case = true)]
    pub isa: Option<engine::isa::Isa>,
    /// Also run Yosys synth_xilinx (in the background, stopped at --synth-deadline):
    /// LUT/FF/DSP figures. Off by default: on a 2-core machine it takes minutes.
    #[arg(long)]
    pub synth: bool,
    /// Yosys (run in the background) is stopped when the demo has run this long, s.
    #[arg(long, default_value_t = 110)]
    pub synth_deadline: u64,
}

/// `1 worker core`, `2 worker cores`.
fn workers_text(n: usize) -> String {
    format!("{n} worker core{}", if n == 1 { "" } else { "s" })
}

/// `0.75` as `750 kHz`, `40` as `40 MHz`.
fn rate_text(mhz: f64) -> String {
    if mhz < 1.0 {
        format!("{} kHz", mhz * 1e3)
    } else {
        format!("{mhz} MHz")
    }
}

pub fn run_demo(a: DemoArgs) -> Result<()> {
    let t0 = Instant::now();
    let step = |s: &str| eprintln!("[{:5.1} s] {s}", t0.elapsed().as_secs_f64());
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let budget_ns = a.budget.0;

    step(&format!("import {}", a.model.display()));
    let g = quantize::onnx::import_path(&a.model)
        .with_context(|| format!("importing {}", a.model.display()))?;
    step("auto precision search");
    let calib = quantize::calibrate::default_events(&g, 10_000, 1);
    let auto = quantize::auto::auto_precision(
        &g,
        &calib,
        &quantize::auto::AutoOptions::default(),
        &quantize::work::Work::default(),
    )?;
    let m = auto.model.clone();
    let bxq_path = a.out.join("model.bxq");
    quantize::bxq::save(&m, &bxq_path)?;
    // Accuracy on events not used by the search.
    let test_ev = quantize::calibrate::default_events(&g, 5_000, 2);
    let acc = quantize::calibrate::compare(
        &quantize::calibrate::float_outputs(&g, &test_ev, &quantize::work::Work::default()),
        &quantize::calibrate::fixed_outputs(&m, &test_ev, &quantize::work::Work::default()),
    );
    let name = model_name(&a.model, &m);

    step("CPU engine vs tract");
    let eopts = engine::EngineOptions {
        isa: a.isa,
        ..engine::EngineOptions::default()
    };
    let engine = engine::Engine::with_options(&m, &eopts)?;
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
    let cpu_rate = a.cpu_rate.0;
    step(&format!(
        "CPU testbench: the stated use ({} Poisson, p99 <= {:.1} us), the rate search, 40 MHz capacity",
        rate_text(cpu_rate),
        a.cpu_budget.0 / 1e3
    ));
    let ccfg = CpuConfig {
        rate_mhz: Some(cpu_rate),
        events: 1_000_000,
        arrivals: Arrivals::Poisson,
        budget_ns: a.cpu_budget.0.max(1.0),
        budget_at: BudgetAt::P99,
        // A software stage's settings for a few-microsecond budget: small
        // batches sent within 3 us, a deep front buffer (a DAQ node's), and
        // workers and driver that poll gaps shorter than 20 us.
        batch: 8,
        max_wait_ns: 3_000,
        queue: 1024,
        sweep_events: 200_000,
        progress: true,
        ..CpuConfig::default()
    };
    let rep_dir = a.out.join("reports");
    let cpu_engine = Arc::new(engine::Engine::with_options(&m, &eopts)?);
    let mut cr = run_cpu(&name, &pool, cpu_engine.clone(), &ccfg)?;
    write_report(&mut cr, &rep_dir)?;
    // The 40 MHz attempt, as a capacity figure: what one paced run keeps up with.
    let at40 = testbench::cpu::stream(&pool, &cpu_engine, &ccfg, Some(40.0), 1_000_000, false)?;

    // Yosys runs beside the Verilator build and the FPGA run, and is stopped
    // if it has not finished by the demo's deadline.
    let mut yosys = if a.synth && hdl::eda::tool_available("yosys") {
        step("yosys synth_xilinx started in the background");
        Some(hdl::synth::SynthRun::start(
            std::slice::from_ref(&vpath),
            &k.name,
            hdl::Family::Xcup,
        )?)
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
    write_report(&mut fr, &rep_dir)?;

    let synth = yosys.as_mut().map(|y| {
        let left = a.synth_deadline.saturating_sub(t0.elapsed().as_secs());
        step(&format!("waiting up to {left} s for yosys"));
        y.finish(Some(std::time::Duration::from_secs(left)))
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
        m.inputs
            .iter()
            .map(|i| i.ty.ap_string())
            .collect::<Vec<_>>()
            .join(", "),
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
        "CPU stage    {} | {} Poisson, {} events, {}: {} lost, latency p50 {:.1} us, p99 {:.1} us (budget {:.1} us), p99.9 {:.1} us, max {:.1} us | bit-exact {}/{}",
        if cr.pass { "PASS" } else { "FAIL" },
        rate_text(cpu_rate),
        cr.events,
        workers_text(c.workers),
        cr.lost,
        cr.latency_ns.p50 / 1e3,
        cr.latency_ns.p99 / 1e3,
        cr.budget_ns / 1e3,
        cr.latency_ns.p999 / 1e3,
        cr.latency_ns.max / 1e3,
        cr.checked - cr.mismatches,
        cr.checked
    );
    if let Some(s) = &c.search {
        let _ = writeln!(p, "  highest    {}", s.summary());
    }
    if let Some(s) = &c.stalls {
        let _ = writeln!(p, "  machine    {}", s.summary());
    }
    let at40 = at40.point();
    let _ = writeln!(
        p,
        "CPU @40MHz   capacity | backpressure {:.2} MHz on {}; paced at 40 MHz it sustained {:.2} MHz ({:.1} % of 1,000,000 events lost){}",
        c.max_throughput_mhz.unwrap_or(0.0),
        workers_text(c.workers),
        at40.achieved_mhz,
        100.0 * at40.lost as f64 / at40.events.max(1) as f64,
        c.max_throughput_mhz
            .filter(|&t| t > 0.0)
            .map(|t| format!(
                "; 40 MHz needs about {} worker cores at this rate per core",
                (40.0 / (t / c.workers as f64)).ceil()
            ))
            .unwrap_or_default()
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
        Some(Err(e @ hdl::eda::EdaError::Stopped { .. })) => {
            let _ = writeln!(
                p,
                "  yosys      {e} (the demo keeps under two minutes); for the figures run bxflow synth, or bxflow demo --synth --synth-deadline 900"
            );
        }
        Some(Err(e)) => {
            let _ = writeln!(p, "  yosys      failed: {e}");
        }
        None => {
            let _ = writeln!(
                p,
                "  yosys      {}",
                if hdl::eda::tool_available("yosys") {
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
