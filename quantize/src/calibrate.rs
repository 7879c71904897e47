//! Calibration data, per-tensor range profiles, and the accuracy of a
//! quantized model against its float graph: what `auto` precision and the
//! quantization report are made of.

use crate::golden;
use crate::ir::Graph;
use crate::qmodel::QModel;
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

pub fn profile(g: &Graph, events: &[f32]) -> Profile {
    let n = g.layers.len() + 1;
    let mut p = Profile {
        min: vec![f64::INFINITY; n],
        max: vec![f64::NEG_INFINITY; n],
    };
    for ev in events.chunks(g.input_len()) {
        let x: Vec<f64> = ev.iter().map(|&v| v as f64).collect();
        for (t, vals) in g.evaluate_all(&x).iter().enumerate() {
            for &v in vals {
                p.min[t] = p.min[t].min(v);
                p.max[t] = p.max[t].max(v);
            }
        }
    }
    p
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
pub fn float_outputs(g: &Graph, events: &[f32]) -> Vec<Vec<f64>> {
    events
        .chunks(g.input_len())
        .map(|ev| g.evaluate(&ev.iter().map(|&v| v as f64).collect::<Vec<_>>()))
        .collect()
}

/// Golden fixed-point outputs of every event, as real numbers.
pub fn fixed_outputs(q: &QModel, events: &[f32]) -> Vec<Vec<f64>> {
    events
        .chunks(q.input_len())
        .map(|ev| {
            let raw = golden::evaluate(q, &golden::quantize_input(q, ev))
                .expect("inputs quantized with the model's own type always fit");
            golden::dequantize_output(q, &raw)
        })
        .collect()
}

/// Compares fixed-point outputs against float outputs. A one-hot argmax
/// output is compared by class only (its error is not meaningful).
pub fn compare(float: &[Vec<f64>], fixed: &[Vec<f64>]) -> Accuracy {
    let n = float.len().min(fixed.len());
    let (mut agree, mut max_e, mut sum_e, mut count) = (0usize, 0f64, 0f64, 0usize);
    for (f, q) in float.iter().zip(fixed) {
        let same = if f.len() == 1 {
            (f[0] >= 0.5) == (q[0] >= 0.5)
        } else {
            argmax(f) == argmax(q)
        };
        agree += same as usize;
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

/// Default calibration events for a graph: N(0,1) features, or uniform [0,1)
/// for image-like inputs (rank 3, as `[channels, height, width]`) 8-bit pixels.
pub fn default_events(g: &Graph, n: usize, seed: u64) -> Vec<f32> {
    if g.input_shape.len() == 3 {
        pixel_events(n, g.input_len(), seed)
    } else {
        gaussian_events(n, g.input_len(), seed)
    }
}
