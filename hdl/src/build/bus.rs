//! The kernel's ports as seen from a model: the packed input and output
//! buses (one field per value of the flat input or output: every graph
//! input, or output, after the other, each value as wide as its type, value
//! 0 in the least significant bits) and the Verilog module name.

use quantize::fixed::FixedType;
use quantize::qmodel::QModel;

use crate::kernel::Field;
use crate::netlist::{Netlist, NodeId, OutField};

/// Sanitized Verilog module name from the model name.
pub fn module_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || !s.chars().next().unwrap().is_ascii_alphabetic() {
        s = format!("bx_{s}");
    }
    s
}

/// One field per value of the types `tys`, packed from bit 0.
fn bus(tys: impl Iterator<Item = FixedType>) -> Vec<Field> {
    let mut lsb = 0;
    tys.map(|ty| {
        let f = Field {
            lsb,
            width: ty.width,
            signed: ty.signed,
        };
        lsb += ty.width;
        f
    })
    .collect()
}

/// The input bus of `model`: its fields, and the input nodes in `net` of
/// each graph input (tensor `k` for input `k`).
pub(super) fn input_bus(net: &mut Netlist, model: &QModel) -> (Vec<Field>, Vec<Vec<NodeId>>) {
    let fields = bus(model.input_types());
    let nodes = (0..model.inputs.len())
        .map(|k| {
            fields[model.input_range(k)]
                .iter()
                .map(|f| net.input(f.lsb, f.width, f.signed))
                .collect()
        })
        .collect();
    (fields, nodes)
}

/// Makes `vals` (the flat output) the outputs of `net`, one field of its
/// output's type each.
pub(super) fn output_bus(net: &mut Netlist, model: &QModel, vals: &[NodeId]) -> Vec<Field> {
    let fields = bus(model.output_types());
    for (f, &node) in fields.iter().zip(vals) {
        net.outputs.push(OutField {
            node,
            width: f.width,
        });
    }
    fields
}
