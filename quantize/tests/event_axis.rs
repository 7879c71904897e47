//! The event axis rule: the first axis of a graph input is the event axis
//! when it is symbolic, or static and every op keeps its rows apart;
//! otherwise the whole static tensor is one event. Each case is checked
//! against tract, run on the ONNX shapes the rule implies.

mod common;

use common::{graph_model, matches_tract, node, scattered, with_int, with_ints};
use quantize::onnx::import_bytes;

/// `x [rows, 2, 4] -> Relu -> MatMul [4, 3] -> ReduceSum over `axes`.
fn rows_then_sum(rows: i64, axes: &[i64]) -> Vec<u8> {
    graph_model(
        vec![
            node("Relu", "act", &["x"], &["r"]),
            node("MatMul", "fc", &["r", "w"], &["h"]),
            with_int(
                node("ReduceSum", "sum", &["h", "axes"], &["y"]),
                "keepdims",
                0,
            ),
        ],
        vec![
            scattered("w", &[4, 3], 1),
            common::int64s("axes", &[axes.len() as i64], axes),
        ],
        &[("x", &[rows, 2, 4])],
        &[("y", &[])],
    )
}

#[test]
fn a_static_first_axis_whose_rows_an_op_sums_is_one_event() {
    let g = matches_tract("sum_rows", &rows_then_sum(3, &[0]), 32, 1);
    assert!(!g.inputs[0].event_axis);
    assert_eq!(g.inputs[0].shape, [3, 2, 4]);
    assert_eq!(g.shape(g.outputs[0].tensor), [2, 3]);
}

#[test]
fn a_static_first_axis_kept_apart_by_every_op_is_the_event_axis() {
    // A batch baked into the export (PyTorch's 789444 and the like).
    let g = matches_tract("sum_features", &rows_then_sum(789_444, &[1]), 32, 2);
    assert!(g.inputs[0].event_axis);
    assert_eq!(g.inputs[0].shape, [2, 4]);
    assert_eq!(g.shape(g.outputs[0].tensor), [3]);
}

#[test]
fn a_symbolic_first_axis_an_op_would_mix_is_refused_naming_the_op() {
    let e = import_bytes(&rows_then_sum(-1, &[0]), "t")
        .expect_err("a symbolic batch cannot be one event")
        .to_string();
    assert!(
        e.contains("node 'sum' (ReduceSum)")
            && e.contains("reducing along axis 0 would mix events"),
        "{e}"
    );
}

#[test]
fn the_event_axis_moves_with_transposes_and_unsqueezes() {
    // Keras recurrent exports: [N, T, F] to time-major [T, N, F] and back.
    let bytes = graph_model(
        vec![
            with_ints(node("Transpose", "tm", &["x"], &["t"]), "perm", &[1, 0, 2]),
            node("MatMul", "fc", &["t", "w"], &["h"]),
            node("Unsqueeze", "u", &["h", "zero"], &["hu"]),
            node("Tanh", "act", &["hu"], &["a"]),
            node("Squeeze", "s", &["a", "zero"], &["sq"]),
            with_ints(node("Transpose", "bm", &["sq"], &["b"]), "perm", &[1, 0, 2]),
            with_int(node("Softmax", "sm", &["b"], &["y"]), "axis", -1),
        ],
        vec![
            scattered("w", &[3, 5], 3),
            common::int64s("zero", &[1], &[0]),
        ],
        &[("x", &[-1, 4, 3])],
        &[("y", &[])],
    );
    let g = matches_tract("time_major", &bytes, 32, 3);
    assert!(g.inputs[0].event_axis);
    assert_eq!(g.shape(g.outputs[0].tensor), [4, 5]);
}

#[test]
fn a_softmax_or_concat_across_a_moved_event_axis_would_mix_events() {
    for (op, attr, want) in [
        ("Softmax", "axis", "softmax along axis 1 would mix events"),
        (
            "Concat",
            "axis",
            "concatenation along axis 1 would mix events",
        ),
    ] {
        let bytes = graph_model(
            vec![
                with_ints(node("Transpose", "tm", &["x"], &["t"]), "perm", &[1, 0]),
                with_int(node(op, "n", &["t"], &["y"]), attr, 1),
            ],
            vec![],
            &[("x", &[-1, 4])],
            &[("y", &[])],
        );
        let e = import_bytes(&bytes, "t").expect_err(op).to_string();
        assert!(e.contains(want), "{op}: {e}");
    }
}

#[test]
fn a_static_batch_inside_one_event_runs_ops_across_it() {
    // ROOT's test models keep a batch inside one tensor: here a Transpose
    // and a Concat along axis 0 make [2, 3] one event.
    let bytes = graph_model(
        vec![
            with_ints(node("Transpose", "t", &["x"], &["xt"]), "perm", &[1, 0]),
            node("MatMul", "fc", &["xt", "w"], &["h"]),
            with_int(node("Concat", "cat", &["h", "h"], &["c"]), "axis", 0),
            node("Relu", "y", &["c"], &["y"]),
        ],
        vec![scattered("w", &[2, 4], 4)],
        &[("x", &[2, 3])],
        &[("y", &[])],
    );
    let g = matches_tract("batch_inside", &bytes, 32, 4);
    assert!(!g.inputs[0].event_axis);
    assert_eq!(g.shape(g.outputs[0].tensor), [6, 4]);
}

#[test]
fn a_convolution_over_a_batch_inside_one_event_says_so() {
    // The Conv needs one sample per event; the ReduceSum over axis 0 makes
    // the static batch of 2 one event: neither reading imports.
    let bytes = graph_model(
        vec![
            node("Conv", "conv", &["x", "w"], &["h"]),
            with_int(
                node("ReduceSum", "sum", &["h", "axes"], &["y"]),
                "keepdims",
                0,
            ),
        ],
        vec![
            scattered("w", &[2, 1, 3], 5),
            common::int64s("axes", &[1], &[0]),
        ],
        &[("x", &[2, 1, 8])],
        &[("y", &[])],
    );
    let e = import_bytes(&bytes, "t")
        .expect_err("no reading")
        .to_string();
    assert!(
        e.contains("reducing along axis 0 would mix events")
            && e.contains("read as one event of its whole static shape")
            && e.contains("Conv needs one sample per event"),
        "{e}"
    );
}
