//! The kernel's ports as seen from a model: the packed input and output
//! buses (one field per value, value i at `data[i*W +: W]`) and the Verilog
//! module name.

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

/// One field per value of `ty`, packed from bit 0 (the bus packing of the
/// export: value i at `data[i*W +: W]`).
fn bus(ty: FixedType, n: usize) -> Vec<Field> {
    (0..n)
        .map(|i| Field {
            lsb: i as u32 * ty.width,
            width: ty.width,
            signed: ty.signed,
        })
        .collect()
}

/// The input bus of `model`: its fields and their input nodes in `net`.
pub(super) fn input_bus(net: &mut Netlist, model: &QModel) -> (Vec<Field>, Vec<NodeId>) {
    let fields = bus(model.input_ty, model.input_len());
    let nodes = fields
        .iter()
        .map(|f| net.input(f.lsb, f.width, f.signed))
        .collect();
    (fields, nodes)
}

/// Makes `vals` the outputs of `net`, one field of the model's output type each.
pub(super) fn output_bus(net: &mut Netlist, model: &QModel, vals: &[NodeId]) -> Vec<Field> {
    let fields = bus(model.output_ty(), vals.len());
    for (f, &node) in fields.iter().zip(vals) {
        net.outputs.push(OutField {
            node,
            width: f.width,
        });
    }
    fields
}
