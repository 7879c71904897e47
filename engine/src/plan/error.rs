//! Why a model cannot be compiled into a [`super::Plan`]: the layer, and what
//! about it the engine cannot run.

/// A model the engine cannot compile; every variant names the layer, or
/// the input or output.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PlanError {
    #[error("layer {layer} '{name}' reads tensor {tensor}, which is not computed before it")]
    InputOrder {
        layer: usize,
        name: String,
        tensor: usize,
    },
    #[error("layer {layer} '{name}' ({op}) needs input {input}")]
    MissingInput {
        layer: usize,
        name: String,
        op: &'static str,
        input: usize,
    },
    #[error("layer {layer} '{name}': {problem}")]
    Layer {
        layer: usize,
        name: String,
        problem: LayerProblem,
    },
    /// The model's inputs or outputs (`quantize::validate::ports`).
    #[error("{0}")]
    Ports(String),
}

/// What is wrong with one layer's parameters.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum LayerProblem {
    /// Weights, bias or tensor lengths of a Dense, Conv or Scale disagree.
    #[error("inconsistent {0} sizes")]
    Sizes(&'static str),
    #[error("PRelu slope count")]
    PreluSlopes,
    #[error("empty table")]
    EmptyTable,
    #[error(
        "Step needs k thresholds and k + 1 values per set, and a whole number of sets per output"
    )]
    StepValues,
    #[error("bad Softmax")]
    Softmax,
    #[error("Argmax n = 0")]
    ArgmaxZero,
    #[error("Pool needs kernel + 1 reciprocals")]
    PoolReciprocals,
    #[error("Route reads past tensor {0}")]
    RoutePastTensor(usize),
}
