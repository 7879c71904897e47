//! Rate-driven testbench for bxflow networks.
//!
//! * [`fpga`]: drives the cycle-level simulation of an `hdl` kernel (the
//!   netlist simulator, or Verilator on the exported Verilog) with an event
//!   stream at a given rate, through a fixed-depth input FIFO as firmware
//!   would; measures latency, intervals, queue depth, throughput and losses;
//!   checks every output bit for bit against the golden model.
//! * [`cpu`]: streams events through `engine::pipeline`, paced or as fast as
//!   possible; latency distribution, drops, bit-exactness, highest rate
//!   without drops.
//! * [`report`]: what a run measured, as JSON for CI and a terminal summary;
//!   [`plots`] draws it as SVG and [`output`] writes both to a directory.
//!
//! Models are opened with `quantize::load_model`; rates and clocks are MHz
//! and durations ns, as plain numbers (the CLI parses units).

pub mod arrivals;
pub mod cpu;
pub mod error;
pub mod fpga;
pub mod output;
pub mod plots;
pub mod progress;
pub mod report;
pub mod stream;
pub mod units;
pub mod verilator;

pub use arrivals::Arrivals;
pub use cpu::{run_cpu, CpuConfig};
pub use error::TbError;
pub use fpga::{run_fpga, FpgaConfig, SimChoice};
pub use output::write_report;
pub use report::{BudgetAt, Report, Target};
pub use stream::EventPool;
