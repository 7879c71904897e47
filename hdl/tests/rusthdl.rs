//! The kernel as a rust-hdl block: simulated by rust-hdl's `Simulation`
//! against the golden model, exported by rust-hdl's `generate_verilog`, and
//! one test per rust-hdl 0.46 trap that exercises rust-hdl itself.

mod common;
use common::*;

use std::sync::Arc;

use hdl::block::{run_rust_hdl, KernelBlock};
use hdl::{build_kernel, Kernel, Options, Strategy};
use quantize::qmodel::QModel;
use quantize::random::{random_model, RandomSpec};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use rust_hdl::prelude::*;

const W: usize = 256;

/// The kernel in rust-hdl's simulator, an event every II cycles: every
/// output equals golden and appears `latency` cycles after its event.
fn check_golden(model: &QModel, k: &Kernel, ev: &[Vec<i64>], what: &str) {
    let ii = k.ii as u64;
    let stim: Vec<(u64, Vec<i64>)> = ev
        .iter()
        .enumerate()
        .map(|(i, e)| (i as u64 * ii, e.clone()))
        .collect();
    let cycles = ev.len() as u64 * ii + k.latency as u64 + 2;
    let got = run_rust_hdl(k, &stim, cycles).unwrap();
    assert_eq!(got.len(), ev.len(), "{what}: outputs seen");
    for (i, e) in ev.iter().enumerate() {
        assert_eq!(
            got[i].0,
            stim[i].0 + k.latency as u64,
            "{what} event {i}: cycle"
        );
        assert_eq!(
            got[i].1,
            quantize::golden::evaluate(model, e).unwrap(),
            "{what} event {i}"
        );
    }
}

/// Small random networks (all types and modes, tables, conv): the kernel
/// simulated as a rust-hdl block by rust-hdl's `Simulation` equals golden.
#[test]
fn rust_hdl_simulation_matches_golden() {
    for seed in 0..40u64 {
        let spec = RandomSpec {
            conv: seed % 3 == 0,
            skips: seed % 4 != 1,
            ..RandomSpec::default()
        };
        let mut model = random_model(&mut SmallRng::seed_from_u64(seed), &spec);
        // Every fourth network shares its Dense multipliers 3 times (II 3).
        if seed % 4 == 1 {
            for l in &mut model.layers {
                if matches!(l.op, quantize::qmodel::QOp::Dense { .. }) {
                    l.reuse = 3;
                }
            }
        }
        let st = if seed % 2 == 0 {
            Strategy::ShiftAdd
        } else {
            Strategy::Dsp
        };
        let k = build_kernel(
            &model,
            &Options {
                strategy: st,
                levels: Some(1 + (seed % 4) as u32),
                ..Options::default()
            },
        )
        .unwrap();
        let ev = events(&model, 24, seed);
        check_golden(&model, &k, &ev, &format!("seed {seed}"));
    }
}

/// rust-hdl's `generate_verilog` exports the block (after our own call of
/// its checks): the rust-hdl top module instantiates our kernel module,
/// which is included verbatim; Icarus accepts the result.
#[test]
fn rust_hdl_generate_verilog() {
    let model = random_model(&mut SmallRng::seed_from_u64(3), &RandomSpec::default());
    let k = build_kernel(&model, &Options::default()).unwrap();
    let block = KernelBlock::<W, W>::for_kernel(&k).unwrap();
    let v = block.verilog().unwrap();
    assert!(v.contains("module top("), "{v}");
    assert!(v.contains(&format!("{} kernel (", k.name)), "{v}");
    assert!(v.contains(&k.verilog()), "our module is included verbatim");
    // Too narrow a bus is an error, not a panic.
    assert!(KernelBlock::<1, W>::new(Arc::new(k.net.clone()), &k.name).is_err());
    if !have("iverilog") {
        return;
    }
    let dir = tmp_dir("rusthdl-gen");
    let f = dir.join("top.v");
    std::fs::write(&f, &v).unwrap();
    let st = std::process::Command::new("iverilog")
        .args(["-g2012", "-o"])
        .arg(dir.join("a.out"))
        .arg(&f)
        .status()
        .unwrap();
    assert!(st.success(), "iverilog rejects rust-hdl's output");
}

/// Trap 1 (rust-hdl's printer drops parentheses): a rust-hdl block computing
/// `a & b == c` (Rust: `(a & b) == c`) is printed as `a & b == c`, which
/// Verilog reads as `a & (b == c)`: for a = b = c = 0 the simulation gives 1
/// and the printed Verilog 0. Our kernel's Verilog (in the exported rust-hdl
/// block) parenthesizes every operator expression, one operator each.
#[derive(LogicBlock, Default)]
struct AndEq {
    a: Signal<In, Bit>,
    b: Signal<In, Bit>,
    c: Signal<In, Bit>,
    y: Signal<Out, Bit>,
}

impl Logic for AndEq {
    #[hdl_gen]
    fn update(&mut self) {
        self.y.next = self.a.val() & self.b.val() == self.c.val();
    }
}

#[test]
fn trap_rust_hdl_parentheses() {
    let mut u = AndEq::default();
    u.connect_all();
    let v = generate_verilog(&u);
    assert!(
        v.contains("a & b == c"),
        "rust-hdl prints the expression without parentheses: {v}"
    );
    // rust-hdl simulates Rust's precedence ...
    u.a.next = false;
    u.b.next = false;
    u.c.next = false;
    for _ in 0..4 {
        u.update_all();
    }
    assert!(u.y.val(), "simulation: (0 & 0) == 0");
    // ... and Verilog's `==` binds tighter than `&`: a & (b == c) = 0.
    let verilog_reading = false & (false == false);
    assert_ne!(u.y.val(), verilog_reading);
    // Guard: our expressions are all parenthesized in the rust-hdl export.
    let model = random_model(&mut SmallRng::seed_from_u64(3), &RandomSpec::default());
    let k = build_kernel(&model, &Options::default()).unwrap();
    let out = KernelBlock::<W, W>::for_kernel(&k)
        .unwrap()
        .verilog()
        .unwrap();
    let mut checked = 0;
    for line in out.lines().filter(|l| l.trim_start().starts_with("wire")) {
        let rhs = line.split_once(" = ").map(|x| x.1).unwrap_or("");
        let rhs = rhs.split("//").next().unwrap().trim().trim_end_matches(';');
        if [" + ", " - ", " * ", " & ", " | ", " < ", " == ", " ? "]
            .iter()
            .any(|o| rhs.contains(o))
        {
            assert!(rhs.starts_with('(') && rhs.ends_with(')'), "{line}");
            assert!(!rhs[1..rhs.len() - 1].contains('('), "{line}");
            checked += 1;
        }
    }
    assert!(checked > 0);
}

/// Trap 2 (rust-hdl's `*` exists only for `Bits<16> * Bits<16>`): 24-bit
/// inputs times 20-bit weights on the DSP strategy, 44-bit products, through
/// the rust-hdl block and rust-hdl's simulator, bit-exact (the block
/// multiplies in i128, never with rust-hdl's `*`).
#[test]
fn trap_rust_hdl_wide_multiplies() {
    let (m, k) = wide_multiply();
    let ev = events(&m, 64, 9);
    check_golden(&m, &k, &ev, "wide multiplies");
}

/// Trap 3 (`signed_bit_cast` of the most negative value recurses forever):
/// the most negative codes of a 40-bit type go through the rust-hdl block
/// (multiplies, sums, requantization) in rust-hdl's simulator, bit-exact —
/// the block decodes signed fields itself and never calls `signed_bit_cast`.
#[test]
fn trap_rust_hdl_most_negative_value() {
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
        check_golden(&m, &k, &ev, &format!("most negative {st:?}"));
    }
}

/// A recurrent cell reused across time steps (a loop through `state`
/// registers and the occupancy ring) in rust-hdl's simulator.
#[test]
fn rust_hdl_simulation_of_a_reused_recurrent_cell() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/ops/LSTMDefaults.onnx");
    let g = quantize::onnx::import_bytes(&std::fs::read(path).unwrap(), "lstm").unwrap();
    let cfg = quantize::config::Config::from_toml(
        "[model]\nprecision = \"fixed<12,5,RND,SAT>\"\n",
        "t.toml",
    )
    .unwrap();
    let model = quantize::quantizer::quantize_graph(&g, &cfg).unwrap();
    let opts = Options {
        recurrent: hdl::Recurrent::Reused,
        ..Options::default()
    };
    let k = build_kernel(&model, &opts).unwrap();
    assert_eq!(k.cells.len(), 1);
    check_golden(&model, &k, &events(&model, 40, 9), "reused LSTM cell");
}
