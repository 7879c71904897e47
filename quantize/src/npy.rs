//! `.npy` in and out: what physicists' Python speaks. Events are the first
//! axis; any numeric dtype is read as float features.

use npyz::{WriteOptions, WriterBuilder};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("cannot read '{path}': {msg}")]
    Read { path: String, msg: String },
    #[error("cannot write '{path}': {msg}")]
    Write { path: String, msg: String },
    #[error("'{path}': {msg}")]
    Shape { path: String, msg: String },
}

/// A 2-D or higher array of events, row-major, as f32.
#[derive(Clone, Debug, PartialEq)]
pub struct Events {
    /// Shape including the leading event axis.
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Events {
    pub fn count(&self) -> usize {
        self.shape.first().copied().unwrap_or(0)
    }
    pub fn event_len(&self) -> usize {
        self.shape[1..].iter().product()
    }
    pub fn event(&self, i: usize) -> &[f32] {
        let n = self.event_len();
        &self.data[i * n..(i + 1) * n]
    }

    /// Checks that each event has `expected` (the model's input shape) and
    /// names both shapes when not.
    pub fn check_event_shape(&self, path: &str, expected: &[usize]) -> Result<(), NpyError> {
        let got = &self.shape[1..];
        let same_len = got.iter().product::<usize>() == expected.iter().product::<usize>();
        if got != expected && !(same_len && (got.len() == 1 || expected.len() == 1)) {
            return Err(NpyError::Shape {
                path: path.into(),
                msg: format!(
                    "events have shape {got:?} but the model takes {expected:?} (array shape {:?}; the first axis counts events)",
                    self.shape
                ),
            });
        }
        Ok(())
    }
}

/// Reads any numeric `.npy` array as f32 with its shape.
fn read_array(path: &Path) -> Result<(Vec<usize>, Vec<f32>), NpyError> {
    let p = path.display().to_string();
    let err = |msg: String| NpyError::Read {
        path: p.clone(),
        msg,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let npy =
        npyz::NpyFile::new(&bytes[..]).map_err(|e| err(format!("not a valid .npy file: {e}")))?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    if npy.order() != npyz::Order::C {
        return Err(err(
            "Fortran-ordered arrays are not supported; save with np.ascontiguousarray".into(),
        ));
    }
    let ts = match npy.dtype() {
        npyz::DType::Plain(ts) => ts.to_string(),
        other => return Err(err(format!("structured dtype {other:?} is not supported"))),
    };
    fn conv<T: npyz::Deserialize + Copy, R: std::io::Read>(
        npy: npyz::NpyFile<R>,
        f: impl Fn(T) -> f32,
    ) -> std::io::Result<Vec<f32>> {
        Ok(npy.into_vec::<T>()?.into_iter().map(f).collect())
    }
    let data = match ts.get(1..).unwrap_or("") {
        "f4" => conv::<f32, _>(npy, |v| v),
        "f8" => conv::<f64, _>(npy, |v| v as f32),
        "i1" => conv::<i8, _>(npy, |v| v as f32),
        "i2" => conv::<i16, _>(npy, |v| v as f32),
        "i4" => conv::<i32, _>(npy, |v| v as f32),
        "i8" => conv::<i64, _>(npy, |v| v as f32),
        "u1" => conv::<u8, _>(npy, |v| v as f32),
        other => {
            return Err(err(format!(
                "dtype '{other}' is not supported (float32/64, int8..64, uint8 are)"
            )))
        }
    }
    .map_err(|e| err(format!("data does not match the header (truncated?): {e}")))?;
    Ok((shape, data))
}

/// Reads an `.npy` array of events (first axis = events) as f32.
pub fn read_events(path: &Path) -> Result<Events, NpyError> {
    let (shape, data) = read_array(path)?;
    if shape.len() < 2 {
        return Err(NpyError::Shape {
            path: path.display().to_string(),
            msg: format!("array has shape {shape:?}; expected [events, features...]"),
        });
    }
    Ok(Events { shape, data })
}

/// Reads a 1-D array of class indices.
pub fn read_labels(path: &Path) -> Result<Vec<usize>, NpyError> {
    let (shape, data) = read_array(path)?;
    if shape.len() != 1 {
        return Err(NpyError::Shape {
            path: path.display().to_string(),
            msg: format!("labels have shape {shape:?}; expected one class index per event"),
        });
    }
    Ok(data.into_iter().map(|v| v.max(0.0) as usize).collect())
}

/// Writes `[rows, cols]` f64 values.
pub fn write_f64(path: &Path, rows: usize, cols: usize, data: &[f64]) -> Result<(), NpyError> {
    let p = path.display().to_string();
    let err = |e: std::io::Error| NpyError::Write {
        path: p.clone(),
        msg: e.to_string(),
    };
    let file = std::io::BufWriter::new(std::fs::File::create(path).map_err(err)?);
    let mut w = WriteOptions::new()
        .default_dtype()
        .shape(&[rows as u64, cols as u64])
        .writer(file)
        .begin_nd()
        .map_err(err)?;
    w.extend(data.iter().copied()).map_err(err)?;
    w.finish().map_err(err)
}

/// Writes f32 values of any shape.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), NpyError> {
    let p = path.display().to_string();
    let err = |e: std::io::Error| NpyError::Write {
        path: p.clone(),
        msg: e.to_string(),
    };
    let file = std::io::BufWriter::new(std::fs::File::create(path).map_err(err)?);
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut w = WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(file)
        .begin_nd()
        .map_err(err)?;
    w.extend(data.iter().copied()).map_err(err)?;
    w.finish().map_err(err)
}
