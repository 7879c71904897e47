//! Fixed-point types with the exact semantics of Xilinx `ap_fixed` / `ap_ufixed`.
//!
//! Every bxflow backend (golden model, CPU engine, generated HDL) must be
//! bit-exact to what Vitis HLS produces for `ap_fixed<W,I,Q,O>`. This module is
//! the single definition of that contract: a [`FixedType`] describes the type,
//! values are carried as *raw* integers (`value = raw * 2^-frac_bits`), and
//! every conversion into a type goes through [`FixedType::quantize_raw`], which
//! rounds first and then applies the overflow mode, in that order, as
//! `ap_fixed_base::operator=` does (see `ap_fixed_base.h`, `quantization_adjust`
//! then `overflow_adjust`, and UG1399 "Arbitrary Precision Fixed-Point Data
//! Types").
//!
//! Raw values are `i64`; hence widths are 1..=64 for signed types and 1..=63
//! for unsigned ones (an `ap_ufixed<64,..>` raw value does not fit in `i64`).
//! Saturation bits (`ap_fixed`'s fifth parameter `N`) other than 0 are not
//! supported.

use serde::{Deserialize, Serialize};

mod text;

/// Quantization (rounding) mode, applied when a value has more fractional
/// bits than the target type keeps. Names follow `ap_q_mode`.
///
/// The hardware only ever adds 0 or 1 to the truncated (floored) value; the
/// modes differ in when that increment happens, which is why each is
/// described relative to the floor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Rounding {
    /// `AP_TRN`: truncate, i.e. floor (toward -inf). Free in hardware: the
    /// dropped bits are simply discarded. The `ap_fixed` default.
    #[default]
    Trn,
    /// `AP_TRN_ZERO`: toward zero (negative values with dropped bits get +1).
    TrnZero,
    /// `AP_RND`: to nearest, ties toward +inf (increment if the first dropped bit is 1).
    Rnd,
    /// `AP_RND_ZERO`: to nearest, ties toward zero.
    RndZero,
    /// `AP_RND_INF`: to nearest, ties away from zero.
    RndInf,
    /// `AP_RND_MIN_INF`: to nearest, ties toward -inf.
    RndMinInf,
    /// `AP_RND_CONV`: to nearest, ties to even (convergent rounding).
    RndConv,
}

/// Overflow mode, applied after rounding when the rounded value is outside
/// the target's range. Names follow `ap_o_mode` (`AP_WRAP_SM` is not supported).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Overflow {
    /// `AP_WRAP`: keep the low `width` bits (two's complement, sign-extended
    /// when signed). Free in hardware: the high bits are not wired. The default.
    #[default]
    Wrap,
    /// `AP_SAT`: clamp to the type's minimum or maximum.
    Sat,
    /// `AP_SAT_ZERO`: any overflow, in either direction, gives 0.
    SatZero,
    /// `AP_SAT_SYM`: clamp symmetrically. For signed types the result is in
    /// `[-max, max]`: negative overflow gives `-max`, and -- as in
    /// `ap_fixed_base.h`, where a negative result whose low `W-1` bits are all
    /// zero counts as underflow -- a value that rounds exactly to the most
    /// negative code is also replaced by `-max`, so conversions never produce
    /// that code. One corner: a 1-bit signed type's codes are only -1 and 0,
    /// and `ap_fixed` writes the pattern `1` (= -1) on underflow, so there
    /// SAT_SYM behaves like SAT. For unsigned types SAT_SYM is SAT.
    SatSym,
}

impl Rounding {
    /// Every rounding mode, for sweeps in tests and tools.
    pub const ALL: [Rounding; 7] = [
        Rounding::Trn,
        Rounding::TrnZero,
        Rounding::Rnd,
        Rounding::RndZero,
        Rounding::RndInf,
        Rounding::RndMinInf,
        Rounding::RndConv,
    ];
}

impl Overflow {
    /// Every overflow mode, for sweeps in tests and tools.
    pub const ALL: [Overflow; 4] = [
        Overflow::Wrap,
        Overflow::Sat,
        Overflow::SatZero,
        Overflow::SatSym,
    ];
}

const ROUNDING_NAMES: &str = "TRN, TRN_ZERO, RND, RND_ZERO, RND_INF, RND_MIN_INF, RND_CONV";
const OVERFLOW_NAMES: &str = "WRAP, SAT, SAT_ZERO, SAT_SYM";

/// Errors from building or parsing fixed-point types. Each message names the
/// offending value and, when parsing, the whole text it came from.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum FixedError {
    #[error("fixed-point width {width}{} is out of range: must be 1..=64", in_text(.text))]
    WidthOutOfRange { width: i64, text: Option<String> },
    #[error(
        "unsigned fixed-point width 64{} is not supported: raw values are i64, \
         so unsigned types are limited to 63 bits",
        in_text(.text)
    )]
    UnsignedWidth64 { text: Option<String> },
    #[error(
        "integer bits {int_bits} with width {width}{} are out of range: the fractional \
         bit count width - int_bits must fit in an i32",
        in_text(.text)
    )]
    IntBitsOutOfRange {
        width: u32,
        int_bits: i32,
        text: Option<String>,
    },
    #[error(
        "unknown rounding mode '{mode}'{}: expected one of {ROUNDING_NAMES} (AP_ prefix optional)",
        in_text(.text)
    )]
    UnknownRounding { mode: String, text: Option<String> },
    #[error(
        "unknown overflow mode '{mode}'{}: expected one of {OVERFLOW_NAMES} (AP_ prefix optional)",
        in_text(.text)
    )]
    UnknownOverflow { mode: String, text: Option<String> },
    #[error("saturation bits N={n} in '{text}' are not supported: only N=0 (the default) is")]
    SaturationBits { n: String, text: String },
    #[error("cannot parse '{text}' as a fixed-point type: {reason}")]
    Syntax { text: String, reason: String },
}

fn in_text(text: &Option<String>) -> String {
    match text {
        Some(t) => format!(" in '{t}'"),
        None => String::new(),
    }
}

/// A fixed-point type: `ap_fixed<width, int_bits, rounding, overflow>` when
/// `signed`, else `ap_ufixed<...>`.
///
/// A raw value `raw` of this type stands for `raw * 2^-frac_bits()`, with
/// `frac_bits() = width - int_bits`; `int_bits` may be negative or exceed
/// `width` (then `frac_bits` is > width or negative), exactly as in `ap_fixed`.
///
/// Build it with [`FixedType::new`] or by parsing; deserialization validates
/// too. A value built with an invalid width through a struct literal never
/// panics: it is treated as if its width were clamped to the valid range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "FixedTypeRepr", into = "String")]
pub struct FixedType {
    pub width: u32,
    pub int_bits: i32,
    pub signed: bool,
    pub rounding: Rounding,
    pub overflow: Overflow,
}

/// Unvalidated serde form of [`FixedType`]: written as its hls4ml string
/// (`"fixed<16,6,RND,SAT>"`, what configs and `.bxq` metadata show a person),
/// read from that string or from the explicit fields (modes default to TRN / WRAP).
#[derive(Deserialize)]
#[serde(untagged)]
enum FixedTypeRepr {
    Text(String),
    Fields {
        width: u32,
        int_bits: i32,
        signed: bool,
        #[serde(default)]
        rounding: Rounding,
        #[serde(default)]
        overflow: Overflow,
    },
}

impl TryFrom<FixedTypeRepr> for FixedType {
    type Error = FixedError;
    fn try_from(f: FixedTypeRepr) -> Result<Self, FixedError> {
        match f {
            FixedTypeRepr::Text(s) => s.parse(),
            FixedTypeRepr::Fields {
                width,
                int_bits,
                signed,
                rounding,
                overflow,
            } => Ok(FixedType::new(width, int_bits, signed)?
                .with_rounding(rounding)
                .with_overflow(overflow)),
        }
    }
}

impl From<FixedType> for String {
    fn from(t: FixedType) -> String {
        t.to_string()
    }
}

/// The exact result of rounding, before the overflow stage: the value
/// saturated into i128 (the target range is within i64, so a saturated
/// value still compares correctly against it) and the value modulo 2^64
/// (all that wrapping into at most 64 bits needs).
struct Scaled {
    saturated: i128,
    low: u64,
}

/// Where the dropped part of a right shift lies, in units of one target LSB.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Dropped {
    Zero,
    BelowHalf,
    Half,
    AboveHalf,
}

/// `raw * 2^-from_frac` rounded (by `rounding`) to an integer multiple of
/// `2^-to_frac`, returned as that integer. Exact for every input, no panics.
fn rescale(raw: i128, from_frac: i64, to_frac: i64, rounding: Rounding) -> Scaled {
    // Both fracs lie well inside +-2^40, so this cannot overflow.
    let shift = from_frac - to_frac;
    if shift <= 0 {
        // Left shift: exact, no rounding; may exceed i128.
        let t = shift.unsigned_abs();
        let low = if t < 128 {
            ((raw as u128) << t) as u64
        } else {
            0
        };
        let exact = if t <= 126 {
            raw.checked_mul(1i128 << t)
        } else if raw == 0 {
            Some(0)
        } else {
            None
        };
        let saturated = exact.unwrap_or(if raw < 0 { i128::MIN } else { i128::MAX });
        return Scaled { saturated, low };
    }

    // Right shift by s >= 1: floor, then classify the dropped remainder
    // against one half of the new LSB.
    let negative = raw < 0;
    let (floor, dropped) = if shift <= 128 {
        let s = shift as u32;
        // raw >> 128 would be -1 or 0, which is what raw >> 127 gives.
        let floor = if s == 128 { raw >> 127 } else { raw >> s };
        let mask = if s == 128 {
            u128::MAX
        } else {
            (1u128 << s) - 1
        };
        // Two's complement: the low bits are the non-negative remainder of the floor division.
        let rem = (raw as u128) & mask;
        let half = 1u128 << (s - 1);
        let dropped = if rem == 0 {
            Dropped::Zero
        } else if rem < half {
            Dropped::BelowHalf
        } else if rem == half {
            Dropped::Half
        } else {
            Dropped::AboveHalf
        };
        (floor, dropped)
    } else {
        // |raw| <= 2^127 < 2^(shift-1): the value is strictly within half an
        // LSB of zero. A positive value floors to 0 with a remainder below
        // one half; a negative one floors to -1 with a remainder above it.
        match raw {
            0 => (0, Dropped::Zero),
            r if r < 0 => (-1, Dropped::AboveHalf),
            _ => (0, Dropped::BelowHalf),
        }
    };
    let increment = dropped != Dropped::Zero
        && match rounding {
            Rounding::Trn => false,
            Rounding::TrnZero => negative,
            Rounding::Rnd => dropped >= Dropped::Half,
            Rounding::RndZero => {
                dropped == Dropped::AboveHalf || (dropped == Dropped::Half && negative)
            }
            Rounding::RndInf => {
                dropped == Dropped::AboveHalf || (dropped == Dropped::Half && !negative)
            }
            Rounding::RndMinInf => dropped == Dropped::AboveHalf,
            Rounding::RndConv => {
                dropped == Dropped::AboveHalf || (dropped == Dropped::Half && floor & 1 == 1)
            }
        };
    // floor <= i128::MAX >> 1, so the increment cannot overflow.
    let value = floor + i128::from(increment);
    Scaled {
        saturated: value,
        low: value as u64,
    }
}

/// `2^k` for `k` in `-1074..=1023` (every power of two an f64 holds exactly).
fn pow2(k: i64) -> f64 {
    debug_assert!((-1074..=1023).contains(&k));
    if k >= -1022 {
        f64::from_bits(((k + 1023) as u64) << 52)
    } else {
        f64::from_bits(1u64 << (k + 1074))
    }
}

impl FixedType {
    /// A type with the `ap_fixed` default modes (TRN, WRAP).
    ///
    /// Errors: width outside 1..=64, an unsigned width of 64 (its raw values
    /// would not fit in i64), or `width - int_bits` outside i32.
    pub fn new(width: u32, int_bits: i32, signed: bool) -> Result<Self, FixedError> {
        if !(1..=64).contains(&width) {
            return Err(FixedError::WidthOutOfRange {
                width: i64::from(width),
                text: None,
            });
        }
        if !signed && width == 64 {
            return Err(FixedError::UnsignedWidth64 { text: None });
        }
        if i32::try_from(i64::from(width) - i64::from(int_bits)).is_err() {
            return Err(FixedError::IntBitsOutOfRange {
                width,
                int_bits,
                text: None,
            });
        }
        Ok(FixedType {
            width,
            int_bits,
            signed,
            rounding: Rounding::Trn,
            overflow: Overflow::Wrap,
        })
    }

    /// `ap_fixed<width, int_bits>`.
    pub fn signed(width: u32, int_bits: i32) -> Result<Self, FixedError> {
        Self::new(width, int_bits, true)
    }

    /// `ap_ufixed<width, int_bits>` (width at most 63).
    pub fn unsigned(width: u32, int_bits: i32) -> Result<Self, FixedError> {
        Self::new(width, int_bits, false)
    }

    pub fn with_rounding(self, rounding: Rounding) -> Self {
        FixedType { rounding, ..self }
    }

    pub fn with_overflow(self, overflow: Overflow) -> Self {
        FixedType { overflow, ..self }
    }

    /// The width actually used: `width` clamped to what raw i64 values can hold.
    fn eff_width(&self) -> u32 {
        self.width.clamp(1, if self.signed { 64 } else { 63 })
    }

    fn frac(&self) -> i64 {
        i64::from(self.eff_width()) - i64::from(self.int_bits)
    }

    /// `width - int_bits`: raw = value * 2^frac_bits. May be negative or
    /// larger than the width. (Saturates at the i32 bounds, which only a type
    /// not built by [`FixedType::new`] can reach.)
    pub fn frac_bits(&self) -> i32 {
        self.frac().clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
    }

    /// The most negative raw code (0 for unsigned types). Note that
    /// conversions with [`Overflow::SatSym`] never produce it for signed types
    /// of width >= 2, although it is a valid value of the type.
    pub fn min_raw(&self) -> i64 {
        if self.signed {
            i64::MIN >> (64 - self.eff_width())
        } else {
            0
        }
    }

    /// The largest raw code.
    pub fn max_raw(&self) -> i64 {
        let magnitude_bits = self.eff_width() - u32::from(self.signed);
        ((1u64 << magnitude_bits) - 1) as i64
    }

    /// Whether `raw` is a code of this type.
    pub fn contains_raw(&self, raw: i64) -> bool {
        (self.min_raw()..=self.max_raw()).contains(&raw)
    }

    /// Converts the exact value `raw * 2^-frac` into this type and returns the
    /// raw code, as assigning it to an `ap_fixed` variable does: first round
    /// to this type's LSB with `self.rounding` (exactly, however far the
    /// shift), then, if the rounded value is outside the range, apply
    /// `self.overflow`. Total: defined and panic-free for every input.
    pub fn quantize_raw(&self, raw: i128, frac: i32) -> i64 {
        let scaled = rescale(raw, i64::from(frac), self.frac(), self.rounding);
        self.apply_overflow(scaled)
    }

    fn apply_overflow(&self, k: Scaled) -> i64 {
        let (min, max) = (self.min_raw(), self.max_raw());
        // SAT_SYM's lower bound for signed types: ap_fixed writes the pattern
        // 100..01 on underflow (-max; for width 1 that pattern is -1 = min).
        let sym_min = if self.signed && self.eff_width() >= 2 {
            min + 1
        } else {
            min
        };
        let v = k.saturated;
        if v > i128::from(max) {
            match self.overflow {
                Overflow::Wrap => self.wrap(k.low),
                Overflow::Sat | Overflow::SatSym => max,
                Overflow::SatZero => 0,
            }
        } else if v < i128::from(min) {
            match self.overflow {
                Overflow::Wrap => self.wrap(k.low),
                Overflow::Sat => min,
                Overflow::SatSym => sym_min,
                Overflow::SatZero => 0,
            }
        } else if self.overflow == Overflow::SatSym && v == i128::from(min) {
            sym_min
        } else {
            v as i64
        }
    }

    /// The low `width` bits of `low`, sign-extended when signed.
    fn wrap(&self, low: u64) -> i64 {
        let unused = 64 - self.eff_width();
        if self.signed {
            ((low << unused) as i64) >> unused
        } else {
            ((low << unused) >> unused) as i64
        }
    }

    /// Converts an f64 exactly (an f64 is a dyadic rational, so no floating
    /// point rounding is involved): the same as [`FixedType::quantize_raw`]
    /// of its mantissa and exponent. Subnormals are converted exactly.
    ///
    /// Non-finite inputs: NaN gives 0. +-inf is treated as +-2^1024, which is
    /// what `ap_fixed`'s double constructor does (all-ones exponent with the
    /// implicit bit), so the overflow mode decides: SAT/SAT_SYM give max/min
    /// (-max for SAT_SYM), SAT_ZERO gives 0, and WRAP gives the low bits of
    /// 2^1024, i.e. 0 unless `int_bits > 1024`.
    pub fn quantize_f64(&self, x: f64) -> i64 {
        if x.is_nan() {
            return 0;
        }
        let bits = x.to_bits();
        let biased = ((bits >> 52) & 0x7ff) as i32;
        let fraction = bits & ((1u64 << 52) - 1);
        let (mantissa, exponent) = match biased {
            0x7ff => (1u64, 1024), // infinity
            0 => (fraction, -1074),
            e => (fraction | (1u64 << 52), e - 1075),
        };
        let raw = if bits >> 63 == 1 {
            -i128::from(mantissa)
        } else {
            i128::from(mantissa)
        };
        self.quantize_raw(raw, -exponent)
    }

    /// The value of `raw` as an f64: exact whenever it is representable
    /// (always for width <= 53 unless the exponent is out of f64's range),
    /// otherwise correctly rounded to nearest, ties to even, including into
    /// the subnormal range; overflows to +-inf.
    pub fn to_f64(&self, raw: i64) -> f64 {
        if raw == 0 {
            return 0.0;
        }
        let exp = -self.frac(); // value = raw * 2^exp
        let top = exp + 63 - i64::from(raw.unsigned_abs().leading_zeros()); // leading bit's exponent
                                                                            // The LSB exponent of the f64 that will hold the value: 53 significant
                                                                            // bits for normal numbers, a fixed 2^-1074 for subnormals.
        let lsb = if top >= -1022 { top - 52 } else { -1074 };
        let m = rescale(i128::from(raw), -exp, -lsb, Rounding::RndConv).saturated;
        // |m| <= 2^53, so it converts exactly, and m * 2^lsb is representable
        // unless it is >= 2^1024, where the product is correctly +-inf.
        if lsb > 1023 {
            return if raw < 0 {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            };
        }
        if m == 0 {
            // Rounded to zero below the smallest subnormal: keep the sign, as IEEE does.
            return if raw < 0 { -0.0 } else { 0.0 };
        }
        m as f64 * pow2(lsb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> FixedType {
        s.parse().unwrap()
    }

    #[test]
    fn rounding_table_at_integer_lsb() {
        // value = raw / 4 into an integer type; columns: 2.5 1.5 -1.5 -2.5 2.25 -2.25 2.75 -2.75
        let inputs = [10, 6, -6, -10, 9, -9, 11, -11];
        let table: [(Rounding, [i64; 8]); 7] = [
            (Rounding::Trn, [2, 1, -2, -3, 2, -3, 2, -3]),
            (Rounding::TrnZero, [2, 1, -1, -2, 2, -2, 2, -2]),
            (Rounding::Rnd, [3, 2, -1, -2, 2, -2, 3, -3]),
            (Rounding::RndZero, [2, 1, -1, -2, 2, -2, 3, -3]),
            (Rounding::RndInf, [3, 2, -2, -3, 2, -2, 3, -3]),
            (Rounding::RndMinInf, [2, 1, -2, -3, 2, -2, 3, -3]),
            (Rounding::RndConv, [2, 2, -2, -2, 2, -2, 3, -3]),
        ];
        for (r, want) in table {
            let ty = FixedType::signed(8, 8).unwrap().with_rounding(r);
            let got: Vec<i64> = inputs.iter().map(|&x| ty.quantize_raw(x, 2)).collect();
            assert_eq!(got, want, "{r}");
        }
    }

    #[test]
    fn rnd_conv_ties() {
        // ap_fixed<7,4,AP_RND_CONV>: LSB 0.125, so odd multiples of 0.0625 are ties.
        let ty = t("ap_fixed<7,4,AP_RND_CONV>");
        let cases = [
            (0.0625, 0.0),
            (0.1875, 0.25),
            (0.3125, 0.25),
            (0.4375, 0.5),
            (-0.0625, 0.0),
            (-0.1875, -0.25),
            (-0.3125, -0.25),
            (7.9375, -8.0), // rounds to 8.0, which wraps
        ];
        for (x, want) in cases {
            assert_eq!(ty.to_f64(ty.quantize_f64(x)), want, "{x}");
        }
        // ap_fixed<8,3,AP_RND_CONV>: LSB 2^-5; multiples of 0.0625 are exact, odd multiples of 2^-6 tie.
        let ty = t("ap_fixed<8,3,AP_RND_CONV>");
        for k in -64..64 {
            assert_eq!(ty.quantize_f64(0.0625 * k as f64), 2 * k);
            let tie = (2 * k + 1) as f64 / 64.0; // between raw k and k+1
            let even = if k % 2 == 0 { k } else { k + 1 };
            assert_eq!(ty.quantize_f64(tie), even, "{tie}");
        }
    }

    #[test]
    fn sat_sym() {
        let ty = t("ap_fixed<8,8,AP_TRN,AP_SAT_SYM>");
        assert_eq!(ty.quantize_raw(-128, 0), -127); // in range, but the most negative code
        assert_eq!(ty.quantize_raw(-1000, 0), -127);
        assert_eq!(ty.quantize_raw(1000, 0), 127);
        assert_eq!(ty.quantize_raw(-127, 0), -127);
        assert_eq!(ty.quantize_raw(-255, 1), -127); // -127.5 floors to -128
        let sat = ty.with_overflow(Overflow::Sat);
        assert_eq!(sat.quantize_raw(-128, 0), -128);
        assert_eq!(sat.quantize_raw(-1000, 0), -128);
        // 1-bit signed: codes -1 and 0; ap_fixed writes pattern 1 (= -1) on underflow.
        let one = t("fixed<1,1,TRN,SAT_SYM>");
        assert_eq!(one.quantize_raw(-5, 0), -1);
        assert_eq!(one.quantize_raw(5, 0), 0);
        // Unsigned: SAT_SYM is SAT.
        let u = t("ap_ufixed<4,4,AP_TRN,AP_SAT_SYM>");
        assert_eq!(u.quantize_raw(-3, 0), 0);
        assert_eq!(u.quantize_raw(99, 0), 15);
    }

    #[test]
    fn unsigned_negative_inputs() {
        // ap_ufixed<8,4>: LSB 1/16, range [0, 15.9375].
        let base = t("ap_ufixed<8,4>");
        assert_eq!(base.quantize_f64(-1.0), 240); // wraps to 15.0
        assert_eq!(base.quantize_f64(-0.03125), 255); // floors to -1/16, wraps
        assert_eq!(base.with_rounding(Rounding::Rnd).quantize_f64(-0.03125), 0); // tie toward +inf
        for o in [Overflow::Sat, Overflow::SatZero, Overflow::SatSym] {
            assert_eq!(base.with_overflow(o).quantize_f64(-1.0), 0, "{o}");
            assert_eq!(base.with_overflow(o).quantize_f64(-1e300), 0, "{o}");
        }
        assert_eq!(base.with_overflow(Overflow::SatZero).quantize_f64(16.0), 0);
        assert_eq!(base.with_overflow(Overflow::Sat).quantize_f64(16.0), 255);
    }

    #[test]
    fn huge_shifts() {
        let ty = t("fixed<8,8>");
        assert_eq!(ty.quantize_raw(-1, i32::MAX), -1); // tiny negative floors to -1
        assert_eq!(
            ty.with_rounding(Rounding::TrnZero)
                .quantize_raw(-1, i32::MAX),
            0
        );
        assert_eq!(
            ty.with_rounding(Rounding::RndMinInf)
                .quantize_raw(-1, i32::MAX),
            0
        );
        assert_eq!(ty.quantize_raw(i128::MAX, i32::MAX), 0);
        // Exactly -1/2 LSB: i128::MIN * 2^-128.
        assert_eq!(
            ty.with_rounding(Rounding::Rnd).quantize_raw(i128::MIN, 128),
            0
        );
        assert_eq!(
            ty.with_rounding(Rounding::RndInf)
                .quantize_raw(i128::MIN, 128),
            -1
        );
        assert_eq!(
            ty.with_rounding(Rounding::RndConv)
                .quantize_raw(i128::MIN, 128),
            0
        );
        assert_eq!(
            ty.with_rounding(Rounding::RndInf)
                .quantize_raw(i128::MIN, 129),
            0
        );
        // Left shifts: by >= width wraps to 0; overflowing i128 still saturates correctly.
        assert_eq!(ty.quantize_raw(3, -8), 0);
        assert_eq!(ty.quantize_raw(3, -7), -128);
        assert_eq!(ty.quantize_raw(1, i32::MIN), 0);
        let sat = ty.with_overflow(Overflow::Sat);
        assert_eq!(sat.quantize_raw(1, i32::MIN), 127);
        assert_eq!(sat.quantize_raw(-1, i32::MIN), -128);
        assert_eq!(sat.quantize_raw(i128::MIN, -1), -128);
        let w64 = t("fixed<64,64>");
        assert_eq!(w64.quantize_raw(i128::MAX, 0), -1);
        assert_eq!(w64.quantize_raw(i128::from(i64::MIN) - 1, 0), i64::MAX);
        assert_eq!(w64.quantize_raw(-1, -63), i64::MIN);
        assert_eq!(
            w64.with_overflow(Overflow::SatSym).quantize_raw(-1, -63),
            i64::MIN + 1
        );
        // Extreme int_bits: frac_bits far from zero, still no panic.
        let far = FixedType::signed(64, i32::MIN + 65).unwrap();
        assert_eq!(far.frac_bits(), i32::MAX);
        assert_eq!(far.quantize_raw(1, 0), 0); // 2^(2^31-1) wraps to 0
        assert_eq!(
            far.with_overflow(Overflow::Sat).quantize_raw(1, 0),
            i64::MAX
        );
        assert_eq!(far.quantize_raw(1, i32::MAX), 1);
        assert!(FixedType::signed(64, i32::MIN + 64).is_err());
    }

    #[test]
    fn f64_special_values() {
        let ty = t("fixed<8,4>");
        assert_eq!(ty.quantize_f64(f64::NAN), 0);
        assert_eq!(ty.quantize_f64(f64::INFINITY), 0);
        assert_eq!(ty.quantize_f64(-0.0), 0);
        let sat = ty.with_overflow(Overflow::Sat);
        assert_eq!(sat.quantize_f64(f64::INFINITY), 127);
        assert_eq!(sat.quantize_f64(f64::NEG_INFINITY), -128);
        assert_eq!(
            ty.with_overflow(Overflow::SatSym)
                .quantize_f64(f64::NEG_INFINITY),
            -127
        );
        let tiny = f64::from_bits(1); // 2^-1074
        assert_eq!(ty.quantize_f64(tiny), 0);
        assert_eq!(ty.quantize_f64(-tiny), -1);
        assert_eq!(ty.with_rounding(Rounding::RndInf).quantize_f64(-tiny), 0);
        // A type whose LSB is 2^-1074 represents subnormals exactly.
        let sub = FixedType::signed(60, 60 - 1074).unwrap();
        assert_eq!(sub.quantize_f64(tiny), 1);
        assert_eq!(sub.quantize_f64(f64::MIN_POSITIVE), 1 << 52);
    }

    #[test]
    fn to_f64_rounding() {
        assert_eq!(t("fixed<16,6>").to_f64(1), 2f64.powi(-10));
        assert_eq!(t("ufixed<63,63>").to_f64(i64::MAX), 2f64.powi(63));
        assert_eq!(t("fixed<64,64>").to_f64(i64::MIN), -(2f64.powi(63)));
        // LSB 2^-1078: raw 16 is 2^-1074; raw 8 and 24 are ties around subnormals.
        let ty = FixedType::signed(8, 8 - 1078).unwrap();
        let tiny = f64::from_bits(1);
        assert_eq!(ty.to_f64(16), tiny);
        assert_eq!(ty.to_f64(8), 0.0);
        assert_eq!(ty.to_f64(24), 2.0 * tiny);
        assert_eq!(ty.to_f64(-24), -2.0 * tiny);
        assert_eq!(ty.to_f64(9), tiny);
        // Huge exponents.
        assert_eq!(
            FixedType::signed(8, 2000).unwrap().to_f64(-1),
            f64::NEG_INFINITY
        );
        assert_eq!(FixedType::signed(8, 1032).unwrap().to_f64(1), f64::INFINITY);
        assert_eq!(
            FixedType::signed(8, 1024).unwrap().to_f64(1),
            2f64.powi(1016)
        );
        assert_eq!(FixedType::signed(8, -5000).unwrap().to_f64(127), 0.0);
    }

    #[test]
    fn ranges() {
        assert_eq!(
            (t("fixed<8,3>").min_raw(), t("fixed<8,3>").max_raw()),
            (-128, 127)
        );
        assert_eq!(
            (t("ufixed<8,0>").min_raw(), t("ufixed<8,0>").max_raw()),
            (0, 255)
        );
        assert_eq!(t("fixed<64,0>").min_raw(), i64::MIN);
        assert_eq!(t("fixed<64,0>").max_raw(), i64::MAX);
        assert_eq!(t("ufixed<63,0>").max_raw(), i64::MAX);
        assert_eq!(
            (t("fixed<1,1>").min_raw(), t("fixed<1,1>").max_raw()),
            (-1, 0)
        );
        assert!(t("ufixed<1,1>").contains_raw(1) && !t("ufixed<1,1>").contains_raw(2));
        assert_eq!(t("fixed<16,6>").frac_bits(), 10);
        assert_eq!(t("fixed<8,-3>").frac_bits(), 11);
        assert_eq!(t("fixed<8,12>").frac_bits(), -4);
    }

    #[test]
    fn strings() {
        let ty = FixedType::signed(16, 6).unwrap();
        assert_eq!(ty.to_string(), "fixed<16,6>");
        assert_eq!(ty.ap_string(), "ap_fixed<16,6>");
        let rs = ty.with_rounding(Rounding::Rnd).with_overflow(Overflow::Sat);
        assert_eq!(rs.to_string(), "fixed<16,6,RND,SAT>");
        assert_eq!(rs.ap_string(), "ap_fixed<16,6,AP_RND,AP_SAT>");
        assert_eq!(
            ty.with_overflow(Overflow::Sat).to_string(),
            "fixed<16,6,TRN,SAT>"
        );
        assert_eq!(
            ty.with_rounding(Rounding::RndConv).to_string(),
            "fixed<16,6,RND_CONV>"
        );
        let u = FixedType::unsigned(8, 0).unwrap();
        assert_eq!(u.ap_string(), "ap_ufixed<8,0>");
        let u = u
            .with_rounding(Rounding::RndConv)
            .with_overflow(Overflow::SatSym);
        assert_eq!(u.to_string(), "ufixed<8,0,RND_CONV,SAT_SYM>");
        assert_eq!(t(" ap_fixed < 16 , 6 , AP_RND , AP_SAT , 0 > "), rs);
        assert_eq!(t("fixed<16,6,rnd,ap_sat>"), rs);
        assert_eq!(t("ap_int<12>"), FixedType::signed(12, 12).unwrap());
        assert_eq!(t("uint<7>"), FixedType::unsigned(7, 7).unwrap());
        assert_eq!(
            "AP_RND_MIN_INF".parse::<Rounding>().unwrap(),
            Rounding::RndMinInf
        );
        assert_eq!("sat_zero".parse::<Overflow>().unwrap(), Overflow::SatZero);
    }

    #[test]
    fn serde_validates() {
        let ty = t("fixed<16,6,RND,SAT>");
        let json = serde_json::to_string(&ty).unwrap();
        assert_eq!(json, r#""fixed<16,6,RND,SAT>""#);
        assert_eq!(serde_json::from_str::<FixedType>(&json).unwrap(), ty);
        let bad_text = serde_json::from_str::<FixedType>(r#""fixed<0,3>""#);
        assert!(bad_text.unwrap_err().to_string().contains("width 0"));
        let defaults: FixedType =
            serde_json::from_str(r#"{"width":8,"int_bits":3,"signed":false}"#).unwrap();
        assert_eq!(defaults, FixedType::unsigned(8, 3).unwrap());
        let bad = serde_json::from_str::<FixedType>(r#"{"width":0,"int_bits":3,"signed":true}"#);
        assert!(bad.unwrap_err().to_string().contains("width 0"));
    }

    #[test]
    fn invalid_struct_literals_do_not_panic() {
        for width in [0, 64, 65, u32::MAX] {
            for signed in [false, true] {
                for int_bits in [i32::MIN, -1, 0, 70, i32::MAX] {
                    let ty = FixedType {
                        width,
                        int_bits,
                        signed,
                        rounding: Rounding::RndConv,
                        overflow: Overflow::Wrap,
                    };
                    let _ = (ty.frac_bits(), ty.min_raw(), ty.max_raw(), ty.to_string());
                    for raw in [i128::MIN, -1, 0, 1, i128::MAX] {
                        for frac in [i32::MIN, -1, 0, 1, i32::MAX] {
                            let q = ty.quantize_raw(raw, frac);
                            assert!(ty.contains_raw(q));
                            let _ = ty.to_f64(q);
                        }
                    }
                }
            }
        }
    }
}
