//! ONNX import: protobuf decoding through tract-onnx, then bxflow's own walk
//! over the nodes, folding constants (shape arithmetic, QONNX weight
//! quantizers, normalisation constants) and mapping the rest onto the layer IR.
//!
//! The walk is bxflow's, not tract's optimiser, so that every error can name
//! the ONNX node and op the user wrote, and so that folding is exact and
//! visible (a BatchNormalization folded into a Dense is one float multiply per
//! weight, nothing more). This module is the driver (public API and graph
//! walk); what each op does is in the op table (`ops`).

mod builder;
mod decode;
mod fold;
mod ops;
mod qonnx;
mod shape;
mod value;

pub use ops::markdown_table as supported_ops_table;

use crate::ir::{Graph, Input, Op};
use crate::qmodel::Output;
use builder::Builder;
use decode::Node;
use std::collections::HashMap;
use std::path::Path;
use tract_onnx::pb;
use tract_onnx::prelude::Framework;
use value::{Act, Value, MIXES_EVENTS};

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

/// The ONNX op types the importer knows (on activations, on constants or
/// both), in the order error messages list them.
pub fn supported_ops() -> Vec<&'static str> {
    ops::OPS.iter().map(|d| d.name).collect()
}

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
    let first = Importer::new(graph, opset, name, false)?.run(graph);
    // The event axis rule: a static first axis is the event axis unless an
    // op mixes its rows; then the whole static tensor is one event.
    match first {
        Err(e) if e.to_string().contains(MIXES_EVENTS) => {
            let Ok(whole) = Importer::new(graph, opset, name, true) else {
                return Err(e);
            };
            if !whole.inputs.iter().any(|i| !i.event_axis) {
                return Err(e);
            }
            whole.run(graph).map_err(|e2| {
                ImportError::Graph(format!(
                    "{e}; read as one event of its whole static shape, the model fails too: {e2}"
                ))
            })
        }
        other => other,
    }
}

/// The graph walk: what every tensor name stands for so far, and the layers built.
struct Importer {
    values: HashMap<String, Value>,
    builder: Builder,
    graph_outputs: Vec<String>,
    name: String,
    inputs: Vec<Input>,
}

/// The shape of one event of a graph input, and whether its first ONNX axis
/// is the event axis: its ONNX shape without that axis, which may be
/// symbolic or any static size (a batch size baked into an export), or with
/// `whole` and a static first axis the whole static shape. Every other axis
/// must be static.
fn event_shape(input: &pb::ValueInfoProto, whole: bool) -> Result<(Vec<usize>, bool), ImportError> {
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
    if whole && dims.first().is_some_and(|&d| d > 0) {
        if let Some(d) = dims.iter().find(|&&d| d <= 0) {
            return Err(ImportError::Graph(format!(
                "input '{}' has a non-fixed dimension ({d}) in shape {dims:?}; bxflow needs static event shapes",
                input.name
            )));
        }
        let shape: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
        crate::validate::tensor_len(&shape)
            .map_err(|e| ImportError::Graph(format!("input '{}': {e}", input.name)))?;
        return Ok((shape, false));
    }
    if dims.len() < 2 {
        return Err(ImportError::Graph(format!(
            "input '{}' has shape {dims:?}; expected an event axis and at least one feature dimension",
            input.name
        )));
    }
    if let Some(d) = dims[1..].iter().find(|&&d| d <= 0) {
        return Err(ImportError::Graph(format!(
            "input '{}' has a non-fixed feature dimension ({d}) in shape {dims:?}; bxflow needs static event shapes",
            input.name
        )));
    }
    let shape: Vec<usize> = dims[1..].iter().map(|&d| d as usize).collect();
    crate::validate::tensor_len(&shape)
        .map_err(|e| ImportError::Graph(format!("input '{}': {e}", input.name)))?;
    Ok((shape, true))
}

impl Importer {
    /// With `whole`, every input whose first axis is static is one event of
    /// its whole static shape.
    fn new(g: &pb::GraphProto, opset: i64, name: &str, whole: bool) -> Result<Self, ImportError> {
        let mut values = HashMap::new();
        for t in &g.initializer {
            let c = decode::tensor_from_proto(t)
                .map_err(|m| ImportError::Graph(format!("initializer '{}': {m}", t.name)))?;
            values.insert(t.name.clone(), Value::Const(c));
        }
        // Keras-era exports list initializers among the inputs: the real inputs are those without data.
        let real: Vec<&pb::ValueInfoProto> = g
            .input
            .iter()
            .filter(|i| !values.contains_key(&i.name))
            .collect();
        if real.is_empty() {
            return Err(ImportError::Graph(
                "the graph has no data input (every input has an initializer)".into(),
            ));
        }
        let mut inputs = Vec::with_capacity(real.len());
        for (k, input) in real.iter().enumerate() {
            let (shape, event_axis) = event_shape(input, whole)?;
            values.insert(
                input.name.clone(),
                Value::Act(Act {
                    id: k,
                    shape: shape.clone(),
                    batch: event_axis.then_some(0),
                }),
            );
            inputs.push(Input {
                name: input.name.clone(),
                shape,
                event_axis,
            });
        }
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
            values,
            builder: Builder {
                opset,
                uses,
                names: real
                    .iter()
                    .enumerate()
                    .map(|(k, i)| (k, vec![i.name.clone()]))
                    .collect(),
                n_inputs: inputs.len(),
                layers: Vec::new(),
            },
            graph_outputs: g.output.iter().map(|o| o.name.clone()).collect(),
            name: name.into(),
            inputs,
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
                    node: decode::node_name(n, rest[0]),
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
        if self.graph_outputs.is_empty() {
            return Err(ImportError::Graph("the graph declares no output".into()));
        }
        let mut outputs: Vec<Output> = Vec::with_capacity(self.graph_outputs.len());
        for out_name in std::mem::take(&mut self.graph_outputs) {
            let act = match self.values.get(&out_name) {
                Some(Value::Act(a)) => a.clone(),
                Some(Value::Const(_)) => {
                    return Err(ImportError::Graph(format!(
                        "output '{out_name}' does not depend on any input"
                    )))
                }
                None => {
                    return Err(ImportError::Graph(format!(
                        "output '{out_name}' is produced by no node"
                    )))
                }
            };
            let n_in = self.inputs.len();
            let read = self
                .builder
                .layers
                .iter()
                .any(|l| l.inputs.contains(&act.id));
            let own_layer = act.id >= n_in && outputs.iter().all(|o| o.tensor != act.id) && {
                // A layer read by no other takes the output's ONNX shape (a
                // trailing Flatten or Reshape is no layer of its own).
                let l = &mut self.builder.layers[act.id - n_in];
                if !read && l.shape.iter().product::<usize>() == act.shape.iter().product::<usize>()
                {
                    l.shape = act.shape.clone();
                }
                l.shape == act.shape
            };
            let tensor = if own_layer {
                act.id
            } else {
                // An input, a reshaped tensor or one listed twice: an identity
                // route gives the output its own tensor and its ONNX shape.
                let n: usize = act.shape.iter().product();
                self.builder
                    .push(
                        out_name.clone(),
                        Op::Route {
                            src: (0..n as u32).map(|j| (0, j)).collect(),
                        },
                        vec![act.id],
                        act.shape.clone(),
                    )
                    .id
            };
            outputs.push(Output {
                name: out_name,
                tensor,
            });
        }
        self.builder.prune(&mut outputs);
        Ok(Graph {
            name: self.name,
            inputs: self.inputs,
            layers: self.builder.layers,
            outputs,
        })
    }

    fn node(&mut self, n: &pb::NodeProto, index: usize) -> Result<(), ImportError> {
        let name = decode::node_name(n, index);
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
        let node = Node {
            proto: n,
            name: &name,
            inputs: &inputs,
        };
        let err = |msg| ImportError::Node {
            node: name.clone(),
            op: n.op_type.clone(),
            msg,
        };
        let outs = ops::eval(&mut self.builder, &node).map_err(err)?;
        for (o, out) in n.output.iter().zip(outs) {
            if let Value::Act(a) = &out {
                crate::validate::tensor_len(&a.shape)
                    .map_err(|e| err(format!("output '{o}': {e}")))?;
                self.builder.names.entry(a.id).or_default().push(o.clone());
            }
            self.values.insert(o.clone(), out);
        }
        Ok(())
    }
}
