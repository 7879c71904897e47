//! The op table: one entry per ONNX op type, naming how the op maps onto
//! layers when it reads an activation and how it folds when all its inputs
//! are constants. The importer finds ops here and nowhere else, so the list of
//! supported ops that errors print is generated from this table and cannot
//! drift from what is implemented.

mod layers;
mod layout;
mod recurrent;
mod reduce;
mod select;

use super::builder::Builder;
use super::decode::Node;
use super::fold;
use super::qonnx;
use super::value::{Act, Const, Value};
use crate::ir::Op;
use crate::tables::TableFn;

/// Maps a node that reads an activation (`x`, its first activation input).
type MapFn = fn(&mut Builder, &Node, &Act) -> Result<Value, String>;
/// Folds a node whose inputs are all constants.
type FoldFn = fn(&Node) -> Result<Const, String>;
/// Maps a node with several outputs, one value each.
type MultiFn = fn(&mut Builder, &Node, &Act) -> Result<Vec<Value>, String>;

/// What an op does with an activation input.
enum OnAct {
    /// Nothing: the op only folds constants.
    No,
    /// One same-shape layer, its op read from the node's attributes.
    Unary(fn(&Node) -> Op),
    Map(MapFn),
    /// Several outputs (Split).
    Multi(MultiFn),
}

pub struct OpDef {
    pub name: &'static str,
    on_act: OnAct,
    fold: Option<FoldFn>,
    /// What a user should know: the limits of the mapping, or how it runs.
    note: &'static str,
}

impl OpDef {
    const fn note(self, note: &'static str) -> OpDef {
        OpDef { note, ..self }
    }
}

const fn unary(name: &'static str, op: fn(&Node) -> Op) -> OpDef {
    OpDef {
        name,
        on_act: OnAct::Unary(op),
        fold: None,
        note: "",
    }
}

const fn maps(name: &'static str, map: MapFn) -> OpDef {
    OpDef {
        name,
        on_act: OnAct::Map(map),
        fold: None,
        note: "",
    }
}

const fn both(name: &'static str, map: MapFn, fold: FoldFn) -> OpDef {
    OpDef {
        name,
        on_act: OnAct::Map(map),
        fold: Some(fold),
        note: "",
    }
}

const fn folds(name: &'static str, fold: FoldFn) -> OpDef {
    OpDef {
        name,
        on_act: OnAct::No,
        fold: Some(fold),
        note: "",
    }
}

const RECURRENT: &str = "unrolled over the static sequence (layers `NODE.f3.i`: direction, step, part); directions, layouts, constant `sequence_lens` and initial states, peepholes, `clip`, activation lists";

/// Every op the importer knows, in the order error messages list them.
pub const OPS: &[OpDef] = &[
    maps("MatMul", layers::dense).note("constant weights as the second operand: Dense, on every row of an input of several axes; of two activations (`[..., M, K]` by `[..., K, P]`): exact products, summed exactly"),
    maps("Gemm", layers::dense).note("Dense; `transA`, `transB`, `alpha`, `beta`"),
    both("Add", layers::arith, |n| fold::binary(n, |a, b| a + b))
        .note("of activations: elementwise, broadcast; with a constant: an affine"),
    both("Sub", layers::arith, |n| fold::binary(n, |a, b| a - b))
        .note("of activations: elementwise, broadcast; with a constant: an affine"),
    both("Mul", layers::arith, |n| fold::binary(n, |a, b| a * b))
        .note("of activations: elementwise, exact product, broadcast; with a constant: an affine"),
    both("Div", layers::arith, |n| fold::binary(n, |a, b| a / b))
        .note("by a constant only (an affine)"),
    both("Max", layers::variadic, |n| fold::binary(n, f64::max))
        .note("of activations, broadcast; with one constant number: a Clip"),
    both("Min", layers::variadic, |n| fold::binary(n, f64::min))
        .note("of activations, broadcast; with one constant number: a Clip"),
    maps("Sum", layers::variadic).note("of activations, broadcast"),
    maps("Mean", layers::variadic).note("of activations, broadcast: the sum, scaled"),
    unary("Relu", |_| Op::Relu),
    unary("LeakyRelu", |n| Op::LeakyRelu(n.attr_f("alpha", 0.01))),
    unary("Elu", |n| Op::Func(TableFn::Elu(n.attr_f("alpha", 1.0)))),
    unary("Selu", |n| {
        Op::Func(TableFn::Selu(
            n.attr_f("alpha", 1.673_263_192_176_818_8),
            n.attr_f("gamma", 1.050_701_022_148_132_3),
        ))
    }),
    maps("PRelu", layers::prelu).note("slopes broadcast to the input"),
    unary("ThresholdedRelu", |n| {
        Op::ThresholdedRelu(n.attr_f("alpha", 1.0))
    }),
    unary("Sigmoid", |_| Op::Func(TableFn::Sigmoid)),
    unary("HardSigmoid", |n| {
        Op::Func(TableFn::HardSigmoid(
            n.attr_f("alpha", 0.2),
            n.attr_f("beta", 0.5),
        ))
    }),
    unary("Tanh", |_| Op::Func(TableFn::Tanh)),
    maps("Softmax", layers::softmax).note("exact by tables, or argmax (`softmax = argmax` in the configuration); last axis"),
    unary("Softplus", |_| Op::Func(TableFn::Softplus)),
    both("Exp", |b, n, x| Ok(b.unary(n.name, x, Op::Func(TableFn::Exp))), |n| {
        fold::unary(n, f64::exp)
    })
    .note("by table"),
    unary("Softsign", |_| Op::Func(TableFn::Softsign)),
    maps("Clip", layers::clip),
    maps("BatchNormalization", layers::batch_norm).note("folded into the layer before, or a Scale layer; before a QONNX quantizer: integer thresholds"),
    maps("Conv", layers::conv).note("any number of spatial dims; strides, pads, `auto_pad`, dilations, groups (depthwise); FPGA: reuse factor 1"),
    maps("ConvTranspose", layers::conv_transpose).note("as a Conv over the input dilated by the strides; pads, `output_padding`, `output_shape`, dilations, groups; pads that crop past the kernel are refused"),
    maps("MaxPool", layers::pool).note("any number of spatial dims; strides, pads, dilations, `ceil_mode`"),
    maps("AveragePool", layers::pool).note("`ceil_mode`; padding not counted, or (`count_include_pad` 1) a depthwise Conv of weights 1/size"),
    maps("GlobalAveragePool", layers::pool),
    maps("GlobalMaxPool", layers::pool),
    both("Flatten", layout::flatten, fold::flatten),
    both("Reshape", layout::reshape, fold::reshape),
    both("Transpose", layout::transpose, fold::transpose),
    both("Squeeze", layout::squeeze, fold::squeeze),
    both("Unsqueeze", layout::unsqueeze, fold::unsqueeze),
    both("Concat", layout::concat, fold::concat).note("wiring (a Route layer)"),
    maps("ReduceSum", reduce::reduce)
        .note("over non-batch axes; an exact depthwise sum (a Conv of ones)"),
    maps("ReduceMean", reduce::reduce).note("over non-batch axes; an average pool"),
    maps("ReduceMax", reduce::reduce).note("over non-batch axes; a max pool"),
    maps("ReduceSumSquare", reduce::reduce)
        .note("over non-batch axes; exact squares, summed exactly"),
    maps("ReduceL2", reduce::reduce)
        .note("over non-batch axes; exact squares, summed exactly, then a square-root table"),
    maps("Greater", reduce::compare)
        .note("against one constant: a 1-bit decision (a Step)"),
    maps("GreaterOrEqual", reduce::compare).note("against one constant: a 1-bit decision"),
    maps("Less", reduce::compare).note("against one constant: a 1-bit decision"),
    maps("LessOrEqual", reduce::compare).note("against one constant: a 1-bit decision"),
    both("Slice", select::slice, select::fold_slice)
        .note("constant starts, ends, axes, steps; wiring"),
    both("Gather", select::gather, select::fold_gather)
        .note("constant indices, not along the batch axis; wiring"),
    OpDef {
        name: "RNN",
        on_act: OnAct::Multi(recurrent::recurrent),
        fold: None,
        note: RECURRENT,
    },
    OpDef {
        name: "GRU",
        on_act: OnAct::Multi(recurrent::recurrent),
        fold: None,
        note: RECURRENT,
    },
    OpDef {
        name: "LSTM",
        on_act: OnAct::Multi(recurrent::recurrent),
        fold: None,
        note: RECURRENT,
    },
    OpDef {
        name: "Split",
        on_act: OnAct::Multi(select::split),
        fold: None,
        note: "sizes from `split` or equal parts; wiring",
    },
    both("Pad", select::pad, select::fold_pad)
        .note("modes constant (0 on activations), edge, reflect; negative pads crop; wiring"),
    both("Resize", select::resize_act, select::fold_resize).note(
        "mode nearest (every coordinate transformation and rounding rule; wiring) or linear (activations: two neighbours weighted per axis)",
    ),
    both("Upsample", select::resize_act, select::fold_resize)
        .note("mode nearest (wiring) or linear"),
    both("DepthToSpace", select::depth_to_space, select::fold_depth_to_space)
        .note("DCR and CRD; wiring"),
    both("SpaceToDepth", select::space_to_depth, select::fold_space_to_depth).note("wiring"),
    both("Identity", layout::identity, fold::identity),
    both("Dropout", layout::identity, fold::identity),
    both(
        "Shape",
        |_, n, _| fold::shape(n).map(Value::Const),
        fold::shape,
    ),
    folds("Constant", fold::constant),
    both("Cast", layout::cast, fold::identity)
        .note("on activations to a float type only (as after a comparison)"),
    folds("Pow", |n| fold::binary(n, f64::powf)),
    both("Sqrt", |b, n, x| Ok(b.unary(n.name, x, Op::Func(TableFn::Sqrt))), |n| {
        fold::unary(n, f64::sqrt)
    })
    .note("by table; negative inputs give 0 (ONNX: NaN)"),
    both("Neg", layers::neg, |n| fold::unary(n, |v| -v)).note("an affine (scale -1)"),
    both("Quant", qonnx::map_quant, qonnx::fold_quant).note("power-of-two scale: a fixed-point type; after an affine map (and a Relu): integer thresholds; any other scale or zero point (up to 8 bits): thresholds to its codes, the scale taken into the next MatMul or Conv"),
    both("IntQuant", qonnx::map_quant, qonnx::fold_quant).note("as Quant"),
    both("BipolarQuant", qonnx::map_quant, qonnx::fold_quant).note("a sign step; after an affine map: integer thresholds"),
    both("Trunc", qonnx::map_quant, qonnx::fold_quant),
    maps("MultiThreshold", qonnx::map_multithreshold).note("FINN's: thresholds per channel or for all, NCHW or NHWC; the counts are integer codes, `out_scale`/`out_bias` taken into the next MatMul or Conv"),
    both(
        "QuantizeLinear",
        qonnx::map_quantize_linear,
        qonnx::fold_linear,
    ),
    both("DequantizeLinear", layout::identity, qonnx::fold_linear),
];

/// The supported ONNX ops as a Markdown table: each op, whether it maps
/// activations onto layers (which every backend then runs: golden model, CPU
/// engine, FPGA kernel) or folds constants, and its note. The README's
/// operator table is this text, checked by a test.
pub fn markdown_table() -> String {
    let mut s = String::from(
        "| ONNX op | on activations (golden, CPU engine, FPGA) | folds constants | notes |\n|---|---|---|---|\n",
    );
    for d in OPS {
        let yes = |b: bool| if b { "yes" } else { "" };
        s += &format!(
            "| {} | {} | {} | {} |\n",
            d.name,
            yes(!matches!(d.on_act, OnAct::No)),
            yes(d.fold.is_some()),
            d.note
        );
    }
    s
}

/// The names of the table's ops that pass `keep`, comma-separated, in table order.
fn names(keep: impl Fn(&OpDef) -> bool) -> String {
    OPS.iter()
        .filter(|d| keep(d))
        .map(|d| d.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Evaluates one node: folded to a constant when no input is an activation,
/// else mapped onto layers through the op's table entry.
pub fn eval(b: &mut Builder, n: &Node) -> Result<Vec<Value>, String> {
    let op = n.op();
    let def = OPS.iter().find(|d| d.name == op);
    let x = n.inputs.iter().flatten().find_map(|v| match v {
        Value::Act(a) => Some(a),
        Value::Const(_) => None,
    });
    match (def, x) {
        (None, _) if matches!(op, "Loop" | "Scan") => Err(format!(
            "op '{op}' (a subgraph run in a loop) is not supported; recurrent layers import as ONNX RNN, GRU and LSTM nodes, which PyTorch and tf2onnx write for their recurrent layers"
        )),
        (None, None) => Err(format!(
            "op '{op}' on constants is not supported; supported: {}",
            names(|_| true)
        )),
        (None, Some(_)) => Err(format!(
            "op '{op}' is not supported on activations; supported: {}",
            names(|_| true)
        )),
        (Some(d), None) => match d.fold {
            Some(fold) => Ok(vec![Value::Const(fold(n)?)]),
            None => Err(format!(
                "op '{op}' on constants is not supported (it maps activations only); ops that fold constants: {}",
                names(|d| d.fold.is_some())
            )),
        },
        (Some(d), Some(x)) => match d.on_act {
            OnAct::Unary(make) => Ok(vec![b.unary(n.name, x, make(n))]),
            OnAct::Map(map) => Ok(vec![map(b, n, x)?]),
            OnAct::Multi(map) => map(b, n, x),
            OnAct::No => Err(format!(
                "op '{op}' is not supported on activations (it folds constants only); ops on activations: {}",
                names(|d| !matches!(d.on_act, OnAct::No))
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use tract_onnx::pb;

    fn eval_op(op: &str, input: Value) -> Result<Vec<Value>, String> {
        let proto = pb::NodeProto {
            op_type: op.into(),
            input: vec!["x".into()],
            output: vec!["y".into()],
            ..Default::default()
        };
        let mut b = Builder {
            opset: 13,
            uses: HashMap::new(),
            names: HashMap::new(),
            n_inputs: 1,
            layers: Vec::new(),
        };
        let inputs = [Some(input)];
        let n = Node {
            proto: &proto,
            name: "n",
            inputs: &inputs,
        };
        eval(&mut b, &n)
    }

    #[test]
    fn an_unknown_op_lists_every_op_of_the_table() {
        let act = Value::Act(Act::new(0, vec![4]));
        let konst = Value::Const(Const::scalar(1.0));
        for input in [act, konst] {
            let e = eval_op("Einsum", input).expect_err("Einsum is unknown");
            let listed = e.split_once("supported: ").expect("a list").1;
            let listed: Vec<&str> = listed.split(", ").collect();
            let table: Vec<&str> = OPS.iter().map(|d| d.name).collect();
            assert_eq!(listed, table, "{e}");
            assert!(e.contains("'Einsum'") && e.contains(", Neg, "), "{e}");
        }
    }

    #[test]
    fn an_op_in_the_wrong_mode_lists_the_ops_of_that_mode() {
        let act = Value::Act(Act::new(0, vec![4]));
        let e = eval_op("Pow", act).expect_err("Pow only folds");
        assert!(
            e.contains("folds constants only") && e.contains("Relu"),
            "{e}"
        );
        assert!(!e.contains("Pow,") && !e.contains("Constant"), "{e}");
        let e = eval_op("Relu", Value::Const(Const::scalar(1.0))).expect_err("Relu does not fold");
        assert!(e.contains("Neg") && !e.contains("Relu,"), "{e}");
    }

    #[test]
    fn loop_and_scan_are_refused_pointing_to_the_recurrent_ops() {
        for op in ["Loop", "Scan"] {
            let e = eval_op(op, Value::Act(Act::new(0, vec![4]))).expect_err(op);
            assert!(
                e.contains(&format!(
                    "op '{op}' (a subgraph run in a loop) is not supported"
                )) && e.contains("RNN, GRU and LSTM"),
                "{e}"
            );
        }
    }

    #[test]
    fn op_names_are_unique() {
        for (i, d) in OPS.iter().enumerate() {
            assert!(OPS[..i].iter().all(|e| e.name != d.name), "{}", d.name);
        }
    }
}
