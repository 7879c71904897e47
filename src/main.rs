//! `bxflow`: ONNX networks to bit-exact fixed point for trigger systems. The
//! binary is thin: each subcommand parses its arguments and calls the crates.

mod bench;
mod demo;
mod hdl_cmd;
mod modelcmd;
mod testbench_cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bxflow",
    version,
    about = "ONNX networks to bit-exact fixed point for particle-physics triggers",
    long_about = "bxflow takes a trained network (ONNX), quantizes it to ap_fixed-exact fixed point, \
and evaluates it with a golden integer model that every backend (CPU engine, FPGA kernel) matches bit for bit.\n\n\
Typical flow:\n  \
bxflow inspect models/three_layer_keras.onnx\n  \
bxflow quantize models/three_layer_keras.onnx -o tagger.bxq --auto --report report.json\n  \
bxflow eval tagger.bxq --input events.npy --output scores.npy",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the imported graph: layers, shapes, ops, parameter counts.
    Inspect(modelcmd::InspectArgs),
    /// Quantize an ONNX model to a .bxq artifact, with a per-layer report.
    Quantize(modelcmd::QuantizeArgs),
    /// Run a .bxq (golden fixed point) or .onnx (float reference) on .npy events.
    Eval(modelcmd::EvalArgs),
    /// Benchmark the CPU engine against tract-onnx on the same model.
    Bench(bench::BenchArgs),
    /// Generate the FPGA kernel: Verilog, VHDL component package, Vivado constraints and
    /// batch script, self-checking testbench, manifest, integration note.
    Hdl(hdl_cmd::HdlArgs),
    /// Run Yosys on an exported kernel and report LUT, FF, DSP, BRAM and logic levels; with --place-route (ECP5), nextpnr and the Fmax achieved.
    Synth(hdl_cmd::SynthArgs),
    /// Stream events at a rate through the FPGA kernel's simulation or the CPU engine: latency, losses, bit-exactness, pass/fail.
    Testbench(testbench_cmd::TestbenchArgs),
    /// The whole flow on the shipped jet tagger, on one page.
    Demo(demo::DemoArgs),
}

fn main() {
    // Output piped into `head` or a pager that quits: end quietly, as
    // Unix tools do, instead of panicking on the broken pipe (Rust
    // ignores SIGPIPE by default, so a write fails and `println!` panics).
    #[cfg(unix)]
    // SAFETY: called before any thread starts; restores the default action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(a) => modelcmd::inspect(a),
        Command::Quantize(a) => modelcmd::quantize(a),
        Command::Eval(a) => modelcmd::eval(a),
        Command::Bench(a) => bench::run(a),
        Command::Hdl(a) => hdl_cmd::run_hdl(a),
        Command::Synth(a) => hdl_cmd::run_synth(a),
        Command::Testbench(a) => testbench_cmd::run_testbench(a),
        Command::Demo(a) => demo::run_demo(a),
    };
    if let Err(e) = result {
        eprintln!("error: {}", quantize::describe(e.as_ref()));
        std::process::exit(1);
    }
}
