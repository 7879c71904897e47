//! Ops that pick values (Slice, Gather, Split, Pad, Resize nearest and linear,
//! DepthToSpace, SpaceToDepth) against tract's float reference, and their
//! refusals. On activations they are Route layers, which every backend runs
//! bit-exactly (random models draw Routes with zero sources too).

mod common;

use common::{int64s, model, node, values, with_int, with_str};
use quantize::ir::Op;
use quantize::onnx::import_bytes;
use tract_onnx::pb;

/// A named one-input graph: its nodes, initializers and input shape.
struct Case {
    name: &'static str,
    nodes: Vec<pb::NodeProto>,
    inits: Vec<pb::TensorProto>,
    x: &'static [i64],
}

fn cases() -> Vec<Case> {
    let resize_in = |mode: &str,
                     name: &'static str,
                     coord: &str,
                     round: &str,
                     scales: &[f32],
                     sizes: &[i64]| {
        let mut n = node("Resize", name, &["x", "", "scales", "sizes"], &["y"]);
        n = with_str(n, "mode", mode);
        n = with_str(n, "coordinate_transformation_mode", coord);
        n = with_str(n, "nearest_mode", round);
        let mut inits = vec![values("scales", &[scales.len() as i64], scales)];
        if sizes.is_empty() {
            n.input.truncate(3);
        } else {
            inits.push(int64s("sizes", &[sizes.len() as i64], sizes));
            inits[0] = values("scales", &[0], &[]);
        }
        Case {
            name,
            nodes: vec![n],
            inits,
            x: &[1, 2, 3, 4],
        }
    };
    let resize = |name, coord, round, scales: &[f32], sizes: &[i64]| {
        resize_in("nearest", name, coord, round, scales, sizes)
    };
    let linear = |name, coord, scales: &[f32], sizes: &[i64]| {
        resize_in("linear", name, coord, "round_prefer_floor", scales, sizes)
    };
    vec![
        linear(
            "linear resize half_pixel, scale 2",
            "half_pixel",
            &[1.0, 1.0, 2.0, 2.0],
            &[],
        ),
        linear(
            "linear resize align_corners to sizes",
            "align_corners",
            &[],
            &[1, 2, 5, 7],
        ),
        linear(
            "linear resize asymmetric, one axis",
            "asymmetric",
            &[1.0, 1.0, 1.0, 2.5],
            &[],
        ),
        linear(
            "linear resize pytorch_half_pixel down",
            "pytorch_half_pixel",
            &[1.0, 1.0, 0.67, 0.5],
            &[],
        ),
        Case {
            name: "slice with steps and negative starts",
            nodes: vec![node("Slice", "s", &["x", "st", "en", "ax", "sp"], &["y"])],
            inits: vec![
                int64s("st", &[3], &[0, 1, -4]),
                int64s("en", &[3], &[i64::MAX, 3, 100]),
                int64s("ax", &[3], &[0, 1, 2]),
                int64s("sp", &[3], &[1, 1, 2]),
            ],
            x: &[1, 4, 6],
        },
        Case {
            name: "slice reversed",
            nodes: vec![node("Slice", "s", &["x", "st", "en", "ax", "sp"], &["y"])],
            inits: vec![
                int64s("st", &[1], &[-1]),
                int64s("en", &[1], &[-6]),
                int64s("ax", &[1], &[-1]),
                int64s("sp", &[1], &[-1]),
            ],
            x: &[1, 3, 5],
        },
        Case {
            name: "gather with 2-D indices",
            nodes: vec![with_int(
                node("Gather", "g", &["x", "i"], &["y"]),
                "axis",
                2,
            )],
            inits: vec![int64s("i", &[2, 2], &[0, -2, 1, 1])],
            x: &[1, 3, 4],
        },
        Case {
            name: "gather of one index drops the axis",
            nodes: vec![with_int(
                node("Gather", "g", &["x", "i"], &["y"]),
                "axis",
                1,
            )],
            inits: vec![int64s("i", &[], &[2])],
            x: &[1, 3, 4],
        },
        Case {
            name: "split and concat swapped",
            nodes: vec![
                with_int(node("Split", "sp", &["x", "parts"], &["a", "b"]), "axis", 2),
                with_int(node("Concat", "c", &["b", "a"], &["y"]), "axis", 2),
            ],
            inits: vec![int64s("parts", &[2], &[2, 4])],
            x: &[1, 3, 6],
        },
        Case {
            name: "split into equal parts",
            nodes: vec![
                with_int(node("Split", "sp", &["x"], &["a", "b", "c"]), "axis", -1),
                node("Add", "sum", &["a", "c"], &["y"]),
            ],
            inits: vec![],
            x: &[1, 2, 6],
        },
        Case {
            name: "pad with zeros",
            nodes: vec![node("Pad", "p", &["x", "pads"], &["y"])],
            inits: vec![int64s("pads", &[6], &[0, 1, 2, 0, 2, 1])],
            x: &[1, 3, 4],
        },
        Case {
            name: "pad reflect",
            nodes: vec![with_str(
                node("Pad", "p", &["x", "pads"], &["y"]),
                "mode",
                "reflect",
            )],
            inits: vec![int64s("pads", &[6], &[0, 0, 3, 0, 0, 1])],
            x: &[1, 3, 5],
        },
        Case {
            name: "pad edge",
            nodes: vec![with_str(
                node("Pad", "p", &["x", "pads"], &["y"]),
                "mode",
                "edge",
            )],
            inits: vec![int64s("pads", &[8], &[0, 0, 1, 2, 0, 0, 3, 0])],
            x: &[1, 2, 3, 2],
        },
        resize(
            "resize half_pixel",
            "half_pixel",
            "round_prefer_floor",
            &[1.0, 1.0, 2.0, 3.0],
            &[],
        ),
        resize(
            "resize asymmetric floor",
            "asymmetric",
            "floor",
            &[1.0, 1.0, 2.5, 1.5],
            &[],
        ),
        resize(
            "resize align_corners to sizes",
            "align_corners",
            "round_prefer_ceil",
            &[],
            &[1, 2, 5, 7],
        ),
        resize(
            "resize pytorch_half_pixel down",
            "pytorch_half_pixel",
            "ceil",
            &[1.0, 1.0, 0.67, 0.5],
            &[],
        ),
        resize(
            "resize tf_half_pixel_for_nn",
            "tf_half_pixel_for_nn",
            "round_prefer_floor",
            &[1.0, 1.0, 2.0, 2.0],
            &[],
        ),
        Case {
            name: "depth to space DCR",
            nodes: vec![with_int(
                node("DepthToSpace", "d", &["x"], &["y"]),
                "blocksize",
                2,
            )],
            inits: vec![],
            x: &[1, 8, 2, 3],
        },
        Case {
            name: "depth to space CRD",
            nodes: vec![with_str(
                with_int(node("DepthToSpace", "d", &["x"], &["y"]), "blocksize", 2),
                "mode",
                "CRD",
            )],
            inits: vec![],
            x: &[1, 8, 2, 3],
        },
        Case {
            name: "space to depth",
            nodes: vec![with_int(
                node("SpaceToDepth", "d", &["x"], &["y"]),
                "blocksize",
                2,
            )],
            inits: vec![],
            x: &[1, 2, 4, 6],
        },
    ]
}

#[test]
fn wiring_ops_match_tract() {
    for c in cases() {
        let bytes = model(c.nodes, c.inits, c.x, "y", &[]);
        let g = common::matches_tract(c.name, &bytes, 10, 9);
        // Linear resizing weighs neighbours; everything else is wiring.
        let linear = c.name.starts_with("linear");
        assert!(
            linear
                || g.layers
                    .iter()
                    .all(|l| matches!(l.op, Op::Route { .. } | Op::Binary(_))),
            "{}: {:?}",
            c.name,
            g.layers.iter().map(|l| l.op.kind()).collect::<Vec<_>>()
        );
    }
}

/// Negative pads crop (tract does not take them, so the values are written out).
#[test]
fn negative_pads_crop() {
    let bytes = model(
        vec![node("Pad", "p", &["x", "pads"], &["y"])],
        vec![int64s("pads", &[4], &[0, -1, 0, 2])],
        &[1, 4],
        "y",
        &[],
    );
    let g = import_bytes(&bytes, "t").unwrap();
    assert_eq!(
        g.evaluate(&[1.0, 2.0, 3.0, 4.0]),
        vec![2.0, 3.0, 4.0, 0.0, 0.0]
    );
}

#[test]
fn a_slice_of_constants_folds() {
    // Shape -> Slice -> Reshape, as PyTorch exports a flatten.
    let bytes = model(
        vec![
            node("Shape", "sh", &["x"], &["s"]),
            node("Slice", "sl", &["s", "st", "en"], &["s0"]),
            node("Concat", "cat", &["s0", "m1"], &["target"]),
            node("Reshape", "r", &["x", "target"], &["y"]),
        ],
        vec![
            int64s("st", &[1], &[0]),
            int64s("en", &[1], &[1]),
            int64s("m1", &[1], &[-1]),
        ],
        &[1, 3, 4],
        "y",
        &[],
    );
    let g = import_bytes(&bytes, "t").unwrap();
    assert_eq!(g.shape(g.outputs[0].tensor), [12]);
    assert!(g.layers.is_empty() || g.layers.iter().all(|l| matches!(l.op, Op::Route { .. })));
}

#[test]
fn wiring_refusals_name_the_problem() {
    let refused = [
        (
            with_int(node("Gather", "g", &["x", "i"], &["y"]), "axis", 0),
            vec![int64s("i", &[1], &[0])],
            "along axis 0 would mix events",
        ),
        (
            with_str(
                node("Resize", "r", &["x", "", "sc"], &["y"]),
                "mode",
                "cubic",
            ),
            vec![values("sc", &[3], &[1.0, 1.0, 2.0])],
            "mode 'cubic' is not supported",
        ),
        (
            node("Pad", "p", &["x", "pads", "v"], &["y"]),
            vec![
                int64s("pads", &[4], &[0, 1, 0, 1]),
                values("v", &[], &[1.5]),
            ],
            "only with 0",
        ),
        (
            node("Slice", "s", &["x", "st", "en", "ax"], &["y"]),
            vec![
                int64s("st", &[1], &[0]),
                int64s("en", &[1], &[1]),
                int64s("ax", &[1], &[0]),
            ],
            "along axis 0 would mix events",
        ),
        (
            node("Pad", "p", &["x", "pads"], &["y"]),
            vec![int64s("pads", &[4], &[0, 1 << 40, 0, 0])],
            "do not fit",
        ),
    ];
    for (n, inits, want) in refused {
        let op = n.op_type.clone();
        // A symbolic event axis: a static one would be read as one event.
        let bytes = model(vec![n], inits, &[-1, 4], "y", &[]);
        let e = import_bytes(&bytes, "t").expect_err(want).to_string();
        assert!(e.contains(want) && e.contains(&op), "{want}: {e}");
    }
}

/// Linear resizing by 2 weighs neighbours by 1/4 and 3/4, exact in fixed
/// point: with result types wide enough, the quantized model is the float
/// one on the quantized inputs, to the bit.
#[test]
fn a_linear_resize_by_two_is_exact() {
    let c = cases()
        .into_iter()
        .find(|c| c.name == "linear resize half_pixel, scale 2")
        .unwrap();
    let bytes = model(c.nodes, c.inits, c.x, "y", &[]);
    let g = quantize::onnx::import_bytes(&bytes, "linear").unwrap();
    let cfg = quantize::config::Config::from_toml(
        "[model]\nprecision = \"fixed<32,10>\"\ninput = \"fixed<10,3>\"\n",
        "t.toml",
    )
    .unwrap();
    let q = quantize::quantizer::quantize_graph(&g, &cfg).unwrap();
    let events = quantize::calibrate::default_events(&g, 20, 2);
    for ev in events.chunks(g.input_len()) {
        let raw = quantize::golden::quantize_input(&q, ev);
        let fixed = quantize::golden::evaluate(&q, &raw).unwrap();
        let float = g.evaluate(&quantize::golden::dequantize_input(&q, &raw));
        assert_eq!(quantize::golden::dequantize_output(&q, &fixed), float);
    }
}
