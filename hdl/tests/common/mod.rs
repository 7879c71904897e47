#![allow(dead_code)]
use std::path::{Path, PathBuf};

use hdl::eda::tool_available;
use hdl::export::{run_iverilog, run_verilator, write_export, TbResult};
use hdl::{build_kernel, Kernel, Options};
use quantize::fixed::FixedType;
use quantize::golden::{Arithmetic, Golden};
use quantize::qmodel::{Output, Port, QLayer, QModel, QOp};
use quantize::random::random_input;
use rand::rngs::SmallRng;
use rand::SeedableRng;

/// True if `tool` is installed; otherwise prints a notice and returns false,
/// or panics when `BXFLOW_REQUIRE_EDA=1`.
pub fn have(tool: &str) -> bool {
    if tool_available(tool) {
        return true;
    }
    if std::env::var("BXFLOW_REQUIRE_EDA").as_deref() == Ok("1") {
        panic!("{tool} is not installed and BXFLOW_REQUIRE_EDA=1");
    }
    eprintln!("NOTICE: {tool} is not installed: skipping this test");
    false
}

/// True when the full co-simulation sweeps are asked for
/// (`BXFLOW_FULL_SWEEPS=1`): every model under Verilator. CI runs a sample,
/// and the netlist simulator checks the rest bit for bit.
pub fn full_sweeps() -> bool {
    std::env::var("BXFLOW_FULL_SWEEPS").as_deref() == Ok("1")
}

pub fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bxflow-hdl-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The model at `path` (relative to this crate, `.onnx` or `.bxq`) quantized
/// at one `precision` for every layer (`.onnx` only).
pub fn model_at(path: &str, precision: &str) -> QModel {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let cfg = format!("[model]\nprecision = \"{precision}\"\n");
    let cfg = quantize::config::Config::from_toml(&cfg, "t.toml").unwrap();
    quantize::load_model(&p, Some(&cfg)).unwrap()
}

pub fn events(model: &QModel, n: usize, seed: u64) -> Vec<Vec<i64>> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut ev: Vec<Vec<i64>> = (0..n).map(|_| random_input(&mut rng, model)).collect();
    // Corner events: all minimum, all maximum, all zero.
    let corners: [fn(FixedType) -> i64; 3] = [|t| t.min_raw(), |t| t.max_raw(), |_| 0];
    for (i, f) in corners.into_iter().enumerate() {
        if i < ev.len() {
            ev[i] = model.input_types().map(f).collect();
        }
    }
    ev
}

/// Exports `model` with `n` random events and runs the testbench under the
/// given simulator; checks the decoded outputs against golden in Rust too.
pub fn cosim(
    model: &QModel,
    opts: &Options,
    n: usize,
    sim: &str,
    tag: &str,
) -> (Kernel, TbResult, PathBuf) {
    let k = build_kernel(model, opts).unwrap();
    let dir = tmp_dir(tag);
    let ev = events(model, n, 7);
    write_export(&dir, &k, model, &ev).unwrap();
    let r = run_in(&dir, &k, sim);
    (k, r, dir)
}

pub fn run_in(dir: &Path, k: &Kernel, sim: &str) -> TbResult {
    match sim {
        "verilator" => run_verilator(dir, k).unwrap(),
        _ => run_iverilog(dir, k).unwrap(),
    }
}

/// The testbench run `r` passed on the `n` events of [`events`] (seed 7)
/// and every output equals the golden model's.
pub fn assert_bit_exact(model: &QModel, dir: &Path, r: &TbResult, n: usize) {
    assert_outputs_bit_exact(model, dir, r, &events(model, n, 7));
}

/// The testbench run `r` passed on the events `ev` and every output equals
/// the golden model's; removes the run's directory.
pub fn assert_outputs_bit_exact(model: &QModel, dir: &Path, r: &TbResult, ev: &[Vec<i64>]) {
    assert!(r.pass, "testbench failed:\n{}", r.log);
    assert_eq!(
        (r.events, r.mismatches, r.latency_errors),
        (ev.len(), 0, 0),
        "{}",
        r.log
    );
    assert_eq!(r.outputs.len(), ev.len());
    let golden = Golden::new(model, Arithmetic::Fast);
    for (i, e) in ev.iter().enumerate() {
        let want = golden.evaluate(e).unwrap();
        assert_eq!(r.outputs[i], want, "event {i} (dir {})", dir.display());
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// One Dense layer of the given weights, zero bias, exact accumulator as its result.
pub fn dense(x: FixedType, w: FixedType, weights: Vec<i64>, n_in: usize) -> QModel {
    let n_out = weights.len() / n_in;
    let bias = vec![0; n_out];
    let acc = quantize::accum::exact_accumulator(
        x,
        w,
        w,
        (0..n_out).map(|o| (0i64, &weights[o * n_in..(o + 1) * n_in])),
    )
    .unwrap();
    QModel {
        name: "wide".into(),
        inputs: vec![Port {
            name: "x".into(),
            shape: vec![n_in],
            ty: x,
        }],
        layers: vec![QLayer {
            name: "d".into(),
            inputs: vec![0],
            shape: vec![n_out],
            ty: acc,
            reuse: 1,
            op: QOp::Dense {
                n_in,
                n_out,
                weights,
                w_ty: w,
                bias,
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

/// The wide-multiply trap's design: 24-bit inputs by 20-bit constant weights
/// on the DSP strategy, so its products (44 bits) are far wider than
/// rust-hdl's 16 x 16-bit `*`. Returns the model and its kernel; the
/// widest product is checked to exceed 32 bits.
pub fn wide_multiply() -> (QModel, Kernel) {
    let x = FixedType::signed(24, 4).unwrap();
    let w = FixedType::signed(20, 2).unwrap();
    let m = dense(
        x,
        w,
        vec![-(1 << 19), (1 << 19) - 1, 345_678, -271_829, 3, -77_777],
        3,
    );
    let k = build_kernel(&m, &wide_multiply_options()).unwrap();
    let widest = k
        .net
        .nodes
        .iter()
        .filter(|n| matches!(n.op, hdl::netlist::Op::MulConst(..)))
        .map(|n| n.width)
        .max()
        .unwrap();
    assert!(widest > 32, "products are wider than 32 bits ({widest})");
    (m, k)
}

pub fn wide_multiply_options() -> Options {
    Options {
        strategy: hdl::Strategy::Dsp,
        ..Options::default()
    }
}

/// The most-negative-value trap's design: a 40-bit input type through
/// multiplies and requantization, and events built from its most negative
/// and largest codes.
pub fn most_negative() -> (QModel, Vec<Vec<i64>>) {
    let x = FixedType::signed(40, 10).unwrap();
    let w = FixedType::signed(8, 1).unwrap();
    let m = dense(x, w, vec![-128, 127, -1, 1], 2);
    let (mn, mx) = (x.min_raw(), x.max_raw());
    let ev = vec![
        vec![mn, mn],
        vec![mn, mx],
        vec![-1, mn],
        vec![0, 0],
        vec![mx, mx],
    ];
    (m, ev)
}
