//! `bxflow hdl` and `bxflow synth`: FPGA kernel export and Yosys figures.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use hdl::export::write_export;
use hdl::{build_kernel, Options, Strategy};
use quantize::qmodel::QModel;

use testbench::units::{self, Mhz};

#[derive(clap::Args)]
pub struct HdlArgs {
    /// Quantized model (.bxq), or an ONNX model quantized on the fly with the default configuration.
    pub model: PathBuf,
    /// Output directory.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Target clock: a frequency (200MHz, 250, 1GHz) or a period (4ns).
    #[arg(long, default_value = "200MHz", value_parser = units::parse_frequency)]
    pub clock: Mhz,
    /// Percent of the --clock period kept out of each pipeline stage's
    /// logic, for clock jitter and the routing the delay model does not
    /// see (hls4ml's ClockUncertainty, same default). Lower it for fewer
    /// cycles at the same clock, then check the clock with `bxflow synth
    /// --place-route` (ECP5) or the Vivado script: on ECP5 the two-layer
    /// MLP at 8 bits takes 16 cycles at 100 MHz with 12.5 % and 9 with 0 %.
    #[arg(long, default_value_t = hdl::pipeline::DEFAULT_UNCERTAINTY_PCT, value_parser = parse_percent, value_name = "PERCENT")]
    pub clock_uncertainty: f64,
    /// Multiplications by constant weights: dsp, or shift-add (no DSP, but
    /// see --reuse).
    #[arg(long, value_enum, default_value_t = Strategy::ShiftAdd)]
    pub strategy: Strategy,
    /// Reuse factor of every Dense layer, like hls4ml's ReuseFactor: each
    /// multiplier is shared N times, so the kernel takes an event every N
    /// cycles (II = N, `in_ready` low in between) with about 1/N of the
    /// multipliers. Default: each layer's `reuse_factor` from the model's
    /// configuration (1 unless set). Conv layers support 1 only. A folded
    /// layer multiplies in DSPs whatever --strategy says: each multiplier
    /// takes another weight every cycle, which a network of constant shifts
    /// and adds cannot.
    #[arg(long)]
    pub reuse: Option<u32>,
    /// Recurrent layers (RNN, GRU, LSTM): unrolled, every time step its own
    /// hardware (II 1); or reused, one cell per layer that each sequence
    /// goes round once per step (a new sequence every T cycles for T steps,
    /// about 1/T of the area). The manifest's `cells` gives each loop.
    #[arg(long, value_enum, default_value_t = hdl::Recurrent::Unrolled)]
    pub recurrent: hdl::Recurrent,
    /// Verilog module name. Default: the model's name, with a suffix for
    /// each option that changes the hardware (`_r4` for --reuse 4, `_dsp`,
    /// `_cell`, `_250mhz`, `_l3`), so that two exports of one model can
    /// live in one design.
    #[arg(long)]
    pub module: Option<String>,
    /// Pipeline stages hold this many 16-bit adder levels (0.5 ns each) instead
    /// of what the --clock period allows (default).
    #[arg(long)]
    pub levels: Option<u32>,
    /// FPGA family: its delay model places the pipeline registers for
    /// --clock, and `bxflow synth` synthesizes (and for ECP5 places and
    /// routes) for it. xcup: AMD UltraScale+ (LUT6), from data-sheet figures;
    /// ecp5: Lattice ECP5 (LUT4), calibrated against nextpnr's place and route.
    #[arg(long, value_enum, default_value_t = hdl::Family::Xcup)]
    pub family: hdl::Family,
    /// Give the kernel a clock enable input `ce`: on an edge with `ce` low
    /// every register holds and no event is taken (reset still acts), and
    /// `out_valid` is low while `ce` is. The AXI4-Stream wrapper gets
    /// `aclken` for it.
    #[arg(long)]
    pub clock_enable: bool,
    /// Sum with two-input adders only. By default the UltraScale+ shift-add
    /// kernel sums three terms per adder (a LUT6_2 per bit and the CARRY8
    /// chain, AMD primitives in the Verilog, with simulation models): 45 %
    /// fewer LUTs on the jet tagger at fixed<16,6>, 3 cycles more latency
    /// and more registers. The module name gets `_bin`. The DSP strategy
    /// and ECP5 always use two-input adders.
    #[arg(long)]
    pub binary_adders: bool,
    /// For an ONNX model: uniform precision of every layer (default: the
    /// quantizer's default configuration), e.g. "fixed<16,6>"; as for
    /// `bxflow quantize`, no modes means RND and SAT.
    #[arg(long)]
    pub precision: Option<String>,
    /// Number of golden test vectors for the testbench.
    #[arg(long, default_value_t = 1000)]
    pub vectors: usize,
    /// Export only layers FIRST[:LAST] (0-based, inclusive) as their own
    /// kernel, e.g. for per-layer synthesis of a design too large for Yosys.
    #[arg(long)]
    pub layers: Option<String>,
}

#[derive(clap::Args)]
pub struct SynthArgs {
    /// Directory written by `bxflow hdl`.
    pub dir: PathBuf,
    /// FPGA family to synthesize for. Default: the family the export was
    /// built for (`bxflow hdl --family`).
    #[arg(long, value_enum)]
    pub family: Option<hdl::Family>,
    /// Also place and route (ECP5 exports only) with nextpnr-ecp5 out of
    /// context, the kernel between registers, and report the Fmax achieved
    /// against the clock it was built for. Exits with status 1 when the
    /// clock is not met.
    #[arg(long)]
    pub place_route: bool,
    /// ECP5 device for --place-route. Default: the smallest that holds the
    /// kernel at 85 % of its logic cells (a LUT4 takes one, a carry cell two).
    #[arg(long, value_enum)]
    pub device: Option<hdl::pnr::Ecp5Device>,
    /// nextpnr's placement seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Stop nextpnr after this many minutes (0: no limit) and say how far
    /// it got. The kernels that route here take 1 to 10 minutes on 2
    /// cores; one whose wiring is more than the device's routing holds
    /// (a 16-bit shift-add MLP at II 1) does not converge in hours.
    #[arg(long, default_value_t = 30, value_name = "MINUTES")]
    pub route_minutes: u64,
    /// Also write the report as JSON here (default: DIR/synth.json).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// A percentage, with or without its `%` sign (`12.5`, `5%`).
fn parse_percent(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let t = t.strip_suffix('%').unwrap_or(t).trim_end();
    t.parse::<f64>()
        .map_err(|_| format!("'{s}' is not a percentage: give a number such as 12.5 or 5%"))
}

/// The model to build: a `.bxq` as is, or an `.onnx` quantized at `--precision`
/// (read as `bxflow quantize` reads it: without modes, RND and SAT).
fn load_model(path: &std::path::Path, precision: Option<&str>) -> Result<QModel> {
    let cfg = precision
        .map(|p| crate::modelcmd::parse_precision(p).map(quantize::config::Config::uniform))
        .transpose()?;
    Ok(quantize::load_model(path, cfg.as_ref())?)
}

pub fn run_hdl(a: HdlArgs) -> Result<()> {
    let t0 = std::time::Instant::now();
    let model = load_model(&a.model, a.precision.as_deref())?;
    let model = match &a.layers {
        None => model,
        Some(r) => {
            let (f, l) = r.split_once(':').unwrap_or((r, r));
            let parse = |x: &str| {
                x.trim()
                    .parse::<usize>()
                    .with_context(|| format!("--layers {r}: expected FIRST[:LAST]"))
            };
            let m = hdl::slice_layers(&model, parse(f)?, parse(l)?)?;
            let names: Vec<&str> = m.layers.iter().map(|l| l.name.as_str()).collect();
            println!("layers {r}: {}", names.join(", "));
            m
        }
    };
    let opts = Options {
        strategy: a.strategy,
        clock_mhz: a.clock.0,
        clock_uncertainty: a.clock_uncertainty,
        levels: a.levels,
        reuse: a.reuse,
        recurrent: a.recurrent,
        module: a.module.clone(),
        family: a.family,
        clock_enable: a.clock_enable,
        binary_adders: a.binary_adders,
    };
    let k = build_kernel(&model, &opts)?;
    let events = hdl::export::random_events(&model, a.vectors, 1);
    let v = write_export(&a.output, &k, &model, &events)?;
    let st = k.stats();
    // Folded layers multiply whatever the strategy, so say which do.
    let folded = hdl::layer_reuse(&model, a.reuse)?
        .iter()
        .filter(|&&r| r > 1)
        .count();
    let strategy = match (a.strategy, folded) {
        (Strategy::ShiftAdd, 1..) => format!(
            "strategy shift-add ({folded} layer{} folded by reuse, multiplying in DSPs)",
            if folded == 1 { "" } else { "s" }
        ),
        (s, _) => format!("strategy {s}"),
    };
    println!(
        "{}: latency {} cycles ({:.1} ns at {} MHz), II {}, {} ps of logic/stage ({} delay model, {}), {strategy}",
        v.display(),
        k.latency,
        k.latency as f64 * 1000.0 / opts.clock_mhz,
        opts.clock_mhz,
        k.ii,
        opts.budget_ps(),
        a.family,
        match opts.levels {
            Some(l) => format!("--levels {l}"),
            None => format!("{} % clock uncertainty", opts.clock_uncertainty),
        },
    );
    println!(
        "estimate: {} adders ({} bits), {} multipliers, {} register bits, ~{} LUT, ~{} DSP; {} test vectors; {:.2} s",
        st.adders,
        st.adder_bits,
        st.multipliers,
        st.register_bits,
        st.lut_estimate,
        st.dsp_estimate,
        a.vectors,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `synth.json`: Yosys' figures with the kernel's timing from its manifest,
/// so one file says what the kernel costs and how fast it runs.
#[derive(serde::Serialize)]
struct SynthJson<'a> {
    #[serde(flatten)]
    report: &'a hdl::synth::SynthReport,
    latency_cycles: u32,
    ii: u32,
    clock_mhz: f64,
}

pub fn run_synth(a: SynthArgs) -> Result<()> {
    if a.place_route {
        return run_place_route(a);
    }
    let (manifest, r) = hdl::synth::synth_export(&a.dir, a.family)?;
    print!("{}", r.table());
    println!(
        "latency {} cycles, II {}, target {} MHz; LUT + 55 x DSP = {}",
        manifest.latency_cycles,
        manifest.ii,
        manifest.clock_mhz,
        r.lut + 55 * r.dsp
    );
    let j = SynthJson {
        report: &r,
        latency_cycles: manifest.latency_cycles,
        ii: manifest.ii,
        clock_mhz: manifest.clock_mhz,
    };
    let out = a.json.unwrap_or_else(|| a.dir.join("synth.json"));
    std::fs::write(&out, serde_json::to_string_pretty(&j)?)?;
    println!("wrote {}", out.display());
    Ok(())
}

/// `bxflow synth --place-route`: synthesis in the register harness, nextpnr,
/// the report as a table and as JSON (DIR/pnr.json unless --json).
fn run_place_route(a: SynthArgs) -> Result<()> {
    if let Some(f) = a.family.filter(|&f| f != hdl::Family::Ecp5) {
        anyhow::bail!("--place-route runs for --family ecp5 only, not {f}");
    }
    let limit = (a.route_minutes > 0).then(|| Duration::from_secs(60 * a.route_minutes));
    // A spinner with nextpnr's progress on a terminal (hidden otherwise).
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} place and route [{elapsed_precise}] {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    pb.enable_steady_tick(Duration::from_millis(200));
    pb.set_message("synthesis in the register harness (Yosys)");
    let r = hdl::pnr::place_route(&a.dir, a.device, a.seed, limit, &mut |p| {
        pb.set_message(p.to_string())
    });
    pb.finish_and_clear();
    let r = r?;
    print!("{}", r.table());
    let out = a.json.unwrap_or_else(|| a.dir.join("pnr.json"));
    std::fs::write(&out, serde_json::to_string_pretty(&r)?)?;
    println!("wrote {}", out.display());
    if !r.met {
        anyhow::bail!(
            "timing FAILED: {:.1} MHz achieved, {} MHz targeted; rebuild with a lower --clock (or report the delay model's miss)",
            r.fmax_mhz,
            r.target_mhz
        );
    }
    Ok(())
}
