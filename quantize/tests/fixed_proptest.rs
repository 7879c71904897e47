//! Property tests of `FixedType` for wide types (and string/serde round
//! trips, error messages) against an independent reference.
//!
//! The reference here is sign-magnitude and bit-serial: the magnitude of the
//! source is a vector of bits, the binary point is placed by slicing it, the
//! dropped bits are compared with "1000..." (one half) bit by bit, the
//! magnitude is rounded toward or away from zero per the mode's definition
//! for that sign, and the overflow stage works on the bit vector (two's
//! complement by invert-and-add-one). The implementation instead floors
//! two's complement i128 values with shifts and masks.

use proptest::prelude::*;
use quantize::fixed::{FixedError, FixedType, Overflow, Rounding};

const ROUNDINGS: [Rounding; 7] = Rounding::ALL;
const OVERFLOWS: [Overflow; 4] = Overflow::ALL;

fn add_one(bits: &mut Vec<bool>) {
    for b in bits.iter_mut() {
        if *b {
            *b = false;
        } else {
            *b = true;
            return;
        }
    }
    bits.push(true);
}

/// The code of the `w`-bit two's complement (or unsigned) pattern `bits` (LSB first).
fn code_of(bits: &[bool], signed: bool) -> i128 {
    let w = bits.len();
    let mut v: i128 = 0;
    for (i, &b) in bits.iter().enumerate() {
        if b {
            v += 1i128 << i;
        }
    }
    if signed && bits[w - 1] {
        v -= 1i128 << w;
    }
    v
}

/// Reference conversion of `raw * 2^-src_frac` into `ty`.
fn reference(ty: &FixedType, raw: i128, src_frac: i32) -> i64 {
    let w = ty.width as usize;
    let frac = i64::from(ty.width) - i64::from(ty.int_bits);
    // Value in target LSB units = raw * 2^d. Clamping d to +-300 changes
    // nothing: for d >= 300 a nonzero value is >= 2^300, out of every range,
    // and its low 64 bits are zero for any d >= 64; for d <= -300 the value
    // is below 2^-173 in magnitude, so its integer part is 0 and its dropped
    // part is nonzero and below one half exactly when raw != 0.
    let d = (frac - i64::from(src_frac)).clamp(-300, 300);
    let negative = raw < 0;
    let abs = raw.unsigned_abs();
    let bits: Vec<bool> = (0..128).map(|i| (abs >> i) & 1 == 1).collect();
    let (int_part, dropped): (Vec<bool>, Vec<bool>) = if d >= 0 {
        let mut v = vec![false; d as usize];
        v.extend(&bits);
        (v, Vec::new())
    } else {
        let s = (-d) as usize;
        let mut padded = bits.clone();
        padded.resize(s.max(128) + 1, false);
        (padded[s..].to_vec(), padded[..s].to_vec())
    };
    // dropped is LSB first: its last bit has weight 1/2.
    let half_bit = dropped.last().copied().unwrap_or(false);
    let below_half_bits = dropped.len().saturating_sub(1);
    let rest = dropped[..below_half_bits].iter().any(|&b| b);
    let exact = !half_bit && !rest;
    let (tie, above_half) = (half_bit && !rest, half_bit && rest);
    let odd = int_part[0];
    // Does the magnitude move away from zero (truncated magnitude + 1)?
    let away = !exact
        && match ty.rounding {
            Rounding::Trn => negative, // floor
            Rounding::TrnZero => false,
            Rounding::Rnd => above_half || (tie && !negative), // ties toward +inf
            Rounding::RndZero => above_half,
            Rounding::RndInf => above_half || tie,
            Rounding::RndMinInf => above_half || (tie && negative), // ties toward -inf
            Rounding::RndConv => above_half || (tie && odd),
        };
    let mut mag = int_part;
    if away {
        add_one(&mut mag);
    }
    let is_zero = mag.iter().all(|&b| !b);
    let negative = negative && !is_zero;

    // Overflow stage.
    let (min, max): (i128, i128) = if ty.signed {
        (-(1i128 << (w - 1)), (1i128 << (w - 1)) - 1)
    } else {
        (0, (1i128 << w) - 1)
    };
    let significant = mag.iter().rposition(|&b| b).map_or(0, |p| p + 1);
    // None: far outside any 64-bit range (the sign says which side).
    let k: Option<i128> = (significant <= 100).then(|| {
        let m = code_of(&mag[..significant.max(1)], false);
        if negative {
            -m
        } else {
            m
        }
    });
    let above = k.map_or(!negative, |k| k > max);
    let below = k.map_or(negative, |k| k < min);
    let wrapped = || {
        let mut low: Vec<bool> = mag.clone();
        low.resize(w.max(low.len()), false);
        low.truncate(w);
        if negative {
            for b in low.iter_mut() {
                *b = !*b;
            }
            add_one(&mut low);
            low.truncate(w);
        }
        code_of(&low, ty.signed)
    };
    // SAT_SYM's floor: per ap_fixed_base.h, signed underflow writes the
    // pattern with bit W-1 and bit 0 set, and a result equal to the most
    // negative code counts as underflow.
    let sym_floor = if ty.signed {
        let mut pattern = vec![false; w];
        pattern[0] = true;
        pattern[w - 1] = true;
        code_of(&pattern, true)
    } else {
        0
    };
    let result = match ty.overflow {
        Overflow::Wrap if above || below => wrapped(),
        Overflow::Sat | Overflow::SatSym if above => max,
        Overflow::Sat if below => min,
        Overflow::SatSym if below => sym_floor,
        Overflow::SatZero if above || below => 0,
        Overflow::SatSym => k.unwrap().max(sym_floor),
        _ => k.unwrap(),
    };
    result as i64
}

fn modes(base: FixedType) -> impl Iterator<Item = FixedType> {
    ROUNDINGS.into_iter().flat_map(move |r| {
        OVERFLOWS
            .into_iter()
            .map(move |o| base.with_rounding(r).with_overflow(o))
    })
}

fn check_all_modes(base: FixedType, raw: i128, src_frac: i32) -> Result<(), TestCaseError> {
    for ty in modes(base) {
        let got = ty.quantize_raw(raw, src_frac);
        let want = reference(&ty, raw, src_frac);
        prop_assert_eq!(
            got,
            want,
            "{} of raw {} at frac {}",
            ty.ap_string(),
            raw,
            src_frac
        );
    }
    Ok(())
}

fn arb_base(widths: std::ops::RangeInclusive<u32>) -> impl Strategy<Value = FixedType> {
    (
        widths,
        prop_oneof![4 => -80i32..=150, 1 => any::<i32>()],
        any::<bool>(),
    )
        .prop_filter_map("valid type", |(w, ib, s)| FixedType::new(w, ib, s).ok())
}

fn arb_raw() -> impl Strategy<Value = i128> {
    prop_oneof![
        any::<i128>(),
        any::<i64>().prop_map(i128::from),
        -5000i128..5000,
        (0u32..127, -3i128..=3, any::<bool>()).prop_map(|(p, d, neg)| {
            let v = (1i128 << p) + d;
            if neg {
                -v
            } else {
                v
            }
        }),
        Just(i128::MIN),
        Just(i128::MAX),
    ]
}

fn arb_type() -> impl Strategy<Value = FixedType> {
    (arb_base(1..=64), 0..7usize, 0..4usize)
        .prop_map(|(t, r, o)| t.with_rounding(ROUNDINGS[r]).with_overflow(OVERFLOWS[o]))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn wide_types_match_reference(
        base in arb_base(9..=64),
        raw in arb_raw(),
        delta in -140i64..=140,
        abs_frac in any::<i32>(),
        use_abs in prop::bool::weighted(0.15),
    ) {
        let near = i64::from(base.frac_bits()) + delta;
        let src_frac = if use_abs {
            abs_frac
        } else {
            near.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
        };
        check_all_modes(base, raw, src_frac)?;
    }

    #[test]
    fn exact_ties_match_reference(
        base in arb_base(9..=64),
        s in 1u32..=127,
        m in any::<i64>(),
    ) {
        // raw = odd * 2^(s-1) at frac F + s is an exact half-LSB tie.
        // |odd| < 2^b keeps |raw| < 2^126.
        let b = (127 - s).min(63);
        let odd = i128::from(m >> (63 - b)) | 1;
        let raw = odd.checked_mul(1i128 << (s - 1));
        let src_frac = i64::from(base.frac_bits()) + i64::from(s);
        prop_assume!(i32::try_from(src_frac).is_ok());
        check_all_modes(base, raw.unwrap(), src_frac as i32)?;
    }

    #[test]
    fn f64_matches_reference(
        ty in arb_type(),
        bits in any::<u64>(),
        m in -(1i64 << 53)..(1i64 << 53),
        e in -70i32..=70,
        use_bits in any::<bool>(),
    ) {
        let x = if use_bits {
            f64::from_bits(bits)
        } else {
            // Near the type's LSB: m * 2^(e - frac), when that is a normal double.
            let exp = e - ty.frac_bits().clamp(-900, 900);
            m as f64 * 2f64.powi(exp)
        };
        let want = if x.is_nan() {
            0
        } else if x.is_infinite() {
            // Documented: +-inf converts as +-2^1024.
            reference(&ty, if x > 0.0 { 1 } else { -1 }, -1024)
        } else {
            // Decompose without looking at the bit pattern: doubling and
            // halving are exact here.
            let (mut mant, mut frac) = (x, 0i32);
            while mant.fract() != 0.0 {
                mant *= 2.0;
                frac += 1;
            }
            while mant.abs() >= 2f64.powi(100) {
                mant /= 2.0;
                frac -= 1;
            }
            reference(&ty, mant as i128, frac)
        };
        prop_assert_eq!(ty.quantize_f64(x), want, "{} of {:e}", ty.ap_string(), x);
    }

    #[test]
    fn to_f64_is_correctly_rounded(
        base in (9..=64u32, -830..=900i32, any::<bool>())
            .prop_filter_map("valid type", |(w, ib, s)| FixedType::new(w, ib, s).ok()),
        bits in any::<u64>(),
    ) {
        let w = base.width;
        let raw = if base.signed {
            (bits as i64) >> (64 - w)
        } else {
            (bits >> (64 - w)) as i64
        };
        prop_assert!(base.contains_raw(raw));
        // Rust's i64 -> f64 cast rounds to nearest-even; scaling by a power
        // of two in the normal range is then exact.
        let want = raw as f64 * 2f64.powi(-base.frac_bits());
        prop_assert_eq!(base.to_f64(raw), want, "{} raw {}", base, raw);
        if w <= 53 {
            prop_assert_eq!(base.quantize_f64(want), raw);
        }
    }

    #[test]
    fn string_round_trips(ty in arb_type()) {
        let display = ty.to_string();
        prop_assert_eq!(display.parse::<FixedType>(), Ok(ty), "{}", display);
        let ap = ty.ap_string();
        prop_assert_eq!(ap.parse::<FixedType>(), Ok(ty), "{}", ap);
        let spaced = format!("  {}  ", ap.replace('<', " < ").replace(',', " , ").replace('>', " >"));
        prop_assert_eq!(spaced.parse::<FixedType>(), Ok(ty), "{}", spaced);
        // Explicit modes (with or without AP_) and an explicit N = 0.
        let full = format!(
            "{}<{},{},{},AP_{},0>",
            if ty.signed { "fixed" } else { "ap_ufixed" },
            ty.width, ty.int_bits, ty.rounding, ty.overflow
        );
        prop_assert_eq!(full.parse::<FixedType>(), Ok(ty), "{}", full);
        let json = serde_json::to_string(&ty).unwrap();
        prop_assert_eq!(serde_json::from_str::<FixedType>(&json).unwrap(), ty);
    }
}

/// Every width and signedness, huge and boundary shifts, extreme raw values.
#[test]
fn extremes_match_reference() {
    let raws = [
        i128::MIN,
        i128::MIN + 1,
        -(1i128 << 64),
        i128::from(i64::MIN),
        -3,
        -1,
        0,
        1,
        2,
        i128::from(i64::MAX),
        1i128 << 64,
        i128::MAX,
    ];
    for w in [
        1u32, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 52, 53, 54, 62, 63, 64,
    ] {
        for signed in [false, true] {
            for ib in [-70, -1, 0, 1, w as i32, w as i32 + 70, 100_000] {
                let Ok(base) = FixedType::new(w, ib, signed) else {
                    continue;
                };
                let f = i64::from(base.frac_bits());
                let mut fracs: Vec<i64> = vec![i64::from(i32::MIN), i64::from(i32::MAX)];
                for delta in [0, 1, 2, 63, 64, 65, 126, 127, 128, 129, 130, 200, 400] {
                    fracs.push(f + delta);
                    fracs.push(f - delta);
                }
                for &src in &fracs {
                    let Ok(src) = i32::try_from(src) else {
                        continue;
                    };
                    for &raw in &raws {
                        check_all_modes(base, raw, src).unwrap();
                    }
                }
            }
        }
    }
}

fn parse_err(s: &str) -> String {
    match s.parse::<FixedType>() {
        Ok(t) => panic!("'{s}' parsed as {t}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn error_messages_name_the_problem() {
    let cases: [(&str, &[&str]); 12] = [
        ("fixed<0,3>", &["width 0", "'fixed<0,3>'", "1..=64"]),
        ("fixed<65,3>", &["width 65", "'fixed<65,3>'", "1..=64"]),
        ("ufixed<64,3>", &["unsigned", "64", "'ufixed<64,3>'", "63"]),
        (
            "ap_fixed<16,6,AP_RND,AP_SAT,2>",
            &[
                "saturation bits N=2",
                "'ap_fixed<16,6,AP_RND,AP_SAT,2>'",
                "N=0",
            ],
        ),
        ("ap_fixed<16,6,AP_RND,AP_SAT,x>", &["saturation bits 'x'"]),
        ("garbage", &["cannot parse 'garbage'", "ap_fixed<W,I"]),
        ("float<16,6>", &["unknown type name 'float'"]),
        ("fixed<16,6", &["'fixed<16,6'", "'>'"]),
        (
            "fixed<16>",
            &["'fixed<16>'", "2 to 5 parameters", "found 1"],
        ),
        ("ap_int<8,3>", &["exactly 1 parameter", "found 2"]),
        ("fixed<abc,6>", &["width 'abc'"]),
        ("fixed<16,six>", &["integer bits 'six'"]),
    ];
    for (s, needles) in cases {
        let msg = parse_err(s);
        for n in needles {
            assert!(msg.contains(n), "message for '{s}' lacks '{n}': {msg}");
        }
    }
    assert!(parse_err("fixed<16,6,FOO>").starts_with(
        "unknown rounding mode 'FOO' in 'fixed<16,6,FOO>': expected one of \
         TRN, TRN_ZERO, RND, RND_ZERO, RND_INF, RND_MIN_INF, RND_CONV"
    ));
    assert!(parse_err("fixed<16,6,RNDX>").starts_with(
        "unknown rounding mode 'RNDX' in 'fixed<16,6,RNDX>': expected one of \
         TRN, TRN_ZERO, RND, RND_ZERO, RND_INF, RND_MIN_INF, RND_CONV"
    ));
    assert!(parse_err("ap_fixed<16,6,AP_RND,AP_WRAP_SM>").starts_with(
        "unknown overflow mode 'AP_WRAP_SM' in 'ap_fixed<16,6,AP_RND,AP_WRAP_SM>': \
         expected one of WRAP, SAT, SAT_ZERO, SAT_SYM"
    ));
    let e = "RNDX".parse::<Rounding>().unwrap_err();
    assert!(matches!(e, FixedError::UnknownRounding { .. }));
    assert!(e
        .to_string()
        .starts_with("unknown rounding mode 'RNDX': expected one of TRN,"));
    let e = "SATURATE".parse::<Overflow>().unwrap_err();
    assert!(e
        .to_string()
        .starts_with("unknown overflow mode 'SATURATE': expected one of WRAP,"));
    let e = FixedType::new(0, 0, true).unwrap_err();
    assert_eq!(
        e.to_string(),
        "fixed-point width 0 is out of range: must be 1..=64"
    );
}
