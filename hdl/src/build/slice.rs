//! A range of a model's layers as a model of its own, for per-layer export
//! and synthesis of designs too large to synthesize whole.

use quantize::qmodel::{Port, QModel};

/// Why a layer range cannot be cut out of a model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SliceError {
    #[error("layers {first}..={last}: the first layer comes after the last (give FIRST <= LAST: {last}:{first})")]
    Reversed { first: usize, last: usize },
    #[error("layers {first}..={last}: the model has layers 0..={}", .layers.saturating_sub(1))]
    Range {
        first: usize,
        last: usize,
        /// Number of layers of the model.
        layers: usize,
    },
    #[error(
        "layer '{layer}' reads tensor {tensor}, from before layer {first} other than its input"
    )]
    ReadsBefore {
        layer: String,
        tensor: usize,
        first: usize,
    },
}

/// Layers `first..=last` of `model` (0-based) as a model of their own, of
/// one input (the input tensor of layer `first`) and one output (layer
/// `last`'s). Every layer of the range may only read tensors from inside it
/// (or that input).
pub fn slice_layers(model: &QModel, first: usize, last: usize) -> Result<QModel, SliceError> {
    if first > last {
        return Err(SliceError::Reversed { first, last });
    }
    if last >= model.layers.len() {
        return Err(SliceError::Range {
            first,
            last,
            layers: model.layers.len(),
        });
    }
    let input = model.layers[first].inputs[0];
    let mut layers = Vec::new();
    for l in &model.layers[first..=last] {
        let mut l = l.clone();
        for t in &mut l.inputs {
            // The slice's tensor 0 is `input`, layer `first + i` its tensor `i + 1`.
            *t = match model.layer_of(*t) {
                _ if *t == input => 0,
                Some(li) if li >= first => li - first + 1,
                _ => {
                    return Err(SliceError::ReadsBefore {
                        layer: l.name.clone(),
                        tensor: *t,
                        first,
                    })
                }
            };
        }
        layers.push(l);
    }
    let port = Port {
        name: "input".into(),
        shape: model.shape(input).to_vec(),
        ty: model.ty(input),
    };
    Ok(QModel::single(
        &format!("{}_l{first}_{last}", model.name),
        port,
        layers,
    ))
}
