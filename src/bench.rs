//! `bxflow bench MODEL.bxq [--onnx MODEL.onnx] [--json]`: the CPU engine's
//! single-event latency, batch and streaming throughput, next to tract-onnx.

use std::path::PathBuf;

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
    /// Force a kernel family: scalar, avx2, avx512, avx512vnni.
    #[arg(long)]
    pub isa: Option<String>,
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

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let isa = match &args.isa {
        Some(s) => Some(s.parse::<engine::Isa>().map_err(anyhow::Error::msg)?),
        None => None,
    };
    let o = engine::bench::BenchOptions {
        events: args.events,
        runs: args.runs,
        stream_events: args.stream_events,
        workers: args.workers,
        batch: args.batch,
        pin: !args.no_pin,
        no_tract: false,
    };
    let out = engine::bench::run_cli(&args.model, args.onnx.as_deref(), args.json, isa, &o)
        .map_err(anyhow::Error::msg)?;
    println!("{out}");
    Ok(())
}
