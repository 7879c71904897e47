//! The seven peer models: import, float agreement with tract, and fixed-point
//! agreement with float at `fixed<16,6>`.

mod common;

use quantize::calibrate::{compare, default_events, fixed_outputs, float_outputs};
use quantize::config::Config;
use quantize::onnx::import_path;
use quantize::quantizer::quantize_graph;
use quantize::work::Work;
use std::path::PathBuf;

const MODELS: [&str; 8] = [
    "three_layer_keras.onnx",
    "two_layer_keras.onnx",
    "dense_big_keras.onnx",
    "conv1d_small_keras.onnx",
    "conv2d_small_keras.onnx",
    "qkeras_jettagging.onnx",
    "TFC_2W2A.onnx",
    "TFC_1W2A.onnx",
];

fn model_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../models")
        .join(name)
}

#[test]
fn float_ir_matches_tract_on_every_peer_model() {
    // tract has no QONNX Quant op: those two models are checked against their
    // own quantizer semantics in quantize_models.rs instead.
    for name in MODELS
        .iter()
        .filter(|n| !n.starts_with("qkeras") && !n.starts_with("TFC"))
    {
        let path = model_path(name);
        let g = import_path(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        // Keras-era files carry channels-last input shapes that tract reads as declared.
        let events = default_events(&g, 200, 7);
        let ours = float_outputs(&g, &events, &Work::default());
        let bytes = std::fs::read(&path).unwrap();
        let theirs = common::tract_outputs(&bytes, &g.input_shapes(), &events);
        common::assert_close(name, &ours, &theirs);
    }
}

#[test]
fn fixed_16_6_keeps_argmax_agreement_on_every_peer_model() {
    for name in MODELS {
        let g = import_path(&model_path(name)).unwrap();
        let q = quantize_graph(&g, &Config::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let events = default_events(&g, 10_000, 11);
        let acc = compare(
            &float_outputs(&g, &events, &Work::default()),
            &fixed_outputs(&q, &events, &Work::default()),
        );
        eprintln!("{name}: {acc:?}");
        assert!(
            acc.argmax_agreement >= 0.99,
            "{name}: agreement {}",
            acc.argmax_agreement
        );
    }
}
