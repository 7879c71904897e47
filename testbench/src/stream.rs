//! The events a run streams: a pool of distinct quantized events (from an
//! event file or generated), cycled through for as many events as asked, and
//! the golden model's output for each, against which every delivered output
//! is compared bit for bit.

use quantize::golden::{quantize_input, Arithmetic, Golden};
use quantize::qmodel::QModel;
use quantize::work::Work;
use std::path::Path;

use crate::error::TbError;

/// Distinct events generated when no event file is given (cycled beyond that).
pub const DEFAULT_POOL: usize = 1 << 16;

pub struct EventPool {
    pub in_len: usize,
    pub out_len: usize,
    /// `count * in_len` raw input codes.
    pub raw: Vec<i64>,
    /// `count * out_len` golden raw outputs.
    pub golden: Vec<i64>,
    /// Where the events came from (for the report).
    pub source: String,
}

impl EventPool {
    pub fn count(&self) -> usize {
        self.raw.len() / self.in_len.max(1)
    }
    /// Raw input of stream event `i` (cycled).
    pub fn input(&self, i: u64) -> &[i64] {
        let k = (i % self.count() as u64) as usize;
        &self.raw[k * self.in_len..(k + 1) * self.in_len]
    }
    /// Golden output of stream event `i`.
    pub fn expected(&self, i: u64) -> &[i64] {
        let k = (i % self.count() as u64) as usize;
        &self.golden[k * self.out_len..(k + 1) * self.out_len]
    }

    /// Pool from float features (`n * in_len`), quantized with the model's input type.
    pub fn from_features(
        model: &QModel,
        features: &[f32],
        source: String,
    ) -> Result<Self, TbError> {
        let in_len = model.input_len();
        if in_len == 0 || !features.len().is_multiple_of(in_len) || features.is_empty() {
            return Err(TbError::EventLength {
                from: source,
                values: features.len(),
                in_len,
            });
        }
        let raw: Vec<i64> = features
            .chunks(in_len)
            .flat_map(|e| quantize_input(model, e))
            .collect();
        Self::from_raw(model, raw, source)
    }

    /// Pool from raw input codes; computes the golden outputs (on all cores).
    pub fn from_raw(model: &QModel, raw: Vec<i64>, source: String) -> Result<Self, TbError> {
        let in_len = model.input_len();
        let n = raw.len() / in_len;
        let g = Golden::new(model, Arithmetic::Fast);
        let parts = Work::default().map("golden", n, |i| {
            g.evaluate(&raw[i * in_len..(i + 1) * in_len])
        });
        let mut golden = Vec::new();
        let mut out_len = 0;
        for o in parts {
            let o = o?;
            out_len = o.len();
            golden.extend(o);
        }
        Ok(EventPool {
            in_len,
            out_len,
            raw,
            golden,
            source,
        })
    }

    /// `min(events, pool)` generated N(0, 1) events (seeded).
    pub fn generated(model: &QModel, events: u64, pool: usize, seed: u64) -> Result<Self, TbError> {
        let in_len = model.input_len();
        let n = (events as usize).clamp(1, pool.max(1));
        let f = quantize::calibrate::gaussian_events(n, in_len, seed);
        Self::from_features(
            model,
            &f,
            format!("{n} generated N(0,1) events, seed {seed}"),
        )
    }

    /// Events from an `.npy` file (an `.npz` of one array per input for a
    /// model of several): memory-mapped when it is a little-endian f32
    /// C-order `.npy`, otherwise read with `quantize::npy`. At most `limit`
    /// events are taken (the stream cycles through them).
    pub fn from_npy(model: &QModel, path: &Path, limit: usize) -> Result<Self, TbError> {
        let in_len = model.input_len();
        let name = path.display().to_string();
        if model.inputs.len() == 1 {
            if let Some(p) = mmap_f32(path, in_len, limit)? {
                let n = p.len() / in_len;
                return Self::from_features(
                    model,
                    &p,
                    format!("{name} ({n} events, memory-mapped)"),
                );
            }
        }
        let ev = quantize::npy::read_inputs(path, &model.input_shapes())?;
        let n = ev.count().min(limit.max(1));
        Self::from_features(
            model,
            &ev.data[..n * in_len],
            format!("{name} ({n} events)"),
        )
    }
}

/// Memory-maps a `<f4` C-order `.npy` and copies out the first `limit`
/// events (or `None` when the file is another dtype/layout).
fn mmap_f32(path: &Path, in_len: usize, limit: usize) -> Result<Option<Vec<f32>>, TbError> {
    let err = |reason: String| TbError::BadNpy {
        path: path.to_path_buf(),
        reason,
    };
    let f = std::fs::File::open(path).map_err(TbError::file(path))?;
    // SAFETY: read-only map of a file we do not modify; events are copied out.
    let map = unsafe { memmap2::Mmap::map(&f) }.map_err(TbError::file(path))?;
    if map.len() < 10 || &map[..6] != b"\x93NUMPY" {
        return Err(err("not an .npy file".into()));
    }
    let (hlen, hstart) = match map[6] {
        1 => (u16::from_le_bytes([map[8], map[9]]) as usize, 10),
        _ if map.len() >= 12 => (
            u32::from_le_bytes([map[8], map[9], map[10], map[11]]) as usize,
            12,
        ),
        _ => return Err(err("truncated header".into())),
    };
    let header = String::from_utf8_lossy(&map[hstart..(hstart + hlen).min(map.len())]).to_string();
    if !header.contains("'<f4'") || header.contains("'fortran_order': True") {
        return Ok(None);
    }
    let shape: Vec<usize> = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split('(').nth(1))
        .and_then(|s| s.split(')').next())
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_default();
    let per: usize = shape.iter().skip(1).product();
    if shape.is_empty() || per != in_len {
        return Err(err(format!(
            "shape {shape:?}: each event must have {in_len} features"
        )));
    }
    let n = shape[0].min(limit.max(1));
    let data = &map[hstart + hlen..];
    if data.len() < n * in_len * 4 {
        return Err(err("file shorter than its header says".into()));
    }
    Ok(Some(
        data[..n * in_len * 4]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    ))
}
