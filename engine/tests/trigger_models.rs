//! The trigger models of `models/jets` (issue 12), quantized as documented in
//! `models/jets/README.md`, run by the engine on every available ISA over
//! the 20,000 test jets: bit-exact to the golden model on every output, and
//! the decoded trigger decision consistent with the decoded score.

use engine::{Engine, Isa};
use quantize::config::Config;
use quantize::golden::{quantize_input, Arithmetic, Golden};
use quantize::qmodel::QModel;
use std::path::{Path, PathBuf};

fn jets(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models/jets")
        .join(file)
}

fn quantized(file: &str, cfg: &Config) -> QModel {
    let g = quantize::onnx::import_path(&jets(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    quantize::quantizer::quantize_graph(&g, cfg).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Golden outputs of `model` on the test jets, checked equal to the engine's
/// on every available ISA; returns them.
fn bit_exact_on_every_isa(name: &str, model: &QModel) -> Vec<Vec<i64>> {
    let ev = quantize::npy::read_events(&jets("test_features.npy")).unwrap();
    assert_eq!(ev.event_len(), model.input_len(), "{name}");
    assert_eq!(ev.count(), 20_000, "{name}");
    let golden = Golden::new(model, Arithmetic::Fast);
    let want: Vec<Vec<i64>> = (0..ev.count())
        .map(|i| {
            golden
                .evaluate(&quantize_input(model, ev.event(i)))
                .unwrap()
        })
        .collect();
    let isas: Vec<Isa> = Isa::ALL.iter().copied().filter(|i| i.available()).collect();
    assert!(!isas.is_empty());
    for &isa in &isas {
        let eng = Engine::with_isa(model, isa).unwrap();
        let mut out = vec![0i64; eng.output_len()];
        for (i, w) in want.iter().enumerate() {
            eng.infer(ev.event(i), &mut out).unwrap();
            assert_eq!(&out, w, "{name} {isa} jet {i}");
        }
        eprintln!("{name} {isa}: {} test jets bit-exact", want.len());
    }
    want
}

/// The anomaly trigger at the default configuration: engine = golden on
/// every ISA; each output is [score, bit] with the bit 0 or 1, firing only
/// above the score's threshold region, on about the documented 1 % of QCD.
#[test]
fn anomaly_trigger_bit_exact() {
    let m = quantized("jet_anomaly_trigger.onnx", &Config::default());
    assert_eq!(m.output_len(), 2);
    let out = bit_exact_on_every_isa("jet_anomaly_trigger", &m);
    let labels = quantize::npy::read_labels(&jets("test_labels.npy")).unwrap();
    assert_eq!(labels.len(), out.len());
    let (mut lo_pass, mut hi_fail) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut qcd, mut qcd_pass) = (0usize, 0usize);
    for (o, &l) in out.iter().zip(&labels) {
        let v = quantize::golden::dequantize_output(&m, o);
        let (score, bit) = (v[0], v[1]);
        assert!(bit == 0.0 || bit == 1.0, "trigger bit {bit}");
        assert!(score >= 0.0, "score {score}");
        if bit == 1.0 {
            lo_pass = lo_pass.min(score);
        } else {
            hi_fail = hi_fail.max(score);
        }
        if l <= 1 {
            qcd += 1;
            qcd_pass += (bit == 1.0) as usize;
        }
    }
    // One threshold separates the scores that fire from those that do not.
    assert!(
        hi_fail < lo_pass,
        "fails up to {hi_fail}, passes from {lo_pass}"
    );
    let acc = qcd_pass as f64 / qcd as f64;
    assert!(
        (0.005..=0.02).contains(&acc),
        "QCD acceptance {acc} (float: 1 %)"
    );
    eprintln!("anomaly trigger: threshold between {hi_fail} and {lo_pass}, QCD acceptance {acc}");
}

/// The deep ensemble with `jet_ensemble.toml` (the README's configuration):
/// engine = golden on every ISA; each output is [mean probabilities (5),
/// their std across the five members (5)]: means summing to about one, stds
/// within [0, 0.5] (probabilities lie in [0, 1]), and larger on average for
/// the jets the mean gets wrong than for those it gets right.
#[test]
fn deep_ensemble_bit_exact() {
    let cfg = Config::load(&jets("jet_ensemble.toml")).unwrap();
    let m = quantized("jet_ensemble.onnx", &cfg);
    assert_eq!(m.output_len(), 10);
    let out = bit_exact_on_every_isa("jet_ensemble", &m);
    let labels = quantize::npy::read_labels(&jets("test_labels.npy")).unwrap();
    assert_eq!(labels.len(), out.len());
    let (mut right, mut wrong) = ((0.0, 0usize), (0.0, 0usize));
    for (o, &l) in out.iter().zip(&labels) {
        let v = quantize::golden::dequantize_output(&m, o);
        let sum: f64 = v[..5].iter().sum();
        assert!((sum - 1.0).abs() < 0.01, "mean probabilities sum to {sum}");
        assert!(v[5..].iter().all(|s| (0.0..=0.5).contains(s)), "std {v:?}");
        let pred = (0..5).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
        let acc = if pred == l { &mut right } else { &mut wrong };
        acc.0 += v[5 + pred];
        acc.1 += 1;
    }
    let accuracy = right.1 as f64 / out.len() as f64;
    assert!(accuracy > 0.7, "accuracy {accuracy}");
    let (s_right, s_wrong) = (right.0 / right.1 as f64, wrong.0 / wrong.1 as f64);
    assert!(
        s_wrong > 1.2 * s_right,
        "spread of wrong jets {s_wrong} vs right ones {s_right}"
    );
    eprintln!("deep ensemble: accuracy {accuracy}, mean std right {s_right}, wrong {s_wrong}");
}
