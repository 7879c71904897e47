//! What an ONNX tensor name stands for during import: a constant the importer
//! folds, or an activation of the layer IR. Every stage of the import shares
//! these, so this module depends on none of them.

use crate::fixed::FixedType;
use crate::qmodel::TensorId;

/// A constant tensor, in f64, with the exact fixed-point type a quantizer gave it.
#[derive(Clone, Debug)]
pub struct Const {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
    pub quant: Option<FixedType>,
    /// ONNX element type when read from the file (0 when computed): tells
    /// int8 from uint8 zero points.
    pub dtype: i32,
}

impl Const {
    /// A computed constant: no quantizer type, no file element type.
    pub fn computed(shape: Vec<usize>, data: Vec<f64>) -> Self {
        Const {
            shape,
            data,
            quant: None,
            dtype: 0,
        }
    }

    pub fn scalar(v: f64) -> Self {
        Self::computed(vec![], vec![v])
    }

    pub fn ints(&self) -> Vec<i64> {
        self.data.iter().map(|&v| v as i64).collect()
    }
}

/// An activation: a tensor of the IR plus the (batch-free) shape it has here,
/// which can differ from the producing layer's shape after a Reshape or Flatten
/// (those change no data, so they make no layer).
#[derive(Clone, Debug)]
pub struct Act {
    pub id: TensorId,
    pub shape: Vec<usize>,
}

#[derive(Clone, Debug)]
pub enum Value {
    Const(Const),
    Act(Act),
}
