//! Co-simulation of the exported Verilog (Verilator, Icarus) against the
//! golden model, bit for bit, and the mutation check.

mod common;
use common::*;

use hdl::{Options, Strategy};
use quantize::random::{random_model, RandomSpec};
use rand::rngs::SmallRng;
use rand::SeedableRng;

const EVENTS: usize = 100_000;

fn opts(strategy: Strategy, levels: u32) -> Options {
    Options {
        strategy,
        levels: Some(levels),
        ..Options::default()
    }
}

/// Random small networks (all rounding/overflow modes, tables, softmax,
/// argmax; one with a Conv1D front) under Verilator, 100,000 events each.
#[test]
fn verilator_random_networks() {
    if !have("verilator") {
        return;
    }
    let cases = [
        (11u64, RandomSpec::default(), Strategy::ShiftAdd, 2),
        (12, RandomSpec::default(), Strategy::Dsp, 3),
        (
            13,
            RandomSpec {
                max_bits: 24,
                ..RandomSpec::default()
            },
            Strategy::ShiftAdd,
            4,
        ),
        (
            14,
            RandomSpec {
                conv: true,
                ..RandomSpec::default()
            },
            Strategy::Dsp,
            1,
        ),
    ];
    for (seed, spec, st, lv) in cases {
        let model = random_model(&mut SmallRng::seed_from_u64(seed), &spec);
        let (_, r, dir) = cosim(
            &model,
            &opts(st, lv),
            EVENTS,
            "verilator",
            &format!("rand{seed}"),
        );
        assert_bit_exact(&model, &dir, &r, EVENTS);
    }
}

/// The exported self-checking testbench under Icarus Verilog, small designs.
#[test]
fn iverilog_random_networks() {
    if !have("iverilog") {
        return;
    }
    for seed in 20..24u64 {
        let model = random_model(&mut SmallRng::seed_from_u64(seed), &RandomSpec::default());
        let st = if seed % 2 == 0 {
            Strategy::ShiftAdd
        } else {
            Strategy::Dsp
        };
        let (_, r, dir) = cosim(&model, &opts(st, 2), 2000, "iverilog", &format!("iv{seed}"));
        assert_bit_exact(&model, &dir, &r, 2000);
    }
}

/// Random MLPs whose Dense layers share multipliers (reuse 2 to 5, one
/// layer folded and the next not, or all folded): the exported testbench
/// offers an event every cycle and must follow `in_ready`.
#[test]
fn folded_random_networks() {
    let verilator = have("verilator");
    let iverilog = have("iverilog");
    for seed in 30..34u64 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let spec = RandomSpec {
            skips: false,
            ..RandomSpec::default()
        };
        let mut model = random_model(&mut rng, &spec);
        for (i, l) in model.layers.iter_mut().enumerate() {
            l.reuse = if (i as u64 + seed).is_multiple_of(3) {
                1
            } else {
                2 + (seed % 4) as u32
            };
        }
        let st = if seed % 2 == 0 {
            Strategy::ShiftAdd
        } else {
            Strategy::Dsp
        };
        if verilator {
            let (k, r, dir) = cosim(
                &model,
                &opts(st, 2),
                EVENTS,
                "verilator",
                &format!("fold{seed}"),
            );
            assert_bit_exact(&model, &dir, &r, EVENTS);
            let dense_reuse = model
                .layers
                .iter()
                .filter(|l| matches!(l.op, quantize::qmodel::QOp::Dense { .. }))
                .map(|l| l.reuse)
                .max();
            assert_eq!(Some(k.ii), dense_reuse.filter(|&r| r > 1).or(Some(1)));
        }
        if iverilog {
            let (_, r, dir) = cosim(
                &model,
                &opts(st, 2),
                2000,
                "iverilog",
                &format!("ivfold{seed}"),
            );
            assert_bit_exact(&model, &dir, &r, 2000);
        }
    }
}

fn dense_model() -> quantize::qmodel::QModel {
    use quantize::fixed::FixedType;
    use quantize::qmodel::{Output, Port, QLayer, QModel, QOp};
    let x = FixedType::signed(10, 4).unwrap();
    let w = FixedType::signed(12, 2).unwrap();
    let weights: Vec<i64> = (0..12)
        .map(|i| ((i * 977 + 301) % 4000) as i64 - 2000)
        .collect();
    let acc = quantize::accum::exact_accumulator(
        x,
        w,
        w,
        (0..3).map(|o| (5i64, &weights[o * 4..o * 4 + 4])),
    )
    .unwrap();
    QModel {
        name: "mut".into(),
        inputs: vec![Port {
            name: "x".into(),
            shape: vec![4],
            ty: x,
        }],
        layers: vec![QLayer {
            name: "d".into(),
            inputs: vec![0],
            shape: vec![3],
            ty: acc,
            reuse: 1,
            op: QOp::Dense {
                n_in: 4,
                n_out: 3,
                weights,
                w_ty: w,
                bias: vec![5; 3],
                b_ty: w,
                acc_ty: acc,
            },
        }],
        outputs: vec![Output {
            name: "y".into(),
            tensor: 1,
        }],
    }
}

/// Flip one bit of one weight in the exported Verilog: co-simulation must
/// report mismatches (and the unmutated design none).
#[test]
fn mutation_is_detected() {
    if !have("verilator") {
        return;
    }
    let model = dense_model();
    for st in [Strategy::Dsp, Strategy::ShiftAdd] {
        let (k, r, dir) = cosim(
            &model,
            &opts(st, 2),
            2000,
            "verilator",
            &format!("mut{st:?}"),
        );
        assert!(r.pass && r.mismatches == 0, "{}", r.log);
        let vfile = dir.join(format!("{}.v", k.name));
        let text = std::fs::read_to_string(&vfile).unwrap();
        let mutated = match st {
            // A weight literal of a multiplier: flip its lowest bit.
            Strategy::Dsp => {
                let line = text
                    .lines()
                    .find(|l| l.contains(" * ") && l.contains("w["))
                    .expect("a multiplier line");
                let pos = line.find("'sh").unwrap() + 3;
                let end = line[pos..].find(')').unwrap() + pos;
                let lit = &line[pos..end];
                let v = u128::from_str_radix(lit, 16).unwrap() ^ 1;
                let new_line = format!("{}{:x}{}", &line[..pos], v, &line[end..]);
                text.replacen(line, &new_line, 1)
            }
            // Shift-add: a weight is the sign pattern of its digits; flip one.
            Strategy::ShiftAdd => {
                let line = text
                    .lines()
                    .find(|l| l.contains(" + ") && l.contains("wire signed"))
                    .expect("an adder");
                text.replacen(line, &line.replacen(" + ", " - ", 1), 1)
            }
        };
        assert_ne!(mutated, text);
        std::fs::write(&vfile, mutated).unwrap();
        let _ = std::fs::remove_dir_all(dir.join("obj_dir"));
        let r = run_in(&dir, &k, "verilator");
        assert!(
            !r.pass && r.mismatches > 0,
            "mutation not detected ({st:?}):\n{}",
            r.log
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// ECP5 kernels put their products on MULT18X18D primitives with the
/// registers around them inside: at II 1 and reused, with and without a
/// clock enable, under Verilator and Icarus with bxflow's model of the
/// primitive, every output equals the golden model's at the latency the
/// manifest states.
#[test]
fn ecp5_registered_dsps_cosimulate() {
    if !have("verilator") || !have("iverilog") {
        return;
    }
    let dense = dense_model();
    // The jet tagger's softmax multiplies 18-bit magnitudes (19-bit wires).
    let tagger = model_at("../models/three_layer_keras.onnx", "fixed<8,3,RND,SAT>");
    let ecp5 = |reuse: Option<u32>, clock_enable: bool| Options {
        strategy: Strategy::Dsp,
        family: hdl::Family::Ecp5,
        clock_mhz: 100.0,
        reuse,
        clock_enable,
        ..Options::default()
    };
    for (i, (model, o, sim)) in [
        (&dense, ecp5(None, false), "verilator"),
        (&dense, ecp5(Some(4), false), "verilator"),
        (&dense, ecp5(Some(4), true), "iverilog"),
        (&tagger, ecp5(Some(64), false), "verilator"),
    ]
    .into_iter()
    .enumerate()
    {
        let n = if sim == "verilator" { 20_000 } else { 500 };
        let (k, r, dir) = cosim(model, &o, n, sim, &format!("ecp5dsp{i}"));
        let text = std::fs::read_to_string(dir.join(format!("{}.v", k.name))).unwrap();
        let dsps = text.matches(".REG_INPUTA_CLK(\"CLK0\")").count();
        assert!(
            dsps > 0 && text.contains(".REG_OUTPUT_CLK(\"CLK0\")"),
            "{}: no MULT18X18D with its registers",
            k.name
        );
        assert_bit_exact(model, &dir, &r, n);
    }
}

/// UltraScale+ kernels sum three terms per adder (`NAME_add3`). Built from
/// the LUT6_2 and CARRY8 instances that synthesis reads (with bxflow's
/// models of the two primitives, `BXFLOW_ADD3_PRIMITIVES`) and built
/// arithmetically as every other simulation does, the two-layer MLP (with
/// ternary sums of three added terms and of one subtracted, the two forms
/// the builder makes) equals the golden model at
/// the stated latency; `binary_adders` builds it without them.
#[test]
fn ternary_adders_cosimulate_as_primitives() {
    if !have("verilator") || !have("iverilog") {
        return;
    }
    let model = model_at("../models/two_layer_keras.onnx", "fixed<8,3,RND,SAT>");
    let n = 300;
    for (i, sim) in ["iverilog", "verilator", "iverilog"]
        .into_iter()
        .enumerate()
    {
        let k = hdl::build_kernel(&model, &Options::default()).unwrap();
        let dir = tmp_dir(&format!("add3_{i}"));
        let ev = events(&model, n, 7);
        hdl::export::write_export(&dir, &k, &model, &ev).unwrap();
        let file = dir.join(format!("{}.v", k.name));
        let text = std::fs::read_to_string(&file).unwrap();
        let sums = text.matches("_add3 #(").count();
        let note = std::fs::read_to_string(dir.join("INTEGRATION.md")).unwrap();
        assert!(note.contains("with AMD primitives"), "{note}");
        for neg in ["3'b000", "3'b100"] {
            assert!(
                text.contains(&format!(".NEG({neg})")),
                "no ternary sum with NEG {neg} among {sums}"
            );
        }
        let text = if i < 2 {
            // The primitives where the simulation would compute the sum.
            format!("`define BXFLOW_ADD3_PRIMITIVES\n{text}")
        } else {
            // The netlist printed without ternary adders (as
            // `Netlist::verilog` does): each sum as two adders.
            let plain = k.net.verilog(&k.name);
            assert!(!plain.contains("_add3"), "two adders per ternary sum");
            assert!(text.contains(&k.verilog()), "the export holds the kernel");
            text.replacen(&k.verilog(), &plain, 1)
        };
        std::fs::write(&file, text).unwrap();
        let r = run_in(&dir, &k, sim);
        assert_bit_exact(&model, &dir, &r, n);
    }
    let binary = Options {
        binary_adders: true,
        ..Options::default()
    };
    let k = hdl::build_kernel(&model, &binary).unwrap();
    assert!(k.name.ends_with("_bin"), "{}", k.name);
    assert!(!k.verilog().contains("_add3"), "binary adders only");
    let ternary = hdl::build_kernel(&model, &Options::default()).unwrap();
    let (t, b) = (ternary.stats(), k.stats());
    assert!(
        t.adders * 10 < b.adders * 8 && t.adder_bits * 10 < b.adder_bits * 8,
        "ternary {t:?}\nbinary {b:?}"
    );
}
