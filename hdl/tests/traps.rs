//! Requantization in hardware for every rounding and overflow mode, the
//! proptest over random networks, and one guard per known rust-hdl 0.46 trap
//! (the emitter must never depend on them).

mod common;
use common::*;

use hdl::{build_kernel, Options, Strategy};
use proptest::prelude::*;
use quantize::fixed::{FixedType, Overflow, Rounding};
use quantize::qmodel::{Output, Port, QLayer, QModel, QOp};
use quantize::random::{random_model, RandomSpec};
use rand::rngs::SmallRng;
use rand::SeedableRng;

const ROUNDINGS: [Rounding; 7] = [
    Rounding::Trn,
    Rounding::TrnZero,
    Rounding::Rnd,
    Rounding::RndZero,
    Rounding::RndInf,
    Rounding::RndMinInf,
    Rounding::RndConv,
];
const OVERFLOWS: [Overflow; 4] = [
    Overflow::Wrap,
    Overflow::Sat,
    Overflow::SatZero,
    Overflow::SatSym,
];

fn requant_model(input: FixedType, out: FixedType) -> QModel {
    QModel {
        name: "rq".into(),
        inputs: vec![Port {
            name: "x".into(),
            shape: vec![1],
            ty: input,
        }],
        layers: vec![QLayer {
            name: "rq".into(),
            inputs: vec![0],
            shape: vec![1],
            ty: out,
            reuse: 1,
            op: QOp::Requant,
        }],
        outputs: vec![Output {
            name: "y".into(),
            tensor: 1,
        }],
    }
}

/// Every input code, every mode, narrowing/widening/shifting types: the
/// hardware requantizer equals `FixedType::quantize_raw`.
#[test]
fn requantize_all_modes_exhaustive() {
    let input = FixedType::signed(9, 4).unwrap();
    let outs = [
        FixedType::signed(4, 2).unwrap(),
        FixedType::signed(6, 5).unwrap(),
        FixedType::unsigned(5, 3).unwrap(),
        FixedType::signed(1, 1).unwrap(),
        FixedType::signed(12, 4).unwrap(),
        FixedType::signed(3, -1).unwrap(),
    ];
    let all: Vec<Vec<i64>> = (input.min_raw()..=input.max_raw())
        .map(|v| vec![v])
        .collect();
    for o in outs {
        for r in ROUNDINGS {
            for ov in OVERFLOWS {
                let ty = o.with_rounding(r).with_overflow(ov);
                let m = requant_model(input, ty);
                let k = build_kernel(&m, &Options::default()).unwrap();
                let got = k.simulate(&all);
                for (e, g) in all.iter().zip(&got) {
                    assert_eq!(
                        g[0],
                        ty.quantize_raw(e[0] as i128, input.frac_bits()),
                        "{ty} <- {}",
                        e[0]
                    );
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Random networks (types, modes, tables, conv) in the netlist simulator = golden.
    #[test]
    fn prop_random_networks(seed in any::<u64>(), conv in any::<bool>(), dsp in any::<bool>(), levels in 1u32..6) {
        let spec = RandomSpec { conv, ..RandomSpec::default() };
        let model = random_model(&mut SmallRng::seed_from_u64(seed), &spec);
        let st = if dsp { Strategy::Dsp } else { Strategy::ShiftAdd };
        let k = build_kernel(&model, &Options { strategy: st, levels: Some(levels), ..Options::default() }).unwrap();
        let ev = events(&model, 50, seed);
        let got = k.simulate(&ev);
        for (i, e) in ev.iter().enumerate() {
            prop_assert_eq!(&got[i], &quantize::golden::evaluate(&model, e).unwrap());
        }
    }
}

/// Trap 1 (the printer drops parentheses): every operator expression the
/// emitter prints is fully parenthesized, so `a & b == c` can never be read
/// as `a & (b == c)`; and a design mixing `&`, `|`, `==` and `<` in one path
/// co-simulates bit-exactly (the Argmax/Softmax/SAT-rounding logic below).
#[test]
fn trap_parentheses() {
    let spec = RandomSpec::default();
    for seed in 0..40u64 {
        let model = random_model(&mut SmallRng::seed_from_u64(seed), &spec);
        let k = build_kernel(&model, &Options::default()).unwrap();
        let v = k.verilog();
        for line in v.lines().filter(|l| l.trim_start().starts_with("wire")) {
            let rhs = line.split_once(" = ").map(|x| x.1).unwrap_or("");
            let rhs = rhs.split("//").next().unwrap().trim().trim_end_matches(';');
            let has_op = [" + ", " - ", " * ", " & ", " | ", " < ", " == ", " ? "]
                .iter()
                .any(|o| rhs.contains(o));
            if has_op {
                assert!(
                    rhs.starts_with('(') && rhs.ends_with(')'),
                    "unparenthesized: {line}"
                );
                // One operator per expression: no precedence question can arise.
                let inner = &rhs[1..rhs.len() - 1];
                assert!(!inner.contains('('), "nested expression: {line}");
            }
        }
    }
    if !have("verilator") {
        return;
    }
    // Rounding logic (and/or of dropped bits) + argmax (== on indices).
    let mut model = random_model(
        &mut SmallRng::seed_from_u64(5),
        &RandomSpec {
            tables: false,
            ..RandomSpec::default()
        },
    );
    let n = model.output_len();
    model.layers.push(QLayer {
        name: "argmax".into(),
        inputs: vec![model.layers.len()],
        shape: vec![n],
        ty: FixedType::unsigned(1, 1).unwrap(),
        reuse: 1,
        op: QOp::Argmax { n },
    });
    let (_, r, dir) = cosim(
        &model,
        &Options {
            levels: Some(2),
            ..Options::default()
        },
        20_000,
        "verilator",
        "trap-paren",
    );
    assert_bit_exact(&model, &dir, &r, 20_000);
}

/// Trap 2 (`*` only for 16x16 bits in rust-hdl): the DSP strategy multiplies
/// 24-bit inputs by 20-bit constants into 44-bit products; Verilator agrees.
#[test]
fn trap_wide_multiplies() {
    let (m, _) = wide_multiply();
    if !have("verilator") {
        return;
    }
    let (_, r, dir) = cosim(
        &m,
        &wide_multiply_options(),
        20_000,
        "verilator",
        "trap-mul",
    );
    assert_bit_exact(&m, &dir, &r, 20_000);
}

/// Trap 3 (`signed_bit_cast` of the most negative value overflows the
/// stack): the most negative codes of wide types (up to 40 bits) go through
/// multiplies, ReLU and requantization without a panic, bit-exact.
#[test]
fn trap_most_negative_value() {
    let (m, ev) = most_negative();
    for st in [Strategy::Dsp, Strategy::ShiftAdd] {
        let k = build_kernel(
            &m,
            &Options {
                strategy: st,
                ..Options::default()
            },
        )
        .unwrap();
        let got = k.simulate(&ev);
        for (e, g) in ev.iter().zip(&got) {
            assert_eq!(g, &quantize::golden::evaluate(&m, e).unwrap());
        }
    }
    if !have("iverilog") {
        return;
    }
    let (_, r, dir) = cosim(&m, &Options::default(), 500, "iverilog", "trap-neg");
    assert_bit_exact(&m, &dir, &r, 500);
}
