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

use crate::ir::{Graph, Op};
use builder::Builder;
use decode::Node;
use std::collections::HashMap;
use std::path::Path;
use tract_onnx::pb;
use tract_onnx::prelude::Framework;
use value::{Act, Value};

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
    Importer::new(graph, opset, name)?.run(graph)
}

/// The graph walk: what every tensor name stands for so far, and the layers built.
struct Importer {
    values: HashMap<String, Value>,
    builder: Builder,
    graph_outputs: Vec<String>,
    name: String,
    input_name: String,
    input_shape: Vec<usize>,
}

impl Importer {
    fn new(g: &pb::GraphProto, opset: i64, name: &str) -> Result<Self, ImportError> {
        let mut values = HashMap::new();
        for t in &g.initializer {
            let c = decode::tensor_from_proto(t)
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
        crate::validate::tensor_len(&input_shape)
            .map_err(|e| ImportError::Graph(format!("input '{}': {e}", input.name)))?;
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
            values,
            builder: Builder {
                opset,
                uses,
                layers: Vec::new(),
            },
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
        if act.id != self.builder.layers.len() {
            // The output is an earlier tensor (trailing no-op nodes): keep it last with an identity route.
            let n: usize = act.shape.iter().product();
            self.builder.push(
                "output".into(),
                Op::Route {
                    src: (0..n as u32).map(|j| (0, j)).collect(),
                },
                vec![act.id],
                act.shape.clone(),
            );
        } else if let Some(l) = self.builder.layers.last_mut() {
            l.shape = act.shape.clone();
        }
        Ok(Graph {
            name: self.name,
            input_name: self.input_name,
            input_shape: self.input_shape,
            layers: self.builder.layers,
            output_shape: act.shape,
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
            }
            self.values.insert(o.clone(), out);
        }
        Ok(())
    }
}
