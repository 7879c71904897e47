//! Yosys synthesis of an export for its [`Family`] (`synth_xilinx` or
//! `synth_ecp5`): LUT, FF, DSP, BRAM counts and the longest
//! register-to-register path in cells (`ltp` over every cell but the
//! flip-flops, DSPs and RAMs, so paths end at registers, DSPs and memories;
//! LUTs and carry cells both count as one level). DSPs and RAMs are cut
//! because synthesis moves registers into them (A/B/P registers, a table
//! ROM's registered read), so a path through such a cell may hold a
//! register; their own delay is in the delay model of `pipeline.rs`.
//! Timing after place and route is [`crate::pnr`]'s.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::eda::{Background, EdaError};
use crate::manifest::{Manifest, ManifestError};
use crate::pipeline::Family;

#[derive(Clone, Debug, Default, Serialize)]
pub struct SynthReport {
    pub module: String,
    pub family: String,
    pub lut: u64,
    pub ff: u64,
    pub dsp: u64,
    pub bram: u64,
    pub carry: u64,
    pub lutram: u64,
    /// Wide-function multiplexers (MUXF7/F8/F9; ECP5 PFUMX/L6MUX21), each
    /// widening a LUT by one input.
    pub wide_mux: u64,
    /// Longest topological path between registers, in cells.
    pub logic_levels: Option<u64>,
    pub seconds: f64,
}

impl SynthReport {
    pub fn table(&self) -> String {
        format!(
            "| module | family | LUT | FF | DSP | BRAM | carry | wide mux | logic levels | yosys s |\n|---|---|---|---|---|---|---|---|---|---|\n| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} |\n",
            self.module,
            self.family,
            self.lut,
            self.ff,
            self.dsp,
            self.bram,
            self.carry,
            self.wide_mux,
            self.logic_levels.map(|l| l.to_string()).unwrap_or("?".into()),
            self.seconds
        )
    }
}

/// Parses Yosys' `stat` cell list and `ltp` line. Xilinx LUTs are LUT1 to
/// LUT6 and the LUT6_2 of a ternary adder (counted as LUT6 sites would be,
/// one each), ECP5's are LUT4; an
/// ECP5 DP16KD block RAM counts as one 18 kb BRAM.
pub fn parse_yosys_log(log: &str, module: &str, family: Family) -> SynthReport {
    let mut r = SynthReport {
        module: module.into(),
        family: family.name().into(),
        ..Default::default()
    };
    // The last `stat` printout is the whole design (the hierarchy's total
    // where the ternary adders stay instances of their module).
    let start = log.rfind("Number of cells:").unwrap_or(0);
    for line in log[start..].lines() {
        let mut it = line.split_whitespace();
        let (Some(cell), Some(n)) = (it.next(), it.next()) else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        if it.next().is_some() {
            continue;
        }
        // A RAMB36 is two 18 kb BRAMs.
        let (slot, per_cell) = match (family, cell) {
            (Family::Xcup, c) if c.starts_with("LUT") && (c.len() == 4 || c == "LUT6_2") => {
                (&mut r.lut, 1)
            }
            (Family::Xcup, c) if c.starts_with("FD") => (&mut r.ff, 1),
            (Family::Xcup, c) if c.starts_with("DSP48") => (&mut r.dsp, 1),
            (Family::Xcup, c) if c.starts_with("RAMB36") => (&mut r.bram, 2),
            (Family::Xcup, c) if c.starts_with("RAMB18") => (&mut r.bram, 1),
            (Family::Xcup, c) if c.starts_with("CARRY") => (&mut r.carry, 1),
            (Family::Xcup, c) if c.starts_with("MUXF") => (&mut r.wide_mux, 1),
            (Family::Xcup, c) if c.starts_with("RAM") && (c.contains('M') || c.contains('X')) => {
                (&mut r.lutram, 1)
            }
            (Family::Ecp5, "LUT4") => (&mut r.lut, 1),
            (Family::Ecp5, "TRELLIS_FF") => (&mut r.ff, 1),
            (Family::Ecp5, "MULT18X18D") => (&mut r.dsp, 1),
            (Family::Ecp5, "DP16KD") => (&mut r.bram, 1),
            (Family::Ecp5, "CCU2C") => (&mut r.carry, 1),
            (Family::Ecp5, "PFUMX" | "L6MUX21") => (&mut r.wide_mux, 1),
            (Family::Ecp5, "TRELLIS_DPR16X4") => (&mut r.lutram, 1),
            _ => continue,
        };
        *slot += per_cell * n;
    }
    r.logic_levels = log
        .lines()
        .filter_map(|l| l.split("(length=").nth(1))
        .filter_map(|s| s.trim_end_matches([')', ':']).parse::<u64>().ok())
        .next_back();
    r
}

/// The one synthesis script: Yosys' flow for `family` over the Verilog
/// `sources` (top `top`), then `stat` and `ltp` (see the module docs) written
/// to `yosys_stat.txt` and `yosys_ltp.txt` in `dir`, where
/// [`SynthRun::finish`] reads them. For ECP5 the netlist is also written as
/// `dir/TOP.json`, nextpnr's input.
pub fn yosys_script(sources: &[PathBuf], top: &str, family: Family, dir: &Path) -> String {
    let files: Vec<String> = sources.iter().map(|p| p.display().to_string()).collect();
    let (synth, cut) = match family {
        Family::Xcup => (
            format!("synth_xilinx -family xcup -top {top}"),
            "t:FD* t:DSP* t:RAM*",
        ),
        Family::Ecp5 => (
            format!(
                "synth_ecp5 -top {top} -json {}",
                dir.join(format!("{top}.json")).display()
            ),
            "t:TRELLIS_FF t:MULT18X18D t:DP16KD t:TRELLIS_DPR16X4",
        ),
    };
    format!(
        "read_verilog {}; {synth}; tee -o {} stat; tee -o {} ltp -noff {cut} %u %u %n",
        files.join(" "),
        dir.join(STAT_FILE).display(),
        dir.join(LTP_FILE).display()
    )
}

const STAT_FILE: &str = "yosys_stat.txt";
const LTP_FILE: &str = "yosys_ltp.txt";
/// Yosys' log, beside the Verilog.
pub const LOG_FILE: &str = "yosys.log";

/// A synthesis running in the background: started by [`SynthRun::start`],
/// its report collected by [`SynthRun::finish`] (which may stop it at a
/// deadline). [`synth`] is both in one call.
pub struct SynthRun {
    yosys: Background,
    dir: PathBuf,
    module: String,
    family: Family,
}

impl SynthRun {
    /// Starts Yosys on [`yosys_script`] of `sources` (top `module`), its
    /// files and `yosys.log` in the first source's directory.
    pub fn start(sources: &[PathBuf], module: &str, family: Family) -> Result<SynthRun, EdaError> {
        let dir = sources
            .first()
            .and_then(|v| v.parent())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let script = yosys_script(sources, module, family, &dir);
        let yosys = Background::yosys(&script, &dir.join(LOG_FILE))?;
        Ok(SynthRun {
            yosys,
            dir,
            module: module.into(),
            family,
        })
    }

    /// Waits for Yosys (at most `timeout`, then stops it: [`EdaError::Stopped`])
    /// and reads its report.
    pub fn finish(&mut self, timeout: Option<Duration>) -> Result<SynthReport, EdaError> {
        self.yosys.wait(timeout, &mut |_| {})?;
        let text = format!(
            "{}\n{}",
            std::fs::read_to_string(self.dir.join(STAT_FILE)).unwrap_or_default(),
            std::fs::read_to_string(self.dir.join(LTP_FILE)).unwrap_or_default()
        );
        let mut r = parse_yosys_log(&text, &self.module, self.family);
        r.seconds = self.yosys.seconds();
        Ok(r)
    }
}

/// Runs Yosys' flow for `family` on `sources` (top `module`) to the end.
pub fn synth(sources: &[PathBuf], module: &str, family: Family) -> Result<SynthReport, EdaError> {
    SynthRun::start(sources, module, family)?.finish(None)
}

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Eda(#[from] EdaError),
}

/// Synthesizes the export in `dir` (as `bxflow hdl` wrote it) for the
/// family it was built for, or `family` when given: its manifest names the
/// module and the Verilog file.
pub fn synth_export(
    dir: &Path,
    family: Option<Family>,
) -> Result<(Manifest, SynthReport), SynthError> {
    let m = Manifest::read(dir)?;
    let r = synth(
        &[dir.join(&m.files.verilog)],
        &m.module,
        family.unwrap_or(m.family),
    )?;
    Ok((m, r))
}
