//! Elementwise ops between activations (Sub, Mul, Max, Min, Sum, Mean;
//! numpy broadcasting through Routes) and an anomaly-score head built from
//! them, against tract's float reference; then bit-exactness of the
//! quantized graphs between the golden model and the float reference's
//! layer structure is the backends' property tests' job (random models
//! draw every `BinOp`).

mod common;

use common::{int64s, model, node, scattered, values, with_int, with_ints};
use quantize::onnx::import_bytes;
use tract_onnx::pb;

/// A named graph: nodes, initializers and the input shape.
type Case = (
    &'static str,
    Vec<pb::NodeProto>,
    Vec<pb::TensorProto>,
    &'static [i64],
);

fn cases() -> Vec<Case> {
    vec![
        (
            "swish, x * sigmoid(x)",
            vec![
                node("Sigmoid", "s", &["x"], &["g"]),
                node("Mul", "m", &["x", "g"], &["y"]),
            ],
            vec![],
            &[1, 6],
        ),
        (
            "x - relu(x)",
            vec![
                node("Relu", "r", &["x"], &["p"]),
                node("Sub", "d", &["x", "p"], &["y"]),
            ],
            vec![],
            &[1, 6],
        ),
        (
            "squeeze-excitation: channels scaled by their pooled gate",
            vec![
                node("GlobalAveragePool", "gap", &["x"], &["p"]),
                node("Sigmoid", "s", &["p"], &["g"]),
                node("Mul", "m", &["x", "g"], &["y"]),
            ],
            vec![],
            &[1, 3, 4, 4],
        ),
        (
            "max, min, sum and mean of three",
            vec![
                node("Relu", "a", &["x"], &["p"]),
                node("Neg", "n", &["x"], &["q"]),
                node("Max", "mx", &["x", "p", "q"], &["m1"]),
                node("Min", "mn", &["x", "p", "q"], &["m2"]),
                node("Sum", "sm", &["m1", "m2", "x"], &["m3"]),
                node("Mean", "me", &["m3", "m1", "p"], &["y"]),
            ],
            vec![],
            &[1, 5],
        ),
        (
            "max and min with a constant: clips",
            vec![
                node("Max", "mx", &["x", "lo"], &["a"]),
                node("Min", "mn", &["hi", "a"], &["y"]),
            ],
            vec![values("lo", &[], &[-0.5]), values("hi", &[1], &[0.75])],
            &[1, 6],
        ),
        (
            "broadcast of a row against a column",
            vec![
                with_ints(node("ReduceMax", "r", &["x"], &["col"]), "axes", &[2]),
                node("Sub", "d", &["x", "col"], &["y"]),
            ],
            vec![],
            &[1, 3, 4],
        ),
        (
            "anomaly score and decision",
            vec![
                node("Gemm", "enc", &["x", "W1"], &["h"]),
                node("Relu", "r", &["h"], &["hr"]),
                node("Gemm", "dec", &["hr", "W2"], &["rec"]),
                node("Sub", "err", &["rec", "x"], &["d"]),
                node("Mul", "sq", &["d", "d"], &["d2"]),
                with_int(
                    with_ints(node("ReduceMean", "mse", &["d2"], &["score"]), "axes", &[1]),
                    "keepdims",
                    0,
                ),
                node("Greater", "cut", &["score", "th"], &["b"]),
                with_int(node("Cast", "f", &["b"], &["y"]), "to", 1),
            ],
            vec![
                scattered("W1", &[8, 3], 1),
                scattered("W2", &[3, 8], 2),
                values("th", &[], &[1.0]),
            ],
            &[1, 8],
        ),
    ]
}

#[test]
fn elementwise_ops_match_tract() {
    for (name, nodes, inits, x) in cases() {
        common::matches_tract(name, &model(nodes, inits, x, "y", &[]), 50, 8);
    }
}

#[test]
fn refused_elementwise_ops_say_why() {
    let cases: Vec<Case> = vec![
        (
            "Div of two activations",
            vec![
                node("Relu", "r", &["x"], &["p"]),
                node("Div", "d", &["x", "p"], &["y"]),
            ],
            vec![],
            &[1, 4],
        ),
        (
            "do not broadcast",
            vec![
                with_int(node("Split", "s", &["x", "k"], &["a", "b"]), "axis", 1),
                node("Add", "d", &["a", "b"], &["y"]),
            ],
            vec![int64s("k", &[2], &[2, 3])],
            &[1, 5],
        ),
        (
            "only one number",
            vec![node("Max", "m", &["x", "c"], &["y"])],
            vec![values("c", &[2], &[0.0, 1.0])],
            &[1, 2],
        ),
    ];
    for (want, nodes, inits, x) in cases {
        let bytes = model(nodes, inits, x, "y", &[]);
        let e = import_bytes(&bytes, "t").expect_err(want).to_string();
        assert!(e.contains(want), "{want}: {e}");
    }
}
