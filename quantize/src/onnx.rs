//! ONNX import: protobuf decoding through tract-onnx, then bxflow's own walk
//! over the nodes, folding constants (shape arithmetic, QONNX weight
//! quantizers, normalisation constants) and mapping the rest onto the layer IR.
//!
//! The walk is bxflow's, not tract's optimiser, so that every error can name
//! the ONNX node and op the user wrote, and so that folding is exact and
//! visible (a BatchNormalization folded into a Dense is one float multiply per
//! weight, nothing more).

use crate::fixed::{FixedType, Overflow, Rounding};
use crate::ir::{Graph, Layer, Op};
use crate::qmodel::{PoolKind, TensorId, Window};
use crate::tables::TableFn;
use std::collections::HashMap;
use std::path::Path;
use tract_onnx::pb;
use tract_onnx::prelude::Framework;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read '{path}': {msg}")]
    Io { path: String, msg: String },
    #[error("not a valid ONNX model: {0}")]
    Decode(String),
    #[error("the ONNX model has no graph")]
    NoGraph,
    #[error("node '{node}' ({op}): {msg}")]
    Node {
        node: String,
        op: String,
        msg: String,
    },
    #[error("{0}")]
    Graph(String),
}

/// Ops the importer knows, for error messages.
pub const SUPPORTED_OPS: &str = "MatMul, Gemm, Add, Sub, Mul, Div, Relu, LeakyRelu, Elu, Selu, PRelu, ThresholdedRelu, Sigmoid, HardSigmoid, Tanh, Softmax, Softplus, Softsign, Clip, BatchNormalization, Conv, MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, Flatten, Reshape, Transpose, Squeeze, Unsqueeze, Concat, Identity, Dropout, Shape, Gather, Constant, Cast, Pow, Sqrt, Quant, IntQuant, BipolarQuant, Trunc, QuantizeLinear, DequantizeLinear";

/// Reads and imports an ONNX file.
pub fn import_path(path: &Path) -> Result<Graph, ImportError> {
    let bytes = std::fs::read(path).map_err(|e| ImportError::Io {
        path: path.display().to_string(),
        msg: e.to_string(),
    })?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    import_bytes(&bytes, &name)
}

/// Decodes ONNX protobuf bytes (tract-onnx's decoder) and imports the graph.
pub fn import_bytes(bytes: &[u8], name: &str) -> Result<Graph, ImportError> {
    let proto = tract_onnx::onnx()
        .proto_model_for_read(&mut &bytes[..])
        .map_err(|e| ImportError::Decode(format!("{e:#}")))?;
    let opset = proto
        .opset_import
        .iter()
        .filter(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .max()
        .unwrap_or(9);
    let graph = proto.graph.as_ref().ok_or(ImportError::NoGraph)?;
    Importer::new(graph, opset, name)?.run(graph)
}

/// A constant tensor, in f64, with the exact fixed-point type a quantizer gave it.
#[derive(Clone, Debug)]
struct Const {
    shape: Vec<usize>,
    data: Vec<f64>,
    quant: Option<FixedType>,
    /// ONNX element type when read from the file (0 when computed): tells
    /// int8 from uint8 zero points.
    dtype: i32,
}

impl Const {
    fn scalar(v: f64) -> Self {
        Const {
            shape: vec![],
            data: vec![v],
            quant: None,
            dtype: 0,
        }
    }
    fn ints(&self) -> Vec<i64> {
        self.data.iter().map(|&v| v as i64).collect()
    }
}

/// An activation: a tensor of the IR plus the (batch-free) shape it has here,
/// which can differ from the producing layer's shape after a Reshape or Flatten
/// (those change no data, so they make no layer).
#[derive(Clone, Debug)]
struct Act {
    id: TensorId,
    shape: Vec<usize>,
}

#[derive(Clone, Debug)]
enum Value {
    Const(Const),
    Act(Act),
}

struct Importer {
    opset: i64,
    values: HashMap<String, Value>,
    uses: HashMap<String, usize>,
    layers: Vec<Layer>,
    graph_outputs: Vec<String>,
    name: String,
    input_name: String,
    input_shape: Vec<usize>,
}

fn node_name(n: &pb::NodeProto, index: usize) -> String {
    if n.name.is_empty() {
        format!("{}_{index}", n.op_type)
    } else {
        n.name.clone()
    }
}

fn tensor_from_proto(t: &pb::TensorProto) -> Result<Const, String> {
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

/// Numpy broadcasting of two shapes.
fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r {
            a[i + a.len() - r]
        } else {
            1
        };
        let db = if i + b.len() >= r {
            b[i + b.len() - r]
        } else {
            1
        };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return None;
        };
    }
    Some(out)
}

/// Values of `c` broadcast to `shape` (row-major), or `None` if incompatible.
fn broadcast_to(c: &Const, shape: &[usize]) -> Option<Vec<f64>> {
    if broadcast_shape(shape, &c.shape)? != shape {
        return None;
    }
    let r = shape.len();
    let n: usize = shape.iter().product();
    let cs: Vec<usize> = (0..r)
        .map(|i| {
            if i + c.shape.len() >= r {
                c.shape[i + c.shape.len() - r]
            } else {
                1
            }
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for flat in 0..n {
        let (mut rem, mut idx, mut stride) = (flat, 0usize, 1usize);
        let mut parts = vec![0usize; r];
        for d in (0..r).rev() {
            parts[d] = rem % shape[d];
            rem /= shape[d];
        }
        for d in (0..r).rev() {
            let coord = if cs[d] == 1 { 0 } else { parts[d] };
            idx += coord * stride;
            stride *= cs[d];
        }
        out.push(c.data[idx]);
    }
    Some(out)
}

fn binary_const(a: &Const, b: &Const, f: impl Fn(f64, f64) -> f64) -> Option<Const> {
    let shape = broadcast_shape(&a.shape, &b.shape)?;
    let (x, y) = (broadcast_to(a, &shape)?, broadcast_to(b, &shape)?);
    Some(Const {
        shape,
        data: x.iter().zip(&y).map(|(&u, &v)| f(u, v)).collect(),
        quant: None,
        dtype: 0,
    })
}

/// Row-major permutation: source flat index of each output element.
fn transpose_map(shape: &[usize], perm: &[usize]) -> Vec<usize> {
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let n: usize = shape.iter().product();
    let mut in_strides = vec![1usize; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        in_strides[d] = in_strides[d + 1] * shape[d + 1];
    }
    (0..n)
        .map(|flat| {
            let mut rem = flat;
            let mut src = 0;
            for d in (0..out_shape.len()).rev() {
                let c = rem % out_shape[d];
                rem /= out_shape[d];
                src += c * in_strides[perm[d]];
            }
            src
        })
        .collect()
}

/// The exact type of a power-of-two-scaled, zero-offset quantizer.
fn pow2_type(
    scale: f64,
    bits: f64,
    signed: bool,
    narrow: bool,
    rounding: Rounding,
) -> Result<FixedType, String> {
    if scale.is_nan() || scale <= 0.0 || scale.log2().fract() != 0.0 {
        return Err(format!(
            "scale {scale} is not a power of two: bxflow keeps quantizers exact and only maps power-of-two scales onto fixed-point types"
        ));
    }
    if bits.fract() != 0.0 || !(1.0..=64.0).contains(&bits) {
        return Err(format!(
            "bit width {bits} must be a whole number from 1 to 64"
        ));
    }
    let width = bits as u32;
    let int_bits = width as i32 + scale.log2() as i32;
    let overflow = if narrow && signed {
        Overflow::SatSym
    } else if narrow {
        return Err("narrow range on an unsigned quantizer has no fixed-point equivalent".into());
    } else {
        Overflow::Sat
    };
    let t = if signed {
        FixedType::signed(width, int_bits)
    } else {
        FixedType::unsigned(width, int_bits)
    }
    .map_err(|e| e.to_string())?;
    Ok(t.with_rounding(rounding).with_overflow(overflow))
}

fn qonnx_rounding(mode: &str) -> Result<Rounding, String> {
    match mode.to_ascii_uppercase().as_str() {
        "ROUND" | "HALF_EVEN" => Ok(Rounding::RndConv),
        "FLOOR" => Ok(Rounding::Trn),
        "ROUND_TO_ZERO" => Ok(Rounding::TrnZero),
        "HALF_UP" => Ok(Rounding::Rnd),
        "HALF_DOWN" => Ok(Rounding::RndMinInf),
        other => Err(format!(
            "rounding mode '{other}' has no ap_fixed equivalent (ROUND, HALF_EVEN, FLOOR, ROUND_TO_ZERO, HALF_UP, HALF_DOWN are supported)"
        )),
    }
}

impl Importer {
    fn new(g: &pb::GraphProto, opset: i64, name: &str) -> Result<Self, ImportError> {
        let mut values = HashMap::new();
        for t in &g.initializer {
            let c = tensor_from_proto(t)
                .map_err(|m| ImportError::Graph(format!("initializer '{}': {m}", t.name)))?;
            values.insert(t.name.clone(), Value::Const(c));
        }
        // Keras-era exports list initializers among the inputs: the real input is the one without data.
        let real: Vec<&pb::ValueInfoProto> = g
            .input
            .iter()
            .filter(|i| !values.contains_key(&i.name))
            .collect();
        if real.len() != 1 {
            return Err(ImportError::Graph(format!(
                "the graph has {} data inputs ({}); bxflow handles networks with exactly one input tensor",
                real.len(),
                real.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        let input = real[0];
        let dims: Vec<i64> = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(pb::type_proto::Value::TensorType(t)) => t
                .shape
                .as_ref()
                .map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match d.value {
                            Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) => v,
                            _ => -1,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            _ => vec![],
        };
        if dims.len() < 2 {
            return Err(ImportError::Graph(format!(
                "input '{}' has shape {dims:?}; expected a batch dimension and at least one feature dimension",
                input.name
            )));
        }
        if let Some(d) = dims[1..].iter().find(|&&d| d <= 0) {
            return Err(ImportError::Graph(format!(
                "input '{}' has a non-fixed feature dimension ({d}) in shape {dims:?}; bxflow needs static event shapes",
                input.name
            )));
        }
        let input_shape: Vec<usize> = dims[1..].iter().map(|&d| d as usize).collect();
        values.insert(
            input.name.clone(),
            Value::Act(Act {
                id: 0,
                shape: input_shape.clone(),
            }),
        );
        let mut uses = HashMap::new();
        for n in &g.node {
            for i in n.input.iter().filter(|i| !i.is_empty()) {
                *uses.entry(i.clone()).or_insert(0) += 1;
            }
        }
        for o in &g.output {
            *uses.entry(o.name.clone()).or_insert(0) += 1;
        }
        Ok(Importer {
            opset,
            values,
            uses,
            layers: Vec::new(),
            graph_outputs: g.output.iter().map(|o| o.name.clone()).collect(),
            name: name.into(),
            input_name: input.name.clone(),
            input_shape,
        })
    }

    fn run(mut self, g: &pb::GraphProto) -> Result<Graph, ImportError> {
        // Nodes in dependency order; ONNX asks for it, not every exporter obeys.
        let mut pending: Vec<usize> = (0..g.node.len()).collect();
        while !pending.is_empty() {
            let before = pending.len();
            let mut rest = Vec::new();
            for &i in &pending {
                let n = &g.node[i];
                if n.input
                    .iter()
                    .all(|x| x.is_empty() || self.values.contains_key(x))
                {
                    self.node(n, i)?;
                } else {
                    rest.push(i);
                }
            }
            if rest.len() == before {
                let n = &g.node[rest[0]];
                let missing: Vec<&String> = n
                    .input
                    .iter()
                    .filter(|x| !x.is_empty() && !self.values.contains_key(*x))
                    .collect();
                let produced = g
                    .node
                    .iter()
                    .any(|m| m.output.iter().any(|o| missing.contains(&o)));
                return Err(ImportError::Node {
                    node: node_name(n, rest[0]),
                    op: n.op_type.clone(),
                    msg: if produced {
                        format!("the graph has a cycle through input(s) {missing:?}")
                    } else {
                        format!("input(s) {missing:?} are neither graph inputs, initializers nor outputs of any node")
                    },
                });
            }
            pending = rest;
        }
        let out_name = self
            .graph_outputs
            .first()
            .cloned()
            .ok_or_else(|| ImportError::Graph("the graph declares no output".into()))?;
        let act = match self.values.get(&out_name) {
            Some(Value::Act(a)) => a.clone(),
            Some(Value::Const(_)) => {
                return Err(ImportError::Graph(format!(
                    "output '{out_name}' does not depend on the input"
                )))
            }
            None => {
                return Err(ImportError::Graph(format!(
                    "output '{out_name}' is produced by no node"
                )))
            }
        };
        if act.id != self.layers.len() {
            // The output is an earlier tensor (trailing no-op nodes): keep it last with an identity route.
            let n: usize = act.shape.iter().product();
            self.push(
                "output".into(),
                Op::Route {
                    src: (0..n as u32).map(|j| (0, j)).collect(),
                },
                vec![act.id],
                act.shape.clone(),
            );
        } else if let Some(l) = self.layers.last_mut() {
            l.shape = act.shape.clone();
        }
        Ok(Graph {
            name: self.name,
            input_name: self.input_name,
            input_shape: self.input_shape,
            layers: self.layers,
            output_shape: act.shape,
        })
    }

    fn push(&mut self, name: String, op: Op, inputs: Vec<TensorId>, shape: Vec<usize>) -> Act {
        self.layers.push(Layer {
            name,
            inputs,
            shape: shape.clone(),
            op,
        });
        Act {
            id: self.layers.len(),
            shape,
        }
    }

    fn node(&mut self, n: &pb::NodeProto, index: usize) -> Result<(), ImportError> {
        let name = node_name(n, index);
        let err = |msg: String| ImportError::Node {
            node: name.clone(),
            op: n.op_type.clone(),
            msg,
        };
        let inputs: Vec<Option<Value>> = n
            .input
            .iter()
            .map(|i| {
                if i.is_empty() {
                    None
                } else {
                    self.values.get(i).cloned()
                }
            })
            .collect();
        let outputs = self.eval_node(n, &name, &inputs).map_err(err)?;
        for (o, v) in n.output.iter().zip(outputs) {
            self.values.insert(o.clone(), v);
        }
        Ok(())
    }

    fn attr<'a>(n: &'a pb::NodeProto, key: &str) -> Option<&'a pb::AttributeProto> {
        n.attribute.iter().find(|a| a.name == key)
    }
    fn attr_i(n: &pb::NodeProto, key: &str, default: i64) -> i64 {
        Self::attr(n, key).map(|a| a.i).unwrap_or(default)
    }
    fn attr_f(n: &pb::NodeProto, key: &str, default: f64) -> f64 {
        Self::attr(n, key).map(|a| a.f as f64).unwrap_or(default)
    }
    fn attr_ints(n: &pb::NodeProto, key: &str) -> Option<Vec<i64>> {
        Self::attr(n, key).map(|a| a.ints.clone())
    }
    fn attr_s(n: &pb::NodeProto, key: &str) -> Option<String> {
        Self::attr(n, key).map(|a| String::from_utf8_lossy(&a.s).into_owned())
    }

    /// True when `name` is read by exactly one node and is not a graph output:
    /// the condition for folding a following op into the layer that made it.
    fn single_use(&self, n: &pb::NodeProto) -> bool {
        self.uses.get(&n.input[0]).copied() == Some(1)
    }

    fn eval_node(
        &mut self,
        n: &pb::NodeProto,
        name: &str,
        inputs: &[Option<Value>],
    ) -> Result<Vec<Value>, String> {
        let op = n.op_type.as_str();
        let konst = |k: usize| -> Result<&Const, String> {
            match inputs.get(k) {
                Some(Some(Value::Const(c))) => Ok(c),
                Some(Some(Value::Act(_))) => Err(format!(
                    "input {k} ('{}') must be a constant (an initializer or foldable), but it depends on the network input",
                    n.input[k]
                )),
                _ => Err(format!("missing input {k}")),
            }
        };
        let opt_const = |k: usize| -> Option<&Const> {
            match inputs.get(k) {
                Some(Some(Value::Const(c))) => Some(c),
                _ => None,
            }
        };
        let all_const = inputs
            .iter()
            .flatten()
            .all(|v| matches!(v, Value::Const(_)));
        let first_act = inputs.iter().flatten().find_map(|v| match v {
            Value::Act(a) => Some(a.clone()),
            _ => None,
        });

        // Shape of an activation is a constant (with the batch dimension of 1).
        if op == "Shape" {
            let shape: Vec<usize> = match &inputs[0] {
                Some(Value::Act(a)) => std::iter::once(1).chain(a.shape.iter().copied()).collect(),
                Some(Value::Const(c)) => c.shape.clone(),
                None => return Err("missing input".into()),
            };
            return Ok(vec![Value::Const(Const {
                shape: vec![shape.len()],
                data: shape.iter().map(|&d| d as f64).collect(),
                quant: None,
                dtype: 0,
            })]);
        }
        if all_const {
            return self.fold(n, inputs).map(|c| vec![Value::Const(c)]);
        }
        let x = first_act.ok_or("no activation input")?;
        let xlen: usize = x.shape.iter().product();
        let onnx_axis = |axis: i64, rank_with_batch: usize| -> Result<usize, String> {
            let a = if axis < 0 {
                axis + rank_with_batch as i64
            } else {
                axis
            };
            if a < 0 || a as usize >= rank_with_batch {
                return Err(format!(
                    "axis {axis} is out of range for rank {rank_with_batch}"
                ));
            }
            Ok(a as usize)
        };
        let activation = |me: &mut Self, op: Op| -> Vec<Value> {
            vec![Value::Act(me.push(
                name.into(),
                op,
                vec![x.id],
                x.shape.clone(),
            ))]
        };
        let out = match op {
            "Identity" | "Dropout" => vec![Value::Act(x.clone())],
            "Relu" => activation(self, Op::Relu),
            "LeakyRelu" => activation(self, Op::LeakyRelu(Self::attr_f(n, "alpha", 0.01))),
            "ThresholdedRelu" => {
                activation(self, Op::ThresholdedRelu(Self::attr_f(n, "alpha", 1.0)))
            }
            "Elu" => activation(self, Op::Func(TableFn::Elu(Self::attr_f(n, "alpha", 1.0)))),
            "Selu" => activation(
                self,
                Op::Func(TableFn::Selu(
                    Self::attr_f(n, "alpha", 1.673_263_192_176_818_8),
                    Self::attr_f(n, "gamma", 1.050_701_022_148_132_3),
                )),
            ),
            "Sigmoid" => activation(self, Op::Func(TableFn::Sigmoid)),
            "Tanh" => activation(self, Op::Func(TableFn::Tanh)),
            "Softplus" => activation(self, Op::Func(TableFn::Softplus)),
            "Softsign" => activation(self, Op::Func(TableFn::Softsign)),
            "HardSigmoid" => activation(
                self,
                Op::Func(TableFn::HardSigmoid(
                    Self::attr_f(n, "alpha", 0.2),
                    Self::attr_f(n, "beta", 0.5),
                )),
            ),
            "PRelu" => {
                let slope = broadcast_to(konst(1)?, &x.shape)
                    .ok_or("slope does not broadcast to the input shape")?;
                activation(self, Op::PRelu(slope))
            }
            "Clip" => {
                let (lo, hi) = if self.opset < 11 {
                    (
                        Self::attr_f(n, "min", f64::MIN),
                        Self::attr_f(n, "max", f64::MAX),
                    )
                } else {
                    (
                        opt_const(1).map(|c| c.data[0]).unwrap_or(f64::MIN),
                        opt_const(2).map(|c| c.data[0]).unwrap_or(f64::MAX),
                    )
                };
                activation(self, Op::Clip(lo, hi))
            }
            "Softmax" => {
                let rank = x.shape.len() + 1;
                let default = if self.opset < 13 { 1 } else { -1 };
                let axis = onnx_axis(Self::attr_i(n, "axis", default), rank)?;
                if axis == 0 {
                    return Err("softmax over the batch axis is not supported".into());
                }
                let group: usize = if self.opset < 13 {
                    x.shape[axis - 1..].iter().product()
                } else if axis == rank - 1 {
                    x.shape[axis - 1]
                } else {
                    return Err(format!(
                        "softmax over axis {axis} of a rank-{rank} tensor: only the last axis is supported"
                    ));
                };
                activation(self, Op::Softmax { n: group })
            }
            "MatMul" | "Gemm" => {
                if matches!(inputs[0], Some(Value::Const(_))) {
                    return Err("constant x activation products are not supported; export weights as the second operand".into());
                }
                if x.shape.len() != 1 {
                    return Err(format!(
                        "input has shape {:?} per event; Dense layers need a flat vector (add a Flatten)",
                        x.shape
                    ));
                }
                let w = konst(1)?;
                if w.shape.len() != 2 {
                    return Err(format!(
                        "weight '{}' has shape {:?}; expected 2-D",
                        n.input[1], w.shape
                    ));
                }
                let (alpha, beta) = if op == "Gemm" {
                    (Self::attr_f(n, "alpha", 1.0), Self::attr_f(n, "beta", 1.0))
                } else {
                    (1.0, 1.0)
                };
                if op == "Gemm" && Self::attr_i(n, "transA", 0) != 0 {
                    return Err("transA=1 would transpose the batch: not supported".into());
                }
                let trans_b = op == "Gemm" && Self::attr_i(n, "transB", 0) != 0;
                let (k, m) = if trans_b {
                    (w.shape[1], w.shape[0])
                } else {
                    (w.shape[0], w.shape[1])
                };
                if k != xlen {
                    return Err(format!(
                        "weight '{}' of shape {:?} does not match an input of {xlen} features",
                        n.input[1], w.shape
                    ));
                }
                let weights: Vec<f64> = (0..m)
                    .flat_map(|o| {
                        (0..k).map(move |i| {
                            if trans_b {
                                w.data[o * k + i]
                            } else {
                                w.data[i * m + o]
                            }
                        })
                    })
                    .map(|v| v * alpha)
                    .collect();
                let (bias, b_quant) = match opt_const(2) {
                    Some(c) => (
                        broadcast_to(c, &[m])
                            .ok_or_else(|| {
                                format!("bias of shape {:?} does not broadcast to [{m}]", c.shape)
                            })?
                            .iter()
                            .map(|v| v * beta)
                            .collect(),
                        c.quant.filter(|_| beta == 1.0),
                    ),
                    None => (vec![0.0; m], None),
                };
                let w_quant = w.quant.filter(|_| alpha == 1.0);
                let op = Op::Dense {
                    n_in: k,
                    n_out: m,
                    weights,
                    bias,
                    w_quant,
                    b_quant,
                };
                vec![Value::Act(self.push(name.into(), op, vec![x.id], vec![m]))]
            }
            "Add" | "Sub" | "Mul" | "Div" => self.arith(n, name, inputs)?,
            "BatchNormalization" => {
                let (s, b, mean, var) = (konst(1)?, konst(2)?, konst(3)?, konst(4)?);
                let eps = Self::attr_f(n, "epsilon", 1e-5);
                let c = x.shape.first().copied().unwrap_or(1);
                if s.data.len() != c
                    || b.data.len() != c
                    || mean.data.len() != c
                    || var.data.len() != c
                {
                    return Err(format!("parameters must have one value per channel ({c})"));
                }
                let a: Vec<f64> = (0..c)
                    .map(|i| s.data[i] / (var.data[i] + eps).sqrt())
                    .collect();
                let sh: Vec<f64> = (0..c).map(|i| b.data[i] - mean.data[i] * a[i]).collect();
                let per = xlen / c.max(1);
                let scale: Vec<f64> = (0..xlen).map(|j| a[j / per]).collect();
                let shift: Vec<f64> = (0..xlen).map(|j| sh[j / per]).collect();
                vec![Value::Act(self.affine(n, name, &x, scale, shift))]
            }
            "Conv" => {
                let w = konst(1)?;
                if Self::attr_i(n, "group", 1) != 1 {
                    return Err(
                        "grouped or depthwise convolution (group != 1) is not supported".into(),
                    );
                }
                let spatial = x.shape.len().saturating_sub(1);
                if !(1..=2).contains(&spatial) || w.shape.len() != spatial + 2 {
                    return Err(format!(
                        "input shape {:?} with weights {:?}: only 1-D and 2-D convolutions are supported",
                        x.shape, w.shape
                    ));
                }
                if Self::attr_ints(n, "dilations").is_some_and(|d| d.iter().any(|&v| v != 1)) {
                    return Err("dilations other than 1 are not supported".into());
                }
                let kernel: Vec<usize> = w.shape[2..].to_vec();
                let window = self.window(n, &x, kernel)?;
                if w.shape[1] != window.in_channels {
                    return Err(format!(
                        "weights have {} input channels, the input has {}",
                        w.shape[1], window.in_channels
                    ));
                }
                let oc = w.shape[0];
                let bias = match opt_const(2) {
                    Some(c) => c.data.clone(),
                    None => vec![0.0; oc],
                };
                let mut shape = vec![oc];
                shape.extend(window.out_spatial());
                let op = Op::Conv {
                    window,
                    out_channels: oc,
                    weights: w.data.clone(),
                    bias,
                    w_quant: w.quant,
                    b_quant: opt_const(2).and_then(|c| c.quant),
                };
                vec![Value::Act(self.push(name.into(), op, vec![x.id], shape))]
            }
            "MaxPool" | "AveragePool" | "GlobalAveragePool" | "GlobalMaxPool" => {
                let global = op.starts_with("Global");
                let kernel: Vec<usize> = if global {
                    x.shape[1..].to_vec()
                } else {
                    Self::attr_ints(n, "kernel_shape")
                        .ok_or("missing kernel_shape")?
                        .iter()
                        .map(|&v| v as usize)
                        .collect()
                };
                if Self::attr_i(n, "ceil_mode", 0) != 0 {
                    return Err("ceil_mode=1 is not supported".into());
                }
                if op == "AveragePool" && Self::attr_i(n, "count_include_pad", 0) != 0 {
                    return Err("count_include_pad=1 is not supported".into());
                }
                let window = if global {
                    Window {
                        in_channels: x.shape[0],
                        in_spatial: x.shape[1..].to_vec(),
                        stride: vec![1; kernel.len()],
                        pad_begin: vec![0; kernel.len()],
                        pad_end: vec![0; kernel.len()],
                        kernel,
                    }
                } else {
                    self.window(n, &x, kernel)?
                };
                let mut shape = vec![window.in_channels];
                shape.extend(window.out_spatial());
                let kind = if op.contains("Max") {
                    PoolKind::Max
                } else {
                    PoolKind::Average
                };
                vec![Value::Act(self.push(
                    name.into(),
                    Op::Pool { kind, window },
                    vec![x.id],
                    shape,
                ))]
            }
            "Flatten" => {
                let axis = onnx_axis(Self::attr_i(n, "axis", 1), x.shape.len() + 1)?;
                let _ = axis; // axis 0 or 1 both give one flat vector per event of batch 1
                vec![Value::Act(Act {
                    id: x.id,
                    shape: vec![xlen],
                })]
            }
            "Reshape" => {
                let target = konst(1)?.ints();
                let shape = reshape_target(&x.shape, &target)?;
                vec![Value::Act(Act { id: x.id, shape })]
            }
            "Squeeze" | "Unsqueeze" => {
                let axes = Self::attr_ints(n, "axes")
                    .or_else(|| opt_const(1).map(|c| c.ints()))
                    .unwrap_or_default();
                let rank = x.shape.len() + 1;
                let mut full: Vec<usize> =
                    std::iter::once(1).chain(x.shape.iter().copied()).collect();
                if op == "Squeeze" {
                    let mut ax: Vec<usize> = axes
                        .iter()
                        .map(|&a| onnx_axis(a, rank))
                        .collect::<Result<_, _>>()?;
                    if ax.is_empty() {
                        ax = (1..rank).filter(|&d| full[d] == 1).collect();
                    }
                    if ax.contains(&0) {
                        return Err("squeezing the batch axis is not supported".into());
                    }
                    ax.sort_unstable();
                    for &a in ax.iter().rev() {
                        if full[a] != 1 {
                            return Err(format!(
                                "axis {a} has size {} and cannot be squeezed",
                                full[a]
                            ));
                        }
                        full.remove(a);
                    }
                } else {
                    let out_rank = rank + axes.len();
                    let mut ax: Vec<usize> = axes
                        .iter()
                        .map(|&a| onnx_axis(a, out_rank))
                        .collect::<Result<_, _>>()?;
                    ax.sort_unstable();
                    if ax.contains(&0) {
                        return Err("unsqueezing before the batch axis is not supported".into());
                    }
                    for &a in &ax {
                        full.insert(a, 1);
                    }
                }
                vec![Value::Act(Act {
                    id: x.id,
                    shape: full[1..].to_vec(),
                })]
            }
            "Transpose" => {
                let rank = x.shape.len() + 1;
                let perm: Vec<usize> = Self::attr_ints(n, "perm")
                    .map(|p| p.iter().map(|&v| v as usize).collect())
                    .unwrap_or_else(|| (0..rank).rev().collect());
                if perm.len() != rank || perm[0] != 0 {
                    return Err(format!(
                        "permutation {perm:?} moves the batch axis or has the wrong rank"
                    ));
                }
                let p: Vec<usize> = perm[1..].iter().map(|&v| v - 1).collect();
                let shape: Vec<usize> = p.iter().map(|&d| x.shape[d]).collect();
                if p.iter().enumerate().all(|(i, &v)| i == v) {
                    vec![Value::Act(Act { id: x.id, shape })]
                } else {
                    let src = transpose_map(&x.shape, &p)
                        .into_iter()
                        .map(|j| (0u16, j as u32))
                        .collect();
                    vec![Value::Act(self.push(
                        name.into(),
                        Op::Route { src },
                        vec![x.id],
                        shape,
                    ))]
                }
            }
            "Concat" => {
                let acts: Vec<Act> =
                    inputs
                        .iter()
                        .map(|v| match v {
                            Some(Value::Act(a)) => Ok(a.clone()),
                            _ => Err("concatenating constants with activations is not supported"
                                .to_string()),
                        })
                        .collect::<Result<_, _>>()?;
                let rank = x.shape.len() + 1;
                let axis = onnx_axis(Self::attr_i(n, "axis", 1), rank)?;
                if axis == 0 {
                    return Err("concatenation along the batch axis is not supported".into());
                }
                let d = axis - 1;
                for a in &acts {
                    if a.shape.len() != x.shape.len()
                        || a.shape
                            .iter()
                            .enumerate()
                            .any(|(i, &s)| i != d && s != x.shape[i])
                    {
                        return Err(format!(
                            "shapes {:?} and {:?} do not concatenate on axis {axis}",
                            x.shape, a.shape
                        ));
                    }
                }
                let outer: usize = x.shape[..d].iter().product();
                let mut src = Vec::new();
                for o in 0..outer {
                    for (k, a) in acts.iter().enumerate() {
                        let inner: usize = a.shape[d..].iter().product();
                        src.extend((0..inner).map(|j| (k as u16, (o * inner + j) as u32)));
                    }
                }
                let mut shape = x.shape.clone();
                shape[d] = acts.iter().map(|a| a.shape[d]).sum();
                let ids = acts.iter().map(|a| a.id).collect();
                vec![Value::Act(self.push(
                    name.into(),
                    Op::Route { src },
                    ids,
                    shape,
                ))]
            }
            "Quant" | "IntQuant" | "Trunc" | "BipolarQuant" => {
                let ty = self.quant_type(n, inputs)?;
                match ty {
                    QuantKind::Fixed(t) => activation(self, Op::Quant(t)),
                    QuantKind::Bipolar(s) => activation(
                        self,
                        Op::Step {
                            thresholds: vec![0.0],
                            values: vec![-s, s],
                        },
                    ),
                }
            }
            "QuantizeLinear" => {
                // Only as the first half of a QDQ pair: the DequantizeLinear gets the type.
                let (s, zp) = (konst(1)?, opt_const(2));
                if s.data.len() != 1 {
                    return Err("per-axis QuantizeLinear on activations is not supported".into());
                }
                let zp_v = zp.map(|c| c.data[0]).unwrap_or(0.0);
                // The zero point's element type says int8 or uint8 (uint8 when absent).
                let signed = zp.is_some_and(|c| c.dtype == 3);
                let bits = 8.0;
                let (qmin, qmax) = if signed {
                    (-128.0, 127.0)
                } else {
                    (0.0, 255.0)
                };
                let (lo, hi) = ((qmin - zp_v) * s.data[0], (qmax - zp_v) * s.data[0]);
                // Wide enough for the offset range, then clipped to it: exact.
                let t = pow2_type(s.data[0], bits + 1.0, true, false, Rounding::RndConv)?;
                let q = self.push(name.into(), Op::Quant(t), vec![x.id], x.shape.clone());
                let c = self.push(
                    format!("{name}_range"),
                    Op::Clip(lo, hi),
                    vec![q.id],
                    x.shape.clone(),
                );
                vec![Value::Act(c)]
            }
            "DequantizeLinear" => vec![Value::Act(x.clone())],
            other => {
                return Err(format!(
                    "op '{other}' is not supported on activations; supported: {SUPPORTED_OPS}"
                ))
            }
        };
        Ok(out)
    }

    fn window(&self, n: &pb::NodeProto, x: &Act, kernel: Vec<usize>) -> Result<Window, String> {
        let sp = kernel.len();
        if x.shape.len() != sp + 1 {
            return Err(format!(
                "input shape {:?} does not fit a {sp}-D window",
                x.shape
            ));
        }
        let in_spatial = x.shape[1..].to_vec();
        let stride: Vec<usize> = Self::attr_ints(n, "strides")
            .map(|s| s.iter().map(|&v| v as usize).collect())
            .unwrap_or(vec![1; sp]);
        let auto = Self::attr_s(n, "auto_pad").unwrap_or_default();
        let (pad_begin, pad_end) = match auto.as_str() {
            "" | "NOTSET" => {
                let p: Vec<usize> = Self::attr_ints(n, "pads")
                    .map(|s| s.iter().map(|&v| v as usize).collect())
                    .unwrap_or(vec![0; 2 * sp]);
                if p.len() != 2 * sp {
                    return Err(format!("pads {p:?} should have {} values", 2 * sp));
                }
                (p[..sp].to_vec(), p[sp..].to_vec())
            }
            "VALID" => (vec![0; sp], vec![0; sp]),
            "SAME_UPPER" | "SAME_LOWER" => {
                let mut b = vec![0; sp];
                let mut e = vec![0; sp];
                for d in 0..sp {
                    let out = in_spatial[d].div_ceil(stride[d]);
                    let total = ((out - 1) * stride[d] + kernel[d]).saturating_sub(in_spatial[d]);
                    let small = total / 2;
                    if auto == "SAME_UPPER" {
                        (b[d], e[d]) = (small, total - small);
                    } else {
                        (b[d], e[d]) = (total - small, small);
                    }
                }
                (b, e)
            }
            other => return Err(format!("auto_pad '{other}' is not supported")),
        };
        if stride.len() != sp || stride.contains(&0) {
            return Err(format!(
                "strides {stride:?} are invalid for a {sp}-D window"
            ));
        }
        for d in 0..sp {
            if in_spatial[d] + pad_begin[d] + pad_end[d] < kernel[d] {
                return Err(format!(
                    "kernel {kernel:?} is larger than the padded input {in_spatial:?}"
                ));
            }
        }
        Ok(Window {
            in_channels: x.shape[0],
            in_spatial,
            kernel,
            stride,
            pad_begin,
            pad_end,
        })
    }

    /// Elementwise affine on `x`: folded into the layer that produced `x` when
    /// that layer is a Dense, Conv or Scale read only here, else a Scale layer.
    fn affine(
        &mut self,
        n: &pb::NodeProto,
        name: &str,
        x: &Act,
        scale: Vec<f64>,
        shift: Vec<f64>,
    ) -> Act {
        if x.id > 0 && self.single_use(n) {
            let prev = &mut self.layers[x.id - 1];
            let per_out = |len: usize| -> Option<(Vec<f64>, Vec<f64>)> {
                // Constant over each output channel?
                let per = scale.len() / len;
                (0..len)
                    .all(|c| {
                        (0..per).all(|j| {
                            scale[c * per + j] == scale[c * per]
                                && shift[c * per + j] == shift[c * per]
                        })
                    })
                    .then(|| {
                        (
                            (0..len).map(|c| scale[c * per]).collect(),
                            (0..len).map(|c| shift[c * per]).collect(),
                        )
                    })
            };
            match &mut prev.op {
                // Weights a QONNX quantizer made exact stay exact: only a pure
                // bias is folded into them; a scaling becomes its own layer.
                Op::Dense {
                    w_quant: Some(_), ..
                }
                | Op::Conv {
                    w_quant: Some(_), ..
                } if scale.iter().any(|&s| s != 1.0) => {}
                Op::Dense {
                    n_out: rows,
                    weights,
                    bias,
                    w_quant,
                    b_quant,
                    ..
                }
                | Op::Conv {
                    out_channels: rows,
                    weights,
                    bias,
                    w_quant,
                    b_quant,
                    ..
                } => {
                    if let Some((s, b)) = per_out(*rows) {
                        let k = weights.len() / *rows;
                        for o in 0..*rows {
                            weights[o * k..(o + 1) * k]
                                .iter_mut()
                                .for_each(|w| *w *= s[o]);
                            bias[o] = bias[o] * s[o] + b[o];
                        }
                        if s.iter().any(|&v| v != 1.0) {
                            *w_quant = None;
                        }
                        *b_quant = None;
                        prev.name = format!("{}+{name}", prev.name);
                        return x.clone();
                    }
                }
                Op::Scale {
                    scale: s0,
                    shift: b0,
                } => {
                    for i in 0..s0.len() {
                        s0[i] *= scale[i];
                        b0[i] = b0[i] * scale[i] + shift[i];
                    }
                    prev.name = format!("{}+{name}", prev.name);
                    return x.clone();
                }
                _ => {}
            }
        }
        self.push(
            name.into(),
            Op::Scale { scale, shift },
            vec![x.id],
            x.shape.clone(),
        )
    }

    fn arith(
        &mut self,
        n: &pb::NodeProto,
        name: &str,
        inputs: &[Option<Value>],
    ) -> Result<Vec<Value>, String> {
        let op = n.op_type.as_str();
        match (&inputs[0], inputs.get(1).and_then(|v| v.as_ref())) {
            (Some(Value::Act(a)), Some(Value::Act(b))) => {
                if op != "Add" {
                    return Err(format!(
                        "{op} of two activations is not supported (only Add is)"
                    ));
                }
                if a.shape != b.shape {
                    return Err(format!("Add of shapes {:?} and {:?}: broadcasting between activations is not supported", a.shape, b.shape));
                }
                Ok(vec![Value::Act(self.push(
                    name.into(),
                    Op::Add,
                    vec![a.id, b.id],
                    a.shape.clone(),
                ))])
            }
            (Some(Value::Act(a)), Some(Value::Const(c)))
            | (Some(Value::Const(c)), Some(Value::Act(a))) => {
                let act_first = matches!(inputs[0], Some(Value::Act(_)));
                let bshape: Vec<usize> =
                    std::iter::once(1).chain(a.shape.iter().copied()).collect();
                let v = broadcast_to(c, &bshape).ok_or_else(|| {
                    format!(
                        "constant of shape {:?} does not broadcast to the input [1, {:?}]",
                        c.shape, a.shape
                    )
                })?;
                let len = v.len();
                let (scale, shift): (Vec<f64>, Vec<f64>) = match (op, act_first) {
                    ("Add", _) => (vec![1.0; len], v),
                    ("Sub", true) => (vec![1.0; len], v.iter().map(|x| -x).collect()),
                    ("Sub", false) => (vec![-1.0; len], v),
                    ("Mul", _) => (v, vec![0.0; len]),
                    ("Div", true) => {
                        if v.contains(&0.0) {
                            return Err("division by a constant zero".into());
                        }
                        (v.iter().map(|x| 1.0 / x).collect(), vec![0.0; len])
                    }
                    _ => return Err("dividing a constant by an activation is not supported".into()),
                };
                Ok(vec![Value::Act(self.affine(n, name, a, scale, shift))])
            }
            _ => Err("missing input".into()),
        }
    }

    fn quant_type(&self, n: &pb::NodeProto, inputs: &[Option<Value>]) -> Result<QuantKind, String> {
        let c = |k: usize| -> Result<f64, String> {
            match inputs.get(k) {
                Some(Some(Value::Const(c))) if c.data.len() == 1 => Ok(c.data[0]),
                Some(Some(Value::Const(c))) => Err(format!(
                    "parameter {k} has {} values: only per-tensor quantizers are supported on activations",
                    c.data.len()
                )),
                _ => Err(format!("parameter {k} must be a constant")),
            }
        };
        match n.op_type.as_str() {
            "BipolarQuant" => Ok(QuantKind::Bipolar(c(1)?)),
            "Trunc" => {
                // Trunc(x, scale, zero_point, input_bit_width, output_bit_width): drops LSBs.
                let (scale, zp, in_bits, out_bits) = (c(1)?, c(2)?, c(3)?, c(4)?);
                if zp != 0.0 {
                    return Err("a non-zero zero point is not supported".into());
                }
                let mode = Self::attr_s(n, "rounding_mode").unwrap_or_else(|| "FLOOR".into());
                let signed = Self::attr_i(n, "signed", 1) != 0;
                let lsb = scale * (in_bits - out_bits).exp2();
                let t = pow2_type(lsb, out_bits, signed, false, qonnx_rounding(&mode)?)?;
                Ok(QuantKind::Fixed(t.with_overflow(Overflow::Wrap)))
            }
            _ => {
                let (scale, zp, bits) = (c(1)?, c(2)?, c(3)?);
                if zp != 0.0 {
                    return Err(format!(
                        "zero point {zp}: only zero-offset quantizers map onto fixed point"
                    ));
                }
                let signed = Self::attr_i(n, "signed", 1) != 0;
                let narrow = Self::attr_i(n, "narrow", 0) != 0;
                let mode = Self::attr_s(n, "rounding_mode").unwrap_or_else(|| "ROUND".into());
                Ok(QuantKind::Fixed(pow2_type(
                    scale,
                    bits,
                    signed,
                    narrow,
                    qonnx_rounding(&mode)?,
                )?))
            }
        }
    }

    /// Constant folding: the node's inputs are all constants.
    fn fold(&self, n: &pb::NodeProto, inputs: &[Option<Value>]) -> Result<Const, String> {
        let c = |k: usize| -> Result<&Const, String> {
            match inputs.get(k) {
                Some(Some(Value::Const(c))) => Ok(c),
                _ => Err(format!("missing input {k}")),
            }
        };
        let op = n.op_type.as_str();
        let bin = |f: fn(f64, f64) -> f64| -> Result<Const, String> {
            let (a, b) = (c(0)?, c(1)?);
            binary_const(a, b, f)
                .ok_or_else(|| format!("shapes {:?} and {:?} do not broadcast", a.shape, b.shape))
        };
        Ok(match op {
            "Constant" => {
                let a = Self::attr(n, "value")
                    .and_then(|a| a.t.as_ref())
                    .map(tensor_from_proto)
                    .transpose()?;
                match a {
                    Some(t) => t,
                    None => match (Self::attr(n, "value_float"), Self::attr(n, "value_int")) {
                        (Some(f), _) => Const::scalar(f.f as f64),
                        (_, Some(i)) => Const::scalar(i.i as f64),
                        _ => return Err("Constant without a supported value attribute".into()),
                    },
                }
            }
            "Identity" | "Dropout" | "Cast" => c(0)?.clone(),
            "Add" => bin(|a, b| a + b)?,
            "Sub" => bin(|a, b| a - b)?,
            "Mul" => bin(|a, b| a * b)?,
            "Div" => bin(|a, b| a / b)?,
            "Pow" => bin(f64::powf)?,
            "Sqrt" => {
                let a = c(0)?;
                Const {
                    shape: a.shape.clone(),
                    data: a.data.iter().map(|v| v.sqrt()).collect(),
                    quant: None,
                    dtype: 0,
                }
            }
            "Neg" => {
                let a = c(0)?;
                Const {
                    shape: a.shape.clone(),
                    data: a.data.iter().map(|v| -v).collect(),
                    quant: None,
                    dtype: 0,
                }
            }
            "Gather" => {
                let (a, idx) = (c(0)?, c(1)?);
                let axis = Self::attr_i(n, "axis", 0);
                if axis != 0 || a.shape.len() > 1 {
                    return Err("constant Gather is supported on 1-D tensors along axis 0".into());
                }
                let len = a.data.len() as i64;
                let data = idx
                    .ints()
                    .iter()
                    .map(|&i| {
                        let j = if i < 0 { i + len } else { i };
                        a.data
                            .get(j as usize)
                            .copied()
                            .ok_or(format!("index {i} out of range {len}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Const {
                    shape: idx.shape.clone(),
                    data,
                    quant: None,
                    dtype: 0,
                }
            }
            "Unsqueeze" | "Squeeze" | "Flatten" | "Reshape" => {
                let a = c(0)?;
                let shape = match op {
                    "Reshape" => {
                        let t = c(1)?.ints();
                        let n0: usize = a.shape.iter().product();
                        let known: i64 = t
                            .iter()
                            .enumerate()
                            .map(|(i, &d)| {
                                if d == 0 {
                                    a.shape.get(i).copied().unwrap_or(1) as i64
                                } else if d < 0 {
                                    1
                                } else {
                                    d
                                }
                            })
                            .product();
                        t.iter()
                            .enumerate()
                            .map(|(i, &d)| match d {
                                0 => a.shape.get(i).copied().unwrap_or(1),
                                -1 => n0 / known.max(1) as usize,
                                d => d as usize,
                            })
                            .collect()
                    }
                    "Flatten" => vec![a.data.len()],
                    "Unsqueeze" => {
                        let axes = Self::attr_ints(n, "axes")
                            .or_else(|| c(1).ok().map(|c| c.ints()))
                            .unwrap_or_default();
                        let mut s = a.shape.clone();
                        let r = (s.len() + axes.len()) as i64;
                        let mut ax: Vec<usize> = axes
                            .iter()
                            .map(|&x| if x < 0 { x + r } else { x } as usize)
                            .collect();
                        ax.sort_unstable();
                        for x in ax {
                            s.insert(x.min(s.len()), 1);
                        }
                        s
                    }
                    _ => a.shape.iter().copied().filter(|&d| d != 1).collect(),
                };
                if shape.iter().product::<usize>() != a.data.len() {
                    return Err(format!("cannot reshape {:?} to {shape:?}", a.shape));
                }
                Const {
                    shape,
                    data: a.data.clone(),
                    quant: a.quant,
                    dtype: 0,
                }
            }
            "Concat" => {
                let parts: Vec<&Const> = (0..inputs.len()).map(c).collect::<Result<_, _>>()?;
                if parts.iter().any(|p| p.shape.len() > 1) {
                    return Err("constant Concat is supported on 1-D tensors".into());
                }
                let data: Vec<f64> = parts.iter().flat_map(|p| p.data.iter().copied()).collect();
                Const {
                    shape: vec![data.len()],
                    data,
                    quant: None,
                    dtype: 0,
                }
            }
            "Transpose" => {
                let a = c(0)?;
                let perm: Vec<usize> = Self::attr_ints(n, "perm")
                    .map(|p| p.iter().map(|&v| v as usize).collect())
                    .unwrap_or_else(|| (0..a.shape.len()).rev().collect());
                if perm.len() != a.shape.len() {
                    return Err(format!(
                        "permutation {perm:?} does not match shape {:?}",
                        a.shape
                    ));
                }
                let map = transpose_map(&a.shape, &perm);
                Const {
                    shape: perm.iter().map(|&p| a.shape[p]).collect(),
                    data: map.iter().map(|&j| a.data[j]).collect(),
                    quant: a.quant,
                    dtype: 0,
                }
            }
            "Quant" | "IntQuant" | "Trunc" | "BipolarQuant" => {
                let a = c(0)?;
                match self.quant_type(n, inputs) {
                    Ok(QuantKind::Fixed(t)) => Const {
                        shape: a.shape.clone(),
                        data: a
                            .data
                            .iter()
                            .map(|&v| t.to_f64(t.quantize_f64(v)))
                            .collect(),
                        quant: Some(t),
                        dtype: 0,
                    },
                    Ok(QuantKind::Bipolar(s)) => Const {
                        shape: a.shape.clone(),
                        data: a
                            .data
                            .iter()
                            .map(|&v| if v >= 0.0 { s } else { -s })
                            .collect(),
                        quant: None,
                        dtype: 0,
                    },
                    // Per-channel or non-power-of-two weight quantizers: the quantized
                    // values are still exact constants, just without one fixed-point type.
                    Err(_) if n.op_type == "Quant" => {
                        let (scale, zp, bits) = (c(1)?, c(2)?, c(3)?);
                        let signed = Self::attr_i(n, "signed", 1) != 0;
                        let narrow = Self::attr_i(n, "narrow", 0) != 0;
                        let b = bits.data[0];
                        let (qmin, qmax) = match (signed, narrow) {
                            (true, false) => (-(b - 1.0).exp2(), (b - 1.0).exp2() - 1.0),
                            (true, true) => (-(b - 1.0).exp2() + 1.0, (b - 1.0).exp2() - 1.0),
                            (false, false) => (0.0, b.exp2() - 1.0),
                            (false, true) => (0.0, b.exp2() - 2.0),
                        };
                        let s = broadcast_to(scale, &a.shape)
                            .ok_or("scale does not broadcast to the weights")?;
                        let z = broadcast_to(zp, &a.shape)
                            .ok_or("zero point does not broadcast to the weights")?;
                        Const {
                            shape: a.shape.clone(),
                            data: a
                                .data
                                .iter()
                                .enumerate()
                                .map(|(i, &v)| {
                                    ((v / s[i] + z[i]).round_ties_even().clamp(qmin, qmax) - z[i])
                                        * s[i]
                                })
                                .collect(),
                            quant: None,
                            dtype: 0,
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            "QuantizeLinear" | "DequantizeLinear" => {
                let (a, s) = (c(0)?, c(1)?);
                let zp = c(2).ok();
                let axis = Self::attr_i(n, "axis", 1);
                // Element `i`'s entry of a per-tensor (one value) or per-axis parameter.
                let ax = if axis < 0 {
                    axis + a.shape.len() as i64
                } else {
                    axis
                } as usize;
                let per_axis = |p: &Const, i: usize| -> f64 {
                    if p.data.len() == 1 {
                        p.data[0]
                    } else {
                        let inner: usize = a.shape[ax + 1..].iter().product();
                        p.data[(i / inner) % a.shape[ax]]
                    }
                };
                let scale_of = |i: usize| per_axis(s, i);
                let zp_of = |i: usize| zp.map_or(0.0, |z| per_axis(z, i));
                let data = a
                    .data
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        if op == "QuantizeLinear" {
                            ((v / scale_of(i)).round_ties_even() + zp_of(i)).clamp(-128.0, 255.0)
                        } else {
                            (v - zp_of(i)) * scale_of(i)
                        }
                    })
                    .collect();
                Const {
                    shape: a.shape.clone(),
                    data,
                    quant: None,
                    dtype: 0,
                }
            }
            other => {
                return Err(format!(
                    "op '{other}' on constants is not supported; supported: {SUPPORTED_OPS}"
                ))
            }
        })
    }
}

enum QuantKind {
    Fixed(FixedType),
    Bipolar(f64),
}

/// Target shape of a Reshape, batch dimension first in `target`.
fn reshape_target(shape: &[usize], target: &[i64]) -> Result<Vec<usize>, String> {
    let n: usize = shape.iter().product();
    if target.is_empty() {
        return Err("empty target shape".into());
    }
    if !(target[0] == 1 || target[0] == -1 || target[0] == 0) {
        // A fixed batch size (e.g. 789444) baked into the export: one event keeps its own shape.
        if target.len() == 1 {
            return Err(format!(
                "target shape {target:?} folds the batch into the features"
            ));
        }
    }
    let full: Vec<usize> = std::iter::once(1).chain(shape.iter().copied()).collect();
    let rest = &target[1..];
    let known: usize = rest
        .iter()
        .enumerate()
        .map(|(i, &d)| match d {
            0 => full.get(i + 1).copied().unwrap_or(1),
            d if d < 0 => 1,
            d => d as usize,
        })
        .product();
    let out: Vec<usize> = rest
        .iter()
        .enumerate()
        .map(|(i, &d)| match d {
            0 => full.get(i + 1).copied().unwrap_or(1),
            -1 => n / known.max(1),
            d => d as usize,
        })
        .collect();
    if out.iter().product::<usize>() != n || rest.iter().filter(|&&d| d == -1).count() > 1 {
        return Err(format!(
            "cannot reshape an event of shape {shape:?} to {target:?}"
        ));
    }
    Ok(out)
}
