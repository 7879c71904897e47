//! Yosys on a small export: the report parser finds LUTs, FFs and the logic
//! depth; DSP strategy uses DSP48 blocks, shift-add none. (The jet tagger's
//! full synthesis is run by `bxflow synth`, not in the default tests.)

mod common;
use common::*;

use hdl::export::write_export;
use hdl::{build_kernel, Options, Strategy};
use quantize::random::{random_model, RandomSpec};
use rand::rngs::SmallRng;
use rand::SeedableRng;

#[test]
fn yosys_small_design() {
    if !have("yosys") {
        return;
    }
    let spec = RandomSpec {
        max_layers: 1,
        max_neurons: 6,
        max_bits: 12,
        tables: false,
        ..RandomSpec::default()
    };
    let model = random_model(&mut SmallRng::seed_from_u64(3), &spec);
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
