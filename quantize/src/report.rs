//! The quantization report: per-layer types, sizes, observed ranges and
//! overflow counts on the calibration data, and accuracy against float. One
//! struct, printed as a table for people and serialized as JSON for scripts.

use crate::calibrate::{argmax, compare, fixed_outputs, float_run, Accuracy};
use crate::ir::Graph;
use crate::qmodel::{step_sets, QModel, QOp};
use crate::work::Work;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LayerReport {
    pub name: String,
    pub kind: String,
    pub shape: Vec<usize>,
    pub result: String,
    pub weight: Option<String>,
    pub accum: Option<String>,
    pub params: usize,
    pub macs: usize,
    pub reuse: u32,
    /// Observed float range of the layer's output on the calibration events.
    pub min: f64,
    pub max: f64,
    /// Output values (over all events) outside the result type's range: each
    /// one saturated or wrapped.
    pub overflows: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub model: String,
    pub input: String,
    pub events: usize,
    pub layers: Vec<LayerReport>,
    pub accuracy: Accuracy,
    /// Per-class AUC of the fixed-point and float outputs when labels are given.
    pub auc_fixed: Option<Vec<f64>>,
    pub auc_float: Option<Vec<f64>>,
    /// Fraction of events whose fixed-point class equals the label.
    pub label_accuracy_fixed: Option<f64>,
    pub label_accuracy_float: Option<f64>,
}

/// Area under the ROC curve of `score` for `positive` events (ties count half).
pub fn auc(score: &[f64], positive: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..score.len()).collect();
    idx.sort_by(|&a, &b| score[a].total_cmp(&score[b]));
    let (np, nn) = (
        positive.iter().filter(|&&p| p).count() as f64,
        positive.iter().filter(|&&p| !p).count() as f64,
    );
    if np == 0.0 || nn == 0.0 {
        return f64::NAN;
    }
    // Mann-Whitney U with average ranks for ties.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && score[idx[j + 1]] == score[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += (i..=j).filter(|&k| positive[idx[k]]).count() as f64 * avg;
        i = j + 1;
    }
    (rank_sum - np * (np + 1.0) / 2.0) / (np * nn)
}

fn per_class_auc(out: &[Vec<f64>], labels: &[usize]) -> Vec<f64> {
    let classes = out.first().map_or(0, Vec::len);
    (0..classes)
        .map(|c| {
            let s: Vec<f64> = out.iter().map(|o| o[c]).collect();
            let p: Vec<bool> = labels.iter().map(|&l| l == c).collect();
            auc(&s, &p)
        })
        .collect()
}

/// Why a report cannot be built from the data given.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(
        "--labels has {labels} labels but --calib has {events} events: give one label per event"
    )]
    LabelCount { labels: usize, events: usize },
}

/// Builds the report of `q` (quantized from `g`) on the calibration `events`;
/// `labels`, one class per event, add per-class AUC and label accuracy.
pub fn build(
    g: &Graph,
    q: &QModel,
    events: &[f32],
    labels: Option<&[usize]>,
    work: &Work,
) -> Result<Report, ReportError> {
    let n = events.len() / g.input_len().max(1);
    if let Some(lab) = labels.filter(|l| l.len() != n) {
        return Err(ReportError::LabelCount {
            labels: lab.len(),
            events: n,
        });
    }
    let limits: Vec<(f64, f64)> = (0..q.tensors())
        .map(|t| {
            let ty = q.ty(t);
            (ty.to_f64(ty.min_raw()), ty.to_f64(ty.max_raw()))
        })
        .collect();
    let run = float_run(g, events, &limits, work);
    let (min, max, over) = (&run.profile.min, &run.profile.max, &run.outside);
    let layers = q
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let (weight, accum) = match &l.op {
                QOp::Dense { w_ty, acc_ty, .. } | QOp::Conv { w_ty, acc_ty, .. } => {
                    (Some(w_ty.to_string()), Some(acc_ty.to_string()))
                }
                QOp::Scale { s_ty, acc_ty, .. } => {
                    (Some(s_ty.to_string()), Some(acc_ty.to_string()))
                }
                _ => (None, None),
            };
            let len: usize = l.shape.iter().product();
            LayerReport {
                name: l.name.clone(),
                kind: l.op.kind().into(),
                shape: l.shape.clone(),
                result: l.ty.to_string(),
                weight,
                accum,
                params: g.layers[i].op.params(),
                macs: l.op.macs(len),
                reuse: l.reuse,
                min: min[q.layer_tensor(i)],
                max: max[q.layer_tensor(i)],
                overflows: if matches!(l.op, QOp::Softmax { .. } | QOp::Argmax { .. }) {
                    0
                } else {
                    over[q.layer_tensor(i)]
                },
            }
        })
        .collect();
    let float = run.outputs;
    let fixed = fixed_outputs(q, events, work);
    let accuracy = compare(&float, &fixed);
    let (mut auc_fixed, mut auc_float, mut acc_fixed, mut acc_float) = (None, None, None, None);
    if let Some(lab) = labels {
        auc_fixed = Some(per_class_auc(&fixed, lab));
        auc_float = Some(per_class_auc(&float, lab));
        let hit = |o: &[Vec<f64>]| {
            o.iter().zip(lab).filter(|(v, &l)| argmax(v) == l).count() as f64
                / lab.len().max(1) as f64
        };
        acc_fixed = Some(hit(&fixed));
        acc_float = Some(hit(&float));
    }
    Ok(Report {
        model: q.name.clone(),
        input: q
            .inputs
            .iter()
            .map(|p| p.ty.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        events: n,
        layers,
        accuracy,
        auc_fixed,
        auc_float,
        label_accuracy_fixed: acc_fixed,
        label_accuracy_float: acc_float,
    })
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        writeln!(
            f,
            "model {}  input {}  ({} calibration events)",
            self.model, self.input, self.events
        )?;
        writeln!(
            f,
            "{:<34} {:<9} {:>9} {:<22} {:<22} {:<22} {:>7} {:>21} {:>9}",
            "layer",
            "kind",
            "shape",
            "result",
            "weight",
            "accumulator",
            "params",
            "observed range",
            "overflow"
        )?;
        for l in &self.layers {
            let name = if l.name.len() > 34 {
                format!("..{}", &l.name[l.name.len() - 32..])
            } else {
                l.name.clone()
            };
            writeln!(
                f,
                "{:<34} {:<9} {:>9} {:<22} {:<22} {:<22} {:>7} {:>21} {:>9}",
                name,
                l.kind,
                format!("{:?}", l.shape),
                l.result,
                l.weight.as_deref().unwrap_or("-"),
                l.accum.as_deref().unwrap_or("-"),
                l.params,
                format!("[{:.3}, {:.3}]", l.min, l.max),
                l.overflows
            )?;
        }
        let a = &self.accuracy;
        writeln!(
            f,
            "accuracy vs float: argmax agreement {:.2} %, max |error| {:.5}, mean |error| {:.6}",
            100.0 * a.argmax_agreement,
            a.max_abs_error,
            a.mean_abs_error
        )?;
        if let (Some(q), Some(fl)) = (&self.auc_fixed, &self.auc_float) {
            let fmt_v = |v: &[f64]| {
                v.iter()
                    .map(|x| format!("{x:.4}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            writeln!(
                f,
                "per-class AUC  fixed: {}  float: {}",
                fmt_v(q),
                fmt_v(fl)
            )?;
        }
        if let (Some(q), Some(fl)) = (self.label_accuracy_fixed, self.label_accuracy_float) {
            writeln!(
                f,
                "label accuracy fixed {:.2} %  float {:.2} %",
                100.0 * q,
                100.0 * fl
            )?;
        }
        Ok(())
    }
}

/// A quantized model's numerical contract as data: its inputs and outputs
/// (name, tensor, shape, type) and each layer's result, weight and
/// accumulator types, thresholds, MACs and reuse factor. `bxflow inspect
/// M.bxq` prints it (as a table, or as this JSON with `--json`), and the
/// Python package returns it.
pub fn contract(m: &QModel) -> serde_json::Value {
    let port = |name: &str, t: usize| {
        serde_json::json!({
            "name": name,
            "tensor": t,
            "shape": m.shape(t),
            "type": m.ty(t).ap_string(),
        })
    };
    let inputs: Vec<serde_json::Value> = (m.inputs.iter().enumerate())
        .map(|(t, p)| port(&p.name, t))
        .collect();
    let outputs: Vec<serde_json::Value> = (m.outputs.iter())
        .map(|o| port(&o.name, o.tensor))
        .collect();
    let layers: Vec<serde_json::Value> = m
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let (w, acc) = match &l.op {
                QOp::Dense { w_ty, acc_ty, .. } | QOp::Conv { w_ty, acc_ty, .. } => {
                    (Some(w_ty.ap_string()), Some(acc_ty.ap_string()))
                }
                _ => (None, None),
            };
            // The output quantizer: the result type, or integer thresholds
            // (how many per element, and how many distinct sets).
            let stairs = match &l.op {
                QOp::Step { thresholds, values } => {
                    let sets = step_sets(thresholds, values);
                    Some(serde_json::json!({
                        "per_element": thresholds.len() / sets.max(1),
                        "sets": sets,
                    }))
                }
                _ => None,
            };
            serde_json::json!({
                "layer": m.layer_tensor(i),
                "name": l.name,
                "op": l.op.kind(),
                "inputs": l.inputs,
                "shape": l.shape,
                "type": l.ty.ap_string(),
                "weights": w,
                "accumulator": acc,
                "thresholds": stairs,
                "macs": l.op.macs(m.tensor_len(m.layer_tensor(i))),
                "reuse": l.reuse,
            })
        })
        .collect();
    serde_json::json!({
        "model": m.name,
        "inputs": inputs,
        "outputs": outputs,
        "macs": m.macs(),
        "layers": layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::ir::{Input, Layer, Op};
    use crate::qmodel::Output;
    use crate::quantizer::quantize_graph;

    fn relu_graph() -> Graph {
        Graph {
            name: "t".into(),
            inputs: vec![Input {
                name: "x".into(),
                shape: vec![2],
                event_axis: true,
            }],
            layers: vec![Layer {
                name: "act".into(),
                inputs: vec![0],
                shape: vec![2],
                op: Op::Relu,
                exact: false,
            }],
            outputs: vec![Output {
                name: "y".into(),
                tensor: 1,
            }],
        }
    }

    #[test]
    fn a_label_count_other_than_the_event_count_is_an_error_naming_both() {
        let g = relu_graph();
        let q = quantize_graph(&g, &Config::default()).unwrap();
        let events = vec![0.5f32; 2 * 5];
        let e = build(&g, &q, &events, Some(&[0, 1, 0]), &Work::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("3 labels") && e.contains("5 events"), "{e}");
        let r = build(&g, &q, &events, Some(&[0, 1, 0, 1, 1]), &Work::default()).unwrap();
        assert_eq!(r.events, 5);
        assert!(r.label_accuracy_fixed.is_some());
    }
}
