//! The netlist simulator against the golden model, bit for bit, on random
//! networks (all rounding and overflow modes, tables, softmax, argmax, conv).

use hdl::{build_kernel, Options, Strategy};
use quantize::golden::evaluate;
use quantize::random::{random_input, random_model, RandomSpec};
use rand::rngs::SmallRng;
use rand::SeedableRng;

fn check_seed(seed: u64, spec: &RandomSpec, strategy: Strategy, levels: u32) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let model = random_model(&mut rng, spec);
    let opts = Options {
        strategy,
        levels: Some(levels),
        ..Options::default()
    };
    let k = build_kernel(&model, &opts).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    let events: Vec<Vec<i64>> = (0..64).map(|_| random_input(&mut rng, &model)).collect();
    let got = k.simulate(&events);
    for (i, e) in events.iter().enumerate() {
        let want = evaluate(&model, e).unwrap();
        assert_eq!(
            got[i], want,
            "seed {seed} event {i} {strategy:?} levels {levels}\nmodel {model:#?}"
        );
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
