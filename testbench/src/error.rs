//! The testbench's one error type, in a leaf module so that every other
//! module can return it without importing from its parent. Each variant
//! keeps the underlying error as its source and names the file or stage.

use std::path::PathBuf;

use plotters::drawing::DrawingAreaErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum TbError {
    /// Float features that do not split into whole events.
    #[error("{from}: {values} values is not a whole number of events of {in_len} features")]
    EventLength {
        from: String,
        values: usize,
        in_len: usize,
    },
    /// An `.npy` event file read through `quantize::npy`.
    #[error(transparent)]
    Npy(#[from] quantize::npy::NpyError),
    /// An `.npy` event file whose header or length the memory-mapped reader rejects.
    #[error("{}: {reason}", path.display())]
    BadNpy { path: PathBuf, reason: String },
    /// The golden model rejected an event.
    #[error("golden model: {0}")]
    Golden(#[from] quantize::golden::GoldenError),
    /// The engine's pipeline failed (not one failed batch, which is counted).
    #[error("engine pipeline: {0}")]
    Pipeline(#[from] engine::pipeline::PipelineError),
    /// The kernel as a rust-hdl block in rust-hdl's simulator.
    #[error("simulation: {0}")]
    Block(#[from] hdl::block::BlockError),
    /// The kernel refused an event the driver's schedule offered it.
    #[error("simulation: kernel not ready (in_ready low) for event {event} at cycle {cycle}")]
    NotReady { event: u64, cycle: u64 },
    /// Verilator was asked for but is not on the PATH.
    #[error("simulation: verilator is not installed (use --sim rust)")]
    NoVerilator,
    /// A simulator run or build that failed with its own message.
    #[error("simulation: {0}")]
    Sim(String),
    /// Reading or writing a file or directory.
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Drawing an SVG plot.
    #[error("plot {}: {source}", path.display())]
    Plot {
        path: PathBuf,
        source: DrawingAreaErrorKind<std::io::Error>,
    },
    /// Verilating the kernel and its harness failed.
    #[error("verilator build in {}: {source}", dir.display())]
    VerilatorBuild {
        dir: PathBuf,
        source: hdl::eda::EdaError,
    },
}

impl TbError {
    /// `map_err` adapter for an I/O error on `path`.
    pub fn file(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TbError {
        let path = path.into();
        move |source| TbError::File { path, source }
    }
}
