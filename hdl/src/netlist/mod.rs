//! The one description of a kernel: a netlist of integer signals with exact
//! value ranges. Both the cycle simulator ([`Sim`]) and the Verilog
//! printer ([`Netlist::verilog`]) read this structure and nothing else, so they
//! cannot diverge by construction; what remains to check (and the tests do) is
//! that each op's Verilog text means what its simulation computes.
//!
//! Every numeric signal is a signed two's complement integer whose width is
//! the smallest that holds its range `[lo, hi]` (interval arithmetic from the
//! constants of the model), so adders are exactly as wide as their values.
//! Booleans are 1-bit unsigned wires used only as selects and in logic.
//! Every Verilog expression is fully parenthesized, every operand of an
//! arithmetic operator is a declared `signed` wire, and part selects and
//! concatenations are wrapped in `$signed(...)`, so no operator precedence or
//! signedness rule of the language is relied upon.

mod construct;
mod ecp5;
mod ir;
mod sim;
mod verilog;
mod xilinx;

pub use ir::{
    map_inputs, op_inputs, signed_width, Netlist, NetlistError, Node, NodeId, Op, OutField,
    MAX_WIDTH,
};
pub use sim::{Sim, SimState};
