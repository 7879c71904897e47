//! Prints the integer weight matrix of every Dense layer of a model,
//! quantized with the default configuration, with the adders of that layer
//! built alone as a kernel (shift-add, two-input adders; its requantizer
//! included), as JSON lines `{"layer", "n_in", "n_out", "weights",
//! "adders", "bare_adders", "bare_depth"}` with `weights[o * n_in + i]`,
//! for `scripts/da4ml_compare.py`. `bare_adders` and `bare_depth` (adder
//! levels) are those of the same planner's network for the matrix alone
//! ([`hdl::matrix_network`]): no bias leaf, no rounding constant, the
//! product a constant matrix-vector solver such as da4ml computes.
//!
//! `cargo run --release -p bxflow-hdl --example dense_weights -- MODEL.onnx`

use hdl::{build_kernel, slice_layers, Options, Strategy};
use quantize::config::Config;
use quantize::qmodel::QOp;

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: dense_weights MODEL.onnx");
    let g = quantize::onnx::import_path(std::path::Path::new(&path)).expect("an ONNX model");
    let m = quantize::quantizer::quantize_graph(&g, &Config::default()).expect("quantized");
    for (li, l) in m.layers.iter().enumerate() {
        if let QOp::Dense {
            n_in,
            n_out,
            weights,
            ..
        } = &l.op
        {
            let alone = slice_layers(&m, li, li).expect("a Dense layer reads one tensor");
            let options = Options {
                strategy: Strategy::ShiftAdd,
                // Two-input adders, as da4ml counts them.
                binary_adders: true,
                ..Options::default()
            };
            let k = build_kernel(&alone, &options).expect("built");
            let bare = hdl::matrix_network(weights, *n_in);
            let line = serde_json::json!({
                "layer": l.name,
                "n_in": n_in,
                "n_out": n_out,
                "weights": weights,
                "adders": k.stats().adders,
                "bare_adders": bare.adders,
                "bare_depth": bare.depth,
            });
            println!("{line}");
        }
    }
}
