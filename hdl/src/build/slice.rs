//! A range of a model's layers as a model of its own, for per-layer export
//! and synthesis of designs too large to synthesize whole.

use quantize::qmodel::QModel;

/// Why a layer range cannot be cut out of a model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SliceError {
    #[error("layers {first}..={last}: the model has layers 0..={}", .layers.saturating_sub(1))]
    Range {
        first: usize,
        last: usize,
        /// Number of layers of the model.
        layers: usize,
    },
    #[error("layer '{layer}' reads tensor {tensor}, before layer {first}'s input")]
    ReadsBefore {
        layer: String,
        tensor: usize,
        first: usize,
    },
}

/// Layers `first..=last` of `model` (0-based) as a model of their own, whose
/// input is the input tensor of layer `first`. Every layer of the range may
/// only read tensors from inside it (or its input).
pub fn slice_layers(model: &QModel, first: usize, last: usize) -> Result<QModel, SliceError> {
    if first > last || last >= model.layers.len() {
        return Err(SliceError::Range {
            first,
            last,
            layers: model.layers.len(),
        });
    }
    let input_shape = if first == 0 {
        model.input_shape.clone()
    } else {
        model.layers[first - 1].shape.clone()
    };
    let mut layers = Vec::new();
    for l in &model.layers[first..=last] {
        let mut l = l.clone();
        for t in &mut l.inputs {
            if *t < first {
                return Err(SliceError::ReadsBefore {
                    layer: l.name.clone(),
                    tensor: *t,
                    first,
                });
            }
            *t -= first;
        }
        layers.push(l);
    }
    Ok(QModel {
        name: format!("{}_l{first}_{last}", model.name),
        input_shape,
        input_ty: model.ty(first),
        layers,
        output_names: if last + 1 == model.layers.len() {
            model.output_names.clone()
        } else {
            vec![]
        },
    })
}
