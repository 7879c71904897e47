//! The execution plan: one kernel per layer, chosen and packed at load time.
//!
//! Every tensor lives in one i64 arena of a per-thread [`Scratch`]. Dense and
//! Conv layers run an i32 dot-product kernel ([`crate::dense`]) when the plan
//! proves the exact dot product fits in i32, followed by an exact integer
//! requantization ([`crate::rq`]); otherwise (wide types, or an accumulator
//! coarser than the product LSB, where each product is rounded on its own)
//! the general path evaluates the golden rules in i128. All other ops are
//! small scalar loops that follow `quantize::golden` rule for rule.
//!
//! After compiling one kernel per layer, runs of SIMD Dense layers (after
//! convolutions, if the run starts with some) and the elementwise ops
//! between them are fused (the private `chain` module): activations
//! stay in i16/u8 lanes, bias + requant + Relu/Clip run on i32 lanes in the
//! dot kernel's epilogue, a final Softmax (when its i64 path is exact) or
//! Argmax runs on the last layer's i32 outputs, and only the run's last
//! tensor reaches the i64 arena. Batches go [`crate::dense::MULTI`] events
//! per pass over the weights. [`crate::EngineOptions::fuse`] set to false disables
//! fusion (for comparisons).
//!
//! Layout: `types` (the data), `compile` (one function per op family),
//! `mac` (Dense/Conv kernels), `fusion` (chains), `execute` (running),
//! `error` ([`PlanError`]).

mod compile;
mod error;
mod execute;
mod fusion;
mod mac;
mod types;

pub use error::{LayerProblem, PlanError};
pub use types::{LayerKernel, Plan, Scratch};
