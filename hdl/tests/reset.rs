//! Reset as INTEGRATION.md states it, on kernels of every builder (II 1, a
//! reuse factor, a reused recurrent cell): on an edge with `reset` high an
//! offered event is dropped, and after it `in_ready` reads high; events in flight
//! give no result; afterwards new events come out bit-exact, `latency`
//! edges after they were taken.

#[path = "common/mod.rs"]
mod hdl_common;

use hdl::netlist::Sim;
use hdl::{build_kernel, Kernel, Options, Recurrent};
use hdl_common::{events, model_at};
use quantize::golden::{Arithmetic, Golden};
use quantize::qmodel::QModel;

fn model(path: &str) -> QModel {
    model_at(path, "fixed<12,5,RND,SAT>")
}

/// Offers `ev[0]`, then resets for two edges while offering `ev[1]`, then
/// offers `ev[2..]` one per II; checks what comes out.
fn check(m: &QModel, k: &Kernel) {
    let golden = Golden::new(m, Arithmetic::Fast);
    let ev = events(m, 6, 3);
    let zero = vec![0; k.inputs.len()];
    let mut sim = Sim::new(&k.net);
    sim.step(true, false, &zero);
    let mut outs: Vec<(usize, Vec<i64>)> = Vec::new();
    let mut taken: Vec<(usize, usize)> = Vec::new();
    let (ii, lat) = (k.ii as usize, k.latency as usize);
    let mut next = 2;
    for t in 0..(10 + 6 * ii + 2 * lat) {
        let reset = (2..4).contains(&t);
        let offer = match t {
            0 => Some(0),
            2 | 3 => Some(1),
            _ if t >= 4 + lat && next < ev.len() && (t - 4 - lat) % ii == 0 => Some(next),
            _ => None,
        };
        let x = offer.map_or(&zero, |e| &ev[e]);
        let (valid, out) = sim.step(reset, offer.is_some(), x);
        if t == 3 {
            assert!(
                sim.was_ready(),
                "{}: in_ready low after a reset edge",
                k.name
            );
        }
        match offer {
            Some(e) if !reset => {
                assert!(sim.was_ready(), "{}: event {e} refused at edge {t}", k.name);
                taken.push((t, e));
                if e >= 2 {
                    next += 1;
                }
            }
            _ => {}
        }
        if valid {
            outs.push((t, k.decode(&out)));
        }
    }
    // Event 0 was in flight at reset (unless it came out before), event 1
    // was offered during reset: neither gives a result when lat > 2.
    let after: Vec<&(usize, usize)> = taken.iter().filter(|(_, e)| *e >= 2).collect();
    assert_eq!(after.len(), ev.len() - 2, "{}", k.name);
    let late: Vec<&(usize, Vec<i64>)> = outs.iter().filter(|(t, _)| *t >= 4).collect();
    assert_eq!(late.len(), after.len(), "{}: outputs after reset", k.name);
    for ((t_out, y), (t_in, e)) in late.iter().zip(&after) {
        assert_eq!(t_out - t_in, lat, "{}: event {e}'s latency", k.name);
        assert_eq!(
            y,
            &golden.evaluate(&ev[*e]).unwrap(),
            "{}: event {e}",
            k.name
        );
    }
}

#[test]
fn reset_drops_events_in_flight_and_offered_then_the_kernel_runs_on() {
    let tagger = model("../models/three_layer_keras.onnx");
    check(
        &tagger,
        &build_kernel(&tagger, &Options::default()).unwrap(),
    );
    let r4 = Options {
        reuse: Some(4),
        ..Options::default()
    };
    check(&tagger, &build_kernel(&tagger, &r4).unwrap());
    let lstm = model("../models/ops/LSTMDefaults.onnx");
    let cell = Options {
        recurrent: Recurrent::Reused,
        ..Options::default()
    };
    check(&lstm, &build_kernel(&lstm, &cell).unwrap());
}
