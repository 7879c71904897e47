//! `inspect`, `quantize` and `eval`: the commands over the quantize crate.

use anyhow::{bail, Context, Result};
use clap::Args;
use quantize::auto::{auto_precision, AutoOptions, Budget};
use quantize::calibrate::{default_event_count, default_events, fixed_outputs, float_outputs};
use quantize::config::Config;
use quantize::fixed::FixedType;
use quantize::ir::Graph;
use quantize::qmodel::QModel;
use quantize::work::Work;
use quantize::{bxq, npy, onnx, quantizer, report};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use testbench::progress::progress_bar;

#[derive(Args)]
pub struct InspectArgs {
    /// ONNX model file (its layers as imported), or a quantized .bxq (each
    /// layer's result type, weight and accumulator types, MACs and reuse).
    pub model: PathBuf,
    /// Print the graph as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct QuantizeArgs {
    /// ONNX model file.
    pub model: PathBuf,
    /// Output .bxq file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Precision of every tensor, hls4ml or ap_fixed syntax. Without modes,
    /// bxflow rounds to nearest and saturates (RND, SAT): write
    /// 'fixed<16,6,TRN,WRAP>' for ap_fixed's own defaults.
    #[arg(long, default_value = "fixed<16,6>")]
    pub precision: String,
    /// TOML configuration with per-layer-type and per-layer overrides (see the README).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Choose types per layer from calibration data and an accuracy budget.
    #[arg(long)]
    pub auto: bool,
    /// Calibration events: .npy [events, features...] for a model of one
    /// input, else .npz of one such array per input, named after it; N(0,1)
    /// features by default.
    #[arg(long)]
    pub calib: Option<PathBuf>,
    /// Class labels for the calibration events (.npy), for per-class AUC in the report.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Number of generated calibration events when --calib is not given.
    /// Default: 5,000, fewer for costly models (at least 1,000; 500 with
    /// --auto) so the report takes about 10^10 multiply-accumulates and each
    /// of --auto's checks about 10^9.
    #[arg(long)]
    pub events: Option<usize>,
    /// --auto: minimum argmax agreement with float.
    #[arg(long, default_value_t = Budget::default().min_agreement)]
    pub min_agreement: f64,
    /// --auto: maximum output error, as a fraction of the largest float output.
    #[arg(long, default_value_t = Budget::default().max_rel_error)]
    pub max_error: f64,
    /// --auto: widest type (total bits) the search may give any tensor.
    #[arg(long, default_value_t = AutoOptions::default().max_width, value_parser = clap::value_parser!(u32).range(2..=64))]
    pub max_width: u32,
    /// Write the quantization report as JSON here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write the configuration that was used (useful after --auto) as TOML here.
    #[arg(long)]
    pub save_config: Option<PathBuf>,
    /// Threads evaluating events (0: every core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

#[derive(Args)]
pub struct EvalArgs {
    /// A .bxq model (fixed point, by the CPU engine or with --golden the
    /// golden model; outputs are the fixed-point values as float64) or an
    /// .onnx model (float reference).
    pub model: PathBuf,
    /// Input events: .npy [events, features...] for a model of one input,
    /// else .npz of one such array per input, named after it (np.savez).
    #[arg(long)]
    pub input: PathBuf,
    /// Output file: .npy float64 [events, output shape...] for a model of
    /// one output, else .npz of one array per output, named after it.
    #[arg(long)]
    pub output: PathBuf,
    /// Threads evaluating events (0: every core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Evaluate a .bxq with the golden model (the reference, one event at a
    /// time) instead of the CPU engine. The engine is bit-exact to it and
    /// many times faster; eval checks the first events against the golden
    /// model either way.
    #[arg(long)]
    pub golden: bool,
    /// Force the engine's kernel family (as `bxflow bench --isa`); the best
    /// this CPU has by default.
    #[arg(long, conflicts_with = "golden")]
    pub isa: Option<engine::Isa>,
}

/// The engine's outputs (dequantized) for `x` (flat events), on `isa` or
/// the best family this CPU has, on `threads`
/// threads, each with its own scratch; the first `sample` events are
/// checked against the golden model (on `work`), bit for bit.
/// Progress of the quantize crate's long phases on stderr: one bar per
/// phase, replaced when the next phase starts, cleared at the end. Drawn
/// only when stderr is a terminal, so scripted output stays clean.
#[derive(Default)]
struct Bars {
    current: Mutex<Option<(String, indicatif::ProgressBar)>>,
}

impl Bars {
    fn report(&self, phase: &str, done: usize, total: usize) {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if cur.as_ref().is_none_or(|(p, _)| p != phase) {
            if let Some((_, pb)) = cur.take() {
                pb.finish_and_clear();
            }
            *cur = progress_bar(true, total as u64, phase).map(|pb| (phase.to_string(), pb));
        }
        if let Some((_, pb)) = cur.as_ref() {
            pb.set_length(total as u64);
            pb.set_position(done as u64);
        }
    }

    /// Clears the bar on screen, before the results are printed.
    fn clear(&self) {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, pb)) = cur.take() {
            pb.finish_and_clear();
        }
    }
}

/// `--threads`: 0 is every core.
fn threads(n: usize) -> usize {
    if n == 0 {
        Work::default().threads
    } else {
        n
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.clear();
    }
}

/// `--precision` text: ap_fixed or hls4ml syntax; modes default to RND, SAT.
pub fn parse_precision(text: &str) -> Result<FixedType> {
    FixedType::parse_precision(text).with_context(|| format!("--precision '{text}'"))
}

pub fn import(path: &Path) -> Result<Graph> {
    onnx::import_path(path).with_context(|| format!("importing {}", path.display()))
}

pub fn inspect(a: InspectArgs) -> Result<()> {
    if a.model.extension().is_some_and(|e| e == "bxq") {
        return inspect_bxq(&a);
    }
    let g = import(&a.model)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&g)?);
        return Ok(());
    }
    println!("model {}", g.name);
    for (t, i) in g.inputs.iter().enumerate() {
        let axis = if i.event_axis {
            "the first ONNX axis is the event axis"
        } else {
            "the whole static tensor is one event"
        };
        println!("  input  '{}' {:?} (tensor {t}; {axis})", i.name, i.shape);
    }
    for o in &g.outputs {
        println!(
            "  output '{}' {:?} (tensor {})",
            o.name,
            g.shape(o.tensor),
            o.tensor
        );
    }
    println!(
        "{:>3}  {:<40} {:<12} {:<10} {:>14} {:>9}",
        "#", "layer (ONNX node)", "op", "inputs", "shape", "params"
    );
    let mut total = 0;
    for (i, l) in g.layers.iter().enumerate() {
        total += l.op.params();
        println!(
            "{:>3}  {:<40} {:<12} {:<10} {:>14} {:>9}",
            g.layer_tensor(i),
            l.name,
            l.op.kind(),
            format!("{:?}", l.inputs),
            format!("{:?}", l.shape),
            l.op.params()
        );
    }
    println!(
        "{} layers, {} parameters (# is the tensor a layer makes; {})",
        g.layers.len(),
        total,
        match g.inputs.len() {
            1 => "the input is tensor 0".to_string(),
            n => format!("the inputs are tensors 0 to {}", n - 1),
        }
    );
    Ok(())
}

/// A `.bxq`'s numerical contract, layer by layer: what a trigger developer
/// checks before building firmware from it.
fn inspect_bxq(a: &InspectArgs) -> Result<()> {
    let m = bxq::load(&a.model).with_context(|| format!("loading {}", a.model.display()))?;
    let doc = quantize::report::contract(&m);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    let ports: Vec<(&str, &serde_json::Value)> = ["input", "output"]
        .into_iter()
        .flat_map(|dir| {
            doc[format!("{dir}s")]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |p| (dir, p))
        })
        .collect();
    let layers = doc["layers"].as_array().cloned().unwrap_or_default();
    println!("model {}", m.name);
    for (dir, p) in &ports {
        println!(
            "  {dir:<6} '{}' {} {} (tensor {})",
            p["name"].as_str().unwrap_or_default(),
            p["shape"],
            p["type"].as_str().unwrap_or_default(),
            p["tensor"]
        );
    }
    println!(
        "{:>3}  {:<40} {:<8} {:<30} {:<44} {:>6} {:>5}",
        "#", "layer", "op", "result type", "weights / accumulator", "MACs", "reuse"
    );
    for l in &layers {
        let wa = match (l["weights"].as_str(), l["accumulator"].as_str()) {
            (Some(w), Some(a)) => format!("{w} / {a}"),
            _ => match l["thresholds"].as_object() {
                Some(t) => format!(
                    "{} thresholds per element, {} set{}",
                    t["per_element"],
                    t["sets"],
                    if t["sets"] == 1 { "" } else { "s" }
                ),
                None => String::new(),
            },
        };
        let (text, num) = (
            |k: &str| l[k].as_str().unwrap_or_default().to_string(),
            |k: &str| l[k].as_u64().unwrap_or_default(),
        );
        println!(
            "{:>3}  {:<40} {:<8} {:<30} {:<44} {:>6} {:>5}",
            num("layer"),
            text("name"),
            text("op"),
            text("type"),
            wa,
            num("macs"),
            num("reuse")
        );
    }
    println!("{} layers, {} MACs per event", m.layers.len(), m.macs());
    Ok(())
}

fn load_events(path: Option<&Path>, g: &Graph, n: usize) -> Result<Vec<f32>> {
    match path {
        Some(p) => Ok(read_events(p, &g.input_shapes())?.data),
        None => Ok(default_events(g, n, 1)),
    }
}

/// The events of `path` for a model's inputs, with a warning on standard
/// error when some features are NaN (fixed point reads them as 0).
fn read_events(path: &Path, inputs: &[(&str, &[usize])]) -> Result<npy::Events> {
    let ev = npy::read_inputs(path, inputs)?;
    if let Some((count, event, index)) = ev.nans() {
        eprintln!(
            "warning: '{}': {count} NaN feature values (the first in event {event}, at flat index {index}); fixed point reads NaN as 0, float carries it through",
            path.display()
        );
    }
    Ok(ev)
}

pub fn quantize(a: QuantizeArgs) -> Result<()> {
    let bars = Bars::default();
    let progress = |phase: &str, done, total| bars.report(phase, done, total);
    let golden_work = Work {
        threads: threads(a.threads),
        progress: &progress,
        fixed: None,
    };
    // Outputs (accuracy, --auto's checks) on the engine; a failure to build
    // it falls back to the golden model, and says so.
    let on_engine = |q: &QModel, x: &[f32]| match engine::Engine::outputs_of(
        q,
        None,
        x,
        golden_work.threads,
        32,
    ) {
        Ok(y) => Some(y),
        Err(e) => {
            eprintln!(
                "warning: {}; evaluating with the golden model",
                quantize::describe(&e)
            );
            None
        }
    };
    let work = Work {
        fixed: Some(&on_engine),
        ..golden_work
    };
    let g = import(&a.model)?;
    let n = a
        .events
        .unwrap_or_else(|| default_event_count(g.macs(), a.auto));
    if a.calib.is_none() && a.events.is_none() {
        eprintln!(
            "calibration: {n} generated events ({} MACs each; --events to change)",
            g.macs()
        );
    }
    let events = load_events(a.calib.as_deref(), &g, n)?;
    let labels = a.labels.as_deref().map(npy::read_labels).transpose()?;
    let (model, cfg): (QModel, Config) = if a.auto {
        if a.config.is_some() {
            bail!("--auto chooses every type itself; drop --config, or drop --auto to apply the config");
        }
        let opts = AutoOptions {
            budget: Budget {
                min_agreement: a.min_agreement,
                max_rel_error: a.max_error,
            },
            max_width: a.max_width,
            ..AutoOptions::default()
        };
        eprintln!(
            "auto precision: searching types on {} events ...",
            events.len() / g.input_len()
        );
        let r = auto_precision(&g, &events, &opts, &work)?;
        eprintln!("auto precision: {} evaluations", r.evaluations);
        for n in &r.notes {
            eprintln!("auto precision: note: {n}");
        }
        (r.model, r.config)
    } else {
        let cfg = match &a.config {
            Some(p) => Config::load(p)?,
            None => Config::uniform(parse_precision(&a.precision)?),
        };
        (quantizer::quantize_graph(&g, &cfg)?, cfg)
    };
    bxq::save(&model, &a.output)?;
    let rep = report::build(&g, &model, &events, labels.as_deref(), &work)?;
    drop(bars);
    print!("{rep}");
    println!(
        "wrote {} ({} layers, {} MACs per event)",
        a.output.display(),
        model.layers.len(),
        model.macs()
    );
    if let Some(p) = &a.report {
        std::fs::write(p, serde_json::to_string_pretty(&rep)?)
            .with_context(|| format!("writing {}", p.display()))?;
        println!("report: {}", p.display());
    }
    if let Some(p) = &a.save_config {
        std::fs::write(p, cfg.to_toml()).with_context(|| format!("writing {}", p.display()))?;
        println!("config: {}", p.display());
    }
    Ok(())
}

pub fn eval(a: EvalArgs) -> Result<()> {
    let bars = Bars::default();
    let progress = |phase: &str, done, total| bars.report(phase, done, total);
    let work = Work {
        threads: threads(a.threads),
        progress: &progress,
        fixed: None,
    };
    let ext = a.model.extension().and_then(|e| e.to_str()).unwrap_or("");
    // Evaluates the events of `a.input` and writes the outputs, named and
    // shaped by `outs`.
    let run = |ins: &[(&str, &[usize])],
               outs: &[(&str, &[usize])],
               eval: &dyn Fn(&[f32]) -> Result<Vec<f64>>|
     -> Result<()> {
        let ev = read_events(&a.input, ins)?;
        let outputs = eval(&ev.data)?;
        bars.clear();
        let n = ev.count();
        npy::write_outputs(&a.output, outs, n, &outputs)?;
        let what: Vec<String> = outs
            .iter()
            .map(|(name, s)| format!("'{name}' {:?}", [&[n][..], s].concat()))
            .collect();
        eprintln!(
            "{n} events -> {} ({} float64)",
            a.output.display(),
            what.join(", ")
        );
        Ok(())
    };
    match ext {
        "bxq" => {
            let q = bxq::load(&a.model)?;
            run(&q.input_shapes(), &q.output_shapes(), &|x| {
                if a.golden {
                    Ok(fixed_outputs(&q, x, &work).concat())
                } else {
                    Ok(engine::Engine::outputs_of(&q, a.isa, x, work.threads, 256)?)
                }
            })
        }
        "onnx" => {
            let g = import(&a.model)?;
            run(&g.input_shapes(), &g.output_shapes(), &|x| {
                Ok(float_outputs(&g, x, &work).concat())
            })
        }
        _ => bail!(
            "'{}': expected a .bxq (fixed point) or .onnx (float) model",
            a.model.display()
        ),
    }
}
