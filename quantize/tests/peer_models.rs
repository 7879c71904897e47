//! The seven peer models: import, float agreement with tract, and fixed-point
//! agreement with float at `fixed<16,6>`.

use quantize::calibrate::{compare, default_events, fixed_outputs, float_outputs};
use quantize::config::Config;
use quantize::onnx::import_path;
use quantize::quantizer::quantize_graph;
use quantize::work::Work;
use std::path::PathBuf;
use tract_onnx::prelude::*;

const MODELS: [&str; 7] = [
    "three_layer_keras.onnx",
    "two_layer_keras.onnx",
    "dense_big_keras.onnx",
    "conv1d_small_keras.onnx",
    "conv2d_small_keras.onnx",
    "qkeras_jettagging.onnx",
    "TFC_2W2A.onnx",
];

fn model_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../models")
        .join(name)
}

fn tract_outputs(path: &PathBuf, shape: &[usize], events: &[f32]) -> Vec<Vec<f64>> {
    let plan = tract_onnx::onnx()
        .model_for_path(path)
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let mut full = vec![1usize];
    full.extend(shape);
    let len: usize = shape.iter().product();
    events
        .chunks(len)
        .map(|ev| {
            let t = tract_ndarray::Array::from_shape_vec(full.clone(), ev.to_vec()).unwrap();
            let out = plan.run(tvec!(Tensor::from(t).into())).unwrap();
            out[0]
                .to_plain_array_view::<f32>()
                .unwrap()
                .iter()
                .map(|&v| v as f64)
                .collect()
        })
        .collect()
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
        let theirs = tract_outputs(&path, &g.input_shape, &events);
        for (e, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(a.len(), b.len(), "{name}: output length");
            for (x, y) in a.iter().zip(b) {
                // tract computes in f32; bxflow's float reference in f64.
                let tol = 1e-5 * y.abs().max(1.0) + 1e-5;
                assert!(
                    (x - y).abs() <= tol,
                    "{name} event {e}: bxflow {x} vs tract {y}"
                );
            }
        }
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
