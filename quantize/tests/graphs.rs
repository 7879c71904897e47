//! Graphs of several inputs and outputs: each input and output keeps its
//! ONNX name, shape and (once quantized) its own type; an event is every
//! input after the other, its result every output after the other. The
//! float IR agrees with tract on them, and the configuration sets types by
//! input and output name.

mod common;

use common::{graph_model, node, products, two_tower};
use quantize::config::Config;
use quantize::golden;
use quantize::onnx::import_bytes;
use quantize::quantizer::quantize_graph;

#[test]
fn several_inputs_and_outputs_match_tract() {
    let g = common::matches_tract("two_tower", &two_tower(), 64, 7);
    let names = |v: Vec<&str>| v.into_iter().map(String::from).collect::<Vec<_>>();
    assert_eq!(
        g.inputs.iter().map(|i| i.name.clone()).collect::<Vec<_>>(),
        names(vec!["jets", "muons"])
    );
    assert_eq!(
        g.outputs.iter().map(|o| o.name.clone()).collect::<Vec<_>>(),
        names(vec!["score", "feats", "h2"])
    );
    let shapes: Vec<&[usize]> = g.outputs.iter().map(|o| g.shape(o.tensor)).collect();
    assert_eq!(shapes, [&[2][..], &[8], &[4]]);
    assert_eq!((g.input_len(), g.output_len()), (9, 14));
}

#[test]
fn types_are_set_per_input_and_output_by_name() {
    let g = import_bytes(&two_tower(), "two_tower").unwrap();
    let cfg = Config::from_toml(
        "[model]\nprecision = \"fixed<16,6>\"\n\n[input]\n\"muons\" = \"fixed<10,4,RND,SAT>\"\n\n[output]\n\"score\" = \"ufixed<12,3,RND,SAT>\"\n",
        "t.toml",
    )
    .unwrap();
    let q = quantize_graph(&g, &cfg).unwrap();
    let tys: Vec<String> = q.inputs.iter().map(|p| p.ty.to_string()).collect();
    assert_eq!(tys, ["fixed<16,6>", "fixed<10,4,RND,SAT>"]);
    let out: Vec<String> = q
        .outputs
        .iter()
        .map(|o| q.ty(o.tensor).to_string())
        .collect();
    assert_eq!(out, ["ufixed<12,3,RND,SAT>", "fixed<16,6>", "fixed<16,6>"]);
    // The flat event: each input's values quantized with its own type.
    let x: Vec<f32> = (0..9).map(|i| i as f32 * 0.3 - 1.0).collect();
    let raw = golden::quantize_input(&q, &x);
    assert_eq!(
        raw[..6],
        x[..6]
            .iter()
            .map(|&v| q.inputs[0].ty.quantize_f64(v as f64))
            .collect::<Vec<_>>()[..]
    );
    assert_eq!(
        raw[6..],
        x[6..]
            .iter()
            .map(|&v| q.inputs[1].ty.quantize_f64(v as f64))
            .collect::<Vec<_>>()[..]
    );
    let y = golden::evaluate(&q, &raw).unwrap();
    assert_eq!(y.len(), q.output_len());
    assert_eq!(q.output_range(1), 2..10);
    // The bit-exact contract survives a .bxq round trip.
    let back = quantize::bxq::from_bytes(&quantize::bxq::to_bytes(&q), "t.bxq").unwrap();
    assert_eq!(back, q);
}

#[test]
fn a_config_naming_no_input_or_output_is_an_error_listing_them() {
    let g = import_bytes(&two_tower(), "two_tower").unwrap();
    let bad = |toml: &str| {
        let cfg = Config::from_toml(toml, "t.toml").unwrap();
        quantize_graph(&g, &cfg).unwrap_err().to_string()
    };
    let e = bad("[model]\nprecision = \"fixed<8,3>\"\n[input]\n\"jet\" = \"fixed<8,3>\"\n");
    assert!(
        e.contains("[input] \"jet\" names no input of the model; inputs are: jets, muons"),
        "{e}"
    );
    let e = bad("[model]\nprecision = \"fixed<8,3>\"\n[output]\n\"y\" = \"fixed<8,3>\"\n");
    assert!(
        e.contains("[output] \"y\" names no output of the model; outputs are: score, feats, h2"),
        "{e}"
    );
}

/// An output that is a graph input, or the same tensor twice, still gets a
/// tensor of its own (an identity wiring layer), so every output is a layer's.
#[test]
fn an_input_passed_through_and_a_repeated_output_are_outputs_of_their_own() {
    let bytes = graph_model(
        vec![node("Relu", "act", &["x"], &["y"])],
        vec![],
        &[("x", &[1, 5])],
        &[("y", &[]), ("x", &[]), ("y", &[])],
    );
    let g = common::matches_tract("pass_through", &bytes, 8, 3);
    let tensors: Vec<usize> = g.outputs.iter().map(|o| o.tensor).collect();
    assert_eq!(tensors.len(), 3);
    assert!(
        tensors.iter().all(|&t| g.layer_of(t).is_some()),
        "{tensors:?}"
    );
    assert_ne!(tensors[0], tensors[2]);
    let q = quantize_graph(&g, &Config::default()).unwrap();
    let raw = golden::quantize_input(&q, &[-1.0, -0.5, 0.0, 0.5, 1.0]);
    let y = golden::evaluate(&q, &raw).unwrap();
    assert_eq!(y[5..10], raw[..]);
    assert_eq!(y[..5], y[10..]);
}

#[test]
fn matmuls_of_activations_and_per_row_dense_match_tract() {
    let g = common::matches_tract("products", &products(), 32, 5);
    let shapes: Vec<&[usize]> = g.outputs.iter().map(|o| g.shape(o.tensor)).collect();
    assert_eq!(shapes, [&[6, 6][..], &[2, 4, 5], &[6, 3]]);
}

/// Products and their sums are exact: with a result type wide enough, the
/// fixed-point MatMul is the float MatMul of the quantized inputs, to the bit.
#[test]
fn a_matmul_of_activations_is_exact() {
    let g = import_bytes(&products(), "products").unwrap();
    let cfg = Config::from_toml(
        "[model]\nprecision = \"fixed<40,16>\"\n[layer.\"embed\"]\nresult = \"fixed<16,6>\"\n[input]\n\"q\" = \"fixed<10,3>\"\n\"k\" = \"fixed<9,2>\"\n\"parts\" = \"fixed<8,2>\"\n",
        "t.toml",
    )
    .unwrap();
    let q = quantize_graph(&g, &cfg).unwrap();
    let products = q.layers.iter().find(|l| l.name == "qk.products").unwrap();
    assert_eq!(products.ty.to_string(), "fixed<19,5>");
    let events = quantize::calibrate::default_events(&g, 50, 9);
    for ev in events.chunks(g.input_len()) {
        let raw = golden::quantize_input(&q, ev);
        let fixed = golden::dequantize_output(&q, &golden::evaluate(&q, &raw).unwrap());
        let float = g.evaluate(&golden::dequantize_input(&q, &raw));
        // The qk output (values 36..76) is exact; the others pass through a
        // Dense whose weights and result type round.
        assert_eq!(fixed[36..76], float[36..76]);
    }
}

/// Every result of an elementwise op on two types fits its exact type.
#[test]
fn exact_types_hold_every_result() {
    use quantize::fixed::FixedType;
    use quantize::qmodel::BinOp;
    let mut types = Vec::new();
    for w in 1..=6u32 {
        for i in -2..=7 {
            types.extend(FixedType::signed(w, i).ok());
            types.extend(FixedType::unsigned(w, i).ok());
        }
    }
    for &a in &types {
        for &b in &types {
            for op in BinOp::ALL {
                let t = op.exact_type(a, b).unwrap();
                assert_eq!(t.frac_bits(), op.frac(a.frac_bits(), b.frac_bits()));
                for x in [a.min_raw(), a.max_raw(), 0] {
                    for y in [b.min_raw(), b.max_raw(), 0] {
                        let v = op.exact(x, a.frac_bits(), y, b.frac_bits());
                        assert!(
                            v >= t.min_raw() as i128 && v <= t.max_raw() as i128,
                            "{a} {} {b} = {v} outside {t}",
                            op.name()
                        );
                    }
                }
            }
        }
    }
}
