//! Quantizers after affine maps become integer thresholds on the accumulator
//! before them (FINN's streamlining): exact against a rational reference on
//! random chains, and against qonnx's own executor on the public QAT models.

mod common;

use common::{graph_model, node, values, with_int};
use num_bigint::BigInt;
use num_rational::BigRational;
use proptest::prelude::*;
use quantize::config::Config;
use quantize::fixed::FixedType;
use quantize::golden;
use quantize::onnx::import_bytes;
use quantize::qmodel::QOp;
use quantize::quantizer::quantize_graph;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// `v` (finite) as `m * 2^e`.
fn dyadic(v: f64) -> (BigInt, i32) {
    if v == 0.0 {
        return (BigInt::from(0), 0);
    }
    let (mut m, mut e) = (v.abs(), 0i32);
    while m.fract() != 0.0 {
        m *= 2.0;
        e -= 1;
    }
    let m = BigInt::from(m as u64);
    (if v < 0.0 { -m } else { m }, e)
}

/// `round(u)` for `u = n * 2^-k` exactly, as the QONNX rounding mode says.
fn round_mode(n: &BigInt, k: u32, mode: &str) -> BigInt {
    let floor = n >> k as usize;
    let rem2 = (n - (&floor << k as usize)) * 2; // in [0, 2^(k+1))
    let one = BigInt::from(1) << k as usize;
    let (half, above) = (rem2 == one, rem2 > one);
    let exact = rem2 == BigInt::from(0);
    let up = &floor + 1;
    let positive = floor >= BigInt::from(0);
    match mode {
        "FLOOR" => floor,
        "ROUND" => {
            if above || (half && (&floor % 2) != BigInt::from(0)) {
                up
            } else {
                floor
            }
        }
        // Half away from zero.
        "HALF_UP" => {
            if above || (half && positive) {
                up
            } else {
                floor
            }
        }
        // Toward zero.
        "ROUND_TO_ZERO" => {
            if !exact && !positive {
                up
            } else {
                floor
            }
        }
        _ => unreachable!(),
    }
}

/// The codes of a `bits`-bit QONNX quantizer.
fn code_range(bits: u32, signed: bool, narrow: bool) -> (i64, i64) {
    match (signed, narrow) {
        (true, false) => (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1),
        (true, true) => (-(1i64 << (bits - 1)) + 1, (1i64 << (bits - 1)) - 1),
        (false, false) => (0, (1i64 << bits) - 1),
        (false, true) => (0, (1i64 << bits) - 2),
    }
}

/// The graph of `nodes` and `inits` from input `x` of `input` dims to
/// output `out`, imported and quantized at the default precision with an
/// input type that holds every input code (the default fixed<16,6>
/// saturates at 32).
fn import_wide(
    nodes: Vec<tract_onnx::pb::NodeProto>,
    inits: Vec<tract_onnx::pb::TensorProto>,
    input: &[i64],
    out: (&str, &[i64]),
) -> (quantize::ir::Graph, quantize::qmodel::QModel) {
    quantize_wide(&graph_model(nodes, inits, &[("x", input)], &[out]))
}

/// [`import_wide`] of a model's bytes.
fn quantize_wide(bytes: &[u8]) -> (quantize::ir::Graph, quantize::qmodel::QModel) {
    let g = import_bytes(bytes, "chain").unwrap();
    let mut cfg = Config::default();
    cfg.input
        .insert("x".into(), FixedType::signed(24, 12).unwrap());
    let q = quantize_graph(&g, &cfg).unwrap();
    (g, q)
}

/// The tensors of `q`'s Step layers, in order.
fn step_tensors(q: &quantize::qmodel::QModel) -> Vec<usize> {
    (0..q.layers.len())
        .filter(|&i| matches!(q.layers[i].op, QOp::Step { .. }))
        .map(|i| q.layer_tensor(i))
        .collect()
}

/// A random chain `Quant(x) -> MatMul(Quant(W)) -> Mul(c) -> Add(d) ->
/// Quant`, with the golden model's output codes checked against exact
/// rational arithmetic on the f32 constants as stored.
fn check_chain(seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let (n_in, n_out) = (rng.gen_range(1..=6usize), rng.gen_range(1..=5usize));
    let (fi, bi) = (rng.gen_range(0..=4i32), rng.gen_range(2..=6u32));
    let (fw, bw) = (rng.gen_range(0..=3i32), rng.gen_range(2..=4u32));
    let (fo, bo) = (rng.gen_range(-2..=4i32), rng.gen_range(1..=8u32));
    let in_signed = rng.gen_bool(0.5);
    let out_signed = bo > 1 && rng.gen_bool(0.6);
    let narrow = out_signed && rng.gen_bool(0.3);
    let mode = ["ROUND", "FLOOR", "HALF_UP", "ROUND_TO_ZERO"][rng.gen_range(0..4)];
    let wq: Vec<i64> = (0..n_in * n_out)
        .map(|_| rng.gen_range(-(1 << (bw - 1)) + 1..(1 << (bw - 1))))
        .collect();
    // Coefficients: most are arbitrary f32s (no power of two), some are
    // zero or negative, some dyadic so that exact ties happen.
    let coef = |rng: &mut SmallRng| -> f32 {
        match rng.gen_range(0..6) {
            0 => 0.0,
            1 => (rng.gen_range(-8..=8) as f32) * 0.125,
            _ => rng.gen_range(-3.0f32..3.0),
        }
    };
    let c: Vec<f32> = (0..n_out).map(|_| coef(&mut rng)).collect();
    let d: Vec<f32> = (0..n_out).map(|_| coef(&mut rng) * 4.0).collect();
    let scalar = |name: &str, v: f32| values(name, &[], &[v]);
    let quant =
        |name, x, s, z, b, signed, narrow| common::quant(name, [x, s, z, b], signed, narrow, mode);
    let nodes = vec![
        quant("qx", "x", "sx", "zero", "bx", in_signed, false),
        quant("qw", "w", "sw", "zero", "bw", true, false),
        node("MatMul", "mm", &["qx_y", "qw_y"], &["acc"]),
        node("Mul", "mul", &["acc", "c"], &["scaled"]),
        node("Add", "add", &["scaled", "d"], &["shifted"]),
        quant("qy", "shifted", "sy", "zero", "by", out_signed, narrow),
    ];
    let w: Vec<f32> = wq.iter().map(|&q| q as f32 * (-fw as f32).exp2()).collect();
    let inits = vec![
        scalar("sx", (-fi as f32).exp2()),
        scalar("sw", (-fw as f32).exp2()),
        scalar("sy", (-fo as f32).exp2()),
        scalar("zero", 0.0),
        scalar("bx", bi as f32),
        scalar("bw", bw as f32),
        scalar("by", bo as f32),
        values("w", &[n_in as i64, n_out as i64], &w),
        values("c", &[n_out as i64], &c),
        values("d", &[n_out as i64], &d),
    ];
    let (_, q) = import_wide(
        nodes,
        inits,
        &[1, n_in as i64],
        ("qy_y", &[1, n_out as i64]),
    );
    let last = q.layers.last().unwrap();
    // Thresholds, or (when every Mul is by 1, so that the Add folds into
    // the MatMul's bias) a plain requantization of the exact accumulator.
    assert!(
        matches!(last.op, QOp::Step { .. } | QOp::Requant),
        "the quantizer after Mul and Add: {:?}",
        last.op.kind()
    );
    let (qmin, qmax) = code_range(bo, out_signed, narrow);
    let (xlo, xhi) = if in_signed {
        (-(1i64 << (bi - 1)), (1i64 << (bi - 1)) - 1)
    } else {
        (0, (1i64 << bi) - 1)
    };
    let out_ty = last.ty;
    for _ in 0..300 {
        let codes: Vec<i64> = (0..n_in).map(|_| rng.gen_range(xlo..=xhi)).collect();
        let x: Vec<f32> = codes
            .iter()
            .map(|&v| v as f32 * (-fi as f32).exp2())
            .collect();
        let raw = golden::quantize_input(&q, &x);
        let got = golden::evaluate(&q, &raw).unwrap();
        for o in 0..n_out {
            let acc: i64 = (0..n_in).map(|i| codes[i] * wq[i * n_out + o]).sum();
            // u = (c * acc * 2^-(fi+fw) + d) * 2^fo, as n * 2^-k.
            let (cm, ce) = dyadic(c[o] as f64);
            let (dm, de) = dyadic(d[o] as f64);
            let terms = [(cm * acc, ce - fi - fw + fo), (dm, de + fo)];
            let low = terms.iter().map(|t| t.1).min().unwrap().min(0);
            let n: BigInt = terms.iter().map(|(m, e)| m << (e - low) as usize).sum();
            let code = round_mode(&n, (-low) as u32, mode);
            let want = code.clamp(BigInt::from(qmin), BigInt::from(qmax));
            let want: i64 = want.try_into().unwrap();
            // The output type's raw code of `want * 2^-fo`.
            let want_raw = out_ty.quantize_f64(want as f64 * (-fo as f64).exp2());
            assert_eq!(
                got[o], want_raw,
                "seed {seed} output {o}: acc {acc}, c {} d {}, mode {mode}, codes {codes:?}",
                c[o], d[o]
            );
        }
    }
}

/// `v` (finite) as an exact rational.
fn rational(v: f64) -> BigRational {
    BigRational::from_float(v).expect("finite")
}

/// `round(u)` as the QONNX rounding mode says, exactly.
fn round_rational(u: &BigRational, mode: &str) -> BigInt {
    let floor = u.floor();
    let frac = u - &floor;
    let half = BigRational::new(BigInt::from(1), BigInt::from(2));
    let f = floor.to_integer();
    let up = &f + 1;
    let positive = u >= &BigRational::from_integer(BigInt::from(0));
    let exact = frac == BigRational::from_integer(BigInt::from(0));
    match mode {
        "FLOOR" => f,
        "ROUND" => {
            if frac > half || (frac == half && (&f % 2) != BigInt::from(0)) {
                up
            } else {
                f
            }
        }
        "HALF_UP" => {
            if frac > half || (frac == half && positive) {
                up
            } else {
                f
            }
        }
        "ROUND_TO_ZERO" => {
            if !exact && !positive {
                up
            } else {
                f
            }
        }
        _ => unreachable!(),
    }
}

/// A Brevitas-style chain with float scales and zero points:
/// `Quant(x; s_x, z_x) -> MatMul(Quant(W; s_w per output)) -> Add(bias) ->
/// Mul(c) -> Add(d) -> [Relu] -> Quant(s_y, z_y)`. The last quantizer's integer codes
/// are checked against exact rational arithmetic on the constants.
fn check_float_chain(seed: u64) {
    let common::QatChain {
        bytes,
        n_in,
        n_out,
        mode,
        sx,
        bx,
        x_signed,
        zx,
        sw,
        wq,
        bias,
        c,
        d,
        sy,
        by,
        y_signed,
        y_narrow,
        zy,
        relu,
    } = common::qat_chain(seed);
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5EED);
    let (_, q) = quantize_wide(&bytes);
    let steps = step_tensors(&q);
    assert_eq!(
        steps.len(),
        2,
        "two quantizers as thresholds: {:?}",
        q.layers
    );
    assert!(
        q.layers
            .iter()
            .all(|l| !matches!(l.op.kind(), "Requant" | "Relu")),
        "no float scale rounded, the Relu taken in: {:?}",
        q.layers
    );
    let codes_l = steps[1];
    let (xlo, xhi) = code_range(bx, x_signed, false);
    let (ylo, yhi) = code_range(by, y_signed, y_narrow);
    let r = |v: f32| rational(v as f64);
    for _ in 0..300 {
        // Inputs on a 2^-8 grid around the quantizer's range.
        let x: Vec<f32> = (0..n_in)
            .map(|_| {
                let span = (xhi - xlo + 2) as f32 * sx;
                let v = (xlo - zx - 1) as f32 * sx + rng.gen_range(0.0..span);
                (v * 256.0).round() / 256.0
            })
            .collect();
        let all = golden::evaluate_all(&q, &golden::quantize_input(&q, &x)).unwrap();
        let xc: Vec<BigInt> = x
            .iter()
            .map(|&v| {
                let u = r(v) / r(sx) + BigRational::from_integer(zx.into());
                round_rational(&u, mode).clamp(xlo.into(), xhi.into())
            })
            .collect();
        for o in 0..n_out {
            let mut acc = BigRational::from_integer(0.into());
            for i in 0..n_in {
                let xv = BigRational::from_integer(&xc[i] - zx) * r(sx);
                let wv = BigRational::from_integer(wq[i * n_out + o].into()) * r(sw[o]);
                acc += xv * wv;
            }
            let mut y = (acc + r(bias[o])) * r(c[o]) + r(d[o]);
            if relu && y < BigRational::from_integer(0.into()) {
                y = BigRational::from_integer(0.into());
            }
            let u = y / r(sy) + BigRational::from_integer(zy.into());
            let want = round_rational(&u, mode).clamp(ylo.into(), yhi.into());
            let want: i64 = want.try_into().unwrap();
            assert_eq!(
                all[codes_l][o], want,
                "seed {seed} output {o}: mode {mode}, x {x:?}, input codes {xc:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_threshold_chains_are_exact(seed in any::<u64>()) {
        check_chain(seed);
    }

    #[test]
    fn float_scale_chains_are_exact(seed in any::<u64>()) {
        check_float_chain(seed);
    }
}

/// A float-scaled quantizer before a Conv with per-channel float weight
/// scales: the Conv runs on the integer codes and the quantizer after it is
/// thresholds; the codes equal the float graph's (f64) on every input.
#[test]
fn a_conv_takes_a_float_scaled_input_in() {
    let (cin, cout, len) = (2usize, 3usize, 7usize);
    let mut rng = SmallRng::seed_from_u64(5);
    let sw: Vec<f32> = (0..cout).map(|_| rng.gen_range(0.01f32..0.3)).collect();
    let wq: Vec<i64> = (0..cout * cin * 3).map(|_| rng.gen_range(-7..=7)).collect();
    let w: Vec<f32> = wq
        .iter()
        .enumerate()
        .map(|(k, &q)| q as f32 * sw[k / (cin * 3)])
        .collect();
    let scalar = |name: &str, v: f32| values(name, &[], &[v]);
    let quant = |name: &str, x: &str, s: &str, b: &str, signed: bool| {
        let n = node("Quant", name, &[x, s, "zero", b], &[&format!("{name}_y")]);
        let n = with_int(n, "signed", signed as i64);
        with_int(n, "narrow", 0)
    };
    let conv = common::with_ints(
        node("Conv", "conv", &["qx_y", "qw_y", "cb"], &["acc"]),
        "pads",
        &[1, 1],
    );
    let nodes = vec![
        quant("qx", "x", "sx", "b4", false),
        quant("qw", "w", "sw", "b4", true),
        conv,
        quant("qy", "acc", "sy", "b4", true),
    ];
    let inits = vec![
        scalar("sx", 0.173),
        scalar("sy", 0.311),
        scalar("zero", 0.0),
        scalar("b4", 4.0),
        values("sw", &[cout as i64, 1, 1], &sw),
        values("w", &[cout as i64, cin as i64, 3], &w),
        values("cb", &[cout as i64], &[0.25, -0.4, 0.1]),
    ];
    let (g, q) = import_wide(
        nodes,
        inits,
        &[1, cin as i64, len as i64],
        ("qy_y", &[1, cout as i64, len as i64]),
    );
    let kinds: Vec<&str> = g.layers.iter().map(|l| l.op.kind()).collect();
    assert_eq!(
        kinds,
        ["Thresholds", "Conv", "Thresholds", "Scale"],
        "codes, the Conv on them, thresholds, the output's worth"
    );
    let codes = q.layer_tensor(2);
    for _ in 0..2000 {
        let x: Vec<f32> = (0..cin * len)
            .map(|_| (rng.gen_range(-0.5f32..3.0) * 256.0).round() / 256.0)
            .collect();
        let fixed = golden::evaluate_all(&q, &golden::quantize_input(&q, &x)).unwrap();
        let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let float = g.evaluate_all(&xf);
        let want: Vec<i64> = float[codes].iter().map(|&v| v as i64).collect();
        assert_eq!(fixed[codes], want, "x {x:?}");
    }
}

/// An int8/uint8 tensor initializer (ONNX element type 3 or 2).
fn ints(name: &str, dims: &[i64], v: &[i64], signed: bool) -> tract_onnx::pb::TensorProto {
    tract_onnx::pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: if signed { 3 } else { 2 },
        int32_data: v.iter().map(|&x| x as i32).collect(),
        ..Default::default()
    }
}

/// ONNX Runtime's static quantization: `QuantizeLinear -> DequantizeLinear`
/// pairs with float scales and uint8 zero points on activations, int8
/// weights with a per-channel scale. The output codes equal exact rational
/// arithmetic on the constants.
#[test]
fn qdq_chains_with_float_scales_are_exact() {
    for seed in 0..40u64 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let (n_in, n_out) = (rng.gen_range(1..=6usize), rng.gen_range(1..=4usize));
        let (sx, zx) = (rng.gen_range(0.005f32..0.05), rng.gen_range(0..=255i64));
        let (sy, zy) = (rng.gen_range(0.005f32..0.05), rng.gen_range(0..=255i64));
        let sw: Vec<f32> = (0..n_out).map(|_| rng.gen_range(0.001f32..0.02)).collect();
        let wq: Vec<i64> = (0..n_in * n_out)
            .map(|_| rng.gen_range(-127..=127))
            .collect();
        let bias: Vec<f32> = (0..n_out).map(|_| rng.gen_range(-0.5f32..0.5)).collect();
        let dq_w = common::with_int(
            node("DequantizeLinear", "dqw", &["wq", "sw", "zw"], &["w"]),
            "axis",
            1,
        );
        let nodes = vec![
            node("QuantizeLinear", "qx", &["x", "sx", "zx"], &["xq"]),
            node("DequantizeLinear", "dqx", &["xq", "sx", "zx"], &["xd"]),
            dq_w,
            node("MatMul", "mm", &["xd", "w"], &["acc"]),
            node("Add", "bias", &["acc", "b"], &["y"]),
            node("QuantizeLinear", "qy", &["y", "sy", "zy"], &["yq"]),
            node("DequantizeLinear", "dqy", &["yq", "sy", "zy"], &["out"]),
        ];
        let inits = vec![
            values("sx", &[], &[sx]),
            ints("zx", &[], &[zx], false),
            values("sy", &[], &[sy]),
            ints("zy", &[], &[zy], false),
            values("sw", &[n_out as i64], &sw),
            ints("zw", &[n_out as i64], &vec![0; n_out], true),
            ints("wq", &[n_in as i64, n_out as i64], &wq, true),
            values("b", &[n_out as i64], &bias),
        ];
        let (_, q) = import_wide(nodes, inits, &[1, n_in as i64], ("out", &[1, n_out as i64]));
        let steps = step_tensors(&q);
        assert_eq!(steps.len(), 2, "{:?}", q.layers);
        let codes = steps[1];
        let r = |v: f32| rational(v as f64);
        let int = |v: i64| BigRational::from_integer(v.into());
        for _ in 0..200 {
            let x: Vec<f32> = (0..n_in)
                .map(|_| (rng.gen_range(-4.0f32..4.0) * 1024.0).round() / 1024.0)
                .collect();
            let all = golden::evaluate_all(&q, &golden::quantize_input(&q, &x)).unwrap();
            let xc: Vec<i64> = x
                .iter()
                .map(|&v| {
                    let c = round_rational(&(r(v) / r(sx)), "ROUND") + zx;
                    i64::try_from(c).unwrap().clamp(0, 255)
                })
                .collect();
            for o in 0..n_out {
                let mut acc = r(bias[o]);
                for i in 0..n_in {
                    acc += int(xc[i] - zx) * r(sx) * int(wq[i * n_out + o]) * r(sw[o]);
                }
                let c = round_rational(&(acc / r(sy)), "ROUND") + zy;
                let want = i64::try_from(c).unwrap().clamp(0, 255);
                assert_eq!(all[codes][o], want, "seed {seed} output {o}: x {x:?}");
            }
        }
    }
}

/// FINN's MultiThreshold after an integer MatMul, per channel, with the
/// thresholds unsorted, on the accumulator's grid (ties) and off it, and an
/// `out_bias`: the counts are the golden model's codes.
#[test]
fn finn_multithreshold_counts_exactly() {
    let mut rng = SmallRng::seed_from_u64(9);
    let (n_in, n_out, k) = (5usize, 4usize, 6usize);
    let wq: Vec<i64> = (0..n_in * n_out).map(|_| rng.gen_range(-3..=3)).collect();
    let w: Vec<f32> = wq.iter().map(|&q| q as f32).collect();
    // Accumulators are multiples of 1/8 within about +-60.
    let t: Vec<f32> = (0..n_out * k)
        .map(|_| match rng.gen_range(0..3) {
            0 => rng.gen_range(-160..160) as f32 / 8.0,
            _ => rng.gen_range(-20.0f32..20.0),
        })
        .collect();
    let mt = node("MultiThreshold", "mt", &["acc", "t"], &["y"]);
    let mt = common::with_float(mt, "out_bias", -3.0);
    let nodes = vec![
        common::with_int(
            node("Quant", "qx", &["x", "s", "zero", "bits"], &["xq"]),
            "signed",
            1,
        ),
        node("MatMul", "mm", &["xq", "w"], &["acc"]),
        mt,
    ];
    let inits = vec![
        values("s", &[], &[0.125]),
        values("zero", &[], &[0.0]),
        values("bits", &[], &[6.0]),
        values("w", &[n_in as i64, n_out as i64], &w),
        values("t", &[n_out as i64, k as i64], &t),
    ];
    let bytes = graph_model(
        nodes,
        inits,
        &[("x", &[1, n_in as i64])],
        &[("y", &[1, n_out as i64])],
    );
    let g = import_bytes(&bytes, "mt").unwrap();
    let q = quantize_graph(&g, &Config::default()).unwrap();
    let codes = q.layer_tensor(
        (0..q.layers.len())
            .find(|&i| matches!(q.layers[i].op, QOp::Step { .. }))
            .unwrap(),
    );
    for _ in 0..3000 {
        let xc: Vec<i64> = (0..n_in).map(|_| rng.gen_range(-32..32)).collect();
        let x: Vec<f32> = xc.iter().map(|&c| c as f32 / 8.0).collect();
        let all = golden::evaluate_all(&q, &golden::quantize_input(&q, &x)).unwrap();
        let out = golden::evaluate(&q, &golden::quantize_input(&q, &x)).unwrap();
        for o in 0..n_out {
            let acc: f64 = (0..n_in)
                .map(|i| xc[i] as f64 / 8.0 * wq[i * n_out + o] as f64)
                .sum();
            let count = t[o * k..(o + 1) * k]
                .iter()
                .filter(|&&th| acc >= th as f64)
                .count() as i64;
            assert_eq!(
                all[codes][o],
                count,
                "acc {acc} thresholds {:?}",
                &t[o * k..(o + 1) * k]
            );
            let ty = q.ty(q.outputs[0].tensor);
            assert_eq!(ty.to_f64(out[o]), count as f64 - 3.0);
        }
    }
}
