//! The netlist simulator against the golden model, bit for bit, on random
//! networks (all rounding and overflow modes, tables, softmax, argmax, conv).

mod common;

use hdl::netlist::op_inputs;
use hdl::{build_kernel, Kernel, Options, Strategy};
use quantize::golden::evaluate;
use quantize::qmodel::{QModel, QOp};
use quantize::random::{random_input, random_model, RandomSpec};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn check_seed(seed: u64, spec: &RandomSpec, strategy: Strategy, levels: u32) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let model = random_model(&mut rng, spec);
    let opts = Options {
        strategy,
        levels: Some(levels),
        ..Options::default()
    };
    check_model(&mut rng, &model, &opts, &format!("seed {seed}"));
}

/// The kernel of `model` simulated on 64 random events against the golden model.
fn check_model(rng: &mut SmallRng, model: &QModel, opts: &Options, what: &str) -> Kernel {
    let k = build_kernel(model, opts).unwrap_or_else(|e| panic!("{what}: {e}"));
    let events: Vec<Vec<i64>> = (0..64).map(|_| random_input(rng, model)).collect();
    let got = k.simulate(&events);
    for (i, e) in events.iter().enumerate() {
        let want = evaluate(model, e).unwrap();
        assert_eq!(got[i], want, "{what} event {i} {opts:?}\nmodel {model:#?}");
    }
    stages_fit(&k, what);
    k
}

/// Every node settles within the stage budget, but one whose operands
/// are all there at the stage's start (registers, ports, constants, their
/// wiring: nothing earlier in the stage could make room for it): the
/// pipeline's contract, also after it moves logic to later stages to save
/// registers.
fn stages_fit(k: &Kernel, what: &str) {
    let budget = k.options.budget_ps();
    for (i, n) in k.net.nodes.iter().enumerate() {
        let Some(p) = n.predicted_ps else { continue };
        if p <= budget {
            continue;
        }
        for a in op_inputs(&n.op) {
            let o = &k.net.nodes[a];
            assert!(
                o.predicted_ps.unwrap_or(0) == 0 || o.stage != n.stage,
                "{what}: node {i} {:?} settles at {p} ps of {budget} behind node {a} {:?} of its stage",
                n.op,
                o.op
            );
        }
    }
}

/// Reuse factors above 1 (shared multipliers, II = R) on random MLPs: per
/// layer from the model, mixed with unfolded layers, and uniform from the
/// options; the kernel must take an event every II cycles and stay exact.
#[test]
fn folded_mlps_match_golden() {
    for seed in 0..150u64 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let spec = RandomSpec {
            skips: false,
            ..RandomSpec::default()
        };
        let mut model = random_model(&mut rng, &spec);
        for l in &mut model.layers {
            if matches!(l.op, QOp::Dense { .. }) {
                l.reuse = rng.gen_range(1..=5);
            }
        }
        let strategy = if seed % 2 == 0 {
            Strategy::ShiftAdd
        } else {
            Strategy::Dsp
        };
        let opts = Options {
            strategy,
            levels: Some(1 + (seed % 4) as u32),
            ..Options::default()
        };
        let k = check_model(&mut rng, &model, &opts, &format!("seed {seed}"));
        let want_ii = model.layers.iter().map(|l| l.reuse).max().unwrap_or(1);
        let dense = model.layers.iter().any(|l| l.reuse > 1);
        assert_eq!(k.ii, if dense { want_ii } else { 1 }, "seed {seed}");
        let r = 2 + (seed % 7) as u32;
        let opts = Options {
            reuse: Some(r),
            ..opts
        };
        let k = check_model(&mut rng, &model, &opts, &format!("seed {seed} reuse {r}"));
        assert_eq!(k.ii, r, "seed {seed}");
    }
}

/// `--reuse` folds the Dense layers behind a Conv1D front (the Conv and
/// pooling stay unfolded): exact, at II = R.
#[test]
fn folded_dense_behind_conv_matches_golden() {
    let spec = RandomSpec {
        conv: true,
        skips: false,
        ..RandomSpec::default()
    };
    for seed in 0..60u64 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let model = random_model(&mut rng, &spec);
        let r = 2 + (seed % 4) as u32;
        let opts = Options {
            reuse: Some(r),
            levels: Some(2),
            ..Options::default()
        };
        let k = check_model(
            &mut rng,
            &model,
            &opts,
            &format!("conv seed {seed} reuse {r}"),
        );
        let dense = model
            .layers
            .iter()
            .any(|l| matches!(l.op, QOp::Dense { .. }));
        assert_eq!(k.ii, if dense { r } else { 1 }, "seed {seed}");
    }
}

#[test]
fn random_mlps_match_golden() {
    let spec = RandomSpec::default();
    for seed in 0..300 {
        check_seed(seed, &spec, Strategy::ShiftAdd, 1 + (seed % 4) as u32);
        check_seed(seed, &spec, Strategy::Dsp, 1 + (seed % 3) as u32);
    }
}

#[test]
fn random_conv_nets_match_golden() {
    let spec = RandomSpec {
        conv: true,
        ..RandomSpec::default()
    };
    for seed in 0..150 {
        check_seed(seed, &spec, Strategy::ShiftAdd, 2);
        check_seed(seed, &spec, Strategy::Dsp, 3);
    }
}

#[test]
fn wide_types_match_golden() {
    let spec = RandomSpec {
        max_bits: 32,
        ..RandomSpec::default()
    };
    for seed in 0..100 {
        check_seed(seed, &spec, Strategy::ShiftAdd, 3);
        check_seed(seed, &spec, Strategy::Dsp, 3);
    }
}

/// The delay model: an 8-input adder tree (3 levels, 16-19 bits), then
/// saturation (two comparators, two multiplexers) and a ReLU select fit one
/// 200 MHz stage: the multiplexers merge into one LUT level and the adders
/// overlap their carries. The `levels` option still sets the budget: one
/// 16-bit adder level per stage needs a stage per adder.
#[test]
fn delay_model_merges_cheap_logic() {
    use hdl::netlist::Netlist;
    use hdl::pipeline::{
        budget_for_clock, budget_for_levels, pipeline, Delays, DEFAULT_UNCERTAINTY_PCT,
    };
    let mut n = Netlist::new();
    let mut v: Vec<usize> = (0..8).map(|i| n.input(16 * i, 16, true)).collect();
    while v.len() > 1 {
        v = v.chunks(2).map(|p| n.add(p[0], p[1])).collect();
    }
    let s = v[0];
    let (maxc, minc) = (n.konst(32767), n.konst(-32768));
    let over = n.lt(maxc, s);
    let under = n.lt(s, minc);
    let inner = n.mux(under, minc, s);
    let sat = n.mux(over, maxc, inner);
    let sat = n.narrow(sat, -32768, 32767);
    let neg = n.bit(sat, u32::MAX);
    let z = n.konst(0);
    let relu = n.mux(neg, z, sat);
    n.outputs.push(hdl::netlist::OutField {
        node: relu,
        width: 16,
    });
    let d = Delays::default();
    let (_, lat) = pipeline(&n, budget_for_clock(200.0, DEFAULT_UNCERTAINTY_PCT, &d), &d);
    assert_eq!(lat, 1, "one stage plus the output register");
    let (_, lat1) = pipeline(&n, budget_for_levels(1), &d);
    assert!(lat1 >= 4, "one adder level per stage: {lat1}");
    let (_, lat4) = pipeline(&n, budget_for_levels(4), &d);
    assert!(lat4 < lat1 && lat4 >= 1);
}

/// A ROM large enough to become block RAM delays the stage after its
/// register by the RAM's clock-to-out on ECP5 (5.6 ns measured after
/// place and route): a sum of a 2,048-entry table takes a stage of its
/// own after a second register; from a 128-entry table (logic) it directly
/// follows the table's register. UltraScale+ is not modelled and keeps
/// the shorter pipeline. (A product on ECP5 reads two registers after any
/// logic, block RAM or not: `ecp5_products_read_registers_of_registers`.)
#[test]
fn block_ram_tables_delay_the_next_stage() {
    use hdl::netlist::{Netlist, OutField};
    use hdl::pipeline::{budget_for_clock, pipeline, Family, DEFAULT_UNCERTAINTY_PCT};
    let latency = |bits: u32, family: Family| {
        let mut n = Netlist::new();
        // Signed: the index is `bits` wide, an address space of 2^bits.
        let idx = n.input(0, bits, true);
        let x = n.input(bits, 19, true);
        let table = n.rom(idx, (0..1i128 << bits).map(|v| v * 37 % 131_071).collect());
        let y = n.add(x, table);
        n.outputs.push(OutField { node: y, width: 21 });
        let d = family.delays();
        pipeline(&n, budget_for_clock(100.0, DEFAULT_UNCERTAINTY_PCT, &d), &d).1
    };
    let (ram, logic) = (latency(11, Family::Ecp5), latency(7, Family::Ecp5));
    assert_eq!(ram, logic + 1, "2,048 entries: {ram}, 128: {logic}");
    assert_eq!(latency(11, Family::Xcup), latency(7, Family::Xcup));
}

/// The clock uncertainty is the share of the period a stage leaves empty:
/// on ECP5 at 100 MHz two chained 16-bit adders (about 9.0 ns in the model)
/// exceed the 8.05 ns a stage holds at the default 12.5 % and fit the
/// 9.3 ns it holds at 0 %, one cycle fewer.
#[test]
fn clock_uncertainty_sets_what_a_stage_holds() {
    use hdl::netlist::{Netlist, OutField};
    use hdl::pipeline::{budget_for_clock, pipeline, Family, DEFAULT_UNCERTAINTY_PCT};
    let d = Family::Ecp5.delays();
    let latency = |u: f64| {
        let mut n = Netlist::new();
        let a = n.input(0, 16, true);
        let b = n.input(16, 16, true);
        let c = n.input(32, 16, true);
        let s = n.add(a, b);
        let y = n.add(s, c);
        n.outputs.push(OutField { node: y, width: 18 });
        pipeline(&n, budget_for_clock(100.0, u, &d), &d).1
    };
    assert_eq!(budget_for_clock(100.0, DEFAULT_UNCERTAINTY_PCT, &d), 8050);
    assert_eq!(budget_for_clock(100.0, 0.0, &d), 9300);
    assert_eq!(latency(DEFAULT_UNCERTAINTY_PCT), latency(0.0) + 1);
}

/// Reuse factors the folded builder cannot honour are errors that name the
/// layer and the reason: a Conv layer, and a skip connection around a
/// folded layer.
#[test]
fn unsupported_reuse_is_an_error() {
    let mut rng = SmallRng::seed_from_u64(5);
    let spec = RandomSpec {
        conv: true,
        ..RandomSpec::default()
    };
    let mut conv = random_model(&mut rng, &spec);
    let (ci, cl) = conv
        .layers
        .iter_mut()
        .enumerate()
        .find(|(_, l)| matches!(l.op, QOp::Conv { .. }))
        .expect("a conv layer");
    cl.reuse = 2;
    let name = cl.name.clone();
    let e = build_kernel(&conv, &Options::default())
        .err()
        .expect("an error");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("layer {name} (Conv)"))
            && msg.contains("reuse factor 2 is built for Dense layers only"),
        "layer {ci}: {msg}"
    );

    // x -> Dense (reuse 2) -> Add(x, dense): the Add reads x around the fold.
    let ty = quantize::fixed::FixedType::signed(8, 3).unwrap();
    let mut skip = common::dense(ty, ty, (1..=16).collect(), 4);
    skip.layers[0].reuse = 2;
    let mut add = skip.layers[0].clone();
    add.name = "skip_add".into();
    add.inputs = vec![0, 1];
    add.reuse = 1;
    add.op = QOp::Add;
    skip.layers.push(add);
    skip.outputs[0].tensor = 2;
    let e = hdl::build::layer_reuse(&skip, None)
        .and_then(|r| {
            assert_eq!(r, vec![2, 1]);
            build_kernel(&skip, &Options::default()).map(|_| ())
        })
        .expect_err("an error");
    let msg = e.to_string();
    assert!(
        msg.contains("needs a chain of layers, but layer 'skip_add' reads tensor 0 from before it"),
        "{msg}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 64, ..Default::default() })]
    /// Models, precisions, strategies, pipeline budgets, reuse factors and
    /// families drawn by proptest (shrinking a failure towards a small seed,
    /// width and reuse): the kernel's simulation equals the golden model.
    #[test]
    fn prop_kernels_match_golden(
        seed in proptest::prelude::any::<u64>(),
        max_bits in 2u32..=24,
        reuse in 1u32..=6,
        levels in 1u32..=8,
        dsp in proptest::prelude::any::<bool>(),
        ecp5 in proptest::prelude::any::<bool>(),
    ) {
        let mut rng = SmallRng::seed_from_u64(seed);
        let spec = RandomSpec { max_bits, skips: false, ..RandomSpec::default() };
        let model = random_model(&mut rng, &spec);
        let opts = Options {
            strategy: if dsp { Strategy::Dsp } else { Strategy::ShiftAdd },
            levels: Some(levels),
            reuse: Some(reuse),
            // ECP5's delay model places other stages (block RAM, unsigned
            // products).
            family: if ecp5 { hdl::Family::Ecp5 } else { hdl::Family::Xcup },
            ..Options::default()
        };
        check_model(&mut rng, &model, &opts, &format!("seed {seed}"));
    }
}

/// On ECP5 the wires into and out of a DSP get no logic in their stage: a
/// product's operands are registers fed by registers (the second one
/// becomes the DSP's input register) and logic reads a product through
/// two registers (the first the DSP's output register). UltraScale+ puts
/// the product in a stage with the logic around it.
#[test]
fn ecp5_products_read_registers_of_registers() {
    use hdl::netlist::{Netlist, Op, OutField};
    use hdl::pipeline::{budget_for_clock, pipeline, Family, DEFAULT_UNCERTAINTY_PCT};
    let build = |family: Family| {
        let mut n = Netlist::new();
        let a = n.input(0, 8, true);
        let b = n.input(8, 8, true);
        let s = n.add(a, b);
        let p = n.mul(s, b);
        let one = n.konst(1);
        let y = n.add(p, one);
        n.outputs.push(OutField { node: y, width: 18 });
        let d = family.delays();
        pipeline(&n, budget_for_clock(100.0, DEFAULT_UNCERTAINTY_PCT, &d), &d).0
    };
    let is_reg = |net: &Netlist, x: usize| matches!(net.nodes[x].op, Op::Reg { .. });
    let reg_in = |net: &Netlist, x: usize| match net.nodes[x].op {
        Op::Reg { a, .. } => a,
        _ => panic!("n{x} is not a register"),
    };
    let net = build(Family::Ecp5);
    let (m, (pa, pb)) = net
        .nodes
        .iter()
        .enumerate()
        .find_map(|(i, n)| match n.op {
            Op::Mul(a, b) => Some((i, (a, b))),
            _ => None,
        })
        .expect("a product");
    for x in [pa, pb] {
        let d = reg_in(&net, x);
        assert!(
            is_reg(&net, d) || matches!(net.nodes[d].op, Op::Input { .. }),
            "operand n{x} of the product n{m} is fed by {:?}",
            net.nodes[d].op
        );
    }
    for (i, n) in net.nodes.iter().enumerate() {
        if let Op::Add(a, b) = n.op {
            for x in [a, b] {
                if is_reg(&net, x) && reg_in(&net, x) != m && is_reg(&net, reg_in(&net, x)) {
                    continue;
                }
                assert!(x != m, "n{i} reads the product n{m} in its own stage");
                if is_reg(&net, x) {
                    assert_ne!(
                        reg_in(&net, x),
                        m,
                        "n{i} reads the product through one register"
                    );
                }
            }
        }
    }
    // A product that is an output is read by logic outside the netlist (a
    // reuse loop's accumulator): it leaves through two registers too.
    let mut n = Netlist::new();
    let a = n.input(0, 8, true);
    let b = n.input(8, 8, true);
    let p = n.mul(a, b);
    n.outputs.push(OutField { node: p, width: 16 });
    let d = Family::Ecp5.delays();
    let (out, _) = pipeline(&n, budget_for_clock(100.0, DEFAULT_UNCERTAINTY_PCT, &d), &d);
    let o = out.outputs[0].node;
    let first = reg_in(&out, reg_in(&out, o));
    assert!(
        matches!(out.nodes[first].op, Op::Mul(..)),
        "the output n{o} is {:?} after two registers",
        out.nodes[first].op
    );
    // UltraScale+: the sum, the product and the increment share stages.
    let x = build(Family::Xcup);
    let stages = |net: &Netlist| net.nodes.iter().filter_map(|n| n.stage).max().unwrap();
    assert!(
        stages(&x) < stages(&net),
        "{} vs {}",
        stages(&x),
        stages(&net)
    );
}
