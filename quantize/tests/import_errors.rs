//! Bad ONNX input gives an error that names what is wrong and where, never a panic.

mod common;

use common::{node, values, weights};
use quantize::onnx::import_bytes;
use tract_onnx::pb;

fn model(nodes: Vec<pb::NodeProto>, inits: Vec<pb::TensorProto>, output: &str) -> Vec<u8> {
    model_with_input(nodes, inits, output, &[1, 4])
}

fn model_with_input(
    nodes: Vec<pb::NodeProto>,
    inits: Vec<pb::TensorProto>,
    output: &str,
    input: &[i64],
) -> Vec<u8> {
    common::model(nodes, inits, input, output, &[1, 3])
}

fn err(bytes: &[u8]) -> String {
    import_bytes(bytes, "t")
        .expect_err("import must fail")
        .to_string()
}

#[test]
fn a_valid_tiny_model_imports() {
    let b = model(
        vec![
            node("MatMul", "fc", &["x", "W"], &["y"]),
            node("Relu", "act", &["y"], &["z"]),
        ],
        vec![weights("W", &[4, 3])],
        "z",
    );
    let g = import_bytes(&b, "t").unwrap();
    assert_eq!(g.layers.len(), 2);
    assert_eq!(g.inputs[0].shape, vec![4]);
}

#[test]
fn random_bytes_and_truncation_are_errors() {
    let good = model(
        vec![node("MatMul", "fc", &["x", "W"], &["y"])],
        vec![weights("W", &[4, 3])],
        "y",
    );
    for cut in [1, good.len() / 3, good.len() / 2, good.len() - 1] {
        let e = err(&good[..cut]);
        assert!(
            e.contains("not a valid ONNX model")
                || e.contains("no graph")
                || e.contains("node")
                || e.contains("input"),
            "cut {cut}: {e}"
        );
    }
    let mut state = 0x1234_5678u64;
    for _ in 0..200 {
        let bytes: Vec<u8> = (0..64)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                (state >> 56) as u8
            })
            .collect();
        let _ = import_bytes(&bytes, "t"); // must return, never panic
    }
    assert!(err(b"\xff\xff\xff\xff garbage").contains("not a valid ONNX model"));
}

#[test]
fn an_unsupported_op_names_op_node_and_the_supported_set() {
    let b = model(vec![node("Einsum", "mix3", &["x"], &["y"])], vec![], "y");
    let e = err(&b);
    assert!(
        e.contains("mix3") && e.contains("Einsum") && e.contains("supported: MatMul, Gemm"),
        "{e}"
    );
}

#[test]
fn a_missing_initializer_is_named() {
    let b = model(
        vec![node("MatMul", "fc", &["x", "W_missing"], &["y"])],
        vec![],
        "y",
    );
    let e = err(&b);
    assert!(
        e.contains("fc") && e.contains("W_missing") && e.contains("neither"),
        "{e}"
    );
}

#[test]
fn a_cycle_is_named() {
    let b = model(
        vec![
            node("Add", "a", &["x", "c"], &["b"]),
            node("Relu", "r", &["b"], &["c"]),
        ],
        vec![],
        "c",
    );
    let e = err(&b);
    assert!(e.contains("cycle"), "{e}");
}

#[test]
fn mismatched_weight_shape_names_the_tensor() {
    let b = model(
        vec![node("MatMul", "fc", &["x", "W"], &["y"])],
        vec![weights("W", &[5, 3])],
        "y",
    );
    let e = err(&b);
    assert!(
        e.contains("fc") && e.contains("'W'") && e.contains("[5, 3]") && e.contains("4 features"),
        "{e}"
    );
}

#[test]
fn a_tensor_with_too_few_values_is_an_error() {
    let mut w = weights("W", &[4, 3]);
    w.float_data.truncate(5);
    let b = model(
        vec![node("MatMul", "fc", &["x", "W"], &["y"])],
        vec![w],
        "y",
    );
    let e = err(&b);
    assert!(
        e.contains("initializer 'W'") && e.contains("holds 5 values"),
        "{e}"
    );
}

#[test]
fn pytorch_style_gemm_with_a_fixed_batch_normalisation_and_qdq_imports() {
    // A fixed batch of 789444 (seen in the wild), input normalisation by
    // constants, Gemm with transB, Dropout, and a QuantizeLinear/DequantizeLinear pair.
    let gemm = common::with_int(node("Gemm", "fc", &["xn", "W", "B"], &["y"]), "transB", 1);
    let zp = pb::TensorProto {
        name: "zp".into(),
        data_type: 3, // int8: signed
        int32_data: vec![0],
        ..Default::default()
    };
    let b = model_with_input(
        vec![
            node("Sub", "centre", &["x", "mean"], &["xc"]),
            node("Div", "scale", &["xc", "std"], &["xn"]),
            gemm,
            node("Dropout", "drop", &["y"], &["yd"]),
            node("QuantizeLinear", "q", &["yd", "s", "zp"], &["yq"]),
            node("DequantizeLinear", "dq", &["yq", "s", "zp"], &["ydq"]),
            node("Relu", "act", &["ydq"], &["z"]),
        ],
        vec![
            values("mean", &[4], &[1.0, 1.0, 1.0, 1.0]),
            values("std", &[4], &[2.0, 2.0, 2.0, 2.0]),
            values(
                "W",
                &[3, 4],
                &[1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5],
            ),
            values("B", &[3], &[0.0, 0.25, -0.5]),
            values("s", &[], &[0.0625]),
            zp,
        ],
        "z",
        &[789444, 4],
    );
    let g = import_bytes(&b, "t").unwrap();
    assert_eq!(g.inputs[0].shape, vec![4]);
    // x = [3, 5, -1, 1] -> xn = [1, 2, -1, 0] -> y = [1, 2.25, 0.5 * 2 - 0.5 = 0.5]
    let out = g.evaluate(&[3.0, 5.0, -1.0, 1.0]);
    assert_eq!(out, vec![1.0, 2.25, 0.5]);
    // The QDQ pair clips to int8's range times the scale: 200 * 0.0625 = 12.5 -> 127 * 0.0625.
    let big = g.evaluate(&[201.0, 1.0, 1.0, 1.0]);
    assert_eq!(big[0], 127.0 * 0.0625);
}

/// Quantizers and thresholds bxflow cannot keep exact are refused with a
/// message that names the node and says why.
#[test]
fn inexact_quantizers_and_bad_thresholds_are_named() {
    let quant = |bits: f32, scale: f32, zp: f32| {
        model(
            vec![node("Quant", "q16", &["x", "s", "z", "b"], &["y"])],
            vec![
                values("s", &[], &[scale]),
                values("z", &[], &[zp]),
                values("b", &[], &[bits]),
            ],
            "y",
        )
    };
    let e = err(&quant(16.0, 0.3, 0.0));
    assert!(
        e.contains("q16")
            && e.contains("65536 codes with scale 0.3")
            && e.contains("at most 256 codes (8 bits)"),
        "{e}"
    );
    // 64 bits: the code count itself is past i64.
    let e = err(&quant(64.0, 0.3, 0.0));
    assert!(e.contains("18446744073709551616 codes"), "{e}");
    let e = err(&quant(4.0, 0.3, 0.5));
    assert!(e.contains("zero point 0.5 is not a whole number"), "{e}");
    let e = err(&quant(4.0, -0.3, 0.0));
    assert!(
        e.contains("scale -0.3") && e.contains("must be positive"),
        "{e}"
    );
    // A 4-bit quantizer of any scale and zero point is fine.
    assert!(import_bytes(&quant(4.0, 0.3, 2.0), "t").is_ok());

    let mt = |t_dims: &[i64], layout: &str| {
        let n = common::with_str(
            node("MultiThreshold", "mt", &["x", "t"], &["y"]),
            "data_layout",
            layout,
        );
        let len: i64 = t_dims.iter().product();
        model(
            vec![n],
            vec![values("t", t_dims, &vec![0.0; len as usize])],
            "y",
        )
    };
    let e = err(&mt(&[3, 2], "NCHW"));
    assert!(
        e.contains("mt") && e.contains("3 rows of thresholds for 4 channels"),
        "{e}"
    );
    let e = err(&mt(&[4, 2, 1], "NCHW"));
    assert!(e.contains("expected [channels, steps]"), "{e}");
    let e = err(&mt(&[4, 2], "CHWN"));
    assert!(e.contains("data_layout 'CHWN'"), "{e}");
    assert!(import_bytes(&mt(&[4, 2], "NCHW"), "t").is_ok());
}
