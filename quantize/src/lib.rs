//! bxflow's front half: ONNX import, the layer IR, ap_fixed-exact fixed-point
//! types, precision configuration and calibration, and the golden model that
//! every backend must match bit for bit.

pub mod accum;
pub mod auto;
pub mod bxq;
pub mod calibrate;
pub mod config;
pub mod fixed;
pub mod golden;
pub mod ir;
pub mod load;
pub mod npy;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod qmodel;
pub mod quantizer;
pub mod random;
pub mod report;
pub mod tables;
pub mod taps;
pub mod thresholds;
pub mod validate;
pub mod work;

pub use load::{load_model, LoadError};
