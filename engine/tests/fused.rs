//! The fused dense chains (`Dense + Relu/Clip/ThresholdedRelu/Requant` runs
//! kept in i16/u8 lanes with an i32 epilogue) and the multi-event batch
//! kernels: forced on every available ISA, compared with `quantize::golden`
//! over random models at 4..8-bit and 9..16-bit types with every rounding and
//! overflow mode, single events and batches (multi-event passes plus a
//! remainder), and on the jet tagger at 16 and 8 bits (whose final Softmax
//! is fused as the chain's tail).

use engine::{Engine, Isa};
use quantize::golden::{evaluate, quantize_input};
use quantize::random::{random_input, random_model, RandomSpec};
use rand::{rngs::SmallRng, Rng, SeedableRng};

fn isas() -> Vec<Isa> {
    Isa::ALL.iter().copied().filter(|i| i.available()).collect()
}

/// Checks `events` single events and one batch; returns the number of fused layers.
fn check(model: &quantize::qmodel::QModel, inputs: &[Vec<i64>], what: &str) -> usize {
    let want: Vec<Vec<i64>> = inputs.iter().map(|x| evaluate(model, x).unwrap()).collect();
    let mut fused = 0;
    for isa in isas() {
        let eng = Engine::with_isa(model, isa).unwrap();
        let kinds = eng.kernels();
        fused += kinds.iter().filter(|k| k.kernel.contains("fused")).count();
        let mut out = vec![0i64; eng.output_len()];
        for (x, w) in inputs.iter().zip(&want) {
            eng.infer(x, &mut out).unwrap();
            assert_eq!(
                &out, w,
                "{what} isa {isa} input {x:?}\nkernels {kinds:?}\n{model:#?}"
            );
        }
        let flat = inputs.concat();
        let mut outs = vec![0i64; inputs.len() * eng.output_len()];
        eng.infer_batch(&flat, &mut outs).unwrap();
        for (e, w) in want.iter().enumerate() {
            let o = &outs[e * eng.output_len()..(e + 1) * eng.output_len()];
            assert_eq!(
                o,
                &w[..],
                "{what} isa {isa} batch event {e}\nkernels {kinds:?}\n{model:#?}"
            );
        }
        // Narrower raw codes take the direct packing path: the same
        // outputs, in batches and event by event.
        let il = eng.input_len();
        let x32: Vec<i32> = flat.iter().map(|&v| v as i32).collect();
        let mut o32 = vec![0i64; outs.len()];
        eng.infer_batch(&x32, &mut o32).unwrap();
        assert_eq!(o32, outs, "{what} isa {isa}: i32 batch");
        for (e, w) in want.iter().enumerate() {
            eng.infer(&x32[e * il..(e + 1) * il], &mut out).unwrap();
            assert_eq!(&out, w, "{what} isa {isa}: i32 event {e}");
        }
        if let Ok(x16) = flat
            .iter()
            .map(|&v| i16::try_from(v))
            .collect::<Result<Vec<_>, _>>()
        {
            let mut o16 = vec![0i64; outs.len()];
            eng.infer_batch(&x16, &mut o16).unwrap();
            assert_eq!(o16, outs, "{what} isa {isa}: i16 batch");
            for (e, w) in want.iter().enumerate() {
                eng.infer(&x16[e * il..(e + 1) * il], &mut out).unwrap();
                assert_eq!(&out, w, "{what} isa {isa}: i16 event {e}");
            }
        }
    }
    fused
}

fn random(bits: u32, modes: bool, seed: u64, models: usize) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut fused = 0;
    for m in 0..models {
        let spec = RandomSpec {
            max_bits: bits,
            max_neurons: 48,
            max_layers: 4,
            modes,
            tables: rng.gen_bool(0.5),
            skips: true,
            max_inputs: 2,
            max_outputs: 2,
            conv: false,
        };
        let model = random_model(&mut rng, &spec);
        // 8 * k + remainder events: multi-event passes and single events.
        let n = rng.gen_range(1..=40);
        let inputs: Vec<Vec<i64>> = (0..n).map(|_| random_input(&mut rng, &model)).collect();
        fused += check(&model, &inputs, &format!("model {m} seed {seed}"));
    }
    eprintln!("{bits}-bit modes={modes}: {fused} fused layer kernels checked");
    assert!(fused > models, "too few fused chains: {fused}");
}

#[test]
fn fused_random_8bit() {
    random(8, true, 101, 120);
}

#[test]
fn fused_random_16bit() {
    random(16, true, 102, 120);
}

#[test]
fn fused_random_no_modes() {
    random(8, false, 103, 60);
    random(16, false, 104, 60);
}

/// `n` events of features uniform in [-4, 4), quantized with the model's input type.
fn uniform_events(model: &quantize::qmodel::QModel, n: usize, seed: u64) -> Vec<Vec<i64>> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let x: Vec<f32> = (0..model.input_len())
                .map(|_| rng.gen_range(-4.0f32..4.0))
                .collect();
            quantize_input(model, &x)
        })
        .collect()
}

/// The Conv1D jet tagger, whose input `[32 positions, 3 channels]` reaches
/// its first convolution through a transposing Route: the chain's head
/// reads that input flat (windows of 9 consecutive elements, no channel
/// padding). At 16 and 8 bits (u8 lanes where the pairs fit), every ISA.
#[test]
fn fused_conv1d_tagger_reads_its_input_flat() {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/jets/jet_conv1d.onnx");
    let g = quantize::onnx::import_path(&p).unwrap();
    for prec in ["fixed<16,6,RND,SAT>", "fixed<8,3,RND,SAT>", "fixed<6,2>"] {
        let cfg = quantize::config::Config::uniform(prec.parse().unwrap());
        let model = quantize::quantizer::quantize_graph(&g, &cfg).unwrap();
        let inputs = uniform_events(&model, 203, 6);
        let fused = check(&model, &inputs, prec);
        assert!(fused >= 8, "{prec}: {fused}");
    }
}

#[test]
fn fused_jet_tagger() {
    let p =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/three_layer_keras.onnx");
    let g = quantize::onnx::import_path(&p).unwrap();
    for prec in ["fixed<16,6>", "fixed<8,3,RND,SAT>", "fixed<8,3>"] {
        let cfg = quantize::config::Config::uniform(prec.parse().unwrap());
        let model = quantize::quantizer::quantize_graph(&g, &cfg).unwrap();
        let inputs = uniform_events(&model, 1003, 5);
        let fused = check(&model, &inputs, prec);
        assert!(fused >= 8, "{prec}: {fused}");
        // The final Softmax runs as the chain's tail.
        let kinds = Engine::new(&model).unwrap().kernels();
        assert!(
            kinds
                .iter()
                .any(|k| k.op == "Softmax" && k.kernel == "fused"),
            "{prec}: {kinds:?}"
        );
        // At 8 bits, AVX2 runs the Dense layers on its u8 x i8 path.
        if prec.starts_with("fixed<8") && Isa::Avx2.available() {
            let kinds = Engine::with_isa(&model, Isa::Avx2).unwrap().kernels();
            let u8s = kinds
                .iter()
                .filter(|k| k.kernel.contains("avx2 u8xi8"))
                .count();
            assert_eq!(u8s, 3, "{prec}: {kinds:?}");
        }
    }
}

/// A batch whose 12th event has an out-of-range raw input: the error names
/// the value and its index within the event, as for a single event, though
/// a whole-chain plan checks the inputs of 8 events at once.
#[test]
fn batch_input_error_names_the_index_within_the_event() {
    let p =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/three_layer_keras.onnx");
    let g = quantize::onnx::import_path(&p).unwrap();
    let cfg = quantize::config::Config::uniform("fixed<8,3>".parse().unwrap());
    let model = quantize::quantizer::quantize_graph(&g, &cfg).unwrap();
    let eng = Engine::new(&model).unwrap();
    let (il, ol) = (eng.input_len(), eng.output_len());
    let mut x = vec![0i64; 16 * il];
    x[11 * il + 3] = 1000;
    let mut y = vec![0i64; 16 * ol];
    let err = eng.infer_batch(&x, &mut y).unwrap_err().to_string();
    assert_eq!(
        err,
        "input value 1000 at index 3 is outside the input type ap_fixed<8,3>"
    );
}

/// One event of raw codes goes straight into a whole-chain plan's lanes,
/// checked inside the chain's kernel as it packs them (u8 lanes at 8 bits,
/// i16 at 16): a code out of range still gets the staged path's error, on
/// every ISA and for every integer width, and a code at the type's edge
/// is accepted.
#[test]
fn single_event_input_error_names_the_index() {
    let p =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/three_layer_keras.onnx");
    let g = quantize::onnx::import_path(&p).unwrap();
    for (prec, max) in [("fixed<8,3>", 127i64), ("fixed<16,6>", 32767)] {
        let cfg = quantize::config::Config::uniform(prec.parse().unwrap());
        let model = quantize::quantizer::quantize_graph(&g, &cfg).unwrap();
        let want = format!(
            "input value {} at index 5 is outside the input type ap_{}",
            max + 1,
            prec
        );
        for isa in isas() {
            let eng = Engine::with_isa(&model, isa).unwrap();
            let (il, ol) = (eng.input_len(), eng.output_len());
            let mut y = vec![0i64; ol];
            let mut x = vec![0i64; il];
            x[4] = max;
            x[6] = -max - 1;
            eng.infer(&x, &mut y).unwrap();
            x[5] = max + 1;
            let err = |r: Result<(), engine::EngineError>| r.unwrap_err().to_string();
            assert_eq!(err(eng.infer(&x, &mut y)), want, "isa {isa}: i64");
            let x32: Vec<i32> = x.iter().map(|&v| v as i32).collect();
            assert_eq!(err(eng.infer(&x32, &mut y)), want, "isa {isa}: i32");
            if max < i16::MAX as i64 {
                let x16: Vec<i16> = x.iter().map(|&v| v as i16).collect();
                assert_eq!(err(eng.infer(&x16, &mut y)), want, "isa {isa}: i16");
            }
        }
    }
}

/// Convolutions fused into chains (grids of channels in lanes, no im2col):
/// random 1-D to 3-D convolutions (dilated, with input dilation, padded)
/// then Dense layers, 4..16-bit types, on every ISA, single events and
/// batches against the golden model. Pools, channel groups and routes
/// after the Conv keep it out of a chain in most draws; one in eight must fuse.
#[test]
fn fused_random_conv() {
    let mut rng = SmallRng::seed_from_u64(107);
    let (mut convs, mut fused) = (0, 0);
    for m in 0..150 {
        let spec = RandomSpec {
            max_bits: [8, 16][m % 2],
            max_neurons: 24,
            max_layers: 3,
            modes: true,
            tables: false,
            skips: false,
            max_inputs: 1,
            max_outputs: 1,
            conv: true,
        };
        let model = random_model(&mut rng, &spec);
        let n = rng.gen_range(1..=20);
        let inputs: Vec<Vec<i64>> = (0..n).map(|_| random_input(&mut rng, &model)).collect();
        check(&model, &inputs, &format!("conv model {m}"));
        for isa in isas().into_iter().filter(|&i| i != Isa::Scalar) {
            let k = Engine::with_isa(&model, isa).unwrap().kernels();
            convs += 1;
            fused +=
                k.iter()
                    .any(|k| k.op == "Conv" && k.kernel.contains("fused")) as usize;
        }
    }
    eprintln!("{fused} of {convs} convolutions fused");
    assert!(
        fused * 8 > convs,
        "too few fused convolutions: {fused} of {convs}"
    );
}
