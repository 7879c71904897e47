//! Reductions, comparisons against a constant, and Exp/Sqrt against tract's
//! float reference; the 1-bit decision a comparison quantizes to.

mod common;

use common::{int64s, model, node, values, with_int, with_ints};
use quantize::config::Config;
use quantize::fixed::FixedType;
use quantize::onnx::import_bytes;
use quantize::qmodel::QOp;
use quantize::quantizer::quantize_graph;
use tract_onnx::pb;

/// A named graph: nodes, initializers and the input shape.
type Case = (
    &'static str,
    Vec<pb::NodeProto>,
    Vec<pb::TensorProto>,
    &'static [i64],
);

fn reduce(op: &str, axes: &[i64], keep: i64) -> Vec<pb::NodeProto> {
    vec![with_int(
        with_ints(node(op, "r", &["x"], &["y"]), "axes", axes),
        "keepdims",
        keep,
    )]
}

fn compare(op: &str, const_first: bool) -> Vec<pb::NodeProto> {
    let ins: &[&str] = if const_first {
        &["c", "x"]
    } else {
        &["x", "c"]
    };
    vec![
        node(op, "cmp", ins, &["b"]),
        with_int(node("Cast", "f", &["b"], &["y"]), "to", 1),
    ]
}

#[test]
fn reductions_comparisons_and_tables_match_tract() {
    // Opset 13: ReduceSum takes its axes as an input, the others as an attribute.
    let sum = |axes: &[i64]| {
        let mut n = with_int(node("ReduceSum", "r", &["x", "ax"], &["y"]), "keepdims", 0);
        n.input[1] = "ax".into();
        (vec![n], vec![int64s("ax", &[axes.len() as i64], axes)])
    };
    let (sum_nodes, sum_inits) = sum(&[1, 3]);
    let cases: Vec<Case> = vec![
        (
            "reduce mean, last axis",
            reduce("ReduceMean", &[-1], 1),
            vec![],
            &[1, 3, 5],
        ),
        (
            "reduce max, middle axis",
            reduce("ReduceMax", &[1], 0),
            vec![],
            &[1, 3, 4, 2],
        ),
        ("reduce sum, two axes", sum_nodes, sum_inits, &[1, 3, 4, 2]),
        (
            "reduce sum of squares",
            reduce("ReduceSumSquare", &[2], 1),
            vec![],
            &[1, 3, 4],
        ),
        (
            "reduce L2, two axes",
            reduce("ReduceL2", &[-1, 1], 0),
            vec![],
            &[1, 2, 3, 4],
        ),
        (
            "greater",
            compare("Greater", false),
            vec![values("c", &[], &[0.25])],
            &[1, 6],
        ),
        (
            "less, constant first",
            compare("Less", true),
            vec![values("c", &[1], &[-0.5])],
            &[1, 6],
        ),
        (
            "greater or equal",
            compare("GreaterOrEqual", false),
            vec![values("c", &[], &[0.0])],
            &[1, 6],
        ),
        (
            "less or equal",
            compare("LessOrEqual", false),
            vec![values("c", &[], &[1.0])],
            &[1, 6],
        ),
        (
            "exp",
            vec![node("Exp", "e", &["x"], &["y"])],
            vec![],
            &[1, 5],
        ),
        (
            "sqrt of a square",
            vec![
                node("Mul", "sq", &["x", "two"], &["d"]),
                node("Relu", "r", &["d"], &["p"]),
                node("Sqrt", "s", &["p"], &["y"]),
            ],
            vec![values("two", &[], &[2.0])],
            &[1, 5],
        ),
    ];
    for (name, nodes, inits, x) in cases {
        common::matches_tract(name, &model(nodes, inits, x, "y", &[]), 50, 4);
    }
}

/// `x > c` keeps its strictness in fixed point, and never fires when `c`
/// is above every value of the input type.
#[test]
fn a_comparison_is_an_exact_one_bit_decision() {
    for (c, fires_at) in [(0.25, 0.2578125), (1000.0, f64::INFINITY)] {
        let bytes = model(
            compare("Greater", false),
            vec![values("c", &[], &[c])],
            &[1, 1],
            "y",
            &[],
        );
        let g = import_bytes(&bytes, "cmp").unwrap();
        let cfg = Config::from_toml(
            "[model]\nprecision = \"fixed<16,6>\"\ninput = \"fixed<10,3,TRN,SAT>\"\n",
            "t",
        )
        .unwrap();
        let q = quantize_graph(&g, &cfg).unwrap();
        let layer = q.layers.last().unwrap();
        assert!(matches!(layer.op, QOp::Step { .. }));
        assert_eq!(layer.ty, FixedType::unsigned(1, 1).unwrap());
        // Every input code: the decision is `value > c`.
        let t = q.inputs[0].ty;
        for raw in t.min_raw()..=t.max_raw() {
            let out = quantize::golden::evaluate(&q, &[raw]).unwrap();
            let v = t.to_f64(raw);
            assert_eq!(out[0] == 1, v >= fires_at, "c {c}, x {v}");
        }
    }
}

#[test]
fn refused_reductions_and_comparisons_say_why() {
    let cases: Vec<Case> = vec![
        (
            "reducing along axis 0 would mix events",
            reduce("ReduceMean", &[0], 1),
            vec![],
            &[-1, 2],
        ),
        (
            "reducing along axis 0 would mix events",
            vec![node("ReduceMax", "r", &["x"], &["y"])],
            vec![],
            &[-1, 2],
        ),
        (
            "not one number",
            compare("Greater", false),
            vec![values("c", &[2], &[0.0, 1.0])],
            &[1, 2],
        ),
        (
            "only to float",
            vec![with_int(node("Cast", "c", &["x"], &["y"]), "to", 7)],
            vec![],
            &[1, 2],
        ),
    ];
    for (want, nodes, inits, x) in cases {
        let bytes = model(nodes, inits, x, "y", &[]);
        let e = import_bytes(&bytes, "t").expect_err(want).to_string();
        assert!(e.contains(want), "{want}: {e}");
    }
}
