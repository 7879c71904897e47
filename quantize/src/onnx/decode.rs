//! Reading the ONNX protobuf: tensors into [`Const`]s, and a node with its
//! resolved inputs and typed attribute accessors, so that the op mappings
//! never touch protobuf fields directly.

use super::value::{Const, Value};
use tract_onnx::pb;

/// The node's name, or its op type and index when the exporter left it empty.
pub fn node_name(n: &pb::NodeProto, index: usize) -> String {
    if n.name.is_empty() {
        format!("{}_{index}", n.op_type)
    } else {
        n.name.clone()
    }
}

/// Decodes the data of a TensorProto (raw little-endian bytes or the typed
/// fields) for the element types a network's constants use.
pub fn tensor_from_proto(t: &pb::TensorProto) -> Result<Const, String> {
    let shape: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("negative dimension {d}")))
        .collect::<Result<_, _>>()?;
    let n: usize = shape.iter().product();
    if t.data_location == Some(1) {
        return Err(
            "external data files are not supported; re-export with the weights embedded".into(),
        );
    }
    let raw = &t.raw_data;
    let data: Vec<f64> = match t.data_type {
        1 => {
            if !raw.is_empty() {
                raw.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                    .collect()
            } else {
                t.float_data.iter().map(|&v| v as f64).collect()
            }
        }
        11 => {
            if !raw.is_empty() {
                raw.chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect()
            } else {
                t.double_data.clone()
            }
        }
        7 => {
            if !raw.is_empty() {
                raw.chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f64)
                    .collect()
            } else {
                t.int64_data.iter().map(|&v| v as f64).collect()
            }
        }
        6 => {
            if !raw.is_empty() {
                raw.chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                    .collect()
            } else {
                t.int32_data.iter().map(|&v| v as f64).collect()
            }
        }
        3 | 2 | 5 | 4 | 9 => {
            // int8, uint8, int16, uint16, bool: packed in raw_data or widened in int32_data.
            if !raw.is_empty() {
                match t.data_type {
                    3 => raw.iter().map(|&b| b as i8 as f64).collect(),
                    2 | 9 => raw.iter().map(|&b| b as f64).collect(),
                    5 => raw
                        .chunks_exact(2)
                        .map(|c| i16::from_le_bytes([c[0], c[1]]) as f64)
                        .collect(),
                    _ => raw
                        .chunks_exact(2)
                        .map(|c| u16::from_le_bytes([c[0], c[1]]) as f64)
                        .collect(),
                }
            } else {
                t.int32_data.iter().map(|&v| v as f64).collect()
            }
        }
        other => return Err(format!("tensor data type {other} is not supported (float, double, int8..int64, uint8, uint16, bool are)")),
    };
    if data.len() != n {
        return Err(format!(
            "tensor '{}' declares shape {shape:?} ({n} values) but holds {} values",
            t.name,
            data.len()
        ));
    }
    Ok(Const {
        shape,
        data,
        quant: None,
        dtype: t.data_type,
    })
}

/// One node being imported: its protobuf, its display name, and its inputs
/// as resolved so far (`None` for an omitted optional input).
pub struct Node<'a> {
    pub proto: &'a pb::NodeProto,
    pub name: &'a str,
    pub inputs: &'a [Option<Value>],
}

impl<'a> Node<'a> {
    pub fn op(&self) -> &'a str {
        &self.proto.op_type
    }

    /// Input `k`, which must be a constant (an initializer or folded).
    pub fn konst(&self, k: usize) -> Result<&'a Const, String> {
        match self.inputs.get(k) {
            Some(Some(Value::Const(c))) => Ok(c),
            Some(Some(Value::Act(_))) => Err(format!(
                "input {k} ('{}') must be a constant (an initializer or foldable), but it depends on the network input",
                self.proto.input[k]
            )),
            _ => Err(format!("missing input {k}")),
        }
    }

    /// Input `k` when it is present and constant.
    pub fn opt_const(&self, k: usize) -> Option<&'a Const> {
        match self.inputs.get(k) {
            Some(Some(Value::Const(c))) => Some(c),
            _ => None,
        }
    }

    /// Integers from input `k` (a constant) or, before the opset that moved
    /// them to inputs, from attribute `attr`.
    pub fn ints(&self, k: usize, attr: &str) -> Option<Vec<i64>> {
        self.opt_const(k)
            .map(Const::ints)
            .or_else(|| self.attr_ints(attr))
    }

    /// Squeeze / Unsqueeze / Reduce axes: an attribute before opset 13 (18
    /// for most reductions), the second input since.
    pub fn axes(&self) -> Vec<i64> {
        self.ints(1, "axes").unwrap_or_default()
    }

    pub fn attr(&self, key: &str) -> Option<&'a pb::AttributeProto> {
        self.proto.attribute.iter().find(|a| a.name == key)
    }

    pub fn attr_i(&self, key: &str, default: i64) -> i64 {
        self.attr(key).map(|a| a.i).unwrap_or(default)
    }

    pub fn attr_f(&self, key: &str, default: f64) -> f64 {
        self.attr(key).map(|a| a.f as f64).unwrap_or(default)
    }

    pub fn attr_ints(&self, key: &str) -> Option<Vec<i64>> {
        self.attr(key).map(|a| a.ints.clone())
    }

    pub fn attr_s(&self, key: &str) -> Option<String> {
        self.attr(key)
            .map(|a| String::from_utf8_lossy(&a.s).into_owned())
    }
}
