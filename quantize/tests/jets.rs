//! Physics-real check on the committed Pythia 8 test split (models/jets): the
//! shipped tagger quantized with the default configuration stays within 1 %
//! (absolute) of float accuracy, and every jets model imports and quantizes.

use quantize::calibrate::{argmax, fixed_outputs, float_outputs};
use quantize::config::Config;
use quantize::npy::{read_events, read_labels};
use quantize::onnx::import_path;
use quantize::quantizer::quantize_graph;
use quantize::work::Work;
use std::path::PathBuf;

fn jets(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../models/jets")
        .join(name)
}

fn accuracy(out: &[Vec<f64>], labels: &[usize]) -> f64 {
    out.iter()
        .zip(labels)
        .filter(|(o, &l)| argmax(o) == l)
        .count() as f64
        / labels.len() as f64
}

#[test]
fn default_fixed_point_tagger_stays_within_one_percent_of_float_on_real_jets() {
    let x = read_events(&jets("test_features.npy")).unwrap();
    let y = read_labels(&jets("test_labels.npy")).unwrap();
    assert!(x.count() >= 20_000 && x.count() == y.len());
    for model in ["jet_tagger.onnx", "jet_tagger_qat.onnx"] {
        let g = import_path(&jets(model)).unwrap();
        let q = quantize_graph(&g, &Config::default()).unwrap();
        let (f, fx) = (
            float_outputs(&g, &x.data, &Work::default()),
            fixed_outputs(&q, &x.data, &Work::default()),
        );
        let (af, aq) = (accuracy(&f, &y), accuracy(&fx, &y));
        eprintln!("{model}: float {af:.4}, fixed {aq:.4}");
        // Trained taggers sit at ~74 %: far above the 20 % of chance.
        assert!(af > 0.70, "{model}: float accuracy {af}");
        assert!((af - aq).abs() <= 0.01, "{model}: float {af} vs fixed {aq}");
    }
}

#[test]
fn conv_and_autoencoder_import_and_quantize_on_real_inputs() {
    let c = read_events(&jets("test_constituents.npy")).unwrap();
    let g = import_path(&jets("jet_conv1d.onnx")).unwrap();
    c.check_event_shape("test_constituents.npy", &g.inputs[0].shape)
        .unwrap();
    let q = quantize_graph(&g, &Config::default()).unwrap();
    let n = 2000 * g.input_len();
    let (f, fx) = (
        float_outputs(&g, &c.data[..n], &Work::default()),
        fixed_outputs(&q, &c.data[..n], &Work::default()),
    );
    let agree = f
        .iter()
        .zip(&fx)
        .filter(|(a, b)| argmax(a) == argmax(b))
        .count();
    assert!(
        agree as f64 >= 0.98 * 2000.0,
        "conv1d agreement {agree}/2000"
    );

    let x = read_events(&jets("test_features.npy")).unwrap();
    let g = import_path(&jets("jet_autoencoder.onnx")).unwrap();
    assert_eq!(g.output_len(), 16);
    let q = quantize_graph(&g, &Config::default()).unwrap();
    let n = 2000 * g.input_len();
    let (f, fx) = (
        float_outputs(&g, &x.data[..n], &Work::default()),
        fixed_outputs(&q, &x.data[..n], &Work::default()),
    );
    let err = f
        .iter()
        .flatten()
        .zip(fx.iter().flatten())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(err < 0.1, "autoencoder max reconstruction difference {err}");
}

/// The GRU tagger (issue 14: an ONNX GRU over the leading 16 constituents,
/// behind a Slice and a Transpose to time-major): the float reference gives
/// ONNX Runtime's probabilities, and the default fixed point keeps its
/// accuracy within 1 % (absolute) of float on the whole test split.
#[test]
fn default_fixed_point_gru_tagger_stays_within_one_percent_of_float() {
    let c = read_events(&jets("test_constituents.npy")).unwrap();
    let y = read_labels(&jets("test_labels.npy")).unwrap();
    let ort = read_events(&jets("test_pred_gru_float.npy")).unwrap();
    let g = import_path(&jets("jet_gru.onnx")).unwrap();
    assert!(g.inputs[0].event_axis);
    let q = quantize_graph(&g, &Config::default()).unwrap();
    let (f, fx) = (
        float_outputs(&g, &c.data, &Work::default()),
        fixed_outputs(&q, &c.data, &Work::default()),
    );
    for (ours, theirs) in f.iter().zip(ort.data.chunks(5)) {
        for (a, &b) in ours.iter().zip(theirs) {
            assert!((a - b as f64).abs() < 1e-4, "float {a} vs ONNX Runtime {b}");
        }
    }
    let (af, aq) = (accuracy(&f, &y), accuracy(&fx, &y));
    eprintln!("jet_gru: float {af:.4}, fixed {aq:.4}");
    // Five classes: chance is 20 %; the GRU sits near the Conv1D tagger's 61 %.
    assert!(af > 0.58, "float accuracy {af}");
    assert!((af - aq).abs() <= 0.01, "float {af} vs fixed {aq}");
}

/// `--auto` on the GRU tagger meets the default budget (99.5 % argmax
/// agreement with float), which the model's 10-bit gate tables made
/// impossible before tables were searched; every step of a part gets one
/// type and one table size (the steps tied, as one cell in hardware).
#[test]
fn auto_precision_on_the_gru_tagger_ties_its_steps_and_meets_the_budget() {
    use quantize::auto::{auto_precision, AutoOptions};
    let c = read_events(&jets("calib_constituents.npy")).unwrap();
    let g = import_path(&jets("jet_gru.onnx")).unwrap();
    let n = 1500.min(c.count()) * g.input_len();
    let r = auto_precision(&g, &c.data[..n], &AutoOptions::default(), &Work::default()).unwrap();
    assert!(r.accuracy.argmax_agreement >= 0.995, "{:?}", r.accuracy);
    let setting = |name: &str| r.config.layer[name].clone();
    for part in ["z", "r", "cand", "h", "rec", "h_rec"] {
        let first = setting(&format!("gru.r1.{part}"));
        for t in 2..16 {
            assert_eq!(
                setting(&format!("gru.r{t}.{part}")),
                first,
                "step {t} of {part}"
            );
        }
    }
    let z = setting("gru.r3.z");
    assert!(z.table_bits.is_some_and(|b| (4..=14).contains(&b)), "{z:?}");
    assert!(r.evaluations < 200, "{} checks", r.evaluations);
}
