//! The one way every tool opens a model: a `.bxq` artifact as it is, or an
//! `.onnx` imported and quantized with the configuration given. The CLI, the
//! testbench, `bench` and the C API all call [`load_model`], so they accept
//! the same files and word their errors the same way.

use crate::config::Config;
use crate::qmodel::QModel;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: {source}", path.display())]
    Bxq {
        path: PathBuf,
        source: crate::bxq::BxqError,
    },
    #[cfg(feature = "onnx")]
    #[error("{}: {source}", path.display())]
    Import {
        path: PathBuf,
        source: crate::onnx::ImportError,
    },
    #[error("{}: {source}", path.display())]
    Quantize {
        path: PathBuf,
        source: crate::quantizer::QuantizeError,
    },
    #[error("{}: a .bxq model is already quantized; precision and configuration apply to ONNX input only", path.display())]
    AlreadyQuantized { path: PathBuf },
    #[error("{}: this build reads .bxq artifacts only (built without the `onnx` feature); quantize the model first with `bxflow quantize`", path.display())]
    NoOnnx { path: PathBuf },
}

/// Whether `path` names an ONNX model (by its extension) rather than a `.bxq`.
pub fn is_onnx(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

/// Opens `path`: a `.bxq` as saved (then `config` must be `None`), or an
/// `.onnx` quantized with `config` (`None`: [`Config::default`], every tensor
/// at [`crate::config::default_precision`]).
pub fn load_model(path: &Path, config: Option<&Config>) -> Result<QModel, LoadError> {
    let path_buf = || path.to_path_buf();
    if !is_onnx(path) {
        if config.is_some() {
            return Err(LoadError::AlreadyQuantized { path: path_buf() });
        }
        return crate::bxq::load(path).map_err(|source| LoadError::Bxq {
            path: path_buf(),
            source,
        });
    }
    #[cfg(feature = "onnx")]
    {
        let g = crate::onnx::import_path(path).map_err(|source| LoadError::Import {
            path: path_buf(),
            source,
        })?;
        let default = Config::default();
        crate::quantizer::quantize_graph(&g, config.unwrap_or(&default)).map_err(|source| {
            LoadError::Quantize {
                path: path_buf(),
                source,
            }
        })
    }
    #[cfg(not(feature = "onnx"))]
    {
        Err(LoadError::NoOnnx { path: path_buf() })
    }
}
