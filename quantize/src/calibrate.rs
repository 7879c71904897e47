//! Calibration data, per-tensor range profiles, and the accuracy of a
//! quantized model against its float graph: what `auto` precision and the
//! quantization report are made of.

use crate::golden::{self, Arithmetic, Golden};
use crate::ir::{Evaluator, Graph};
use crate::qmodel::QModel;
use crate::work::Work;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

/// `n` events of `len` standard-normal features, reproducible from `seed`.
pub fn gaussian_events(n: usize, len: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n * len)
        .map(|_| rng.sample::<f64, _>(StandardNormal) as f32)
        .collect()
}

/// `n` events of `len` 8-bit pixel intensities scaled to `[0, 1]` (`k / 255`),
/// for image-like inputs: what an image model was trained on.
pub fn pixel_events(n: usize, len: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n * len)
        .map(|_| rng.gen_range(0..=255u8) as f32 / 255.0)
        .collect()
}

/// Observed range of every tensor of the float graph (index = tensor id).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Profile {
    pub min: Vec<f64>,
    pub max: Vec<f64>,
}

/// What one float evaluation of every calibration event shows: each
/// tensor's range, how many of its values fell outside given limits, and the
/// output of every event. One pass, because on an image model the float
/// evaluation is as costly as the golden one.
pub struct FloatRun {
    pub profile: Profile,
    /// Per tensor, the values (over all events) outside its `limits`.
    pub outside: Vec<usize>,
    /// The output of every event, in event order.
    pub outputs: Vec<Vec<f64>>,
}

/// Evaluates `g` on every event (flat, `g.input_len()` per event). `limits`
/// holds an inclusive range per tensor for [`FloatRun::outside`] (empty:
/// count nothing).
pub fn float_run(g: &Graph, events: &[f32], limits: &[(f64, f64)], work: &Work) -> FloatRun {
    let n_t = g.inputs.len() + g.layers.len();
    let eval = Evaluator::new(g);
    let len = g.input_len().max(1);
    let per_event = work.map("float evaluation", events.len() / len, |e| {
        let x: Vec<f64> = events[e * len..(e + 1) * len]
            .iter()
            .map(|&v| v as f64)
            .collect();
        let tensors = eval.evaluate_all(&x);
        let seen: Vec<(f64, f64, usize)> = tensors
            .iter()
            .enumerate()
            .map(|(t, vals)| {
                let (lo, hi) = limits
                    .get(t)
                    .copied()
                    .unwrap_or((f64::NEG_INFINITY, f64::INFINITY));
                vals.iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY, 0), |(a, b, c), &v| {
                        (a.min(v), b.max(v), c + (v < lo || v > hi) as usize)
                    })
            })
            .collect();
        (seen, crate::qmodel::gather(&g.outputs, &tensors))
    });
    let mut run = FloatRun {
        profile: Profile {
            min: vec![f64::INFINITY; n_t],
            max: vec![f64::NEG_INFINITY; n_t],
        },
        outside: vec![0; n_t],
        outputs: Vec::with_capacity(per_event.len()),
    };
    for (seen, out) in per_event {
        for (t, (lo, hi, c)) in seen.into_iter().enumerate() {
            run.profile.min[t] = run.profile.min[t].min(lo);
            run.profile.max[t] = run.profile.max[t].max(hi);
            run.outside[t] += c;
        }
        run.outputs.push(out);
    }
    run
}

/// How close the fixed-point model is to the float one on a set of events.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Accuracy {
    pub events: usize,
    /// Fraction of events whose highest output is the same class (1.0 for single-output models
    /// compared by sign of `output - 0.5`).
    pub argmax_agreement: f64,
    pub max_abs_error: f64,
    pub mean_abs_error: f64,
}

/// Index of the first maximum.
pub fn argmax<T: PartialOrd + Copy>(v: &[T]) -> usize {
    (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
}

/// Float outputs of every event.
pub fn float_outputs(g: &Graph, events: &[f32], work: &Work) -> Vec<Vec<f64>> {
    float_run(g, events, &[], work).outputs
}

/// Golden fixed-point outputs of every event, as real numbers (from
/// `work.fixed`, the engine, when it gives them).
pub fn fixed_outputs(q: &QModel, events: &[f32], work: &Work) -> Vec<Vec<f64>> {
    if let Some(flat) = work.fixed.and_then(|f| f(q, events)) {
        return flat
            .chunks(q.output_len().max(1))
            .map(<[f64]>::to_vec)
            .collect();
    }
    let golden = Golden::new(q, Arithmetic::Fast);
    let len = q.input_len().max(1);
    work.map("golden evaluation", events.len() / len, |e| {
        let raw = golden
            .evaluate(&golden::quantize_input(q, &events[e * len..(e + 1) * len]))
            .expect("inputs quantized with the model's own type always fit");
        golden::dequantize_output(q, &raw)
    })
}

/// Do a float and a fixed-point output name the same class? A single output
/// is a probability: its class is `output >= 0.5`.
pub fn same_class(float: &[f64], fixed: &[f64]) -> bool {
    if float.len() == 1 {
        (float[0] >= 0.5) == (fixed[0] >= 0.5)
    } else {
        argmax(float) == argmax(fixed)
    }
}

/// Compares fixed-point outputs against float outputs. A one-hot argmax
/// output is compared by class only (its error is not meaningful).
pub fn compare(float: &[Vec<f64>], fixed: &[Vec<f64>]) -> Accuracy {
    let n = float.len().min(fixed.len());
    let (mut agree, mut max_e, mut sum_e, mut count) = (0usize, 0f64, 0f64, 0usize);
    for (f, q) in float.iter().zip(fixed) {
        agree += same_class(f, q) as usize;
        for (a, b) in f.iter().zip(q) {
            let e = (a - b).abs();
            max_e = max_e.max(e);
            sum_e += e;
            count += 1;
        }
    }
    Accuracy {
        events: n,
        argmax_agreement: if n == 0 { 1.0 } else { agree as f64 / n as f64 },
        max_abs_error: max_e,
        mean_abs_error: if count == 0 {
            0.0
        } else {
            sum_e / count as f64
        },
    }
}

/// How many generated calibration events to use by default for a graph of
/// `macs` multiply-accumulates per event: 5,000, or fewer for costly models
/// so that the report's evaluations (every event in float and in fixed
/// point) stay near 10^10 multiply-accumulates, and each check of
/// `--auto`'s search near 10^9; never under 1,000 (`--auto`: 500).
pub fn default_event_count(macs: usize, auto: bool) -> usize {
    let (budget, least) = if auto { (1e9, 500) } else { (1e10, 1000) };
    ((budget / macs.max(1) as f64) as usize).clamp(least, 5000)
}

/// Default calibration events for a graph (flat, every input of an event
/// after the other): per input, N(0,1) features, or for image-like inputs
/// (rank 3, as `[channels, height, width]`) 8-bit pixels scaled to [0, 1].
pub fn default_events(g: &Graph, n: usize, seed: u64) -> Vec<f32> {
    let per_input: Vec<Vec<f32>> = g
        .inputs
        .iter()
        .enumerate()
        .map(|(k, i)| {
            let (len, seed) = (i.shape.iter().product(), seed.wrapping_add(k as u64));
            if i.shape.len() == 3 {
                pixel_events(n, len, seed)
            } else {
                gaussian_events(n, len, seed)
            }
        })
        .collect();
    let mut events = Vec::with_capacity(n * g.input_len());
    for e in 0..n {
        for (i, x) in g.inputs.iter().zip(&per_input) {
            let len: usize = i.shape.iter().product();
            events.extend_from_slice(&x[e * len..(e + 1) * len]);
        }
    }
    events
}
