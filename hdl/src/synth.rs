//! Yosys synthesis of an export (`synth_xilinx`): LUT, FF, DSP, BRAM counts
//! and the longest register-to-register path in cells (`ltp` over every cell
//! but the flip-flops, DSPs and RAMs, so paths end at registers, DSPs and
//! memories; LUTs and CARRY8 stages both count as one level). DSPs and RAMs
//! are cut because synthesis moves registers into them (A/B/P registers, a
//! table ROM's registered read), so a path through such a cell may hold a
//! register; their own delay is in the delay model of `pipeline.rs`.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

use crate::export::{tool_available, ExportError};

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

/// Runs Yosys `synth_xilinx` on `verilog` (top `module`).
pub fn synth(verilog: &Path, module: &str, family: &str) -> Result<SynthReport, ExportError> {
    if !tool_available("yosys") {
        return Err(ExportError::ToolMissing {
            tool: "yosys".into(),
            hint: ": `bxflow synth` needs it (apt-get install yosys)".into(),
        });
    }
    let dir = verilog.parent().unwrap_or(Path::new("."));
    let (stat_f, ltp_f) = (dir.join("yosys_stat.txt"), dir.join("yosys_ltp.txt"));
    let script = format!(
        "read_verilog {}; synth_xilinx -family {family} -top {module}; tee -o {} stat; tee -o {} ltp -noff t:FD* t:DSP* t:RAM* %u %u %n",
        verilog.display(),
        stat_f.display(),
        ltp_f.display()
    );
    let t0 = std::time::Instant::now();
    let out = Command::new("yosys")
        .args(["-q", "-p", &script])
        .output()
        .map_err(|e| ExportError::ToolFailed {
            tool: "yosys".into(),
            msg: e.to_string(),
        })?;
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(ExportError::ToolFailed {
            tool: "yosys".into(),
            msg: log
                .chars()
                .rev()
                .take(3000)
                .collect::<String>()
                .chars()
                .rev()
                .collect(),
        });
    }
    let text = format!(
        "{}\n{}",
        std::fs::read_to_string(&stat_f).unwrap_or_default(),
        std::fs::read_to_string(&ltp_f).unwrap_or_default()
    );
    let mut r = parse_yosys_log(&text, module, family);
    r.seconds = t0.elapsed().as_secs_f64();
    Ok(r)
}
