//! Quantization of the peer models: `--auto` keeps the accuracy budget, QONNX
//! quantizers are reproduced exactly, and a TOML config is applied by layer name.

use quantize::auto::{auto_precision, AutoOptions};
use quantize::calibrate::{compare, default_events, fixed_outputs, float_outputs};
use quantize::config::Config;
use quantize::golden;
use quantize::ir::Op;
use quantize::onnx::import_path;
use quantize::quantizer::quantize_graph;
use quantize::work::Work;
use std::path::PathBuf;

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../models")
        .join(name)
}

#[test]
fn auto_precision_keeps_agreement_on_every_peer_model() {
    for name in [
        "three_layer_keras.onnx",
        "two_layer_keras.onnx",
        "dense_big_keras.onnx",
        "conv1d_small_keras.onnx",
        "conv2d_small_keras.onnx",
        "qkeras_jettagging.onnx",
        "TFC_2W2A.onnx",
    ] {
        let g = import_path(&path(name)).unwrap();
        let calib = default_events(&g, 2000, 5);
        let r = auto_precision(&g, &calib, &AutoOptions::default(), &Work::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let test = default_events(&g, 10_000, 99);
        let acc = compare(
            &float_outputs(&g, &test, &Work::default()),
            &fixed_outputs(&r.model, &test, &Work::default()),
        );
        eprintln!("{name}: auto {acc:?} in {} evaluations", r.evaluations);
        assert!(
            acc.argmax_agreement >= 0.99,
            "{name}: {}",
            acc.argmax_agreement
        );
    }
}

#[test]
fn qonnx_quantizers_are_reproduced_exactly() {
    // QKeras jet tagger: power-of-two Quant nodes on weights, biases and activations.
    let g = import_path(&path("qkeras_jettagging.onnx")).unwrap();
    let q = quantize_graph(&g, &Config::default()).unwrap();
    let quant_layers: Vec<usize> = g
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| matches!(l.op, Op::Quant(_)))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(quant_layers.len(), 3);
    let events = default_events(&g, 2000, 3);
    for ev in events.chunks(g.input_len()) {
        // Inputs on the input grid, so float and fixed see the same numbers.
        let raw = golden::quantize_input(&q, ev);
        let x = golden::dequantize_input(&q, &raw);
        let fl = g.evaluate_all(&x);
        let fx = golden::evaluate_all(&q, &raw).unwrap();
        for &t in &quant_layers {
            let ty = q.ty(t);
            let got: Vec<f64> = fx[t].iter().map(|&r| ty.to_f64(r)).collect();
            assert_eq!(got, fl[t], "tensor {t} ({})", g.layers[t - 1].name);
        }
    }
}

#[test]
fn a_toml_config_sets_types_by_layer_name_and_type() {
    let g = import_path(&path("three_layer_keras.onnx")).unwrap();
    let first = g.layers[0].name.clone();
    let text = format!(
        "[model]\nprecision = \"fixed<16,6,RND,SAT>\"\nreuse_factor = 2\n\n[layer_type.Dense]\nweight = \"fixed<8,2,RND>\"\n\n[layer.\"{first}\"]\nresult = \"fixed<12,5>\"\nreuse_factor = 4\n"
    );
    let cfg = Config::from_toml(&text, "test.toml").unwrap();
    let q = quantize_graph(&g, &cfg).unwrap();
    assert_eq!(q.layers[0].ty.to_string(), "fixed<12,5>");
    assert_eq!(q.layers[0].reuse, 4);
    assert_eq!(q.layers[2].reuse, 2);
    match &q.layers[2].op {
        quantize::qmodel::QOp::Dense { w_ty, .. } => assert_eq!(w_ty.to_string(), "fixed<8,2,RND>"),
        other => panic!("layer 2 is {}", other.kind()),
    }
    let bad = Config::from_toml(
        "[layer.\"nope\"]\nresult = \"fixed<8,3>\"\n[model]\nprecision = \"fixed<8,3>\"\n",
        "bad.toml",
    )
    .unwrap();
    let e = quantize_graph(&g, &bad).unwrap_err().to_string();
    assert!(
        e.contains("[layer.\"nope\"] names no layer") && e.contains("Relu1"),
        "{e}"
    );
    let e = Config::from_toml("[model]\nprecision = \"fixed<16,6,FOO>\"\n", "bad.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.toml") && e.contains("FOO"), "{e}");
}
