//! The AXI4-Stream wrapper (`<module>_axis`) under Verilator: a master with
//! random gaps and a slave with random `tready` and long stalls that fill
//! the output queue. Every result arrives, in order, bit-exact to the golden
//! model, with `tlast` on every transfer, for kernels whose `in_ready` is
//! constant (II 1), periodic (reuse 4) and data-dependent (a reused
//! recurrent cell, which takes bursts), and with a clock enable (ACLKEN).
//! The kernel's own testbench with its clock enable low one edge in five:
//! bit-exact, with the latency counted in enabled edges.

#[path = "../../quantize/tests/common/mod.rs"]
mod common;
#[path = "common/mod.rs"]
mod hdl_common;

use hdl::export::{run_verilator_axis, write_export};
use hdl::manifest::Manifest;
use hdl::{build_kernel, Options, Recurrent};
use hdl_common::{assert_outputs_bit_exact, events, have, model_at, tmp_dir};

#[test]
fn axis_wrapper_loses_nothing_under_random_stalls() {
    if !have("verilator") {
        return;
    }
    let cases = [
        ("../models/two_layer_keras.onnx", Options::default()),
        (
            "../models/three_layer_keras.onnx",
            Options {
                reuse: Some(4),
                ..Options::default()
            },
        ),
        (
            "../models/ops/LSTMDefaults.onnx",
            Options {
                recurrent: Recurrent::Reused,
                ..Options::default()
            },
        ),
        // A clock enable: ACLKEN low on random edges as well.
        (
            "../models/two_layer_keras.onnx",
            Options {
                reuse: Some(2),
                clock_enable: true,
                ..Options::default()
            },
        ),
    ];
    for (i, (path, opts)) in cases.iter().enumerate() {
        let m = model_at(path, "fixed<10,4,RND,SAT>");
        let k = build_kernel(&m, opts).unwrap();
        let dir = tmp_dir(&format!("axis{i}"));
        let ev = events(&m, 600, 5);
        write_export(&dir, &k, &m, &ev).unwrap();
        let man = Manifest::read(&dir).unwrap();
        let a = man
            .axis
            .as_ref()
            .expect("the manifest describes the wrapper");
        assert_eq!(a.module, format!("{}_axis", k.name));
        assert_eq!(a.tdata_in_bits % 8, 0);
        assert!(a.tdata_in_bits >= k.in_width() && a.tdata_in_bits < k.in_width() + 8);
        assert!(a.queue_depth > k.latency, "{a:?} for latency {}", k.latency);
        let r = run_verilator_axis(&dir, &k).unwrap();
        assert_outputs_bit_exact(&m, &dir, &r, &ev);
    }
}

#[test]
fn clock_enable_holds_the_pipeline() {
    if !have("verilator") {
        return;
    }
    for (path, reuse) in [
        ("../models/two_layer_keras.onnx", None),
        ("../models/two_layer_keras.onnx", Some(2)),
    ] {
        let m = model_at(path, "fixed<10,4,RND,SAT>");
        let opts = Options {
            reuse,
            clock_enable: true,
            ..Options::default()
        };
        let k = build_kernel(&m, &opts).unwrap();
        assert!(k.name.ends_with("_ce"), "{}", k.name);
        let dir = tmp_dir(&format!("ce{}", reuse.unwrap_or(1)));
        let ev = events(&m, 400, 9);
        write_export(&dir, &k, &m, &ev).unwrap();
        assert!(Manifest::read(&dir).unwrap().has_ce());
        let r = hdl::export::run_verilator(&dir, &k).unwrap();
        assert_outputs_bit_exact(&m, &dir, &r, &ev);
    }
}
