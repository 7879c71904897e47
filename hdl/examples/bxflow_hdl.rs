//! Stand-alone driver of `src/hdl_cmd.rs` (the `bxflow hdl` / `bxflow synth`
//! subcommands) until they are wired into the main binary:
//! `cargo run --release -p bxflow-hdl --example bxflow_hdl -- hdl MODEL -o DIR`.

#[path = "../../src/hdl_cmd.rs"]
mod hdl_cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    Hdl(hdl_cmd::HdlArgs),
    Synth(hdl_cmd::SynthArgs),
}

fn main() {
    let r = match Cli::parse().command {
        Cmd::Hdl(a) => hdl_cmd::run_hdl(a),
        Cmd::Synth(a) => hdl_cmd::run_synth(a),
    };
    if let Err(e) = r {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
