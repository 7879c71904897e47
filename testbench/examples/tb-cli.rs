//! The `bxflow testbench` / `bxflow demo` commands (src/testbench_cmd.rs)
//! as a standalone binary, until they are wired into `bxflow`:
//! `cargo run --release -p bxflow-testbench --example tb-cli -- testbench MODEL --target fpga`.

#[path = "../../src/testbench_cmd.rs"]
mod testbench_cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "tb-cli")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Stream events at a rate through the FPGA kernel or the CPU engine.
    Testbench(testbench_cmd::TestbenchArgs),
    /// The whole flow on the shipped jet tagger, on one page.
    Demo(testbench_cmd::DemoArgs),
}

fn main() {
    let r = match Cli::parse().command {
        Command::Testbench(a) => testbench_cmd::run_testbench(a),
        Command::Demo(a) => testbench_cmd::run_demo(a),
    };
    if let Err(e) = r {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
