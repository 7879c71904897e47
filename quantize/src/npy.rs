//! `.npy` and `.npz` in and out: what physicists' Python speaks. Events are
//! the first axis; any numeric dtype is read as float features. A model of
//! one input reads one `.npy`; a model of several reads one `.npz` whose
//! arrays are named after its inputs (`np.savez(path, **{name: array})`),
//! and outputs are written likewise.

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

    /// The NaN values: how many, and the first one's event and flat index
    /// within the event; `None` when there are none. Fixed point reads NaN
    /// as 0 ([`crate::fixed::FixedType::quantize_f64`]) where float
    /// carries it through, so tools that read events say when they saw any.
    pub fn nans(&self) -> Option<(usize, usize, usize)> {
        let first = self.data.iter().position(|v| v.is_nan())?;
        let count = self.data[first..].iter().filter(|v| v.is_nan()).count();
        let n = self.event_len().max(1);
        Some((count, first / n, first % n))
    }

    /// Checks that each event has `expected` (the model's input shape) and
    /// names both shapes when not.
    /// A leading axis of 1 may be given or left out on either side, and a
    /// flat event is taken for any shape of the same size.
    pub fn check_event_shape(&self, path: &str, expected: &[usize]) -> Result<(), NpyError> {
        let got = &self.shape[1..];
        let same_len = got.iter().product::<usize>() == expected.iter().product::<usize>();
        let unit = |s: &[usize]| {
            s.strip_prefix(&[1])
                .map(<[usize]>::to_vec)
                .unwrap_or(s.to_vec())
        };
        if unit(got) != unit(expected) && !(same_len && (got.len() == 1 || expected.len() == 1)) {
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
    let bytes = std::fs::read(path).map_err(|e| NpyError::Read {
        path: p.clone(),
        msg: e.to_string(),
    })?;
    parse_array(&bytes, &p)
}

/// Parses the bytes of a numeric `.npy` array (`what` names it in errors).
fn parse_array(bytes: &[u8], what: &str) -> Result<(Vec<usize>, Vec<f32>), NpyError> {
    let err = |msg: String| NpyError::Read {
        path: what.into(),
        msg,
    };
    let npy = npyz::NpyFile::new(bytes).map_err(|e| err(format!("not a valid .npy file: {e}")))?;
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

/// The arrays of an `.npz` file by name (the member's name without `.npy`).
pub fn read_npz(path: &Path) -> Result<Vec<(String, Events)>, NpyError> {
    let p = path.display().to_string();
    let err = |msg: String| NpyError::Read {
        path: p.clone(),
        msg,
    };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| err(format!("not a valid .npz (zip) file: {e}")))?;
    let mut arrays = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let mut member = zip.by_index(i).map_err(|e| err(e.to_string()))?;
        let name = member.name().to_string();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut member, &mut bytes)
            .map_err(|e| err(format!("{name}: {e}")))?;
        let (shape, data) = parse_array(&bytes, &format!("{p}: {name}"))?;
        let key = name.strip_suffix(".npy").unwrap_or(&name).to_string();
        arrays.push((key, Events { shape, data }));
    }
    Ok(arrays)
}

/// Events for a model's inputs (`(name, event shape)` each, in order) from
/// `path`: an `.npy` of `[events, *shape]` for a model of one input, else an
/// `.npz` with one such array per input, named after it. The result holds
/// the flat events: every input of an event after the other.
pub fn read_inputs(path: &Path, inputs: &[(&str, &[usize])]) -> Result<Events, NpyError> {
    let p = path.display().to_string();
    // A zip (an .npz) starts with "PK"; read only those bytes here.
    let mut magic = [0u8; 2];
    let npz = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && &magic == b"PK";
    if !npz {
        if let [(_, shape)] = inputs {
            let ev = read_events(path)?;
            ev.check_event_shape(&p, shape)?;
            return Ok(ev);
        }
        let names: Vec<String> = inputs.iter().map(|(n, _)| format!("'{n}'")).collect();
        return Err(NpyError::Shape {
            path: p,
            msg: format!(
                "the model has {} inputs ({}): give an .npz with one array per input, named after it (np.savez(path, **{{name: array}}))",
                inputs.len(),
                names.join(", ")
            ),
        });
    }
    let mut arrays = read_npz(path)?;
    let mut parts = Vec::with_capacity(inputs.len());
    for (name, shape) in inputs {
        let Some(k) = arrays.iter().position(|(n, ..)| n == name) else {
            let have: Vec<String> = arrays.iter().map(|(n, ..)| format!("'{n}'")).collect();
            return Err(NpyError::Shape {
                path: p,
                msg: format!(
                    "no array named '{name}' (the model's input); the file has {}",
                    have.join(", ")
                ),
            });
        };
        let (_, ev) = arrays.swap_remove(k);
        if ev.shape.len() < 2 {
            return Err(NpyError::Shape {
                path: format!("{p}: {name}"),
                msg: format!(
                    "array has shape {:?}; expected [events, features...]",
                    ev.shape
                ),
            });
        }
        ev.check_event_shape(&format!("{p}: {name}"), shape)?;
        parts.push(ev);
    }
    let n = parts[0].count();
    if let Some((k, e)) = parts.iter().enumerate().find(|(_, e)| e.count() != n) {
        return Err(NpyError::Shape {
            path: p,
            msg: format!(
                "'{}' has {n} events but '{}' has {}",
                inputs[0].0,
                inputs[k].0,
                e.count()
            ),
        });
    }
    let len: usize = parts.iter().map(Events::event_len).sum();
    let mut data = Vec::with_capacity(n * len);
    for i in 0..n {
        for e in &parts {
            data.extend_from_slice(e.event(i));
        }
    }
    Ok(Events {
        shape: vec![n, len],
        data,
    })
}

/// Writes a model's outputs (`(name, event shape)` each, in order) for `n`
/// events of flat outputs `data`: an `.npy` of `[n, *shape]` for one output,
/// else an `.npz` of one such array per output, named after it.
pub fn write_outputs(
    path: &Path,
    outputs: &[(&str, &[usize])],
    n: usize,
    data: &[f64],
) -> Result<(), NpyError> {
    let p = path.display().to_string();
    let err = |e: std::io::Error| NpyError::Write {
        path: p.clone(),
        msg: e.to_string(),
    };
    let full = |shape: &[usize]| -> Vec<u64> {
        std::iter::once(n as u64)
            .chain(shape.iter().map(|&d| d as u64))
            .collect()
    };
    if let [(_, shape)] = outputs {
        let file = std::io::BufWriter::new(std::fs::File::create(path).map_err(err)?);
        return write_npy(file, &full(shape), data.iter().copied()).map_err(err);
    }
    let len: usize = outputs
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    let file = std::fs::File::create(path).map_err(err)?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let mut start = 0;
    for (name, shape) in outputs {
        let m: usize = shape.iter().product();
        let values =
            (0..n).flat_map(|e| data[e * len + start..e * len + start + m].iter().copied());
        let mut bytes = Vec::new();
        write_npy(&mut bytes, &full(shape), values).map_err(err)?;
        zip.start_file(format!("{name}.npy"), zip::write::FileOptions::default())
            .map_err(|e| err(e.into()))?;
        std::io::Write::write_all(&mut zip, &bytes).map_err(err)?;
        start += m;
    }
    zip.finish().map_err(|e| err(e.into()))?;
    Ok(())
}

/// One f64 `.npy` array of `shape` into `w`.
fn write_npy(
    w: impl std::io::Write,
    shape: &[u64],
    values: impl Iterator<Item = f64>,
) -> std::io::Result<()> {
    let mut w = WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(w)
        .begin_nd()?;
    w.extend(values)?;
    w.finish()
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
    write_npy(file, &[rows as u64, cols as u64], data.iter().copied()).map_err(err)
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
