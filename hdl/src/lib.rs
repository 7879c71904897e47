//! FPGA kernels for quantized networks: a netlist built from a
//! [`quantize::qmodel::QModel`], simulated cycle by cycle and printed as
//! Verilog from the same description; export with a self-checking testbench,
//! Verilator and Icarus co-simulation, Yosys resource reports, and VCD waveforms.

pub mod block;
pub mod build;
pub mod eda;
pub mod export;
pub mod kernel;
pub mod manifest;
pub mod netlist;
pub mod netmap;
pub mod pipeline;
pub mod pnr;
pub mod synth;
pub mod wave;

pub use build::{
    build_kernel, find_cells, layer_reuse, matrix_network, slice_layers, MatrixNetwork, SliceError,
};
pub use kernel::{BuildError, Kernel, Options, Recurrent, Strategy};
pub use pipeline::Family;
