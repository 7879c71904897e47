//! `.bxq` round trips, and every kind of damaged file is a clear error.

use proptest::prelude::*;
use quantize::bxq::{from_bytes, to_bytes};
use quantize::random::{random_model, RandomSpec};
use rand::{rngs::StdRng, SeedableRng};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn round_trip(seed in any::<u64>(), conv in any::<bool>()) {
        let m = random_model(&mut StdRng::seed_from_u64(seed), &RandomSpec { conv, ..RandomSpec::default() });
        let b = to_bytes(&m);
        prop_assert_eq!(from_bytes(&b, "m.bxq").unwrap(), m);
    }
}

fn sample() -> Vec<u8> {
    to_bytes(&random_model(
        &mut StdRng::seed_from_u64(3),
        &RandomSpec::default(),
    ))
}

#[test]
fn truncation_names_the_part_and_sizes() {
    let b = sample();
    let e = from_bytes(&b[..b.len() - 3], "m.bxq")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("truncated")
            && e.contains("weight blob")
            && e.contains(&format!("has {} bytes", b.len() - 3)),
        "{e}"
    );
    let e = from_bytes(&b[..20], "m.bxq").unwrap_err().to_string();
    assert!(e.contains("truncated") && e.contains("header"), "{e}");
}

#[test]
fn corruption_is_caught_by_the_checksum() {
    let mut b = sample();
    let last = b.len() - 1;
    b[last] ^= 1;
    let e = from_bytes(&b, "m.bxq").unwrap_err().to_string();
    assert!(e.contains("corrupted") && e.contains("checksum"), "{e}");
}

#[test]
fn wrong_magic_and_version() {
    let mut b = sample();
    b[8] = 9;
    let e = from_bytes(&b, "m.bxq").unwrap_err().to_string();
    assert!(
        e.contains("version 9") && e.contains("reads version 1"),
        "{e}"
    );
    let e = from_bytes(b"PK\x03\x04 this is a zip", "m.bxq")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a .bxq model"), "{e}");
}
