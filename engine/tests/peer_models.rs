//! Every ONNX model in `models/`, quantized at the default fixed<16,6> and at
//! 8 bits (fixed<8,3,RND,SAT>), run by the engine on 2,000 N(0,1) events with
//! every available ISA: bit-exact to the golden model on every output.

use engine::{Engine, Isa};
use quantize::config::Config;
use quantize::fixed::FixedType;
use quantize::golden::{quantize_input, Arithmetic, Golden};
use rand::{rngs::SmallRng, Rng, SeedableRng};
use std::path::PathBuf;

fn normal(rng: &mut SmallRng) -> f32 {
    let (u, v): (f64, f64) = (rng.gen::<f64>().max(1e-300), rng.gen());
    ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
}

/// The `.onnx` files of `models/<sub>`, sorted.
fn onnx_files(sub: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../models")
        .join(sub);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    files.sort();
    files
}

#[test]
fn peer_models_bit_exact() {
    let files = onnx_files("");
    assert_eq!(files.len(), 8, "{files:?}");
    assert_eq!(bit_exact_on_every_isa(&files), 8);
}

/// The operator test models (transposed convolutions, a four-layer
/// generator among them) through the same check.
#[test]
fn operator_models_bit_exact() {
    let files = onnx_files("ops");
    assert_eq!(bit_exact_on_every_isa(&files), files.len());
    assert!(files.len() >= 5, "{files:?}");
}

/// Every model in `files` at two precisions on every available ISA, bit
/// for bit against the golden model; returns how many models were checked.
fn bit_exact_on_every_isa(files: &[PathBuf]) -> usize {
    let cfgs = [
        ("fixed<16,6>", Config::default()),
        (
            "fixed<8,3,RND,SAT>",
            Config::uniform("fixed<8,3,RND,SAT>".parse::<FixedType>().unwrap()),
        ),
    ];
    let isas: Vec<Isa> = Isa::ALL.iter().copied().filter(|i| i.available()).collect();
    let mut checked = 0;
    for f in files {
        let g = quantize::onnx::import_path(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for (name, cfg) in &cfgs {
            let model = quantize::quantizer::quantize_graph(&g, cfg)
                .unwrap_or_else(|e| panic!("{} at {name}: {e}", f.display()));
            let mut rng = SmallRng::seed_from_u64(42);
            let events: Vec<Vec<f32>> = (0..2000)
                .map(|_| (0..model.input_len()).map(|_| normal(&mut rng)).collect())
                .collect();
            let golden = Golden::new(&model, Arithmetic::Fast);
            let want: Vec<Vec<i64>> = events
                .iter()
                .map(|x| golden.evaluate(&quantize_input(&model, x)).unwrap())
                .collect();
            for &isa in &isas {
                let eng = Engine::with_isa(&model, isa).unwrap();
                let mut out = vec![0i64; eng.output_len()];
                for (i, (x, w)) in events.iter().zip(&want).enumerate() {
                    eng.infer(x, &mut out).unwrap();
                    assert_eq!(&out, w, "{} {name} {isa} event {i}", f.display());
                }
                eprintln!(
                    "{} {name} {isa}: 2000 events bit-exact; kernels {:?}",
                    f.file_name().unwrap().to_string_lossy(),
                    eng.kernels()
                        .iter()
                        .filter(|k| k.kernel != "scalar")
                        .map(|k| k.kernel.clone())
                        .collect::<Vec<_>>()
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, files.len() * 2 * isas.len());
    files.len()
}
