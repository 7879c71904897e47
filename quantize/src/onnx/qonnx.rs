//! Quantizers in the graph: QONNX `Quant`, `IntQuant`, `BipolarQuant` and
//! `Trunc`, and ONNX QDQ pairs (`QuantizeLinear` / `DequantizeLinear`).
//! Power-of-two scales with zero offset map exactly onto fixed-point types,
//! QONNX rounding modes onto `ap_fixed` ones; on constants any scale folds
//! exactly into the values, while on activations anything else is an error,
//! never an approximation.

use super::builder::Builder;
use super::decode::Node;
use super::shape::broadcast_to;
use super::value::{Act, Const, Value};
use crate::fixed::{FixedType, Overflow, Rounding};
use crate::ir::{Affine, Op};

/// A quantizer's bit width: a whole number from 1 to 64.
fn check_bits(bits: f64) -> Result<(), String> {
    if bits.fract() != 0.0 || !(1.0..=64.0).contains(&bits) {
        return Err(format!(
            "bit width {bits} must be a whole number from 1 to 64"
        ));
    }
    Ok(())
}

/// The exact type of a power-of-two-scaled, zero-offset quantizer.
pub fn pow2_type(
    scale: f64,
    bits: f64,
    signed: bool,
    narrow: bool,
    rounding: Rounding,
) -> Result<FixedType, String> {
    if scale.is_nan() || scale <= 0.0 || scale.log2().fract() != 0.0 {
        return Err(format!(
            "scale {scale} is not a power of two: bxflow keeps quantizers exact and only maps power-of-two scales onto fixed-point types"
        ));
    }
    check_bits(bits)?;
    let width = bits as u32;
    let int_bits = width as i32 + scale.log2() as i32;
    let overflow = if narrow && signed {
        Overflow::SatSym
    } else if narrow {
        return Err("narrow range on an unsigned quantizer has no fixed-point equivalent".into());
    } else {
        Overflow::Sat
    };
    let t = if signed {
        FixedType::signed(width, int_bits)
    } else {
        FixedType::unsigned(width, int_bits)
    }
    .map_err(|e| e.to_string())?;
    Ok(t.with_rounding(rounding).with_overflow(overflow))
}

fn qonnx_rounding(mode: &str) -> Result<Rounding, String> {
    match mode.to_ascii_uppercase().as_str() {
        "ROUND" | "HALF_EVEN" => Ok(Rounding::RndConv),
        "FLOOR" => Ok(Rounding::Trn),
        // qonnx: DOWN is np.fix; HALF_UP is sign(x) floor(|x| + 0.5), ties
        // away from zero; HALF_DOWN is sign(x) ceil(|x| - 0.5), ties toward zero.
        "ROUND_TO_ZERO" | "DOWN" => Ok(Rounding::TrnZero),
        "HALF_UP" => Ok(Rounding::RndInf),
        "HALF_DOWN" => Ok(Rounding::RndZero),
        other => Err(format!(
            "rounding mode '{other}' has no ap_fixed equivalent (ROUND, HALF_EVEN, FLOOR, ROUND_TO_ZERO, DOWN, HALF_UP, HALF_DOWN are supported)"
        )),
    }
}

/// What a per-tensor QONNX quantizer node is in bxflow's terms.
#[derive(Clone, Copy)]
enum QuantKind {
    Fixed(FixedType),
    /// `BipolarQuant`: the sign, times this scale.
    Bipolar(f64),
    /// Any other scale or a zero point: integer codes `lo..=hi` of
    /// `round(x / scale + zp)`, worth `(code - zp) * scale`.
    Codes {
        scale: f64,
        zp: f64,
        lo: i64,
        hi: i64,
        rounding: Rounding,
    },
}

/// The codes of a `bits`-bit QONNX quantizer (qonnx's min_int/max_int),
/// `bits` from 1 to 64 ([`check_bits`]).
fn code_range(bits: f64, signed: bool, narrow: bool) -> (i128, i128) {
    let b = bits as u32;
    match (signed, narrow) {
        (true, false) => (-(1i128 << (b - 1)), (1i128 << (b - 1)) - 1),
        (true, true) => (-(1i128 << (b - 1)) + 1, (1i128 << (b - 1)) - 1),
        (false, false) => (0, (1i128 << b) - 1),
        (false, true) => (0, (1i128 << b) - 2),
    }
}

/// The per-tensor quantizer a QONNX node describes.
fn quant_type(n: &Node) -> Result<QuantKind, String> {
    let c = |k: usize| -> Result<f64, String> {
        match n.inputs.get(k) {
            Some(Some(Value::Const(c))) if c.data.len() == 1 => Ok(c.data[0]),
            Some(Some(Value::Const(c))) => Err(format!(
                "parameter {k} has {} values: only per-tensor quantizers are supported on activations",
                c.data.len()
            )),
            _ => Err(format!("parameter {k} must be a constant")),
        }
    };
    match n.op() {
        "BipolarQuant" => Ok(QuantKind::Bipolar(c(1)?)),
        "Trunc" => {
            // Trunc(x, scale, zero_point, input_bit_width, output_bit_width): drops LSBs.
            let (scale, zp, in_bits, out_bits) = (c(1)?, c(2)?, c(3)?, c(4)?);
            if zp != 0.0 {
                return Err("a non-zero zero point is not supported".into());
            }
            let mode = n.attr_s("rounding_mode").unwrap_or_else(|| "FLOOR".into());
            let signed = n.attr_i("signed", 1) != 0;
            let lsb = scale * (in_bits - out_bits).exp2();
            let t = pow2_type(lsb, out_bits, signed, false, qonnx_rounding(&mode)?)?;
            Ok(QuantKind::Fixed(t.with_overflow(Overflow::Wrap)))
        }
        _ => {
            let (scale, zp, bits) = (c(1)?, c(2)?, c(3)?);
            let signed = n.attr_i("signed", 1) != 0;
            let narrow = n.attr_i("narrow", 0) != 0;
            let mode = n.attr_s("rounding_mode").unwrap_or_else(|| "ROUND".into());
            let rounding = qonnx_rounding(&mode)?;
            check_bits(bits)?;
            if zp == 0.0 {
                if let Ok(t) = pow2_type(scale, bits, signed, narrow, rounding) {
                    return Ok(QuantKind::Fixed(t));
                }
            }
            if !(scale.is_finite() && scale > 0.0) {
                return Err(format!("scale {scale} must be positive"));
            }
            if zp.fract() != 0.0 || !zp.is_finite() {
                return Err(format!("zero point {zp} is not a whole number"));
            }
            let (lo, hi) = code_range(bits, signed, narrow);
            if hi - lo >= MAX_STAIR_CODES as i128 {
                return Err(format!(
                    "a quantizer of {} codes with scale {scale}: at most {MAX_STAIR_CODES} codes (8 bits) are supported when the scale is not a power of two or the zero point is not 0",
                    hi - lo + 1
                ));
            }
            Ok(QuantKind::Codes {
                scale,
                zp,
                lo: lo as i64,
                hi: hi as i64,
                rounding,
            })
        }
    }
}

/// Most codes a quantizer after an affine map may have to become a
/// staircase (FINN's thresholds): an 8-bit quantizer's 255 thresholds per
/// element. A wider one stays an affine layer and a quantizer.
const MAX_STAIR_CODES: i64 = 256;

/// Thresholds on `y`, which of them a tie does not reach, and for each
/// code `lo..=hi` its index, of `code = round(y / scale + zp)` clipped to
/// the codes, at most [`MAX_STAIR_CODES`] of them: code `m` is reached where
/// the rounding of `y / scale + zp` gives at least `m`, as `rounding` says.
/// `(m - zp - 1/2) * scale` is exact in `f64` for an `f32` scale.
fn staircase(
    scale: f64,
    zp: f64,
    lo: i64,
    hi: i64,
    rounding: Rounding,
) -> Option<(Vec<f64>, Vec<bool>)> {
    if hi - lo >= MAX_STAIR_CODES {
        return None;
    }
    let (mut th, mut strict) = (Vec::new(), Vec::new());
    for m in lo + 1..=hi {
        let up = m >= 1;
        // (threshold on y / scale + zp, whether a value equal to it falls short)
        let (u, s) = match rounding {
            Rounding::Trn => (m as f64, false),
            Rounding::TrnZero if up => (m as f64, false),
            Rounding::TrnZero => ((m - 1) as f64, true),
            Rounding::Rnd => (m as f64 - 0.5, false),
            Rounding::RndMinInf => (m as f64 - 0.5, true),
            Rounding::RndConv => (m as f64 - 0.5, m % 2 != 0),
            Rounding::RndZero => (m as f64 - 0.5, up),
            Rounding::RndInf => (m as f64 - 0.5, !up),
        };
        th.push((u - zp) * scale);
        strict.push(s);
    }
    Some((th, strict))
}

/// The codes of a saturating fixed-point type (`None` for one that wraps).
fn fixed_codes(t: FixedType) -> Option<(i64, i64)> {
    let lo = match t.overflow {
        Overflow::Sat => t.min_raw(),
        Overflow::SatSym if t.signed => -t.max_raw(),
        Overflow::SatSym => t.min_raw(),
        _ => return None,
    };
    Some((lo, t.max_raw()))
}

/// The narrowest integer type holding `lo..=hi`, saturating.
pub(crate) fn code_type(lo: i64, hi: i64) -> Result<FixedType, String> {
    let signed = lo < 0;
    let mag = if signed { hi.max(-lo - 1) } else { hi };
    let bits = (64 - (mag as u64).leading_zeros()).max(1) + signed as u32;
    let t = if signed {
        FixedType::signed(bits, bits as i32)
    } else {
        FixedType::unsigned(bits, bits as i32)
    };
    t.map(|t| t.with_overflow(Overflow::Sat))
        .map_err(|e| e.to_string())
}

/// A QONNX quantizer on an activation: a Quant layer, or a sign step. After
/// an affine map (a Scale layer only it reads) it is one staircase in that
/// layer's place, exact on the codes before the map. A quantizer of any
/// other scale or zero point is a staircase to its integer codes followed by
/// a Scale layer worth `(code - zp) * scale`, which the next MatMul takes
/// in (see `layers::dense`), so that no float scale is ever rounded.
pub fn map_quant(b: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    map_quantizer(b, n, x, quant_type(n)?)
}

/// The quantizer `kind` of node `n` on `x` (see [`map_quant`]).
fn map_quantizer(b: &mut Builder, n: &Node, x: &Act, kind: QuantKind) -> Result<Value, String> {
    // The Scale layer the staircase takes the place of, and whether a Relu
    // stands between it and the quantizer.
    let fused = match b.relu_scale_before(n, x) {
        Some(si) => Some((si, true)),
        None => b.scale_before(n, x).map(|si| (si, false)),
    };
    let codes = match kind {
        QuantKind::Codes { scale, zp, .. } => Some((scale, zp)),
        _ => None,
    };
    // (thresholds on y, strict flags, values, the values' type)
    let stairs = match kind {
        _ if fused.is_none() && codes.is_none() => None,
        QuantKind::Fixed(t) => fixed_codes(t).and_then(|(lo, hi)| {
            staircase(t.to_f64(1), 0.0, lo, hi, t.rounding).map(|(th, st)| {
                let v = (lo..=hi).map(|m| t.to_f64(m)).collect();
                (th, st, v, Some(t))
            })
        }),
        QuantKind::Bipolar(s) => Some((vec![0.0], vec![false], vec![-s, s], None)),
        QuantKind::Codes {
            scale,
            zp,
            lo,
            hi,
            rounding,
        } => {
            let (th, st) =
                staircase(scale, zp, lo, hi, rounding).expect("quant_type bounds the codes");
            let v = (lo..=hi).map(|m| m as f64).collect();
            Some((th, st, v, Some(code_type(lo, hi)?)))
        }
    };
    let Some((thresholds, strict, values, out)) = stairs else {
        return Ok(match kind {
            QuantKind::Fixed(t) => b.unary(n.name, x, Op::Quant(t)),
            QuantKind::Bipolar(s) => b.unary(n.name, x, Op::step(vec![0.0], vec![-s, s])),
            QuantKind::Codes { .. } => unreachable!("codes always have stairs"),
        });
    };
    let step = |thresholds: Vec<f64>, strict: Vec<bool>, values: Vec<f64>, affine| Op::Step {
        thresholds,
        values,
        strict,
        affine: Some(affine),
        out,
    };
    let y = match fused {
        Some((si, relu)) => {
            // Q(max(y, 0)): the thresholds that y = 0 reaches are always
            // reached, and below 0 the code is that of 0.
            let k0 = if relu {
                thresholds
                    .iter()
                    .zip(&strict)
                    .take_while(|(t, s)| **t < 0.0 || (**t == 0.0 && !**s))
                    .count()
            } else {
                0
            };
            let mut name = b.layers[si].name.clone();
            if relu {
                name = format!("{name}+{}", b.layers[x.id - b.n_inputs].name);
            }
            b.replace_scale(
                si,
                format!("{name}+{}", n.name),
                x.shape.clone(),
                |a, sh| {
                    step(
                        thresholds[k0..].to_vec(),
                        strict[k0..].to_vec(),
                        values[k0..].to_vec(),
                        Affine { a, b: sh },
                    )
                },
            );
            Act {
                id: b.n_inputs + si,
                ..x.clone()
            }
        }
        // Codes without an affine map before: thresholds on the exact input.
        None => {
            let op = step(thresholds, strict, values, Affine::identity(x.elements()));
            b.push(n.name.into(), op, vec![x.id], x.shape.clone())
                .with_batch(x.batch)
        }
    };
    Ok(Value::Act(match codes {
        // The codes' worth, for the layers after.
        Some((scale, zp)) => {
            per_tensor_scale(b, format!("{}.dequant", n.name), &y, scale, -zp * scale)
        }
        None => y,
    }))
}

/// A Scale layer `name` after `y`, the same `scale` and `shift` for every
/// element: what integer codes are worth.
fn per_tensor_scale(b: &mut Builder, name: String, y: &Act, scale: f64, shift: f64) -> Act {
    let len = y.elements();
    b.push(
        name,
        Op::Scale {
            scale: vec![scale; len],
            shift: vec![shift; len],
        },
        vec![y.id],
        y.shape.clone(),
    )
    .with_batch(y.batch)
}

/// FINN's `MultiThreshold(x, thresholds)`: `out_scale * (count of t with
/// x >= t) + out_bias`, thresholds `[channels, steps]` (or `[1, steps]` for
/// every channel), channels on the first axis of an event (`data_layout`
/// NCHW, the default) or the last (NHWC). The counts are integer codes; an
/// `out_scale`/`out_bias` other than 1 and 0 follows as a Scale layer, which
/// the next MatMul or Conv takes in.
pub fn map_multithreshold(b: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    let t = n.konst(1)?;
    let [tc, k] = t.shape[..] else {
        return Err(format!(
            "thresholds of shape {:?}; expected [channels, steps]",
            t.shape
        ));
    };
    if x.batch != Some(0) || x.shape.is_empty() {
        return Err("the events must be on the first axis, with channels after them".into());
    }
    let len = x.elements();
    let layout = n.attr_s("data_layout").unwrap_or_else(|| "NCHW".into());
    let (c, inner) = match layout.as_str() {
        "NCHW" | "NCW" | "NC" => (x.shape[0], len / x.shape[0].max(1)),
        "NHWC" | "NWC" => (*x.shape.last().expect("not empty"), 1),
        other => {
            return Err(format!(
                "data_layout '{other}' (NCHW, NHWC, NCW, NWC or NC)"
            ))
        }
    };
    if tc != 1 && tc != c {
        return Err(format!(
            "{tc} rows of thresholds for {c} channels (one row per channel, or one for all)"
        ));
    }
    let thresholds: Vec<f64> = if tc == 1 {
        t.data.clone()
    } else {
        (0..len)
            .flat_map(|i| {
                let row = (i / inner) % c;
                t.data[row * k..(row + 1) * k].iter().copied()
            })
            .collect()
    };
    let op = Op::Step {
        thresholds,
        values: (0..=k).map(|m| m as f64).collect(),
        strict: Vec::new(),
        // The identity: thresholds on the exact input, as for a quantizer.
        affine: Some(Affine::identity(len)),
        out: Some(code_type(0, k as i64)?),
    };
    let y = b
        .push(n.name.into(), op, vec![x.id], x.shape.clone())
        .with_batch(x.batch);
    let (scale, bias) = (n.attr_f("out_scale", 1.0), n.attr_f("out_bias", 0.0));
    if (scale, bias) == (1.0, 0.0) {
        return Ok(Value::Act(y));
    }
    Ok(Value::Act(per_tensor_scale(
        b,
        format!("{}.out", n.name),
        &y,
        scale,
        bias,
    )))
}

/// A QONNX quantizer on a constant (weights, biases): the quantized values,
/// with their fixed-point type when there is one.
pub fn fold_quant(n: &Node) -> Result<Const, String> {
    let a = n.konst(0)?;
    match quant_type(n) {
        Ok(QuantKind::Fixed(t)) => Ok(Const {
            shape: a.shape.clone(),
            data: a
                .data
                .iter()
                .map(|&v| t.to_f64(t.quantize_f64(v)))
                .collect(),
            quant: Some(t),
            dtype: 0,
        }),
        Ok(QuantKind::Bipolar(s)) => Ok(Const {
            // +-s with a power-of-two s: two codes of a signed 2-bit type,
            // so the weights stay exact and a BatchNormalization after them
            // becomes thresholds instead of being folded into them.
            quant: pow2_type(s, 2.0, true, true, Rounding::RndConv).ok(),
            ..Const::computed(
                a.shape.clone(),
                a.data
                    .iter()
                    .map(|&v| if v >= 0.0 { s } else { -s })
                    .collect(),
            )
        }),
        // Per-channel or non-power-of-two weight quantizers: the quantized
        // values are still exact constants, just without one fixed-point type.
        Ok(QuantKind::Codes { .. }) => fold_quant_scaled(n, a),
        Err(_) if n.op() == "Quant" => fold_quant_scaled(n, a),
        Err(e) => Err(e),
    }
}

/// `Quant` on a constant with any (per-channel) scale and zero point.
fn fold_quant_scaled(n: &Node, a: &Const) -> Result<Const, String> {
    let (scale, zp, bits) = (n.konst(1)?, n.konst(2)?, n.konst(3)?);
    let signed = n.attr_i("signed", 1) != 0;
    let narrow = n.attr_i("narrow", 0) != 0;
    let b = *bits
        .data
        .first()
        .ok_or("the bit width is an empty tensor")?;
    check_bits(b)?;
    let (qmin, qmax) = code_range(b, signed, narrow);
    let (qmin, qmax) = (qmin as f64, qmax as f64);
    let s = broadcast_to(scale, &a.shape).ok_or("scale does not broadcast to the weights")?;
    let z = broadcast_to(zp, &a.shape).ok_or("zero point does not broadcast to the weights")?;
    Ok(Const::computed(
        a.shape.clone(),
        a.data
            .iter()
            .enumerate()
            .map(|(i, &v)| ((v / s[i] + z[i]).round_ties_even().clamp(qmin, qmax) - z[i]) * s[i])
            .collect(),
    ))
}

/// `QuantizeLinear` on an activation, only as the first half of a QDQ pair
/// (the `DequantizeLinear` after it passes the value on): the code
/// `round(x / scale) + zero_point`, saturated to int8 or uint8 (the zero
/// point's element type; uint8 when absent), is worth `(code - zero_point) *
/// scale`. A power-of-two
/// scale without zero point is a fixed-point type; any other is integer
/// codes whose scale the next MatMul or Conv takes in, as for QONNX.
pub fn map_quantize_linear(b: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    let (s, zp) = (n.konst(1)?, n.opt_const(2));
    if s.data.len() != 1 || zp.is_some_and(|z| z.data.len() != 1) {
        return Err("per-axis QuantizeLinear on activations is not supported".into());
    }
    let scale = s.data[0];
    let zp_v = zp.map(|c| c.data[0]).unwrap_or(0.0);
    let signed = zp.is_some_and(|c| c.dtype == 3);
    let (lo, hi) = if signed { (-128, 127) } else { (0, 255) };
    let pow2 = (zp_v == 0.0)
        .then(|| pow2_type(scale, 8.0, signed, false, Rounding::RndConv).ok())
        .flatten();
    let kind = match pow2 {
        Some(t) => QuantKind::Fixed(t),
        None if scale.is_finite() && scale > 0.0 && zp_v.fract() == 0.0 => QuantKind::Codes {
            scale,
            zp: zp_v,
            lo,
            hi,
            rounding: Rounding::RndConv,
        },
        None => return Err(format!("scale {scale} and zero point {zp_v}: the scale must be positive and the zero point whole")),
    };
    map_quantizer(b, n, x, kind)
}

/// `QuantizeLinear` / `DequantizeLinear` on a constant, per tensor or per axis.
pub fn fold_linear(n: &Node) -> Result<Const, String> {
    let (a, s) = (n.konst(0)?, n.konst(1)?);
    let zp = n.konst(2).ok();
    let axis = n.attr_i("axis", 1);
    let ax = if axis < 0 {
        axis + a.shape.len() as i64
    } else {
        axis
    } as usize;
    // Element `i`'s entry of a per-tensor (one value) or per-axis parameter.
    let per_axis = |p: &Const, i: usize| -> f64 {
        if p.data.len() == 1 {
            p.data[0]
        } else {
            let inner: usize = a.shape[ax + 1..].iter().product();
            p.data[(i / inner) % a.shape[ax]]
        }
    };
    let scale_of = |i: usize| per_axis(s, i);
    let zp_of = |i: usize| zp.map_or(0.0, |z| per_axis(z, i));
    let quantize = n.op() == "QuantizeLinear";
    let data = a
        .data
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if quantize {
                ((v / scale_of(i)).round_ties_even() + zp_of(i)).clamp(-128.0, 255.0)
            } else {
                (v - zp_of(i)) * scale_of(i)
            }
        })
        .collect();
    Ok(Const::computed(a.shape.clone(), data))
}
