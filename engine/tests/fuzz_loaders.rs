//! Fuzzing the model loaders (issue 15), as a property test over mutated
//! files: the shipped ONNX models and `.bxq` artifacts made from them are
//! byte-flipped, truncated and edited (ONNX node attributes, initializer and
//! input dims; `.bxq` header fields, JSON metadata and array lengths, then the
//! checksum recomputed so that the parser behind it runs), and every mutated
//! file goes through `quantize::load_model` / `Engine::load`. What loads is
//! compiled (`Engine::new`) and run once on zeros, through the engine and the
//! golden model. The property: an error or a working model, never a panic;
//! and no single allocation above [`ALLOC_LIMIT`] (an untrusted length must be
//! an error before it allocates: the guard allocator refuses the request, and
//! the process aborts with "memory allocation of N bytes failed").
//!
//! `BXFLOW_FUZZ_CASES=N` runs N cases per property instead of the default;
//! `BXFLOW_FUZZ_SEED=S` draws other cases (the default seed is fixed);
//! `BXFLOW_FUZZ_TRACE=1` prints each case before it runs (to find the case
//! behind an abort, with `--nocapture`).

use engine::Engine;
use proptest::prelude::*;
use proptest::test_runner::{RngSeed, TestCaseError};
use prost::Message;
use quantize::bxq;
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::Value;
use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tract_onnx::pb;

/// The largest single allocation a case may make. The shipped models need a
/// few MB; anything near this comes from an untrusted length.
const ALLOC_LIMIT: usize = 1 << 30;

struct Guard;

unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if l.size() > ALLOC_LIMIT {
            return std::ptr::null_mut();
        }
        System.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if l.size() > ALLOC_LIMIT {
            return std::ptr::null_mut();
        }
        System.alloc_zeroed(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if new > ALLOC_LIMIT {
            return std::ptr::null_mut();
        }
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static GUARD: Guard = Guard;

const DEFAULT_CASES: u32 = 1000;

fn config() -> ProptestConfig {
    let cases = std::env::var("BXFLOW_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let seed = std::env::var("BXFLOW_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    ProptestConfig {
        cases,
        // A case is a seed: shrinking finds no smaller input, only other seeds.
        max_shrink_iters: 16,
        failure_persistence: None,
        // The same cases on every run unless asked for others.
        rng_seed: RngSeed::Fixed(seed),
        ..ProptestConfig::default()
    }
}

fn trace(desc: &str) {
    if std::env::var_os("BXFLOW_FUZZ_TRACE").is_some() {
        eprintln!("{desc}");
    }
}

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

/// The shipped ONNX models: (name, bytes).
fn onnx_models() -> &'static [(String, Vec<u8>)] {
    static M: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    M.get_or_init(|| {
        let mut out = Vec::new();
        for dir in [models_dir(), models_dir().join("jets")] {
            let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| quantize::load::is_onnx(p))
                .collect();
            paths.sort();
            for p in paths {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                out.push((name, std::fs::read(&p).unwrap()));
            }
        }
        assert!(
            out.len() >= 5,
            "shipped models not found in {:?}",
            models_dir()
        );
        out
    })
}

/// `.bxq` artifacts of every shipped ONNX model that quantizes at the
/// default precision: (name, bytes), made with `bxq::save`.
fn bxq_models() -> &'static [(String, Vec<u8>)] {
    static M: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    M.get_or_init(|| {
        let dir = scratch_dir();
        let mut out = Vec::new();
        for dir_in in [models_dir(), models_dir().join("jets")] {
            let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir_in)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| quantize::load::is_onnx(p))
                .collect();
            paths.sort();
            for p in paths {
                let m = quantize::load_model(&p, None)
                    .unwrap_or_else(|e| panic!("shipped model does not load: {e}"));
                let name = format!("{}.bxq", p.file_stem().unwrap().to_string_lossy());
                let path = dir.join(&name);
                bxq::save(&m, &path).unwrap();
                out.push((name, std::fs::read(&path).unwrap()));
            }
        }
        out
    })
}

fn scratch_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz_loaders");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A file for one property (properties run in parallel; each owns its name).
fn case_path(file: &str) -> PathBuf {
    scratch_dir().join(file)
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic".into())
}

/// What became of one mutated file.
#[derive(Debug)]
enum Outcome {
    /// Loaded, compiled and ran.
    Ran,
    /// The loader or the engine said no; the message.
    Error(String),
}

/// Loads `path` as the tools do and, if it loads, compiles and runs it once.
fn exercise(path: &Path) -> Outcome {
    let model = if quantize::load::is_onnx(path) {
        match quantize::load_model(path, None) {
            Ok(m) => m,
            Err(e) => return Outcome::Error(e.to_string()),
        }
    } else {
        // The C library's path: load and compile in one call.
        match Engine::load(path) {
            Ok(e) => e.model().clone(),
            Err(e) => return Outcome::Error(e.to_string()),
        }
    };
    let engine = match Engine::new(&model) {
        Ok(e) => e,
        Err(e) => return Outcome::Error(e.to_string()),
    };
    let input = vec![0.0f32; engine.input_len()];
    let mut output = vec![0.0f32; engine.output_len()];
    if let Err(e) = engine.infer(&input, &mut output) {
        return Outcome::Error(e.to_string());
    }
    let raw = quantize::golden::quantize_input(&model, &input);
    if let Err(e) = quantize::golden::evaluate(&model, &raw) {
        return Outcome::Error(e.to_string());
    }
    Outcome::Ran
}

/// Writes `bytes` to `path` and exercises it: a panic fails the case.
fn no_panic(bytes: &[u8], path: &Path, desc: &str) -> Result<Outcome, TestCaseError> {
    trace(&format!("case: {desc}"));
    std::fs::write(path, bytes).unwrap();
    match catch_unwind(AssertUnwindSafe(|| exercise(path))) {
        Ok(Outcome::Error(msg)) if msg.trim().is_empty() => Err(TestCaseError::fail(format!(
            "{desc}: an error with an empty message"
        ))),
        Ok(o) => {
            trace(&format!("  -> {o:?}"));
            Ok(o)
        }
        Err(p) => Err(TestCaseError::fail(format!(
            "{desc}: panicked: {}",
            panic_message(&*p)
        ))),
    }
}

// ---------------------------------------------------------------- mutations

/// Integers that break lengths, offsets, widths and indices.
const EXTREME_U: &[u64] = &[
    0,
    1,
    2,
    7,
    8,
    47,
    48,
    63,
    64,
    65,
    200,
    255,
    256,
    65535,
    65536,
    1 << 31,
    1 << 32,
    1 << 53,
    1 << 60,
    1 << 61,
    1 << 63,
    u64::MAX,
    u64::MAX - 7,
];

const EXTREME_I: &[i64] = &[
    0,
    1,
    -1,
    2,
    -2,
    3,
    64,
    65,
    200,
    -200,
    1 << 20,
    1 << 31,
    -(1 << 31),
    1 << 40,
    1 << 60,
    -(1 << 60),
    i64::MAX,
    i64::MIN,
];

fn flip_bytes(rng: &mut StdRng, b: &mut [u8], range: std::ops::Range<usize>) -> String {
    let n = rng.gen_range(1..=6);
    let mut at = Vec::new();
    for _ in 0..n {
        if range.is_empty() {
            break;
        }
        let i = rng.gen_range(range.clone());
        b[i] ^= rng.gen_range(1..=255u8);
        at.push(i);
    }
    format!("bytes flipped at {at:?}")
}

// ------------------------------------------------------------------- .bxq

const HEADER: usize = 48;

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

fn set_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// The metadata and blob of a well-formed `.bxq`.
fn split(b: &[u8]) -> (&[u8], &[u8]) {
    let (jlen, boff, blen) = (
        u64_at(b, 16) as usize,
        u64_at(b, 24) as usize,
        u64_at(b, 32) as usize,
    );
    (&b[HEADER..HEADER + jlen], &b[boff..boff + blen])
}

/// A `.bxq` with this metadata and blob, laid out as `bxq::to_bytes` does,
/// checksum included.
fn assemble(json: &[u8], blob: &[u8]) -> Vec<u8> {
    let boff = (HEADER + json.len()).div_ceil(64) * 64;
    let mut out = Vec::with_capacity(boff + blob.len());
    out.extend_from_slice(bxq::MAGIC);
    out.extend_from_slice(&bxq::VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&(boff as u64).to_le_bytes());
    out.extend_from_slice(&(blob.len() as u64).to_le_bytes());
    out.extend_from_slice(&bxq::checksum(json, blob).to_le_bytes());
    out.extend_from_slice(json);
    out.resize(boff, 0);
    out.extend_from_slice(blob);
    out
}

/// Stores the checksum of what the header points at, when it points inside
/// the file; whether it could.
fn fix_checksum(b: &mut [u8]) -> bool {
    if b.len() < HEADER {
        return false;
    }
    let (jlen, boff, blen) = (u64_at(b, 16), u64_at(b, 24), u64_at(b, 32));
    let size = b.len() as u64;
    let jend = HEADER as u64 + jlen.min(size);
    if jlen > size || jend > size || boff > size || blen > size - boff {
        return false;
    }
    let sum = bxq::checksum(
        &b[HEADER..jend as usize],
        &b[boff as usize..(boff + blen) as usize],
    );
    set_u64(b, 40, sum);
    true
}

/// Every path to a node of the JSON tree, as indices/keys.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

fn paths(v: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                here.push(Step::Key(k.clone()));
                paths(c, here, out);
                here.pop();
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                here.push(Step::Index(i));
                paths(c, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn node_mut<'a>(v: &'a mut Value, path: &[Step]) -> &'a mut Value {
    path.iter().fold(v, |v, s| match s {
        Step::Key(k) => &mut v[k.as_str()],
        Step::Index(i) => &mut v[*i],
    })
}

fn show(path: &[Step]) -> String {
    path.iter()
        .map(|s| match s {
            Step::Key(k) => format!("/{k}"),
            Step::Index(i) => format!("/{i}"),
        })
        .collect()
}

fn extreme_number(rng: &mut StdRng, old: Option<&serde_json::Number>) -> Value {
    match rng.gen_range(0..6) {
        0 => Value::from(EXTREME_I[rng.gen_range(0..EXTREME_I.len())]),
        1 => Value::from(-1.5),
        2 => Value::from(1e300),
        3 => match old.and_then(|n| n.as_i64()) {
            Some(x) => Value::from(x.wrapping_add(rng.gen_range(-2..=2))),
            None => Value::from(0),
        },
        4 => match old.and_then(|n| n.as_u64()) {
            Some(x) => Value::from(x.wrapping_mul(rng.gen_range(2..=1000))),
            None => Value::from(3),
        },
        _ => Value::from(EXTREME_U[rng.gen_range(0..EXTREME_U.len())]),
    }
}

/// Replaces one integer inside a string (a fixed-point type such as
/// `ap_fixed<16,6>`): widths of 0, 65, 200, negative, huge.
fn edit_string(rng: &mut StdRng, s: &str) -> String {
    let bytes = s.as_bytes();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            runs.push(start..i);
        } else {
            i += 1;
        }
    }
    let with: &[&str] = &[
        "0",
        "65",
        "200",
        "-3",
        "64",
        "4294967295",
        "4294967296",
        "2147483648",
        "18446744073709551616",
        "",
    ];
    let w = with[rng.gen_range(0..with.len())];
    match runs.get(rng.gen_range(0..runs.len().max(1))) {
        Some(r) => format!("{}{}{}", &s[..r.start], w, &s[r.end..]),
        None => {
            let junk = [
                "",
                "ap_fixed<0,0>",
                "ap_ufixed<64,1>",
                "ap_fixed<65,1>",
                "x",
            ];
            junk[rng.gen_range(0..junk.len())].to_string()
        }
    }
}

/// One edit of the metadata tree; what it did.
fn edit_json(rng: &mut StdRng, root: &mut Value) -> String {
    let mut all = Vec::new();
    paths(root, &mut Vec::new(), &mut all);
    // Prefer the leaves and small arrays deep in the model.
    let path = all[rng.gen_range(0..all.len())].clone();
    let keys: Vec<String> = all
        .iter()
        .filter_map(|p| match p.last() {
            Some(Step::Key(k)) => Some(k.clone()),
            _ => None,
        })
        .collect();
    let node = node_mut(root, &path);
    let at = show(&path);
    match node {
        Value::Number(n) => {
            let n = n.clone();
            *node = extreme_number(rng, Some(&n));
            format!("{at}: {n} -> {node}")
        }
        Value::String(s) => {
            let new = edit_string(rng, s);
            let d = format!("{at}: {s:?} -> {new:?}");
            *s = new;
            d
        }
        Value::Array(a) if !a.is_empty() && rng.gen_bool(0.7) => {
            let i = rng.gen_range(0..a.len());
            match rng.gen_range(0..4) {
                0 => {
                    a.remove(i);
                    format!("{at}: element {i} removed")
                }
                1 => {
                    let c = a[i].clone();
                    a.insert(i, c);
                    format!("{at}: element {i} duplicated")
                }
                2 => {
                    a.clear();
                    format!("{at}: emptied")
                }
                _ => {
                    a[i] = extreme_number(rng, None);
                    format!("{at}: element {i} -> {}", a[i])
                }
            }
        }
        Value::Object(m) if !m.is_empty() => {
            let k = m.keys().nth(rng.gen_range(0..m.len())).unwrap().clone();
            if rng.gen_bool(0.5) {
                m.remove(&k);
                format!("{at}: field {k:?} removed")
            } else {
                // Rename a key (an op's variant tag, a field) to another one
                // seen in the file: type confusion.
                let to = keys[rng.gen_range(0..keys.len())].clone();
                let v = m.remove(&k).unwrap();
                m.insert(to.clone(), v);
                format!("{at}: field {k:?} renamed {to:?}")
            }
        }
        other => {
            let was = other.to_string();
            *other = match rng.gen_range(0..3) {
                0 => Value::Null,
                1 => Value::from(EXTREME_U[rng.gen_range(0..EXTREME_U.len())]),
                _ => Value::Array(vec![]),
            };
            format!("{at}: {was:.40} -> {other}")
        }
    }
}

/// A Conv or Pool window's geometry edited with values whose sums or
/// products wrap (a pad of 2^64 - 1 with a pad of 1 on the other side adds
/// up to nothing in wrapping arithmetic); a Dense's sizes likewise.
fn edit_window(rng: &mut StdRng, root: &mut Value) -> String {
    let mut all = Vec::new();
    paths(root, &mut Vec::new(), &mut all);
    let windows: Vec<Vec<Step>> = all
        .into_iter()
        .filter(|p| matches!(p.last(), Some(Step::Key(k)) if k == "window" || k == "Dense"))
        .collect();
    let Some(path) = windows.get(rng.gen_range(0..windows.len().max(1))) else {
        return "no window to edit".into();
    };
    let at = show(path);
    let w = node_mut(root, path);
    let Some(obj) = w.as_object_mut() else {
        return format!("{at}: not an object");
    };
    let fields: Vec<String> = obj
        .iter()
        .filter(|(_, v)| v.is_u64() || v.as_array().is_some_and(|a| a.iter().all(Value::is_u64)))
        .map(|(k, _)| k.clone())
        .collect();
    let mut done = Vec::new();
    for _ in 0..rng.gen_range(1..=2) {
        let f = &fields[rng.gen_range(0..fields.len())];
        let slot = &mut obj[f.as_str()];
        let slot = match slot {
            Value::Array(a) if !a.is_empty() => {
                let i = rng.gen_range(0..a.len());
                &mut a[i]
            }
            Value::Array(_) => continue,
            other => other,
        };
        let old = slot.as_u64().unwrap();
        let new = match rng.gen_range(0..6) {
            0 => 0,
            1 => u64::MAX,
            2 => 0u64.wrapping_sub(old),
            3 => old.wrapping_add(1),
            4 => old.wrapping_sub(1),
            _ => EXTREME_U[rng.gen_range(0..EXTREME_U.len())],
        };
        *slot = Value::from(new);
        done.push(format!("{f}: {old} -> {new}"));
    }
    format!("{at}: {}", done.join(", "))
}

/// One mutated `.bxq`: the bytes and what was done to them.
fn mutate_bxq(rng: &mut StdRng, orig: &[u8]) -> (Vec<u8>, String) {
    let (json, blob) = split(orig);
    let jend = HEADER + json.len();
    match rng.gen_range(0..8) {
        7 => {
            let mut v: Value = serde_json::from_slice(json).unwrap();
            let d = edit_window(rng, &mut v);
            let json = serde_json::to_vec(&v).unwrap();
            (assemble(&json, blob), format!("metadata {d}"))
        }
        0 => {
            // Raw byte flips anywhere; the checksum catches them.
            let mut b = orig.to_vec();
            let n = b.len();
            let d = flip_bytes(rng, &mut b, 0..n);
            (b, d)
        }
        1 => {
            let mut b = orig.to_vec();
            let (part, range) = match rng.gen_range(0..3) {
                0 => ("header", 0..HEADER),
                1 => ("metadata", HEADER..jend),
                _ => ("blob", orig.len() - blob.len()..orig.len()),
            };
            let d = flip_bytes(rng, &mut b, range);
            fix_checksum(&mut b);
            (b, format!("{part} {d}, checksum recomputed"))
        }
        2 => {
            let n = rng.gen_range(0..orig.len());
            (orig[..n].to_vec(), format!("truncated to {n} bytes"))
        }
        3 => {
            let mut b = orig.to_vec();
            let (off, name) = [
                (16, "metadata length"),
                (24, "blob offset"),
                (32, "blob length"),
            ][rng.gen_range(0..3)];
            let v = match rng.gen_range(0..3) {
                0 => EXTREME_U[rng.gen_range(0..EXTREME_U.len())],
                1 => (b.len() as u64)
                    .wrapping_add(rng.gen_range(0..3))
                    .wrapping_sub(1),
                _ => u64_at(&b, off).wrapping_add(rng.gen_range(1..=16)),
            };
            set_u64(&mut b, off, v);
            let fixed = fix_checksum(&mut b);
            (
                b,
                format!("header {name} := {v} (checksum recomputed: {fixed})"),
            )
        }
        4 | 5 => {
            // The metadata edited, then the file re-assembled with a good checksum.
            let mut v: Value = serde_json::from_slice(json).unwrap();
            let n = rng.gen_range(1..=3);
            let d: Vec<String> = (0..n).map(|_| edit_json(rng, &mut v)).collect();
            let json = serde_json::to_vec(&v).unwrap();
            (assemble(&json, blob), format!("metadata {}", d.join("; ")))
        }
        _ => {
            // The array lengths edited with the blob length kept consistent
            // with their (wrapping) sum, as a crafted file would.
            let mut v: Value = serde_json::from_slice(json).unwrap();
            let lens = v["array_lens"].as_array_mut().unwrap();
            let k = lens.len();
            let (i, j) = (rng.gen_range(0..k), rng.gen_range(0..k));
            let x = EXTREME_U[rng.gen_range(0..EXTREME_U.len())];
            let li = lens[i].as_u64().unwrap();
            let lj = lens[j].as_u64().unwrap();
            lens[i] = Value::from(li.wrapping_add(x));
            if i != j {
                lens[j] = Value::from(lj.wrapping_sub(x));
            }
            let d = format!("array_lens[{i}] += {x}, array_lens[{j}] -= {x} (wrapping)");
            let json = serde_json::to_vec(&v).unwrap();
            (assemble(&json, blob), d)
        }
    }
}

// ------------------------------------------------------------------- ONNX

const ATTR_NAMES: &[&str] = &[
    "kernel_shape",
    "strides",
    "pads",
    "dilations",
    "group",
    "axis",
    "axes",
    "perm",
    "transA",
    "transB",
    "alpha",
    "beta",
    "epsilon",
    "keepdims",
    "auto_pad",
    "ceil_mode",
    "count_include_pad",
    "narrow",
    "signed",
    "to",
];

fn edit_ints(rng: &mut StdRng, v: &mut Vec<i64>) -> String {
    match rng.gen_range(0..4) {
        0 if !v.is_empty() => {
            let i = rng.gen_range(0..v.len());
            v[i] = EXTREME_I[rng.gen_range(0..EXTREME_I.len())];
            format!("[{i}] := {}", v[i])
        }
        1 if !v.is_empty() => {
            v.pop();
            "last removed".into()
        }
        2 => {
            v.push(EXTREME_I[rng.gen_range(0..EXTREME_I.len())]);
            format!("pushed {}", v[v.len() - 1])
        }
        _ => {
            let x = EXTREME_I[rng.gen_range(0..EXTREME_I.len())];
            v.iter_mut().for_each(|e| *e = x);
            format!("all := {x}")
        }
    }
}

fn edit_attr(rng: &mut StdRng, a: &mut pb::AttributeProto) -> String {
    let name = a.name.clone();
    if !a.ints.is_empty() || (a.r#type == 7 && rng.gen_bool(0.5)) {
        return format!("ints {}", edit_ints(rng, &mut a.ints));
    }
    if !a.floats.is_empty() {
        let i = rng.gen_range(0..a.floats.len());
        a.floats[i] = [f32::NAN, f32::INFINITY, -1.0, 0.0, 1e30][rng.gen_range(0..5)];
        return format!("floats[{i}] := {}", a.floats[i]);
    }
    if let Some(t) = a.t.as_mut() {
        let d = edit_ints(rng, &mut t.dims);
        return format!("tensor dims {d}");
    }
    if !a.s.is_empty() {
        a.s = [&b"VALID"[..], b"SAME_UPPER", b"", b"\xff\xfe"][rng.gen_range(0..4)].to_vec();
        return format!("s := {:?}", String::from_utf8_lossy(&a.s));
    }
    match rng.gen_range(0..3) {
        0 => {
            a.i = EXTREME_I[rng.gen_range(0..EXTREME_I.len())];
            format!("{name}.i := {}", a.i)
        }
        1 => {
            a.f = [f32::NAN, f32::INFINITY, -1.0, 0.0, 1e30][rng.gen_range(0..5)];
            format!("{name}.f := {}", a.f)
        }
        _ => {
            a.r#type = rng.gen_range(0..15);
            format!("{name}.type := {}", a.r#type)
        }
    }
}

/// One structured edit of a decoded ONNX model.
fn edit_onnx(rng: &mut StdRng, m: &mut pb::ModelProto) -> String {
    let g = m.graph.as_mut().unwrap();
    match rng.gen_range(0..6) {
        0 | 1 => {
            // An existing attribute (or a new one on a node without).
            let n = rng.gen_range(0..g.node.len());
            let node = &mut g.node[n];
            let label = format!("node {n} '{}' ({})", node.name, node.op_type);
            if node.attribute.is_empty() || rng.gen_bool(0.2) {
                let name = ATTR_NAMES[rng.gen_range(0..ATTR_NAMES.len())];
                let mut a = pb::AttributeProto {
                    name: name.into(),
                    ..Default::default()
                };
                if rng.gen_bool(0.5) {
                    a.r#type = 7;
                    a.ints = (0..rng.gen_range(0..4))
                        .map(|_| EXTREME_I[rng.gen_range(0..EXTREME_I.len())])
                        .collect();
                } else {
                    a.r#type = 2;
                    a.i = EXTREME_I[rng.gen_range(0..EXTREME_I.len())];
                }
                let d = format!("{label}: attribute {name} added: {a:?}");
                node.attribute.retain(|x| x.name != name);
                node.attribute.push(a);
                d
            } else {
                let k = rng.gen_range(0..node.attribute.len());
                let an = node.attribute[k].name.clone();
                let d = edit_attr(rng, &mut node.attribute[k]);
                format!("{label}: attribute {an} {d}")
            }
        }
        2 if !g.initializer.is_empty() => {
            let k = rng.gen_range(0..g.initializer.len());
            let t = &mut g.initializer[k];
            let name = t.name.clone();
            match rng.gen_range(0..4) {
                0 | 1 => format!("initializer '{name}' dims {}", edit_ints(rng, &mut t.dims)),
                2 => {
                    let n = rng.gen_range(0..=t.raw_data.len());
                    t.raw_data.truncate(n);
                    t.float_data.truncate(n / 4);
                    format!("initializer '{name}' data truncated to {n} bytes")
                }
                _ => {
                    t.data_type = [0, 2, 6, 7, 10, 11, 16, 99][rng.gen_range(0..8)];
                    format!("initializer '{name}' data_type := {}", t.data_type)
                }
            }
        }
        3 => {
            // The input shape.
            let inputs: Vec<usize> = (0..g.input.len()).collect();
            let i = inputs[rng.gen_range(0..inputs.len())];
            let vi = &mut g.input[i];
            let name = vi.name.clone();
            use pb::tensor_shape_proto::dimension::Value as D;
            if let Some(pb::type_proto::Value::TensorType(t)) =
                vi.r#type.as_mut().and_then(|t| t.value.as_mut())
            {
                if let Some(s) = t.shape.as_mut() {
                    let mut dims: Vec<i64> = s
                        .dim
                        .iter()
                        .map(|d| match d.value {
                            Some(D::DimValue(v)) => v,
                            _ => 1,
                        })
                        .collect();
                    let d = edit_ints(rng, &mut dims);
                    s.dim = dims
                        .into_iter()
                        .map(|v| pb::tensor_shape_proto::Dimension {
                            value: Some(D::DimValue(v)),
                            ..Default::default()
                        })
                        .collect();
                    return format!("input '{name}' dims {d}");
                }
            }
            format!("input '{name}' has no shape")
        }
        4 => {
            // Rewire: an op's inputs dropped, swapped or pointed elsewhere.
            let n = rng.gen_range(0..g.node.len());
            let names: Vec<String> = g.node.iter().flat_map(|n| n.output.clone()).collect();
            let node = &mut g.node[n];
            let label = format!("node {n} '{}' ({})", node.name, node.op_type);
            match rng.gen_range(0..3) {
                0 if !node.input.is_empty() => {
                    node.input.pop();
                    format!("{label}: last input removed")
                }
                1 if node.input.len() >= 2 => {
                    node.input.swap(0, 1);
                    format!("{label}: inputs 0 and 1 swapped")
                }
                _ if !node.input.is_empty() => {
                    let to = names[rng.gen_range(0..names.len())].clone();
                    node.input[0] = to.clone();
                    format!("{label}: input 0 := '{to}'")
                }
                _ => format!("{label}: no inputs"),
            }
        }
        _ => {
            // An op replaced by another supported one.
            let ops = quantize::onnx::supported_ops();
            let n = rng.gen_range(0..g.node.len());
            let node = &mut g.node[n];
            let to = ops[rng.gen_range(0..ops.len())];
            let d = format!("node {n} '{}' op {} -> {to}", node.name, node.op_type);
            node.op_type = to.into();
            d
        }
    }
}

fn mutate_onnx(rng: &mut StdRng, orig: &[u8]) -> (Vec<u8>, String) {
    match rng.gen_range(0..5) {
        0 => {
            let mut b = orig.to_vec();
            let n = b.len();
            let d = flip_bytes(rng, &mut b, 0..n);
            (b, d)
        }
        1 => {
            let n = rng.gen_range(0..orig.len());
            (orig[..n].to_vec(), format!("truncated to {n} bytes"))
        }
        _ => {
            let mut m = pb::ModelProto::decode(orig).unwrap();
            let n = rng.gen_range(1..=2);
            let d: Vec<String> = (0..n).map(|_| edit_onnx(rng, &mut m)).collect();
            (m.encode_to_vec(), d.join("; "))
        }
    }
}

// -------------------------------------------------------------- properties

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_bxq_never_panics(seed in any::<u64>()) {
        let models = bxq_models();
        let mut rng = StdRng::seed_from_u64(seed);
        let (name, orig) = &models[rng.gen_range(0..models.len())];
        let (bytes, desc) = mutate_bxq(&mut rng, orig);
        no_panic(&bytes, &case_path("case.bxq"), &format!("{name} (seed {seed}): {desc}"))?;
    }

    #[test]
    fn mutated_onnx_never_panics(seed in any::<u64>()) {
        let models = onnx_models();
        let mut rng = StdRng::seed_from_u64(seed);
        let (name, orig) = &models[rng.gen_range(0..models.len())];
        let (bytes, desc) = mutate_onnx(&mut rng, orig);
        no_panic(&bytes, &case_path("case.onnx"), &format!("{name} (seed {seed}): {desc}"))?;
    }
}

/// The unmutated files load and run: the mutations start from working models.
#[test]
fn shipped_models_load_and_run() {
    for (name, b) in bxq_models() {
        let p = case_path(&format!("plain-{name}"));
        let o = no_panic(b, &p, name).unwrap();
        assert!(matches!(o, Outcome::Ran), "{name}: {o:?}");
    }
}

// ------------------------------------------------- regressions (one per fix)

fn onnx_model(name: &str) -> pb::ModelProto {
    let (_, b) = onnx_models().iter().find(|(n, _)| n == name).unwrap();
    pb::ModelProto::decode(&b[..]).unwrap()
}

fn bxq_model(name: &str) -> &'static [u8] {
    &bxq_models().iter().find(|(n, _)| n == name).unwrap().1
}

/// The error `quantize::load_model` gives for `bytes` written to `file`,
/// without the path it starts with.
fn load_error(bytes: &[u8], file: &str) -> String {
    let path = case_path(file);
    std::fs::write(&path, bytes).unwrap();
    let e = quantize::load_model(&path, None).unwrap_err().to_string();
    let prefix = format!("{}: ", path.display());
    e.strip_prefix(&prefix).map(str::to_string).unwrap_or(e)
}

fn bxq_meta(b: &[u8]) -> (Value, Vec<u8>) {
    let (json, blob) = split(b);
    (serde_json::from_slice(json).unwrap(), blob.to_vec())
}

/// Array lengths whose sum wraps to the blob's size: they once passed the
/// size check, and slicing the blob panicked.
#[test]
fn regression_bxq_array_lengths_that_wrap() {
    let (mut v, blob) = bxq_meta(bxq_model("jet_tagger_qat.bxq"));
    let lens = v["array_lens"].as_array_mut().unwrap();
    let (l1, l3) = (lens[1].as_u64().unwrap(), lens[3].as_u64().unwrap());
    lens[1] = Value::from(l1 + 200);
    lens[3] = Value::from(l3.wrapping_sub(200));
    let total = blob.len() as u128 / 8 + (1u128 << 64);
    let e = load_error(&assemble(&serde_json::to_vec(&v).unwrap(), &blob), "r1.bxq");
    assert!(
        e.ends_with(&format!(
            "metadata at offset 48 is invalid: arrays hold {total} values but the blob has {} bytes",
            blob.len()
        )),
        "{e}"
    );
}

/// A Conv window whose output size wraps to the right product: rejected
/// (it once reached the engine, which overflowed a capacity).
#[test]
fn regression_bxq_window_that_wraps() {
    let (mut v, blob) = bxq_meta(bxq_model("jet_conv1d.bxq"));
    let layer = &mut v["model"]["layers"][1];
    let name = layer["name"].as_str().unwrap().to_string();
    let shape = layer["shape"].clone();
    layer["op"]["Conv"]["window"]["pad_end"][0] = Value::from(1u64 << 63);
    let in_len: u64 = v["model"]["layers"][0]["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap())
        .product();
    let e = load_error(&assemble(&serde_json::to_vec(&v).unwrap(), &blob), "r2.bxq");
    let shape: Vec<u64> = serde_json::from_value(shape).unwrap();
    assert!(
        e.ends_with(&format!(
            "layer 1 '{name}' (Conv): sizes do not match its input of {in_len} values and output shape {shape:?}"
        )),
        "{e}"
    );
}

/// Clip bounds in the wrong order in a `.bxq`: an error (the engine's clamp
/// panicked on them).
#[test]
fn regression_bxq_clip_bounds_in_the_wrong_order() {
    let (mut v, blob) = bxq_meta(bxq_model("jet_tagger.bxq"));
    let layers = v["model"]["layers"].as_array_mut().unwrap();
    let (i, relu) = layers
        .iter_mut()
        .enumerate()
        .find(|(_, l)| l["op"] == "Relu")
        .unwrap();
    relu["op"] = serde_json::json!({"Clip": {"lo": 5, "hi": -5}});
    let name = relu["name"].as_str().unwrap().to_string();
    let e = load_error(&assemble(&serde_json::to_vec(&v).unwrap(), &blob), "r3.bxq");
    assert!(
        e.ends_with(&format!(
            "layer {i} '{name}' (Clip): lower bound 5 is above the upper bound -5"
        )),
        "{e}"
    );
}

/// The first node of `op` in `m`: its index.
fn first(m: &pb::ModelProto, op: &str) -> usize {
    let g = m.graph.as_ref().unwrap();
    g.node.iter().position(|n| n.op_type == op).unwrap()
}

#[test]
fn regression_onnx_transpose_perm_out_of_range() {
    let mut m = onnx_model("conv1d_small_keras.onnx");
    let k = first(&m, "Transpose");
    let node = &mut m.graph.as_mut().unwrap().node[k];
    let perm = node
        .attribute
        .iter_mut()
        .find(|a| a.name == "perm")
        .unwrap();
    perm.ints[1] = 3;
    let (p, name) = (perm.ints.clone(), node.name.clone());
    let e = load_error(&m.encode_to_vec(), "r4.onnx");
    assert_eq!(
        e,
        format!(
            "node '{name}' (Transpose): perm {p:?} is not a permutation of the {} axes of its input",
            p.len()
        )
    );
}

#[test]
fn regression_onnx_input_shape_too_large() {
    use pb::tensor_shape_proto::dimension::Value as D;
    let mut m = onnx_model("conv2d_small_keras.onnx");
    let g = m.graph.as_mut().unwrap();
    let input = g
        .input
        .iter_mut()
        .find(|i| !g.initializer.iter().any(|t| t.name == i.name))
        .unwrap();
    let Some(pb::type_proto::Value::TensorType(t)) =
        input.r#type.as_mut().and_then(|t| t.value.as_mut())
    else {
        panic!("no tensor type")
    };
    let dims = &mut t.shape.as_mut().unwrap().dim;
    dims[3].value = Some(D::DimValue(i64::MAX));
    let shape: Vec<i64> = dims[1..]
        .iter()
        .map(|d| match d.value {
            Some(D::DimValue(v)) => v,
            _ => 0,
        })
        .collect();
    let name = input.name.clone();
    let e = load_error(&m.encode_to_vec(), "r5.onnx");
    assert_eq!(
        e,
        format!(
            "input '{name}': shape {shape:?} holds more than 16777216 values, the limit per tensor"
        )
    );
}

#[test]
fn regression_onnx_unsqueeze_repeated_axis() {
    let mut m = onnx_model("jet_tagger.onnx");
    let k = first(&m, "Relu");
    let node = &mut m.graph.as_mut().unwrap().node[k];
    node.op_type = "Unsqueeze".into();
    node.attribute = vec![pb::AttributeProto {
        name: "axes".into(),
        r#type: 7,
        ints: vec![3, 3],
        ..Default::default()
    }];
    let name = node.name.clone();
    let e = load_error(&m.encode_to_vec(), "r6.onnx");
    assert_eq!(
        e,
        format!("node '{name}' (Unsqueeze): axes [3, 3] name an axis twice")
    );
}

/// A weight quantizer with a bit width of 0 on the per-channel path (which
/// once clamped with min > max and panicked).
#[test]
fn regression_onnx_quant_bit_width() {
    let mut m = onnx_model("TFC_2W2A.onnx");
    let g = m.graph.as_mut().unwrap();
    let inits: Vec<String> = g.initializer.iter().map(|t| t.name.clone()).collect();
    let q = g
        .node
        .iter()
        .find(|n| n.op_type == "Quant" && inits.contains(&n.input[0]))
        .unwrap();
    let (name, bits) = (q.name.clone(), q.input[3].clone());
    let t = g.initializer.iter_mut().find(|t| t.name == bits).unwrap();
    t.raw_data.clear();
    t.float_data = vec![0.0];
    let e = load_error(&m.encode_to_vec(), "r7.onnx");
    assert_eq!(
        e,
        format!("node '{name}' (Quant): bit width 0 must be a whole number from 1 to 64")
    );
}

/// Clip bounds with no value of the input type between them (or min > max,
/// which ONNX defines as "everything becomes max") quantize to `lo == hi`;
/// the engine once panicked on `lo > hi`.
#[test]
fn regression_onnx_clip_bounds_between_two_values() {
    let mut m = onnx_model("jet_tagger.onnx");
    let opset = m.opset_import.iter().map(|o| o.version).max().unwrap();
    let k = first(&m, "Relu");
    for (lo, hi) in [(0.3f32, 0.3f32), (2.0, -1.0)] {
        let g = m.graph.as_mut().unwrap();
        let node = &mut g.node[k];
        node.op_type = "Clip".into();
        if opset < 11 {
            node.attribute = ["min", "max"]
                .iter()
                .zip([lo, hi])
                .map(|(n, f)| pb::AttributeProto {
                    name: n.to_string(),
                    r#type: 1,
                    f,
                    ..Default::default()
                })
                .collect();
        } else {
            node.input.truncate(1);
            node.input
                .extend(["clip_lo".to_string(), "clip_hi".to_string()]);
            g.initializer.retain(|t| !t.name.starts_with("clip_"));
            for (n, f) in [("clip_lo", lo), ("clip_hi", hi)] {
                g.initializer.push(pb::TensorProto {
                    name: n.into(),
                    data_type: 1,
                    float_data: vec![f],
                    ..Default::default()
                });
            }
        }
        let path = case_path("r8.onnx");
        let o = no_panic(&m.encode_to_vec(), &path, "clip").unwrap();
        assert!(matches!(o, Outcome::Ran), "Clip({lo}, {hi}): {o:?}");
        let q = quantize::load_model(&path, None).unwrap();
        let clip = q
            .layers
            .iter()
            .find_map(|l| match l.op {
                quantize::qmodel::QOp::Clip { lo, hi } => Some((lo, hi)),
                _ => None,
            })
            .unwrap();
        assert_eq!(clip.0, clip.1, "Clip({lo}, {hi}) quantized to {clip:?}");
    }
}

/// A MatMul without its second input (which once indexed past the node's
/// inputs while looking for a second activation).
#[test]
fn regression_onnx_matmul_without_its_weights() {
    let mut m = onnx_model("dense_big_keras.onnx");
    let k = first(&m, "MatMul");
    let node = &mut m.graph.as_mut().unwrap().node[k];
    node.input.truncate(1);
    let name = node.name.clone();
    let e = load_error(&m.encode_to_vec(), "r7.onnx");
    assert!(e.starts_with(&format!("node '{name}' (MatMul): ")), "{e}");
    assert!(e.contains("input 1"), "{e}");
}
