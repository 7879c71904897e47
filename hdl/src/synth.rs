//! Yosys synthesis of an export (`synth_xilinx`): LUT, FF, DSP, BRAM counts
//! and the longest register-to-register path in cells (`ltp` over every cell
//! but the flip-flops, DSPs and RAMs, so paths end at registers, DSPs and
//! memories; LUTs and CARRY8 stages both count as one level). DSPs and RAMs
//! are cut because synthesis moves registers into them (A/B/P registers, a
//! table ROM's registered read), so a path through such a cell may hold a
//! register; their own delay is in the delay model of `pipeline.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::eda::{EdaError, Yosys};
use crate::manifest::{Manifest, ManifestError};

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
    /// Longest topological path between registers, in cells.
    pub logic_levels: Option<u64>,
    pub seconds: f64,
}

impl SynthReport {
    pub fn table(&self) -> String {
        format!(
            "| module | family | LUT | FF | DSP | BRAM | CARRY8 | logic levels | yosys s |\n|---|---|---|---|---|---|---|---|---|\n| {} | {} | {} | {} | {} | {} | {} | {} | {:.0} |\n",
            self.module,
            self.family,
            self.lut,
            self.ff,
            self.dsp,
            self.bram,
            self.carry,
            self.logic_levels.map(|l| l.to_string()).unwrap_or("?".into()),
            self.seconds
        )
    }
}

/// Parses Yosys' `stat` cell list and `ltp` line.
pub fn parse_yosys_log(log: &str, module: &str, family: &str) -> SynthReport {
    let mut r = SynthReport {
        module: module.into(),
        family: family.into(),
        ..Default::default()
    };
    // The last `stat` printout is the flattened top.
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
        if cell.starts_with("LUT") && cell.len() == 4 {
            r.lut += n;
        } else if cell.starts_with("FD") {
            r.ff += n;
        } else if cell.starts_with("DSP48") {
            r.dsp += n;
        } else if cell.starts_with("RAMB36") {
            r.bram += 2 * n;
        } else if cell.starts_with("RAMB18") {
            r.bram += n;
        } else if cell.starts_with("CARRY") {
            r.carry += n;
        } else if cell.starts_with("RAM") && (cell.contains('M') || cell.contains('X')) {
            r.lutram += n;
        }
    }
    r.logic_levels = log
        .lines()
        .filter_map(|l| l.split("(length=").nth(1))
        .filter_map(|s| s.trim_end_matches([')', ':']).parse::<u64>().ok())
        .next_back();
    r
}

/// The one synthesis script: `synth_xilinx` of `verilog` (top `module`),
/// then `stat` and `ltp` (see the module docs) written to `yosys_stat.txt`
/// and `yosys_ltp.txt` beside `verilog`, where [`SynthRun::finish`] reads them.
pub fn yosys_script(verilog: &Path, module: &str, family: &str) -> String {
    let dir = verilog.parent().unwrap_or(Path::new("."));
    format!(
        "read_verilog {}; synth_xilinx -family {family} -top {module}; tee -o {} stat; tee -o {} ltp -noff t:FD* t:DSP* t:RAM* %u %u %n",
        verilog.display(),
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
    yosys: Yosys,
    dir: PathBuf,
    module: String,
    family: String,
}

impl SynthRun {
    /// Starts Yosys on [`yosys_script`] of `verilog`, logging to `yosys.log` beside it.
    pub fn start(verilog: &Path, module: &str, family: &str) -> Result<SynthRun, EdaError> {
        let dir = verilog.parent().unwrap_or(Path::new(".")).to_path_buf();
        let yosys = Yosys::start(&yosys_script(verilog, module, family), &dir.join(LOG_FILE))?;
        Ok(SynthRun {
            yosys,
            dir,
            module: module.into(),
            family: family.into(),
        })
    }

    /// Waits for Yosys (at most `timeout`, then stops it: [`EdaError::Stopped`])
    /// and reads its report.
    pub fn finish(&mut self, timeout: Option<Duration>) -> Result<SynthReport, EdaError> {
        self.yosys.wait(timeout)?;
        let text = format!(
            "{}\n{}",
            std::fs::read_to_string(self.dir.join(STAT_FILE)).unwrap_or_default(),
            std::fs::read_to_string(self.dir.join(LTP_FILE)).unwrap_or_default()
        );
        let mut r = parse_yosys_log(&text, &self.module, &self.family);
        r.seconds = self.yosys.seconds();
        Ok(r)
    }
}

/// Runs Yosys `synth_xilinx` on `verilog` (top `module`) to the end.
pub fn synth(verilog: &Path, module: &str, family: &str) -> Result<SynthReport, EdaError> {
    SynthRun::start(verilog, module, family)?.finish(None)
}

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Eda(#[from] EdaError),
}

/// Synthesizes the export in `dir` (as `bxflow hdl` wrote it): its manifest
/// names the module and the Verilog file.
pub fn synth_export(dir: &Path, family: &str) -> Result<(Manifest, SynthReport), SynthError> {
    let m = Manifest::read(dir)?;
    let r = synth(&dir.join(&m.files.verilog), &m.module, family)?;
    Ok((m, r))
}
