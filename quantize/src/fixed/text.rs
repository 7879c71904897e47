//! The text forms of fixed-point types: the hls4ml (`fixed<16,6,RND,SAT>`)
//! and Vitis HLS (`ap_fixed<16,6,AP_RND,AP_SAT>`) spellings written, and every
//! accepted spelling parsed, kept apart from the arithmetic so that the exact
//! semantics in the parent module read without the string handling.

use super::{FixedError, FixedType, Overflow, Rounding};
use std::fmt;
use std::str::FromStr;

const TYPE_FORMS: &str = "expected ap_fixed<W,I[,Q[,O[,N]]]>, ap_ufixed<...>, fixed<...>, \
                          ufixed<...>, ap_int<W>, ap_uint<W>, int<W> or uint<W>";

impl FixedType {
    /// The Vitis HLS spelling: `ap_fixed<16,6,AP_RND,AP_SAT>`,
    /// `ap_ufixed<8,0>`. Default modes are omitted; a non-default overflow
    /// mode forces the rounding mode to be written.
    pub fn ap_string(&self) -> String {
        let name = if self.signed { "ap_fixed" } else { "ap_ufixed" };
        format!(
            "{name}<{},{}{}>",
            self.width,
            self.int_bits,
            self.mode_suffix("AP_")
        )
    }

    fn mode_suffix(&self, prefix: &str) -> String {
        if self.overflow != Overflow::Wrap {
            format!(",{prefix}{},{prefix}{}", self.rounding, self.overflow)
        } else if self.rounding != Rounding::Trn {
            format!(",{prefix}{}", self.rounding)
        } else {
            String::new()
        }
    }
}

/// The hls4ml spelling: `fixed<16,6>`, `fixed<16,6,RND,SAT>`,
/// `ufixed<8,0,RND_CONV,SAT_SYM>`, `fixed<16,6,TRN,SAT>`.
impl fmt::Display for FixedType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.signed { "fixed" } else { "ufixed" };
        write!(
            f,
            "{name}<{},{}{}>",
            self.width,
            self.int_bits,
            self.mode_suffix("")
        )
    }
}

impl fmt::Display for Rounding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rounding::Trn => "TRN",
            Rounding::TrnZero => "TRN_ZERO",
            Rounding::Rnd => "RND",
            Rounding::RndZero => "RND_ZERO",
            Rounding::RndInf => "RND_INF",
            Rounding::RndMinInf => "RND_MIN_INF",
            Rounding::RndConv => "RND_CONV",
        })
    }
}

impl fmt::Display for Overflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Overflow::Wrap => "WRAP",
            Overflow::Sat => "SAT",
            Overflow::SatZero => "SAT_ZERO",
            Overflow::SatSym => "SAT_SYM",
        })
    }
}

/// A mode name without its optional `AP_` prefix, upper-cased (mode names
/// are accepted case-insensitively).
fn mode_name(s: &str) -> String {
    let upper = s.trim().to_ascii_uppercase();
    match upper.strip_prefix("AP_") {
        Some(rest) => rest.to_string(),
        None => upper,
    }
}

fn parse_rounding(s: &str, text: Option<&str>) -> Result<Rounding, FixedError> {
    Ok(match mode_name(s).as_str() {
        "TRN" => Rounding::Trn,
        "TRN_ZERO" => Rounding::TrnZero,
        "RND" => Rounding::Rnd,
        "RND_ZERO" => Rounding::RndZero,
        "RND_INF" => Rounding::RndInf,
        "RND_MIN_INF" => Rounding::RndMinInf,
        "RND_CONV" => Rounding::RndConv,
        _ => {
            return Err(FixedError::UnknownRounding {
                mode: s.trim().to_string(),
                text: text.map(str::to_string),
            })
        }
    })
}

fn parse_overflow(s: &str, text: Option<&str>) -> Result<Overflow, FixedError> {
    Ok(match mode_name(s).as_str() {
        "WRAP" => Overflow::Wrap,
        "SAT" => Overflow::Sat,
        "SAT_ZERO" => Overflow::SatZero,
        "SAT_SYM" => Overflow::SatSym,
        _ => {
            return Err(FixedError::UnknownOverflow {
                mode: s.trim().to_string(),
                text: text.map(str::to_string),
            })
        }
    })
}

/// Accepts `TRN`, ..., `RND_CONV`, with or without `AP_`, any case.
impl FromStr for Rounding {
    type Err = FixedError;
    fn from_str(s: &str) -> Result<Self, FixedError> {
        parse_rounding(s, None)
    }
}

/// Accepts `WRAP`, `SAT`, `SAT_ZERO`, `SAT_SYM`, with or without `AP_`, any case.
impl FromStr for Overflow {
    type Err = FixedError;
    fn from_str(s: &str) -> Result<Self, FixedError> {
        parse_overflow(s, None)
    }
}

impl FixedType {
    /// A precision as a user writes it (`--precision`, Python's
    /// `precision=`): the type, and without rounding and overflow modes
    /// RND and SAT, the modes a trigger network wants, not ap_fixed's
    /// TRN and WRAP defaults.
    pub fn parse_precision(text: &str) -> Result<FixedType, FixedError> {
        let t: FixedType = text.parse()?;
        let has_modes = text.contains(',') && text.split(',').count() > 2;
        Ok(if has_modes {
            t
        } else {
            t.with_rounding(Rounding::Rnd).with_overflow(Overflow::Sat)
        })
    }
}

/// Parses `ap_fixed<W,I>`, `ap_fixed<W,I,Q>`, `ap_fixed<W,I,Q,O>`,
/// `ap_fixed<W,I,Q,O,0>`, the same for `ap_ufixed`, hls4ml's `fixed<...>` /
/// `ufixed<...>`, and `ap_int<W>`, `ap_uint<W>`, `int<W>`, `uint<W>` (as
/// `fixed<W,W>`). Modes may carry the `AP_` prefix or not; whitespace around
/// any token is ignored.
impl FromStr for FixedType {
    type Err = FixedError;
    fn from_str(s: &str) -> Result<Self, FixedError> {
        let text = s.trim();
        let syntax = |reason: String| FixedError::Syntax {
            text: text.to_string(),
            reason,
        };
        let Some((name, rest)) = text.split_once('<') else {
            return Err(syntax(TYPE_FORMS.to_string()));
        };
        let Some(inner) = rest.trim_end().strip_suffix('>') else {
            return Err(syntax("it must end with '>'".to_string()));
        };
        if inner.contains(['<', '>']) {
            return Err(syntax(
                "unexpected '<' or '>' inside the parameters".to_string(),
            ));
        }
        let (signed, integer) = match name.trim() {
            "ap_fixed" | "fixed" => (true, false),
            "ap_ufixed" | "ufixed" => (false, false),
            "ap_int" | "int" => (true, true),
            "ap_uint" | "uint" => (false, true),
            other => return Err(syntax(format!("unknown type name '{other}': {TYPE_FORMS}"))),
        };
        let args: Vec<&str> = inner.split(',').map(str::trim).collect();
        let expected = if integer { 1..=1 } else { 2..=5 };
        if !expected.contains(&args.len()) {
            let wanted = if integer {
                "exactly 1 parameter <W>"
            } else {
                "2 to 5 parameters <W,I[,Q[,O[,N]]]>"
            };
            return Err(syntax(format!("expected {wanted}, found {}", args.len())));
        }

        let width: i64 = args[0]
            .parse()
            .map_err(|_| syntax(format!("width '{}' is not an integer", args[0])))?;
        let width = match u32::try_from(width) {
            Ok(w) if (1..=64).contains(&w) => w,
            _ => {
                return Err(FixedError::WidthOutOfRange {
                    width,
                    text: Some(text.to_string()),
                })
            }
        };
        let int_bits: i32 = if integer {
            width as i32
        } else {
            args[1].parse().map_err(|_| {
                syntax(format!(
                    "integer bits '{}' is not an integer in i32 range",
                    args[1]
                ))
            })?
        };
        let mut ty = FixedType::new(width, int_bits, signed).map_err(|e| match e {
            FixedError::UnsignedWidth64 { .. } => FixedError::UnsignedWidth64 {
                text: Some(text.to_string()),
            },
            FixedError::IntBitsOutOfRange {
                width, int_bits, ..
            } => FixedError::IntBitsOutOfRange {
                width,
                int_bits,
                text: Some(text.to_string()),
            },
            other => other,
        })?;
        if let Some(q) = args.get(2) {
            ty.rounding = parse_rounding(q, Some(text))?;
        }
        if let Some(o) = args.get(3) {
            ty.overflow = parse_overflow(o, Some(text))?;
        }
        if let Some(n) = args.get(4) {
            match n.parse::<i64>() {
                Ok(0) => {}
                Ok(_) => {
                    return Err(FixedError::SaturationBits {
                        n: n.to_string(),
                        text: text.to_string(),
                    })
                }
                Err(_) => return Err(syntax(format!("saturation bits '{n}' is not an integer"))),
            }
        }
        Ok(ty)
    }
}
