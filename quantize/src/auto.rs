//! `auto` precision: types chosen from data and accuracy, not from types alone.
//!
//! 1. Profile every tensor's range on calibration events with the float graph.
//! 2. Give each tensor just enough integer bits that nothing overflows on the
//!    calibration set, with a margin; weights and biases get theirs from the
//!    constants themselves; tensors made by ReLU are unsigned.
//! 3. Start every tensor with generous fractional bits, check the accuracy
//!    budget, then, layer by layer in order, binary-search the fewest
//!    fractional bits of the result and of the weights that keep the model
//!    within the budget (argmax agreement and maximum output error against
//!    float, measured with the golden model).
//! 4. Activation and softmax tables start with generous address bits too,
//!    and each gets the fewest that keep the budget, in the same pass: in an
//!    unrolled recurrent layer a table's step errors add up over the time
//!    steps, so tables matter as much as types there.

use crate::calibrate::{compare, fixed_outputs, float_run, same_class, Accuracy, FloatRun};
use crate::config::{Config, LayerSettings};
use crate::fixed::{FixedType, Overflow, Rounding};
use crate::golden::{self, Arithmetic, Golden};
use crate::ir::{Graph, Op};
use crate::qmodel::QModel;
use crate::quantizer::{feeds_quant_only, quantize_graph, QuantizeError};
use crate::work::Work;
use serde::{Deserialize, Serialize};

/// The accuracy a quantized model must keep against float.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Budget {
    /// Fraction of events with the same winning class (default 0.995).
    pub min_agreement: f64,
    /// Largest absolute output error, as a fraction of the largest float
    /// output magnitude seen in calibration (default 0.05).
    pub max_rel_error: f64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            min_agreement: 0.995,
            max_rel_error: 0.05,
        }
    }
}

#[derive(Clone, Debug)]
pub struct AutoOptions {
    pub budget: Budget,
    /// Extra headroom on observed ranges, in bits (1 = twice the largest value seen).
    pub margin_bits: i32,
    /// Widest type the search may use.
    pub max_width: u32,
    /// Starting fractional bits of every tensor.
    pub start_frac: i32,
    /// Starting address bits of every activation and softmax table.
    pub start_table_bits: u32,
}

/// The fewest table address bits the search tries.
const MIN_TABLE_BITS: u32 = 4;

impl Default for AutoOptions {
    fn default() -> Self {
        AutoOptions {
            budget: Budget::default(),
            margin_bits: 1,
            max_width: 24,
            start_frac: 14,
            start_table_bits: 14,
        }
    }
}

#[derive(Clone, Debug)]
pub struct AutoResult {
    pub config: Config,
    pub model: QModel,
    pub accuracy: Accuracy,
    /// Bits of every searched tensor, for the report: (layer, tensor, type).
    pub choices: Vec<(String, &'static str, FixedType)>,
    pub evaluations: usize,
    /// What the search had to decide beyond the budget, for the user.
    pub notes: Vec<String>,
}

fn int_bits_for(max_abs: f64, signed: bool, margin: i32) -> i32 {
    let m = if max_abs > 0.0 {
        max_abs.log2().floor() as i32 + 1
    } else {
        0
    };
    m + signed as i32 + margin
}

/// `NODE.*.PART` for a layer named `NODE.f3.PART` or `NODE.r3.PART` (step 3
/// of a recurrent layer's forward or reverse direction, as the importer
/// names them): the steps share their types, as one cell does in hardware.
fn step_part(name: &str) -> Option<String> {
    let parts: Vec<&str> = name.split('.').collect();
    let k = parts.iter().position(|p| {
        p.len() > 1
            && matches!(p.as_bytes()[0], b'f' | b'r')
            && p[1..].bytes().all(|b| b.is_ascii_digit())
    })?;
    let mut key: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
    key[k] = format!("{}*", &parts[k][..1]);
    Some(key.join("."))
}

fn make_type(int_bits: i32, frac: i32, signed: bool, max_width: u32) -> FixedType {
    let width = (int_bits + frac).clamp(1, max_width as i32) as u32;
    let frac = width as i32 - int_bits;
    FixedType::new(width, width as i32 - frac, signed)
        .expect("width clamped to range")
        .with_rounding(Rounding::Rnd)
        .with_overflow(Overflow::Sat)
}

struct Search<'a> {
    g: &'a Graph,
    events: Vec<f32>,
    float: Vec<Vec<f64>>,
    max_err: f64,
    budget: Budget,
    evaluations: usize,
    work: Work<'a>,
}

/// Blocks a check evaluates its events in: it stops after the first block
/// that already decides a failure.
const CHECK_BLOCKS: usize = 8;

impl Search<'_> {
    /// Accuracy of `q` on the search events, all of them (for reports).
    fn accuracy(&self, q: &QModel) -> Accuracy {
        compare(&self.float, &fixed_outputs(q, &self.events, &self.work))
    }

    /// Does `cfg` keep the budget? Most checks of a binary search fail, and
    /// a failure is usually clear after a fraction of the events (one output
    /// beyond the error budget, or more disagreements than the budget
    /// allows), so the events are evaluated in blocks and the check stops
    /// at the first block that decides a failure. Both criteria only get
    /// worse with more events, so the answer is the one all events give.
    fn check(&mut self, cfg: &Config) -> Result<Option<(QModel, Accuracy)>, QuantizeError> {
        self.evaluations += 1;
        let q = quantize_graph(self.g, cfg)?;
        let golden = Golden::new(&q, Arithmetic::Fast);
        let (n, len) = (self.float.len(), q.input_len().max(1));
        let block = n.div_ceil(CHECK_BLOCKS).max(1);
        let mut fixed = Vec::with_capacity(n);
        let mut disagree = 0usize;
        while fixed.len() < n {
            let start = fixed.len();
            let end = (start + block).min(n);
            let out = self.work.map("golden evaluation", end - start, |i| {
                let e = start + i;
                let raw = golden
                    .evaluate(&golden::quantize_input(
                        &q,
                        &self.events[e * len..(e + 1) * len],
                    ))
                    .expect("inputs quantized with the model's own type always fit");
                golden::dequantize_output(&q, &raw)
            });
            for (f, y) in self.float[start..end].iter().zip(&out) {
                disagree += !same_class(f, y) as usize;
                let err = f.iter().zip(y).fold(0f64, |m, (a, b)| m.max((a - b).abs()));
                if err > self.max_err {
                    return Ok(None);
                }
            }
            if ((n - disagree) as f64 / n as f64) < self.budget.min_agreement {
                return Ok(None);
            }
            fixed.extend(out);
        }
        let acc = compare(&self.float, &fixed);
        let ok =
            acc.argmax_agreement >= self.budget.min_agreement && acc.max_abs_error <= self.max_err;
        Ok(ok.then_some((q, acc)))
    }
}

/// Chooses per-layer types for `g` on calibration `events` (flat,
/// `g.input_len()` per event). Progress: the float evaluation of the
/// events, then one step per searched tensor ("auto search").
pub fn auto_precision(
    g: &Graph,
    events: &[f32],
    opts: &AutoOptions,
    work: &Work,
) -> Result<AutoResult, QuantizeError> {
    let FloatRun {
        profile: prof,
        outputs: mut float,
        ..
    } = float_run(g, events, &[], work);
    // Evaluate on a subset sized so one check costs about the same on every model.
    let macs: usize = g
        .layers
        .iter()
        .map(|l| l.op.params().max(1))
        .sum::<usize>()
        .max(1);
    let n_eval = (100_000_000 / macs)
        .clamp(300, 3000)
        .min(events.len() / g.input_len().max(1));
    let ev: Vec<f32> = events[..n_eval * g.input_len()].to_vec();
    float.truncate(n_eval);
    let out_mag = float.iter().flatten().fold(0f64, |a, v| a.max(v.abs()));
    let mut s = Search {
        g,
        float,
        events: ev,
        max_err: opts.budget.max_rel_error * out_mag.max(1e-9),
        budget: opts.budget,
        evaluations: 0,
        work: work.quiet(),
    };
    let absmax = |t: usize| prof.min[t].abs().max(prof.max[t].abs());
    let mut cfg = Config::uniform(make_type(
        int_bits_for(absmax(0), true, opts.margin_bits),
        opts.start_frac,
        true,
        opts.max_width,
    ));
    let in_int = int_bits_for(absmax(0), true, opts.margin_bits);
    cfg.model.input = Some(make_type(in_int, opts.start_frac, true, opts.max_width));

    // Per-layer integer bits, fractional bits to be searched; the steps of
    // an unrolled recurrent layer share one slot per part.
    struct Slot {
        names: Vec<String>,
        /// The part of a recurrent layer's every step (`step_part`).
        part: Option<String>,
        /// The result type is the search's (false: fixed by a quantizer or by wiring).
        free: bool,
        result_int: i32,
        result_signed: bool,
        weight_int: Option<i32>,
        bias_int: Option<i32>,
        frac: i32,
        wfrac: i32,
        /// Address bits of the layer's tables, if it has any.
        table_bits: Option<u32>,
    }
    let mut slots: Vec<Slot> = Vec::new();
    for (i, l) in g.layers.iter().enumerate() {
        let unsigned =
            matches!(l.op, Op::Relu | Op::Softmax { .. }) && prof.min[g.layer_tensor(i)] >= 0.0;
        let (w_int, b_int) = match &l.op {
            Op::Dense { weights, bias, .. } | Op::Conv { weights, bias, .. } => {
                let wm = weights.iter().fold(0f64, |a, v| a.max(v.abs()));
                let bm = bias.iter().fold(0f64, |a, v| a.max(v.abs()));
                (
                    Some(int_bits_for(wm, true, 0)),
                    Some(int_bits_for(bm, true, 0)),
                )
            }
            _ => (None, None),
        };
        let free = !matches!(l.op, Op::Quant(_) | Op::Route { .. })
            && !feeds_quant_only(g, g.layer_tensor(i));
        let slot = Slot {
            names: vec![l.name.clone()],
            part: step_part(&l.name),
            free,
            result_int: int_bits_for(absmax(g.layer_tensor(i)), !unsigned, opts.margin_bits),
            result_signed: !unsigned,
            weight_int: w_int,
            bias_int: b_int,
            frac: opts.start_frac,
            wfrac: opts.start_frac,
            table_bits: matches!(l.op, Op::Func(_) | Op::Softmax { .. })
                .then_some(opts.start_table_bits),
        };
        let same = slots.iter_mut().find(|s| {
            s.part.is_some()
                && s.part == slot.part
                && s.free == slot.free
                && s.weight_int.is_some() == slot.weight_int.is_some()
                && s.table_bits.is_some() == slot.table_bits.is_some()
        });
        match same {
            Some(s) => {
                s.names.push(l.name.clone());
                s.result_int = s.result_int.max(slot.result_int);
                s.result_signed |= slot.result_signed;
                s.weight_int = s.weight_int.max(slot.weight_int);
                s.bias_int = s.bias_int.max(slot.bias_int);
            }
            None => slots.push(slot),
        }
    }
    let apply = |cfg: &mut Config, slots: &[Slot]| {
        cfg.layer.clear();
        for sl in slots {
            let mut ls = LayerSettings {
                result: sl
                    .free
                    .then(|| make_type(sl.result_int, sl.frac, sl.result_signed, opts.max_width)),
                table_bits: sl.table_bits,
                ..LayerSettings::default()
            };
            if let (Some(wi), Some(bi)) = (sl.weight_int, sl.bias_int) {
                ls.weight = Some(make_type(wi, sl.wfrac, true, opts.max_width));
                ls.bias = Some(make_type(bi, sl.wfrac.max(sl.frac), true, opts.max_width));
            }
            for name in &sl.names {
                cfg.layer.insert(name.clone(), ls.clone());
            }
        }
    };
    apply(&mut cfg, &slots);
    let mut notes = Vec::new();
    let mut best = s.check(&cfg)?;
    if best.is_none() {
        let acc = s.accuracy(&quantize_graph(g, &cfg)?);
        if acc.argmax_agreement >= opts.budget.min_agreement {
            // The model's own quantizers (QONNX Quant steps) make its output jump for
            // inputs near a step, whatever bxflow's types: that jump is the error floor.
            notes.push(format!(
                "even {} fractional bits everywhere give a max output error of {:.4} (budget {:.4}): the model's own quantizers set this floor, so the error budget is raised to it",
                opts.start_frac, acc.max_abs_error, s.max_err
            ));
            s.max_err = acc.max_abs_error;
            best = s.check(&cfg)?;
        }
    }
    if best.is_none() {
        // Even the generous start misses the budget: report it with its accuracy.
        let acc = s.accuracy(&quantize_graph(g, &cfg)?);
        return Err(QuantizeError::Layer {
            layer: g.name.clone(),
            kind: "auto",
            msg: format!(
                "even {} fractional bits everywhere miss the accuracy budget (agreement {:.4} < {} or max error {:.4} > {:.4}) with types of at most {} bits; allow wider types (`bxflow quantize --auto --max-width`) or relax the budget (`--min-agreement`, `--max-error`)",
                opts.start_frac, acc.argmax_agreement, opts.budget.min_agreement, acc.max_abs_error, s.max_err, opts.max_width
            ),
        });
    }
    // Input first, then each layer's result, weights and tables, fewest bits that pass.
    let searches = 1 + slots
        .iter()
        .map(|sl| {
            sl.free as usize + sl.weight_int.is_some() as usize + sl.table_bits.is_some() as usize
        })
        .sum::<usize>();
    let mut searched = 0;
    let tell = |searched: &mut usize| {
        (work.progress)("auto search", *searched, searches);
        *searched += 1;
    };
    tell(&mut searched);
    let mut lo = -in_int;
    let mut hi = opts.start_frac;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let mut c = cfg.clone();
        c.model.input = Some(make_type(in_int, mid, true, opts.max_width));
        if let Some(r) = s.check(&c)? {
            hi = mid;
            cfg = c;
            best = Some(r);
        } else {
            lo = mid + 1;
        }
    }
    tell(&mut searched);
    for k in 0..slots.len() {
        for which in [0, 1, 2] {
            let (mut lo, mut hi) = match which {
                0 if slots[k].free => (-slots[k].result_int.min(8), opts.start_frac),
                1 if slots[k].weight_int.is_some() => {
                    (-slots[k].result_int.min(8), opts.start_frac)
                }
                2 => match slots[k].table_bits {
                    Some(b) => (MIN_TABLE_BITS.min(b) as i32, b as i32),
                    None => continue,
                },
                _ => continue,
            };
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                let saved = (slots[k].frac, slots[k].wfrac, slots[k].table_bits);
                match which {
                    0 => slots[k].frac = mid,
                    1 => slots[k].wfrac = mid,
                    _ => slots[k].table_bits = Some(mid as u32),
                }
                let mut c = cfg.clone();
                apply(&mut c, &slots);
                if let Some(r) = s.check(&c)? {
                    hi = mid;
                    cfg = c;
                    best = Some(r);
                } else {
                    (slots[k].frac, slots[k].wfrac, slots[k].table_bits) = saved;
                    lo = mid + 1;
                }
            }
            tell(&mut searched);
        }
    }
    let (model, accuracy) = best.expect("the starting point passed");
    let mut choices: Vec<_> = model
        .inputs
        .iter()
        .map(|p| (p.name.clone(), "input", p.ty))
        .collect();
    for l in &model.layers {
        choices.push((l.name.clone(), "result", l.ty));
    }
    Ok(AutoResult {
        config: cfg,
        model,
        accuracy,
        choices,
        evaluations: s.evaluations,
        notes,
    })
}
