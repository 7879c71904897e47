//! Rate-driven testbench for bxflow networks.
//!
//! * [`fpga`]: drives the cycle-level simulation of an `hdl` kernel (the
//!   netlist simulator, or Verilator on the exported Verilog) with an event
//!   stream at a given rate, through a fixed-depth input FIFO as firmware
//!   would; measures latency, intervals, queue depth, throughput and losses;
//!   checks every output bit for bit against the golden model.
//! * [`cpu`]: streams events through `engine::pipeline`, paced or as fast as
//!   possible; latency distribution, drops, bit-exactness, highest rate
//!   without drops.
//! * [`report`]: JSON for CI, a terminal summary, and SVG plots ([`plots`]).

pub mod arrivals;
pub mod cpu;
pub mod fpga;
pub mod plots;
pub mod report;
pub mod stream;
pub mod verilator;

pub use arrivals::Arrivals;
pub use cpu::{run_cpu, CpuConfig};
pub use fpga::{run_fpga, FpgaConfig, SimChoice};
pub use report::Report;
pub use stream::EventPool;

#[derive(Debug, thiserror::Error)]
pub enum TbError {
    #[error("input: {0}")]
    Input(String),
    #[error("engine: {0}")]
    Engine(String),
    #[error("simulation: {0}")]
    Sim(String),
    #[error("{0}")]
    Io(String),
}

/// A progress bar on stderr for long runs (hidden when `on` is false or
/// stderr is not a terminal).
pub(crate) fn progress_bar(on: bool, len: u64, what: &str) -> Option<indicatif::ProgressBar> {
    if !on {
        return None;
    }
    let pb = indicatif::ProgressBar::new(len);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb.set_prefix(what.to_string());
    Some(pb)
}

/// Parses a rate or a clock such as `40MHz`, `40 MHz`, `200mhz`, `1GHz`, `500kHz`, `40` (MHz).
pub fn parse_mhz(s: &str) -> Result<f64, String> {
    let t = s.trim().to_ascii_lowercase().replace(' ', "");
    let (num, mul) = if let Some(n) = t.strip_suffix("ghz") {
        (n, 1000.0)
    } else if let Some(n) = t.strip_suffix("mhz") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix("khz") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix("hz") {
        (n, 1e-6)
    } else {
        (t.as_str(), 1.0)
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("cannot read '{s}' as a frequency (e.g. 40MHz)"))?;
    if v.is_nan() || v <= 0.0 || !v.is_finite() {
        return Err(format!("frequency '{s}' must be positive"));
    }
    Ok(v * mul)
}

/// Parses a duration such as `1us`, `500ns`, `2.5us`, `1ms`, `1000` (ns); returns ns.
pub fn parse_ns(s: &str) -> Result<f64, String> {
    let t = s.trim().to_ascii_lowercase().replace(' ', "");
    let (num, mul) = if let Some(n) = t.strip_suffix("ns") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix("us").or_else(|| t.strip_suffix("µs")) {
        (n, 1e3)
    } else if let Some(n) = t.strip_suffix("ms") {
        (n, 1e6)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1e9)
    } else {
        (t.as_str(), 1.0)
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("cannot read '{s}' as a duration (e.g. 1us)"))?;
    if v.is_nan() || v <= 0.0 || !v.is_finite() {
        return Err(format!("duration '{s}' must be positive"));
    }
    Ok(v * mul)
}

/// Loads a model for the testbench: a `.bxq` artifact as is, or an `.onnx`
/// quantized with the default precision (`quantize::config::default_precision`).
pub fn load_model(path: &std::path::Path) -> Result<quantize::qmodel::QModel, TbError> {
    let p = path.display().to_string();
    if path.extension().and_then(|e| e.to_str()) == Some("onnx") {
        let g =
            quantize::onnx::import_path(path).map_err(|e| TbError::Input(format!("{p}: {e}")))?;
        let cfg = quantize::config::Config::uniform(quantize::config::default_precision());
        quantize::quantizer::quantize_graph(&g, &cfg)
            .map_err(|e| TbError::Input(format!("{p}: {e}")))
    } else {
        quantize::bxq::load(path).map_err(|e| TbError::Input(format!("{p}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn units() {
        assert_eq!(parse_mhz("40MHz").unwrap(), 40.0);
        assert_eq!(parse_mhz("1 GHz").unwrap(), 1000.0);
        assert_eq!(parse_mhz("200").unwrap(), 200.0);
        assert_eq!(parse_ns("1us").unwrap(), 1000.0);
        assert_eq!(parse_ns("250ns").unwrap(), 250.0);
        assert!(parse_mhz("fast").is_err());
    }
}
