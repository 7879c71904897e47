//! Graphs of several inputs and outputs and MatMuls of activations
//! (written by `quantize/tests/common`): one kernel whose `in_data` holds
//! every input after the other, each value as wide as its own type, and
//! whose `out_data` holds every output likewise, as the manifest says;
//! bit-exact to the golden model in the netlist simulator and, when
//! installed, under Verilator. Recurrent layers unrolled over their sequence
//! (ROOT's RNN, GRU and LSTM test models) are kernels like any other.

#[path = "../../quantize/tests/common/mod.rs"]
mod common;
#[path = "common/mod.rs"]
mod hdl_common;

use hdl::build_kernel;
use hdl::manifest::Manifest;
use hdl::Options;
use hdl_common::{assert_bit_exact, cosim, events, have};
use quantize::config::Config;
use quantize::golden::{Arithmetic, Golden};
use quantize::qmodel::QModel;

fn quantized(name: &str, bytes: &[u8], cfg: &str) -> QModel {
    let g = quantize::onnx::import_bytes(bytes, name).unwrap();
    let cfg = Config::from_toml(cfg, "t.toml").unwrap();
    quantize::quantizer::quantize_graph(&g, &cfg).unwrap()
}

fn two_tower() -> QModel {
    quantized(
        "two_tower",
        &common::two_tower(),
        "[model]\nprecision = \"fixed<12,5,RND,SAT>\"\n[input]\n\"muons\" = \"fixed<9,4,RND,SAT>\"\n[output]\n\"score\" = \"ufixed<10,3,RND,SAT>\"\n",
    )
}

fn products() -> QModel {
    quantized(
        "products",
        &common::products(),
        "[model]\nprecision = \"fixed<10,4,RND,SAT>\"\n",
    )
}

#[test]
fn netlist_simulation_is_bit_exact_on_several_inputs_and_outputs() {
    for m in [two_tower(), products()] {
        let k = build_kernel(&m, &Options::default()).unwrap();
        let golden = Golden::new(&m, Arithmetic::Fast);
        let ev = events(&m, 300, 5);
        let got = k.simulate(&ev);
        for (x, y) in ev.iter().zip(&got) {
            assert_eq!(y, &golden.evaluate(x).unwrap(), "{}", m.name);
        }
    }
}

/// ROOT's recurrent operator test model `name` (`models/ops/`) at `fixed<12,5>`.
fn recurrent(name: &str) -> QModel {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../models/ops/{name}.onnx"));
    quantized(
        name,
        &std::fs::read(path).unwrap(),
        "[model]\nprecision = \"fixed<12,5,RND,SAT>\"\n",
    )
}

#[test]
fn netlist_simulation_is_bit_exact_on_unrolled_recurrent_layers() {
    for name in [
        "RNNSequence",
        "GRUBidirectional",
        "LSTMPeepholes",
        "LSTMBatchwise",
    ] {
        let m = recurrent(name);
        let k = build_kernel(&m, &Options::default()).unwrap();
        let golden = Golden::new(&m, Arithmetic::Fast);
        let ev = events(&m, 200, 6);
        for (x, y) in ev.iter().zip(&k.simulate(&ev)) {
            assert_eq!(y, &golden.evaluate(x).unwrap(), "{name}");
        }
    }
}

/// The default precision, and an input type that holds every code of the
/// chains' input quantizer.
const QAT_CONFIG: &str = "[model]\nprecision = \"fixed<16,6>\"\n[input]\nx = \"fixed<24,12>\"\n";

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 12, ..Default::default() })]

    /// Random recurrent cells (`common::random_recurrent`) at a random
    /// precision: the kernel's netlist simulation is the golden model.
    #[test]
    fn random_recurrent_cells_simulate_bit_exact(
        seed in proptest::prelude::any::<u64>(),
        ty in proptest::sample::select(vec!["fixed<12,5,RND,SAT>", "fixed<10,3,TRN,WRAP>"]),
    ) {
        let (bytes, drawn) = common::random_recurrent(seed);
        let m = quantized("cell", &bytes, &format!("[model]\nprecision = \"{ty}\"\n"));
        let k = build_kernel(&m, &Options::default()).unwrap();
        let golden = Golden::new(&m, Arithmetic::Fast);
        let ev = events(&m, 60, seed);
        for (x, y) in ev.iter().zip(&k.simulate(&ev)) {
            proptest::prop_assert_eq!(y, &golden.evaluate(x).unwrap(), "{} at {}", drawn, ty);
        }
    }

    /// Random quantization-aware chains (`common::qat_chain`): comparators
    /// on the accumulator, per element, are the golden model's thresholds.
    #[test]
    fn random_qat_chains_simulate_bit_exact(seed in proptest::prelude::any::<u64>()) {
        let m = quantized("qat", &common::qat_chain(seed).bytes, QAT_CONFIG);
        let k = build_kernel(&m, &Options::default()).unwrap();
        let golden = Golden::new(&m, Arithmetic::Fast);
        let ev = events(&m, 60, seed);
        for (x, y) in ev.iter().zip(&k.simulate(&ev)) {
            proptest::prop_assert_eq!(y, &golden.evaluate(x).unwrap(), "qat chain {}", seed);
        }
    }
}

#[test]
fn verilator_unrolled_gru() {
    if !have("verilator") {
        return;
    }
    let m = recurrent("GRUDefaults");
    let n = 500;
    let (_, r, dir) = cosim(&m, &Options::default(), n, "verilator", "gru_defaults");
    assert_bit_exact(&m, &dir, &r, n);
}

#[test]
fn the_manifest_places_each_input_and_output_on_its_bus() {
    let m = two_tower();
    let k = build_kernel(&m, &Options::default()).unwrap();
    let man = Manifest::new(&k, &m, 0);
    let ins: Vec<(&str, u32, u32, u32)> = man
        .inputs
        .iter()
        .map(|b| (b.name.as_str(), b.lsb, b.value_bits, b.bits))
        .collect();
    assert_eq!(ins, [("jets", 0, 12, 72), ("muons", 72, 9, 27)]);
    let ports: Vec<&str> = man.inputs.iter().map(|b| b.port.as_str()).collect();
    assert_eq!(ports, ["in_jets", "in_muons"]);
    assert_eq!(k.in_width(), 99);
    let outs: Vec<(&str, u32, u32)> = man
        .outputs
        .iter()
        .map(|b| (b.name.as_str(), b.lsb, b.value_bits))
        .collect();
    assert_eq!(outs, [("score", 0, 10), ("feats", 20, 12), ("h2", 116, 12)]);
    assert_eq!(k.out_width(), 164);
}

#[test]
fn verilator_several_inputs_and_outputs() {
    if !have("verilator") {
        return;
    }
    for m in [two_tower(), products()] {
        let n = 2000;
        let (k, r, dir) = cosim(&m, &Options::default(), n, "verilator", &m.name.clone());
        // The wrapper with one port per input and output elaborates as a top.
        let v = std::fs::read_to_string(dir.join(format!("{}.v", k.name))).unwrap();
        let man = Manifest::read(&dir).unwrap();
        for b in man.inputs.iter().chain(&man.outputs) {
            assert!(
                v.contains(&format!("[{}:0] {},", b.bits - 1, b.port)),
                "{}",
                b.port
            );
        }
        let lint = std::process::Command::new("verilator")
            .args(["--lint-only", "-Wno-lint", "-Wno-style", "--top-module"])
            .arg(format!("{}_ports", k.name))
            .arg(format!("{}.v", k.name))
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            lint.status.success(),
            "{}",
            String::from_utf8_lossy(&lint.stderr)
        );
        assert_bit_exact(&m, &dir, &r, n);
    }
}

/// Multiplier sharing needs one vector flowing through a chain: a model of
/// several inputs or outputs says so, naming the layer.
#[test]
fn a_reuse_factor_on_several_inputs_is_an_error_naming_why() {
    let m = two_tower();
    let opts = Options {
        reuse: Some(2),
        ..Options::default()
    };
    let Err(e) = build_kernel(&m, &opts) else {
        panic!("built a kernel with reuse 2 for two inputs");
    };
    let e = e.to_string();
    assert!(
        e.contains("layer jet_fc (Dense)") && e.contains("but it has 2 inputs and 3 outputs"),
        "{e}"
    );
}

/// A model built in code whose output names no layer tensor is an error
/// naming the output, not a panic.
#[test]
fn an_output_naming_no_tensor_is_an_error() {
    let mut m = two_tower();
    m.outputs[2].tensor = 999;
    let Err(e) = build_kernel(&m, &Options::default()) else {
        panic!("built a kernel with a dangling output");
    };
    assert!(
        e.to_string().contains("output 'h2' names tensor 999"),
        "{e}"
    );
}
