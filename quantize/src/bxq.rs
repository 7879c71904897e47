//! The `.bxq` artifact: one quantized model in one file.
//!
//! Layout (all integers little-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `BXQMODEL` |
//! | 8 | 4 | format version (currently 1) |
//! | 12 | 4 | reserved, 0 |
//! | 16 | 8 | JSON metadata length `J` |
//! | 24 | 8 | blob offset `B` (a multiple of 64) |
//! | 32 | 8 | blob length in bytes |
//! | 40 | 8 | FNV-1a 64 checksum of metadata and blob |
//! | 48 | J | JSON: the [`QModel`] with its integer arrays emptied, plus their lengths |
//! | B | .. | every integer array as `i64`, in [`QModel::arrays_mut`] order |
//!
//! The blob is 64-byte aligned so it can be mapped and read in place; the file
//! is read through memmap2.

use crate::qmodel::QModel;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const MAGIC: &[u8; 8] = b"BXQMODEL";
pub const VERSION: u32 = 1;
const HEADER: usize = 48;

#[derive(Debug, thiserror::Error)]
pub enum BxqError {
    #[error("cannot open '{path}': {msg}")]
    Io { path: String, msg: String },
    #[error("'{path}' is not a .bxq model (bad magic at offset 0); quantize an ONNX model with `bxflow quantize`")]
    Magic { path: String },
    #[error("'{path}' has .bxq format version {found}; this bxflow reads version {VERSION}")]
    Version { path: String, found: u32 },
    #[error("'{path}' is truncated: {what} ends at byte {needed} but the file has {size} bytes")]
    Truncated {
        path: String,
        what: &'static str,
        needed: u64,
        size: u64,
    },
    #[error("'{path}' is corrupted: checksum mismatch (stored {stored:#018x}, computed {computed:#018x})")]
    Checksum {
        path: String,
        stored: u64,
        computed: u64,
    },
    #[error("'{path}': metadata at offset {HEADER} is invalid: {msg}")]
    Metadata { path: String, msg: String },
}

#[derive(Serialize, Deserialize)]
struct Meta {
    model: QModel,
    array_lens: Vec<usize>,
    producer: String,
}

fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The checksum stored at offset 40: FNV-1a 64 over the metadata then the blob.
pub fn checksum(json: &[u8], blob: &[u8]) -> u64 {
    fnv1a(&[json, blob])
}

/// Serializes a model to `.bxq` bytes.
pub fn to_bytes(model: &QModel) -> Vec<u8> {
    let mut m = model.clone();
    let arrays: Vec<Vec<i64>> = m.arrays_mut().into_iter().map(std::mem::take).collect();
    let meta = Meta {
        model: m,
        array_lens: arrays.iter().map(Vec::len).collect(),
        producer: format!("bxflow {}", env!("CARGO_PKG_VERSION")),
    };
    let json = serde_json::to_vec(&meta).expect("a model always serializes");
    let blob: Vec<u8> = arrays
        .iter()
        .flatten()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let blob_off = (HEADER + json.len()).div_ceil(64) * 64;
    let mut out = Vec::with_capacity(blob_off + blob.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&(blob_off as u64).to_le_bytes());
    out.extend_from_slice(&(blob.len() as u64).to_le_bytes());
    out.extend_from_slice(&fnv1a(&[&json, &blob]).to_le_bytes());
    out.extend_from_slice(&json);
    out.resize(blob_off, 0);
    out.extend_from_slice(&blob);
    out
}

pub fn save(model: &QModel, path: &Path) -> Result<(), BxqError> {
    std::fs::write(path, to_bytes(model)).map_err(|e| BxqError::Io {
        path: path.display().to_string(),
        msg: e.to_string(),
    })
}

/// Loads a `.bxq` file through a memory map.
pub fn load(path: &Path) -> Result<QModel, BxqError> {
    let p = path.display().to_string();
    let io = |e: std::io::Error| BxqError::Io {
        path: p.clone(),
        msg: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(io)?;
    // Safety: the map is read-only and dropped before returning; a concurrent
    // truncation by another process is the usual memmap caveat.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    from_bytes(&map, &p)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

/// Parses `.bxq` bytes; `path` names the source in errors.
pub fn from_bytes(b: &[u8], path: &str) -> Result<QModel, BxqError> {
    let size = b.len() as u64;
    let trunc = |what, needed| BxqError::Truncated {
        path: path.into(),
        what,
        needed,
        size,
    };
    if b.len() < 8 || &b[..8] != MAGIC {
        return Err(BxqError::Magic { path: path.into() });
    }
    if b.len() < HEADER {
        return Err(trunc("the header", HEADER as u64));
    }
    let version = u32::from_le_bytes(b[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(BxqError::Version {
            path: path.into(),
            found: version,
        });
    }
    let (jlen, boff, blen, sum) = (u64_at(b, 16), u64_at(b, 24), u64_at(b, 32), u64_at(b, 40));
    let jend = (HEADER as u64).saturating_add(jlen);
    if jend > size {
        return Err(trunc("the metadata", jend));
    }
    let bend = boff.saturating_add(blen);
    if bend > size || boff < jend {
        return Err(trunc("the weight blob", bend));
    }
    let json = &b[HEADER..jend as usize];
    let blob = &b[boff as usize..bend as usize];
    let computed = fnv1a(&[json, blob]);
    if computed != sum {
        return Err(BxqError::Checksum {
            path: path.into(),
            stored: sum,
            computed,
        });
    }
    let meta_err = |msg: String| BxqError::Metadata {
        path: path.into(),
        msg,
    };
    let mut meta: Meta = serde_json::from_slice(json).map_err(|e| meta_err(e.to_string()))?;
    // Summed wide: lengths are untrusted, and a sum that wrapped could match
    // the blob while one array reaches past it.
    let total: u128 = meta.array_lens.iter().map(|&n| n as u128).sum();
    if total * 8 != blob.len() as u128 {
        return Err(meta_err(format!(
            "arrays hold {total} values but the blob has {} bytes",
            blob.len()
        )));
    }
    let mut arrays = meta.model.arrays_mut();
    if arrays.len() != meta.array_lens.len() {
        return Err(meta_err(format!(
            "the model has {} arrays but the blob lists {}",
            arrays.len(),
            meta.array_lens.len()
        )));
    }
    let mut off = 0;
    for (a, &n) in arrays.iter_mut().zip(&meta.array_lens) {
        **a = blob[off..off + 8 * n]
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        off += 8 * n;
    }
    crate::validate::validate(&meta.model).map_err(meta_err)?;
    Ok(meta.model)
}
