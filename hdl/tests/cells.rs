//! Recurrent cells reused across time steps (`Recurrent::Reused`): the
//! importer's unrolled steps are found as runs of identical blocks and
//! built as one cell in a loop. Bit-exact to the golden model at the
//! kernel's interval and under random arrivals (bursts included), with
//! every value inside its declared range, in the netlist simulator and
//! under Verilator.

#[path = "../../quantize/tests/common/mod.rs"]
mod common;
#[path = "common/mod.rs"]
mod hdl_common;

use hdl::netlist::Sim;
use hdl::{build_kernel, find_cells, Kernel, Options, Recurrent};
use hdl_common::{assert_bit_exact, cosim, events, have, model_at};
use quantize::config::Config;
use quantize::golden::{Arithmetic, Golden};
use quantize::qmodel::QModel;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn quantized(name: &str, bytes: &[u8], precision: &str) -> QModel {
    let g = quantize::onnx::import_bytes(bytes, name).unwrap();
    let cfg = format!("[model]\nprecision = \"{precision}\"\n");
    let cfg = Config::from_toml(&cfg, "t.toml").unwrap();
    quantize::quantizer::quantize_graph(&g, &cfg).unwrap()
}

fn reused() -> Options {
    Options {
        recurrent: Recurrent::Reused,
        ..Options::default()
    }
}

/// The kernel at its interval (`Kernel::simulate` checks `in_ready` and
/// the latency of every event, and every value's range).
fn assert_interval_bit_exact(m: &QModel, k: &Kernel, n: usize, seed: u64) {
    let golden = Golden::new(m, Arithmetic::Fast);
    let ev = events(m, n, seed);
    for (x, y) in ev.iter().zip(&k.simulate(&ev)) {
        assert_eq!(y, &golden.evaluate(x).unwrap(), "{}", m.name);
    }
}

/// Events offered with probability `p` per cycle, each held until the
/// kernel takes it: every output is the golden model's, in order, exactly
/// `latency` cycles after its event was taken. Returns the number of
/// cycles on which an event waited (`in_ready` low).
fn assert_arrivals_bit_exact(m: &QModel, k: &Kernel, n: usize, p: f64, seed: u64) -> usize {
    let golden = Golden::new(m, Arithmetic::Fast);
    let ev = events(m, n, seed);
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut sim = Sim::new(&k.net);
    let zero = vec![0; k.inputs.len()];
    sim.step(true, false, &zero);
    let (mut next, mut offered, mut waited) = (0, false, 0);
    let mut taken = std::collections::VecDeque::new();
    let mut got = 0;
    let limit = (n + 2) * k.latency as usize * 4;
    for cycle in 0..limit {
        offered |= next < n && rng.gen_bool(p);
        let x = if offered { &ev[next] } else { &zero };
        let (valid, out) = sim.step_checked(false, offered, x, cycle >= k.latency as usize);
        if offered {
            if sim.was_ready() {
                taken.push_back((cycle, next));
                next += 1;
                offered = false;
            } else {
                waited += 1;
            }
        }
        if valid {
            let (at, e) = taken.pop_front().expect("an output without an event");
            assert_eq!(cycle - at, k.latency as usize, "latency of event {e}");
            assert_eq!(
                k.decode(&out),
                golden.evaluate(&ev[e]).unwrap(),
                "event {e}"
            );
            got += 1;
            if got == n {
                return waited;
            }
        }
    }
    panic!("{got} of {n} outputs in {limit} cycles");
}

/// The cells found in ROOT's recurrent test models: a run from the second
/// step on (the first step, with its zero state folded, differs), one per
/// direction; a sequence of one step has none.
#[test]
fn cells_are_found_in_every_direction() {
    let found = |name: &str| -> Vec<(usize, usize, usize)> {
        let m = model_at(&format!("../models/ops/{name}.onnx"), "fixed<12,5>");
        find_cells(&m)
            .iter()
            .map(|c| (c.first, c.len, c.steps))
            .collect()
    };
    assert_eq!(found("RNNSequence"), [(5, 7, 2)]);
    assert_eq!(found("LSTMBidirectional"), [(10, 16, 2), (55, 16, 2)]);
    assert_eq!(found("GRUDefaults"), []);
}

#[test]
fn ops_models_reuse_their_cells_bit_exact() {
    for name in [
        "RNNSequence",
        "RNNSequenceBatchwise",
        "RNNBidirectional",
        "RNNDefaults",
        "LSTMBidirectional",
        "LSTMDefaults",
        "LSTMInitialBias",
    ] {
        let m = model_at(&format!("../models/ops/{name}.onnx"), "fixed<12,5,RND,SAT>");
        let k = build_kernel(&m, &reused()).unwrap();
        assert_eq!(k.cells.len(), find_cells(&m).len(), "{name}");
        assert_eq!(k.ii, 2, "{name}: two steps in each loop");
        assert_interval_bit_exact(&m, &k, 200, 6);
        assert_arrivals_bit_exact(&m, &k, 100, 0.7, 3);
    }
}

/// The jet GRU tagger: one loop of 15 steps (the first is unrolled),
/// taking a jet every 15 cycles with a fraction of the unrolled area.
#[test]
fn jet_gru_cell_is_bit_exact_at_its_interval_and_under_bursts() {
    let m = model_at("../models/jets/jet_gru.onnx", "fixed<16,6,RND,SAT>");
    let k = build_kernel(&m, &reused()).unwrap();
    let [cell] = k.cells.as_slice() else {
        panic!("one cell expected: {:?}", k.cells)
    };
    assert_eq!((cell.steps, cell.layers_per_step), (15, 16));
    assert_eq!(k.ii, 15);
    assert_eq!(cell.cycles_in_loop, 15 * cell.period_cycles);
    assert!(k.latency > cell.cycles_in_loop);
    let unrolled = build_kernel(&m, &Options::default()).unwrap();
    let (r, u) = (k.stats(), unrolled.stats());
    assert!(
        r.lut_estimate * 3 < u.lut_estimate && r.rom_bits * 5 < u.rom_bits,
        "reused {r:?}\nunrolled {u:?}"
    );
    assert_interval_bit_exact(&m, &k, 120, 11);
    // Bursts: up to a period's worth of jets are taken back to back.
    let waited = assert_arrivals_bit_exact(&m, &k, 60, 0.5, 12);
    assert!(
        waited > 0,
        "a 15-step loop must refuse some events at p = 0.5"
    );
}

#[test]
fn a_model_without_a_cell_or_with_a_reuse_factor_is_refused_with_the_reason() {
    let m = model_at("../models/ops/GRUDefaults.onnx", "fixed<12,5>");
    let e = build_kernel(&m, &reused()).err().unwrap().to_string();
    assert!(
        e.contains("'GRUDefaults' has no recurrent cell to reuse") && e.contains("unrolled"),
        "{e}"
    );
    let m = model_at("../models/jets/jet_gru.onnx", "fixed<16,6>");
    let o = Options {
        reuse: Some(2),
        ..reused()
    };
    let e = build_kernel(&m, &o).err().unwrap().to_string();
    assert!(
        e.contains(
            "has reuse factor 2, and a reuse factor together with a reused cell is not built"
        ),
        "{e}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 16, ..Default::default() })]

    /// Random recurrent layers (`common::random_recurrent`) at a random
    /// precision: where a cell is found, the reused kernel is the golden
    /// model at its interval and under random arrivals.
    #[test]
    fn random_cells_reused_are_bit_exact(
        seed in proptest::prelude::any::<u64>(),
        ty in proptest::sample::select(vec!["fixed<12,5,RND,SAT>", "fixed<10,3,TRN,WRAP>"]),
    ) {
        let (bytes, drawn) = common::random_recurrent(seed);
        let m = quantized("cell", &bytes, ty);
        let cells = find_cells(&m);
        proptest::prop_assume!(!cells.is_empty(), "{}: no run of two steps", drawn);
        let k = build_kernel(&m, &reused()).unwrap();
        assert_interval_bit_exact(&m, &k, 40, seed);
        assert_arrivals_bit_exact(&m, &k, 30, 0.6, seed);
    }
}

#[test]
fn verilator_reused_lstm_cell() {
    if !have("verilator") {
        return;
    }
    let m = model_at("../models/ops/LSTMDefaults.onnx", "fixed<12,5,RND,SAT>");
    let n = 400;
    let (k, r, dir) = cosim(&m, &reused(), n, "verilator", "reused_lstm");
    assert_eq!(k.cells.len(), 1);
    assert_bit_exact(&m, &dir, &r, n);
}
