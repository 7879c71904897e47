//! Frequencies and times as trigger people write them: `200MHz`, `40 kHz`,
//! `5ns`, `1us`. One parser: the command line plugs it into clap as the
//! `value_parser` of every `--clock`, `--rate` and `--budget`, and the
//! Python package reads `clock=`, `rate=` and `budget=` with it, so both
//! accept the same spellings and reject the same mistakes with the same
//! words. The other library functions take plain numbers (MHz, ns).

use std::fmt;

/// A frequency, in MHz.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mhz(pub f64);

/// A duration, in ns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ns(pub f64);

/// An offered event rate: a frequency, or `max` (as fast as the target goes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    Max,
    Of(Mhz),
}

impl fmt::Display for Mhz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} MHz", self.0)
    }
}

/// Splits `40 MHz` into the number and the lower-case unit, spaces ignored.
/// The unit is the trailing run of letters, so `1e3` stays a number.
fn split(s: &str) -> (String, String) {
    let t: String = s.trim().chars().filter(|c| !c.is_whitespace()).collect();
    let at = t
        .char_indices()
        .rev()
        .take_while(|&(_, c)| c.is_alphabetic())
        .last()
        .map_or(t.len(), |(i, _)| i);
    (t[..at].to_string(), t[at..].to_lowercase())
}

fn positive(num: &str, s: &str, what: &str, example: &str) -> Result<f64, String> {
    let v: f64 = num
        .parse()
        .map_err(|_| format!("cannot read '{s}' as a {what} (e.g. {example})"))?;
    if !v.is_finite() || v <= 0.0 {
        return Err(format!("{what} '{s}' must be positive and finite"));
    }
    Ok(v)
}

/// A unit's factor to the base unit, as a division for the sub-units so that
/// `500ps` is exactly 0.5 ns and `750kHz` exactly 0.75 MHz.
#[derive(Clone, Copy)]
enum Scale {
    Times(f64),
    Over(f64),
}

impl Scale {
    fn apply(self, v: f64) -> f64 {
        match self {
            Scale::Times(k) => v * k,
            Scale::Over(k) => v / k,
        }
    }
}

/// The time units a duration or a clock period may carry, to ns.
fn time_unit(unit: &str) -> Option<Scale> {
    Some(match unit {
        "ps" => Scale::Over(1e3),
        "ns" => Scale::Times(1.0),
        "us" | "µs" => Scale::Times(1e3),
        "ms" => Scale::Times(1e6),
        "s" => Scale::Times(1e9),
        _ => return None,
    })
}

/// A frequency: `1GHz`, `200MHz`, `40 kHz`, `1000000Hz`, a bare number (MHz),
/// or a clock period (`5ns` is 200 MHz), as firmware engineers also write clocks.
pub fn parse_frequency(s: &str) -> Result<Mhz, String> {
    let (num, unit) = split(s);
    let example = "40MHz, 200 MHz or 5ns";
    let to_mhz = match unit.as_str() {
        "ghz" => Scale::Times(1e3),
        "mhz" | "" => Scale::Times(1.0),
        "khz" => Scale::Over(1e3),
        "hz" => Scale::Over(1e6),
        u => {
            let to_ns = time_unit(u)
                .ok_or_else(|| format!("cannot read '{s}' as a frequency (e.g. {example})"))?;
            let period_ns = to_ns.apply(positive(&num, s, "clock period", example)?);
            return Ok(Mhz(1e3 / period_ns));
        }
    };
    Ok(Mhz(to_mhz.apply(positive(&num, s, "frequency", example)?)))
}

/// A duration: `250ns`, `1us`, `1 µs`, `2.5ms`, `1s`, `500ps`, or a bare number (ns).
pub fn parse_time(s: &str) -> Result<Ns, String> {
    let (num, unit) = split(s);
    let example = "1us or 500ns";
    let to_ns = time_unit(if unit.is_empty() { "ns" } else { &unit })
        .ok_or_else(|| format!("cannot read '{s}' as a duration (e.g. {example})"))?;
    Ok(Ns(to_ns.apply(positive(&num, s, "duration", example)?)))
}

/// A wait that may be zero (`0` or `0us`: no wait), otherwise as [`parse_time`].
pub fn parse_wait(s: &str) -> Result<Ns, String> {
    let (num, _) = split(s);
    if num.parse::<f64>() == Ok(0.0) {
        return Ok(Ns(0.0));
    }
    parse_time(s)
}

/// An offered rate: a frequency as [`parse_frequency`] reads it, or `max`.
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    if s.trim().eq_ignore_ascii_case("max") {
        Ok(Rate::Max)
    } else {
        parse_frequency(s).map(Rate::Of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequencies() {
        assert_eq!(parse_frequency("40MHz").unwrap().0, 40.0);
        assert_eq!(parse_frequency("40 MHz").unwrap().0, 40.0);
        assert_eq!(parse_frequency("200mhz").unwrap().0, 200.0);
        assert_eq!(parse_frequency("1 GHz").unwrap().0, 1000.0);
        assert_eq!(parse_frequency("200").unwrap().0, 200.0);
        assert_eq!(parse_frequency("40 kHz").unwrap().0, 0.04);
        assert_eq!(parse_frequency("5ns").unwrap().0, 200.0);
        assert_eq!(parse_frequency("4 ns").unwrap().0, 250.0);
        assert_eq!(parse_frequency("1e3").unwrap().0, 1000.0);
        assert_eq!(parse_frequency("750kHz").unwrap().0, 0.75);
        let e = parse_frequency("fast").unwrap_err();
        assert!(e.contains("'fast'") && e.contains("frequency"), "{e}");
        let e = parse_frequency("-40MHz").unwrap_err();
        assert!(e.contains("must be positive"), "{e}");
        let e = parse_frequency("40 furlongs").unwrap_err();
        assert!(e.contains("'40 furlongs'"), "{e}");
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("1us").unwrap().0, 1000.0);
        assert_eq!(parse_time("1 µs").unwrap().0, 1000.0);
        assert_eq!(parse_time("250ns").unwrap().0, 250.0);
        assert_eq!(parse_time("2.5ms").unwrap().0, 2.5e6);
        assert_eq!(parse_time("1000").unwrap().0, 1000.0);
        assert_eq!(parse_time("500ps").unwrap().0, 0.5);
        let e = parse_time("0us").unwrap_err();
        assert!(e.contains("must be positive"), "{e}");
        let e = parse_time("40MHz").unwrap_err();
        assert!(e.contains("duration"), "{e}");
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("MAX").unwrap(), Rate::Max);
        assert_eq!(parse_rate("750kHz").unwrap(), Rate::Of(Mhz(0.75)));
        assert!(parse_rate("soon").is_err());
    }
}
