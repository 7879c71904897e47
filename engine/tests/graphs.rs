//! Graphs of several inputs and outputs and MatMuls of activations
//! (`quantize/tests/graphs.rs` writes them), recurrent layers unrolled
//! over their sequence (ROOT's RNN, GRU and LSTM test models) and
//! quantization-aware chains (thresholds): the engine is bit-exact to the
//! golden model on every available ISA, fused and not, one event at a time
//! and in batches, and its per-input conversion and per-output scaling
//! follow each input's and output's own type.

#[path = "../../quantize/tests/common/mod.rs"]
mod common;

use engine::{Engine, EngineOptions, Isa};
use quantize::config::Config;
use quantize::golden::{self, quantize_input, Arithmetic, Golden};
use quantize::qmodel::QModel;

fn quantized(name: &str, bytes: &[u8], cfg: &str) -> QModel {
    let g = quantize::onnx::import_bytes(bytes, name).unwrap();
    let cfg = Config::from_toml(cfg, "t.toml").unwrap();
    quantize::quantizer::quantize_graph(&g, &cfg).unwrap()
}

fn check(name: &str, m: &QModel) {
    let n = 37; // multi-event passes and a remainder
    let ev = quantize::calibrate::gaussian_events(n, m.input_len(), 3);
    let golden = Golden::new(m, Arithmetic::Fast);
    let want: Vec<i64> = ev
        .chunks(m.input_len())
        .flat_map(|x| golden.evaluate(&quantize_input(m, x)).unwrap())
        .collect();
    for isa in Isa::ALL.iter().copied().filter(|i| i.available()) {
        for fuse in [true, false] {
            let e = Engine::with_options(
                m,
                &EngineOptions {
                    isa: Some(isa),
                    fuse,
                },
            )
            .unwrap();
            let mut got = vec![0i64; n * e.output_len()];
            e.infer_batch(&ev, &mut got).unwrap();
            assert_eq!(got, want, "{name} {isa} fuse {fuse}: batch");
            let mut one = vec![0i64; e.output_len()];
            e.infer(&ev[..m.input_len()], &mut one).unwrap();
            assert_eq!(
                one,
                want[..e.output_len()],
                "{name} {isa} fuse {fuse}: one event"
            );
            let mut f = vec![0f64; e.output_len()];
            e.infer(&ev[..m.input_len()], &mut f).unwrap();
            assert_eq!(
                f,
                golden::dequantize_output(m, &one),
                "{name} {isa}: values"
            );
        }
    }
}

#[test]
fn several_inputs_and_outputs_of_their_own_types_are_bit_exact() {
    let m = quantized(
        "two_tower",
        &common::two_tower(),
        "[model]\nprecision = \"fixed<16,6>\"\n[input]\n\"muons\" = \"fixed<10,4,RND,SAT>\"\n[output]\n\"score\" = \"ufixed<12,3,RND,SAT>\"\n\"h2\" = \"fixed<24,8>\"\n",
    );
    assert_eq!((m.inputs.len(), m.outputs.len()), (2, 3));
    check("two_tower", &m);
    // A raw code outside its input's type is named by its index in the event.
    let e = Engine::new(&m).unwrap();
    let mut raw = vec![0i64; m.input_len()];
    raw[7] = 600; // muons[1]: fixed<10,4> holds -512..=511
    let err = e.infer(&raw, &mut vec![0i64; m.output_len()]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "input value 600 at index 7 is outside the input type ap_fixed<10,4,AP_RND,AP_SAT>"
    );
}

#[test]
fn matmuls_of_activations_are_bit_exact() {
    let m = quantized(
        "products",
        &common::products(),
        "[model]\nprecision = \"fixed<16,6>\"\n",
    );
    check("products", &m);
}

/// A model built in code whose output names no layer tensor is an error
/// naming the output, not a panic.
#[test]
fn an_output_naming_no_tensor_is_an_error() {
    let mut m = quantized(
        "products",
        &common::products(),
        "[model]\nprecision = \"fixed<16,6>\"\n",
    );
    m.outputs[1].tensor = 999;
    let e = Engine::new(&m).unwrap_err().to_string();
    assert!(e.contains("output 'qk_out' names tensor 999"), "{e}");
    m.outputs[1].tensor = 1; // an input
    let e = Engine::new(&m).unwrap_err().to_string();
    assert!(e.contains("outputs are layer tensors (3.."), "{e}");
}

/// ROOT's recurrent operator test models (`models/ops/`), every one: each
/// time step's layers run in the engine exactly as in the golden model.
#[test]
fn root_recurrent_models_are_bit_exact() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/ops");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if !["RNN", "GRU", "LSTM"].iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        check(
            &name,
            &quantized(&name, &bytes, "[model]\nprecision = \"fixed<16,6>\"\n"),
        );
        seen += 1;
    }
    assert_eq!(seen, 17, "ROOT's recurrent models in {}", dir.display());
}

/// The default precision, and an input type that holds every code of the
/// chains' input quantizer.
const QAT_CONFIG: &str = "[model]\nprecision = \"fixed<16,6>\"\n[input]\nx = \"fixed<24,12>\"\n";

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 32, ..Default::default() })]

    /// Random recurrent cells (`common::random_recurrent`: kind, sizes,
    /// direction, layout, activation lists, initial states, peepholes,
    /// clip, sequence lengths) at a random precision: bit-exact on every ISA.
    #[test]
    fn random_recurrent_cells_are_bit_exact(
        seed in proptest::prelude::any::<u64>(),
        ty in proptest::sample::select(vec![
            "fixed<16,6>", "fixed<12,5,RND,SAT>", "fixed<10,3,RND_CONV,SAT>", "fixed<20,8,TRN,WRAP>",
        ]),
    ) {
        let (bytes, drawn) = common::random_recurrent(seed);
        let m = quantized("cell", &bytes, &format!("[model]\nprecision = \"{ty}\"\n"));
        check(&format!("{drawn} at {ty}"), &m);
    }

    /// Random quantization-aware chains with float scales, zero points and
    /// Relus (`common::qat_chain`): their threshold sets, integer MatMul
    /// and dequantizing Scale layers, bit-exact on every ISA.
    #[test]
    fn random_qat_chains_are_bit_exact(seed in proptest::prelude::any::<u64>()) {
        let chain = common::qat_chain(seed);
        let m = quantized("qat", &chain.bytes, QAT_CONFIG);
        check(&format!("qat chain {seed}"), &m);
    }
}

/// The jet GRU tagger (`models/jets/jet_gru.onnx`, 16 unrolled steps behind
/// a Slice and a Transpose to time-major) at the default precision.
#[test]
fn the_jet_gru_tagger_is_bit_exact() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/jets/jet_gru.onnx");
    let m = quantized(
        "jet_gru",
        &std::fs::read(path).unwrap(),
        "[model]\nprecision = \"fixed<16,6>\"\n",
    );
    check("jet_gru", &m);
}
