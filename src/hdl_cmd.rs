//! `bxflow hdl` and `bxflow synth`: FPGA kernel export and Yosys figures.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use hdl::export::write_export;
use hdl::{build_kernel, Options, Strategy};
use quantize::qmodel::QModel;

#[derive(clap::Args)]
pub struct HdlArgs {
    /// Quantized model (.bxq), or an ONNX model quantized on the fly with the default configuration.
    pub model: PathBuf,
    /// Output directory.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Target clock, e.g. 200MHz or 250 (MHz).
    #[arg(long, default_value = "200MHz")]
    pub clock: String,
    /// Multiplications by constant weights: dsp or shift-add (no DSP).
    #[arg(long, default_value = "shift-add")]
    pub strategy: String,
    /// Reuse factor of every Dense layer, like hls4ml's ReuseFactor: each
    /// multiplier is shared N times, so the kernel takes an event every N
    /// cycles (II = N, `in_ready` low in between) with about 1/N of the
    /// multipliers. Default: each layer's `reuse_factor` from the model's
    /// configuration (1 unless set). Conv layers support 1 only.
    #[arg(long)]
    pub reuse: Option<u32>,
    /// Pipeline stages hold this many 16-bit adder levels (0.5 ns each) instead
    /// of what the --clock period allows (default).
    #[arg(long)]
    pub levels: Option<u32>,
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
    /// FPGA family for `synth_xilinx -family` (xcup: UltraScale+).
    #[arg(long, default_value = "xcup")]
    pub family: String,
    /// Also write the report as JSON here (default: DIR/synth.json).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

fn parse_clock(s: &str) -> Result<f64> {
    let t = s.trim().to_ascii_lowercase();
    let (num, scale) = if let Some(n) = t.strip_suffix("ghz") {
        (n, 1000.0)
    } else if let Some(n) = t.strip_suffix("mhz") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix("ns") {
        let p: f64 = n
            .trim()
            .parse()
            .with_context(|| format!("bad clock '{s}'"))?;
        return Ok(1000.0 / p);
    } else {
        (t.as_str(), 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .with_context(|| format!("bad clock '{s}': use e.g. 200MHz"))?;
    if v.is_nan() || v <= 0.0 {
        bail!("clock must be positive");
    }
    Ok(v * scale)
}

fn load_model(path: &std::path::Path, precision: Option<&str>) -> Result<QModel> {
    let is_onnx = path.extension().map(|e| e == "onnx").unwrap_or(false);
    if is_onnx {
        let g = quantize::onnx::import_path(path)?;
        let cfg = match precision {
            // As `bxflow quantize` reads it: without modes, RND and SAT.
            Some(p) => quantize::config::Config::uniform(crate::modelcmd::parse_precision(p)?),
            None => quantize::config::Config::default(),
        };
        Ok(quantize::quantizer::quantize_graph(&g, &cfg)?)
    } else {
        if precision.is_some() {
            bail!("--precision applies to ONNX input only; a .bxq model is already quantized");
        }
        Ok(quantize::bxq::load(path)?)
    }
}

pub fn run_hdl(a: HdlArgs) -> Result<()> {
    let t0 = std::time::Instant::now();
    let model = load_model(&a.model, a.precision.as_deref())
        .with_context(|| format!("loading {}", a.model.display()))?;
    let model = match &a.layers {
        None => model,
        Some(r) => {
            let (f, l) = r.split_once(':').unwrap_or((r, r));
            let parse = |x: &str| {
                x.trim()
                    .parse::<usize>()
                    .with_context(|| format!("--layers {r}: expected FIRST[:LAST]"))
            };
            let m = hdl::slice_layers(&model, parse(f)?, parse(l)?).map_err(anyhow::Error::msg)?;
            let names: Vec<&str> = m.layers.iter().map(|l| l.name.as_str()).collect();
            println!("layers {r}: {}", names.join(", "));
            m
        }
    };
    let strategy: Strategy = a.strategy.parse().map_err(anyhow::Error::msg)?;
    let opts = Options {
        strategy,
        clock_mhz: parse_clock(&a.clock)?,
        levels: a.levels,
        reuse: a.reuse,
    };
    let k = build_kernel(&model, &opts)?;
    let events = hdl::export::random_events(&model, a.vectors, 1);
    let v = write_export(&a.output, &k, &model, &events)?;
    let st = k.stats();
    println!(
        "{}: latency {} cycles ({:.1} ns at {} MHz), II {}, {} ps of logic/stage, strategy {}",
        v.display(),
        k.latency,
        k.latency as f64 * 1000.0 / opts.clock_mhz,
        opts.clock_mhz,
        k.ii,
        opts.budget_ps(),
        a.strategy
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

pub fn run_synth(a: SynthArgs) -> Result<()> {
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(a.dir.join("manifest.json")).with_context(|| {
            format!(
                "{} is not a `bxflow hdl` export (no manifest.json)",
                a.dir.display()
            )
        })?,
    )?;
    let module = manifest["module"]
        .as_str()
        .context("manifest has no module")?;
    let v = a.dir.join(format!("{module}.v"));
    let r = hdl::synth::synth(&v, module, &a.family)?;
    print!("{}", r.table());
    println!(
        "latency {} cycles, II {}, target {} MHz; LUT + 55 x DSP = {}",
        manifest["latency_cycles"],
        manifest["ii"],
        manifest["clock_mhz"],
        r.lut + 55 * r.dsp
    );
    let mut j = serde_json::to_value(&r)?;
    j["latency_cycles"] = manifest["latency_cycles"].clone();
    j["ii"] = manifest["ii"].clone();
    j["clock_mhz"] = manifest["clock_mhz"].clone();
    let out = a.json.unwrap_or_else(|| a.dir.join("synth.json"));
    std::fs::write(&out, serde_json::to_string_pretty(&j)?)?;
    println!("wrote {}", out.display());
    Ok(())
}
