//! bxflow's front half: ONNX import, the layer IR, ap_fixed-exact fixed-point
//! types, precision configuration and calibration, and the golden model that
//! every backend must match bit for bit.

pub mod accum;
pub mod fixed;
pub mod golden;
pub mod qmodel;
pub mod random;
pub mod tables;
pub mod ir;
pub mod onnx;
pub mod config;
pub mod bxq;
pub mod npy;
pub mod validate;
pub mod calibrate;
pub mod quantizer;
