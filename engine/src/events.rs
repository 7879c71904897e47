//! Event files (`.bxev`): many events of one shape, mapped and read in place.
//!
//! Layout, all integers little-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `BXFLOWEV` |
//! | 8 | 4 | version (1) |
//! | 12 | 4 | dtype: 1 = f32 features, 2 = i64 raw fixed-point codes |
//! | 16 | 4 | rank `R` of one event (1..=8) |
//! | 20 | 4 | reserved, 0 |
//! | 24 | 8 | record count `N` |
//! | 32 | 8 * R | shape of one event |
//! | 64 | .. | `N` records of `prod(shape)` values each, contiguous |
//!
//! The data starts at byte 64, so a page-aligned mapping gives aligned f32 /
//! i64 slices without copying. A file shorter than its header says, or with
//! another shape or dtype than the model expects, is an error naming the
//! byte offset or the mismatch. `.npy` float arrays `[N, features...]` are
//! read too ([`read_npy`]).

use memmap2::Mmap;
use std::fs::File;
use std::io::Write;
use std::path::Path;

pub const MAGIC: &[u8; 8] = b"BXFLOWEV";
pub const VERSION: u32 = 1;
pub const DATA_OFFSET: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F32 = 1,
    I64 = 2,
}

impl Dtype {
    fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::I64 => 8,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EventError {
    #[error("{path}: {msg}")]
    Io { path: String, msg: String },
    #[error("{path}: not a bxflow event file (bad magic at byte 0)")]
    Magic { path: String },
    #[error("{path}: unsupported {what} {value} at byte {offset}")]
    Header {
        path: String,
        what: &'static str,
        value: u64,
        offset: usize,
    },
    #[error("{path}: truncated: {what} needs bytes up to {needed} but the file has {size}")]
    Truncated {
        path: String,
        what: String,
        needed: u64,
        size: u64,
    },
    #[error("{path}: events have shape {found:?} ({dtype:?}) but the model expects {expected:?}")]
    Shape {
        path: String,
        found: Vec<usize>,
        expected: Vec<usize>,
        dtype: Dtype,
    },
}

/// Writes `data` (N * prod(shape) values) as an event file.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), EventError> {
    write(path, Dtype::F32, shape, bytemuck_f32(data), data.len())
}

pub fn write_i64(path: &Path, shape: &[usize], data: &[i64]) -> Result<(), EventError> {
    let b: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    write(path, Dtype::I64, shape, b, data.len())
}

fn bytemuck_f32(d: &[f32]) -> Vec<u8> {
    d.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn write(
    path: &Path,
    dt: Dtype,
    shape: &[usize],
    body: Vec<u8>,
    n_vals: usize,
) -> Result<(), EventError> {
    let io = |e: std::io::Error| EventError::Io {
        path: path.display().to_string(),
        msg: e.to_string(),
    };
    let per: usize = shape.iter().product::<usize>().max(1);
    assert!(
        !shape.is_empty() && shape.len() <= 4 && n_vals.is_multiple_of(per),
        "bad shape/data"
    );
    let mut h = Vec::with_capacity(DATA_OFFSET);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&VERSION.to_le_bytes());
    h.extend_from_slice(&(dt as u32).to_le_bytes());
    h.extend_from_slice(&(shape.len() as u32).to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&((n_vals / per) as u64).to_le_bytes());
    for &d in shape {
        h.extend_from_slice(&(d as u64).to_le_bytes());
    }
    h.resize(DATA_OFFSET, 0);
    let mut f = File::create(path).map_err(io)?;
    f.write_all(&h).map_err(io)?;
    f.write_all(&body).map_err(io)
}

/// A mapped event file.
pub struct EventFile {
    map: Mmap,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub count: usize,
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

impl EventFile {
    pub fn open(path: &Path) -> Result<EventFile, EventError> {
        let p = path.display().to_string();
        let f = File::open(path).map_err(|e| EventError::Io {
            path: p.clone(),
            msg: e.to_string(),
        })?;
        // SAFETY: read-only mapping; the file is not modified while mapped by bxflow.
        let map = unsafe { Mmap::map(&f) }.map_err(|e| EventError::Io {
            path: p.clone(),
            msg: e.to_string(),
        })?;
        let size = map.len() as u64;
        let trunc = |what: &str, needed: u64| EventError::Truncated {
            path: p.clone(),
            what: what.into(),
            needed,
            size,
        };
        if map.len() < 8 {
            return Err(trunc("magic", 8));
        }
        if &map[..8] != MAGIC {
            return Err(EventError::Magic { path: p });
        }
        if map.len() < DATA_OFFSET {
            return Err(trunc("header", DATA_OFFSET as u64));
        }
        let hdr = |what, value: u64, offset| EventError::Header {
            path: p.clone(),
            what,
            value,
            offset,
        };
        let v = u32_at(&map, 8);
        if v != VERSION {
            return Err(hdr("version", v as u64, 8));
        }
        let dtype = match u32_at(&map, 12) {
            1 => Dtype::F32,
            2 => Dtype::I64,
            d => return Err(hdr("dtype", d as u64, 12)),
        };
        let rank = u32_at(&map, 16) as usize;
        if !(1..=4).contains(&rank) {
            return Err(hdr("rank", rank as u64, 16));
        }
        let count = u64_at(&map, 24);
        let shape: Vec<usize> = (0..rank)
            .map(|i| u64_at(&map, 32 + 8 * i) as usize)
            .collect();
        let per = shape.iter().product::<usize>() as u64;
        let needed = DATA_OFFSET as u64 + count * per * dtype.size() as u64;
        if size < needed {
            return Err(trunc(&format!("{count} records of {per} values"), needed));
        }
        Ok(EventFile {
            map,
            dtype,
            shape,
            count: count as usize,
        })
    }

    /// Checks the event shape and dtype against what a model expects.
    pub fn check(&self, path: &Path, expected: &[usize], dtype: Dtype) -> Result<(), EventError> {
        if self.shape != expected || self.dtype != dtype {
            return Err(EventError::Shape {
                path: path.display().to_string(),
                found: self.shape.clone(),
                expected: expected.to_vec(),
                dtype: self.dtype,
            });
        }
        Ok(())
    }

    fn body(&self) -> &[u8] {
        let per: usize = self.shape.iter().product();
        &self.map[DATA_OFFSET..DATA_OFFSET + self.count * per * self.dtype.size()]
    }

    /// All records as f32, in place (None if the file holds i64 codes).
    pub fn f32s(&self) -> Option<&[f32]> {
        let b = self.body();
        // SAFETY: mapping is page aligned and data starts at 64, little-endian x86/ARM.
        (self.dtype == Dtype::F32 && cfg!(target_endian = "little"))
            .then(|| unsafe { std::slice::from_raw_parts(b.as_ptr() as *const f32, b.len() / 4) })
    }

    /// All records as raw i64 codes, in place (None if the file holds f32).
    pub fn i64s(&self) -> Option<&[i64]> {
        let b = self.body();
        // SAFETY: as for f32s.
        (self.dtype == Dtype::I64 && cfg!(target_endian = "little"))
            .then(|| unsafe { std::slice::from_raw_parts(b.as_ptr() as *const i64, b.len() / 8) })
    }
}

/// Float events from a `.npy` file `[N, features...]`: (event shape, values).
pub fn read_npy(path: &Path) -> Result<(Vec<usize>, Vec<f32>), EventError> {
    let ev = quantize::npy::read_events(path).map_err(|e| EventError::Io {
        path: path.display().to_string(),
        msg: e.to_string(),
    })?;
    let n = ev.count();
    let mut data = Vec::with_capacity(n * ev.event_len());
    for i in 0..n {
        data.extend_from_slice(ev.event(i));
    }
    Ok((vec![ev.event_len()], data))
}
