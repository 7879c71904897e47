//! From a [`QModel`] to a kernel: every op of the model becomes integer
//! hardware that follows the golden model's rules literally (see `QOp`),
//! then registers are placed by [`crate::pipeline`]. Layers with a reuse
//! factor above 1 are built by [`fold`] instead. This module is only the
//! entry; the parts are leaves that do not import it.

mod arith;
mod bus;
pub mod cell;
mod cse;
pub mod fold;
mod lower;
mod select;
mod slice;

use quantize::qmodel::QModel;

use crate::kernel::{BuildError, Field, Kernel, Options, Recurrent, Strategy};
use crate::netlist::Netlist;
use crate::pipeline::pipeline;

pub use arith::csd;
pub use bus::module_name;
pub use cell::{find_cells, Cell, CellInfo};
pub use fold::layer_reuse;
pub use slice::{slice_layers, SliceError};

/// The shift-add network built for the bare product of an integer matrix
/// with a vector, without bias or requantizer: the figures that compare
/// with other solvers of the constant matrix-vector product (da4ml's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatrixNetwork {
    /// Two-input adders and subtractors.
    pub adders: usize,
    /// Adder levels from an input to the deepest output.
    pub depth: u32,
}

/// Plans the network of [`MatrixNetwork`] for `weights`, laid out as a
/// Dense layer holds them, one row of `n_in` per output
/// (`weights[o * n_in + i]`).
pub fn matrix_network(weights: &[i64], n_in: usize) -> MatrixNetwork {
    let rows: Vec<Vec<i128>> = weights
        .chunks(n_in.max(1))
        .map(|r| r.iter().map(|&w| w as i128).collect())
        .collect();
    let bias = vec![false; rows.len()];
    let plan = cse::plan(&rows, &bias);
    MatrixNetwork {
        adders: plan.cost(&bias),
        depth: plan.levels(&bias),
    }
}

/// The combinational netlist of `model` (no registers), with its bus fields.
pub fn build_comb(
    model: &QModel,
    strategy: Strategy,
    ternary: bool,
) -> Result<(Netlist, Vec<Field>, Vec<Field>), BuildError> {
    let mut b = arith::Builder::new(strategy, ternary);
    let (inputs, mut tensors) = bus::input_bus(&mut b.net, model);
    for li in 0..model.layers.len() {
        let y = lower::layer(&mut b, model, li, &tensors)?;
        if let Some(e) = b.net.error.take() {
            return Err(e.into());
        }
        tensors.push(y);
    }
    let outputs = bus::output_bus(&mut b.net, model, &model.gather_outputs(&tensors));
    Ok((b.net, inputs, outputs))
}

/// Builds the pipelined kernel of `model`.
pub fn build_kernel(model: &QModel, options: &Options) -> Result<Kernel, BuildError> {
    options.check()?;
    quantize::validate::ports(model).map_err(BuildError::Ports)?;
    let reuse = layer_reuse(model, options.reuse)?;
    if options.recurrent == Recurrent::Reused {
        let cells = find_cells(model);
        let refuse = |why: String| BuildError::Recurrent(why);
        if cells.is_empty() {
            return Err(refuse(format!(
                "model '{}' has no recurrent cell to reuse: no run of identical time steps with a state and a matrix product (build it unrolled)",
                model.name
            )));
        }
        if let Some(k) = reuse.iter().position(|&r| r > 1) {
            return Err(refuse(format!(
                "layer '{}' has reuse factor {}, and a reuse factor together with a reused cell is not built: give every layer reuse_factor = 1 or build the cell unrolled",
                model.layers[k].name, reuse[k]
            )));
        }
        return cell::build_reused(model, options, &cells);
    }
    if reuse.iter().any(|&r| r > 1) {
        return fold::build_folded(model, options, &reuse);
    }
    let (comb, inputs, outputs) = build_comb(model, options.strategy, options.ternary_adders())?;
    let (net, latency) = pipeline(&comb, options.budget_ps(), &options.delays());
    Ok(Kernel {
        name: options.module_name(&model.name)?,
        net,
        latency,
        ii: 1,
        inputs,
        outputs,
        options: options.clone(),
        cells: Vec::new(),
    })
}
