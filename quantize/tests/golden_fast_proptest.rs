//! The golden model's i64 fast path against its exact i128 path on random
//! models and inputs: every tensor of every event must be the same.
//!
//! With types of at most 16 bits every multiply-accumulate of these models
//! is within the fast path's bound (`sum |w| * max |x| <= i64::MAX`, with
//! exact accumulators, which are never coarser than a product), so the fast
//! path is what is checked; with 32-bit types some layers fall back to i128,
//! and inputs at the input type's extremes push sums to the bound.

use proptest::prelude::*;
use quantize::golden::{Arithmetic, Golden};
use quantize::qmodel::QModel;
use quantize::random::{random_input, random_model, RandomSpec};
use rand::{rngs::SmallRng, SeedableRng};

fn inputs(rng: &mut SmallRng, model: &QModel) -> Vec<Vec<i64>> {
    let extreme =
        |f: fn(&quantize::fixed::FixedType) -> i64| model.input_types().map(|t| f(&t)).collect();
    let mut v: Vec<Vec<i64>> = (0..6).map(|_| random_input(rng, model)).collect();
    v.extend([
        extreme(|t| t.min_raw()),
        extreme(|t| t.max_raw()),
        vec![0; model.input_len()],
    ]);
    v
}

fn check(spec: &RandomSpec, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let model = random_model(&mut rng, spec);
    let (exact, fast) = (
        Golden::new(&model, Arithmetic::Exact),
        Golden::new(&model, Arithmetic::Fast),
    );
    for x in inputs(&mut rng, &model) {
        assert_eq!(
            fast.evaluate_all(&x).unwrap(),
            exact.evaluate_all(&x).unwrap(),
            "seed {seed} input {x:?}\n{model:#?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn dense_models_agree(seed in any::<u64>(), wide in any::<bool>()) {
        check(&RandomSpec { max_bits: if wide { 32 } else { 16 }, ..RandomSpec::default() }, seed);
    }

    #[test]
    fn conv_models_agree(seed in any::<u64>(), wide in any::<bool>()) {
        check(
            &RandomSpec { max_bits: if wide { 32 } else { 16 }, conv: true, ..RandomSpec::default() },
            seed,
        );
    }
}
