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

/// The words every "this op would mix events" error carries: the importer
/// reads them to retry a graph whose first input axis is static as one
/// event of that whole static tensor (the event axis rule).
pub const MIXES_EVENTS: &str = "would mix events";

/// The error of an op that works along the event axis: `what` names it.
pub fn mixes_events(what: impl std::fmt::Display) -> String {
    format!("{what} {MIXES_EVENTS} (that axis is the event axis)")
}

/// An activation: a tensor of the IR plus the shape it has here, which can
/// differ from the producing layer's shape after a Reshape or Flatten (those
/// change no data, so they make no layer).
///
/// `shape` is the shape of one event. The ONNX tensor the graph sees has
/// one more axis, the event axis, at `batch` (first for a graph input, moved
/// by a Transpose or Unsqueeze); `None` when the whole static tensor is one
/// event. Ops read the tensor through [`Act::view`], the ONNX shape with
/// the event axis as 1: its values lie in the same order as the event's,
/// so index maps computed on it are the event's.
#[derive(Clone, Debug)]
pub struct Act {
    pub id: TensorId,
    pub shape: Vec<usize>,
    pub batch: Option<usize>,
}

impl Act {
    /// Values in one event.
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }

    /// An activation with its events on a leading axis.
    pub fn new(id: TensorId, shape: Vec<usize>) -> Act {
        Act {
            id,
            shape,
            batch: Some(0),
        }
    }

    /// The same activation with its event axis at `batch`.
    pub fn with_batch(self, batch: Option<usize>) -> Act {
        Act { batch, ..self }
    }

    /// The ONNX shape of one event: the event axis, where there is one, as 1.
    pub fn view(&self) -> Vec<usize> {
        let mut v = self.shape.clone();
        if let Some(p) = self.batch {
            v.insert(p, 1);
        }
        v
    }

    /// The ONNX rank.
    pub fn rank(&self) -> usize {
        self.shape.len() + usize::from(self.batch.is_some())
    }

    /// Tensor `id` seen with the ONNX shape `view`, its event axis at `batch`.
    pub fn from_view(id: TensorId, mut view: Vec<usize>, batch: Option<usize>) -> Act {
        if let Some(p) = batch {
            view.remove(p);
        }
        Act {
            id,
            shape: view,
            batch,
        }
    }

    /// The ONNX axis `axis` (negative counts from the end), checked: an index into [`Act::view`].
    pub fn axis(&self, axis: i64) -> Result<usize, String> {
        crate::onnx::shape::onnx_axis(axis, self.rank())
    }

    /// An error when `axes` (of the view) include the event axis.
    pub fn not_along(&self, axes: &[usize], what: &str) -> Result<(), String> {
        match self.batch {
            Some(p) if axes.contains(&p) => Err(mixes_events(format!("{what} along axis {p}"))),
            _ => Ok(()),
        }
    }

    /// The index in `shape` of the view's axis `d` (not the event axis).
    pub fn event_axis(&self, d: usize) -> usize {
        d - usize::from(self.batch.is_some_and(|p| p < d))
    }

    /// `y`, computed from [`Act::leading`] of this activation, seen as this
    /// one is: with the first axis of 1 back for a whole-tensor event.
    pub fn relead(&self, y: Act) -> Act {
        match self.batch {
            None => Act {
                shape: std::iter::once(1).chain(y.shape).collect(),
                batch: None,
                ..y
            },
            Some(_) => y,
        }
    }

    /// The activation with its events on a leading axis, as convolutions,
    /// pools and the like need (`[C, spatial...]` per event): itself, or a
    /// whole-tensor event whose first axis is 1 seen without it (and the
    /// result seen with it again, [`Act::relead`]).
    pub fn leading(&self, op: &str) -> Result<Act, String> {
        match (self.batch, self.shape.first()) {
            (Some(0), _) => Ok(self.clone()),
            (None, Some(1)) => Ok(Act::new(self.id, self.shape[1..].to_vec())),
            (None, _) => Err(format!(
                "{op} needs one sample per event; this tensor of shape {:?} is one event whose first axis holds {} of them",
                self.shape,
                self.shape.first().copied().unwrap_or(0)
            )),
            (Some(p), _) => Err(format!(
                "{op} needs the event axis first; a Transpose or Unsqueeze moved it to axis {p}"
            )),
        }
    }
}

#[derive(Clone, Debug)]
pub enum Value {
    Const(Const),
    Act(Act),
}
