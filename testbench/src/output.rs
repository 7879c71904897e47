//! Writes a run's report to a directory: the SVG plots and `report.json`,
//! each named after the target. It sits above [`crate::report`] and
//! [`crate::plots`] so that neither imports the other's caller.

use std::path::{Path, PathBuf};

use crate::error::TbError;
use crate::report::Report;

/// Writes the plots and `<target>_report.json` into `dir` (created if
/// needed), records every written path in `report.plots` (the JSON last),
/// and returns the JSON's path.
pub fn write_report(report: &mut Report, dir: &Path) -> Result<PathBuf, TbError> {
    std::fs::create_dir_all(dir).map_err(TbError::file(dir))?;
    let prefix = report.target.to_string();
    report.plots = crate::plots::write_all(report, dir, &prefix)?
        .into_iter()
        .map(|p| p.display().to_string())
        .collect();
    let json = dir.join(format!("{prefix}_report.json"));
    std::fs::write(&json, report.to_json()).map_err(TbError::file(&json))?;
    report.plots.push(json.display().to_string());
    Ok(json)
}
