//! The C API, declared in `capi/include/bxflow.h` (kept in sync by
//! `tests/capi.rs`). Every function checks its pointers; errors return a
//! negative code and leave a message for `bxflow_last_error()` on the
//! calling thread. No Rust panic crosses the boundary.

use engine::pipeline::{
    pipeline, Consumer, Next, Overload, PipelineConfig, PipelineError, Producer,
};
use engine::Engine;
use quantize::fixed::FixedType;
use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub const BXFLOW_OK: c_int = 0;
pub const BXFLOW_END: c_int = 1;
pub const BXFLOW_EMPTY: c_int = 2;
pub const BXFLOW_DROPPED: c_int = 3;
pub const BXFLOW_ERR_NULL: c_int = -1;
pub const BXFLOW_ERR_LENGTH: c_int = -2;
pub const BXFLOW_ERR_INPUT: c_int = -3;
pub const BXFLOW_ERR_IO: c_int = -4;
pub const BXFLOW_ERR_CLOSED: c_int = -5;
pub const BXFLOW_ERR_WORKER: c_int = -6;
pub const BXFLOW_ERR_PANIC: c_int = -7;
pub const BXFLOW_ERR_LIMIT: c_int = -8;
pub const BXFLOW_ERR_TIMEOUT: c_int = -9;

/// The ABI this library implements; the header's `BXFLOW_ABI_VERSION`.
/// Raised on every incompatible change of a declaration or a struct.
pub const BXFLOW_ABI_VERSION: c_int = 2;

thread_local! {
    /// The calling thread's last error message and code (`BXFLOW_OK` when
    /// none is set, so that a success clears it with one test, not a
    /// string write).
    static LAST: RefCell<(CString, c_int)> = RefCell::new((CString::new("no error").unwrap(), BXFLOW_OK));
}

fn set_err(code: c_int, msg: impl std::fmt::Display) -> c_int {
    let s = CString::new(msg.to_string().replace('\0', " ")).unwrap_or_default();
    LAST.with(|l| *l.borrow_mut() = (s, code));
    code
}

/// Runs an entry point: a panic becomes `BXFLOW_ERR_PANIC` (it never
/// unwinds into C), and a success (a code >= 0) clears the last error.
fn guard(f: impl FnOnce() -> c_int) -> c_int {
    let code = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(c) => c,
        Err(_) => set_err(BXFLOW_ERR_PANIC, "internal panic in bxflow"),
    };
    if code >= 0 {
        LAST.with(|l| {
            if let Ok(mut l) = l.try_borrow_mut() {
                if l.1 != BXFLOW_OK {
                    *l = (CString::new("no error").unwrap_or_default(), BXFLOW_OK);
                }
            }
        });
    }
    code
}

fn engine_code(e: &engine::EngineError) -> c_int {
    use engine::EngineError::*;
    match e {
        InputLength { .. } | OutputLength { .. } => BXFLOW_ERR_LENGTH,
        InputRange { .. } => BXFLOW_ERR_INPUT,
        _ => BXFLOW_ERR_IO,
    }
}

fn engine_err(e: engine::EngineError) -> c_int {
    set_err(engine_code(&e), e)
}

fn pipe_err(e: PipelineError) -> c_int {
    let code = match &e {
        PipelineError::Closed => BXFLOW_ERR_CLOSED,
        PipelineError::Engine(e) => engine_code(e),
        PipelineError::Limit { .. } => BXFLOW_ERR_LIMIT,
        PipelineError::Timeout => BXFLOW_ERR_TIMEOUT,
        _ => BXFLOW_ERR_WORKER,
    };
    set_err(code, e)
}

/// Opaque engine handle: the engine, and the names of its inputs and
/// outputs as C strings that live as long as the handle.
pub struct BxflowEngine(Arc<Engine>, Names);

/// The ONNX names of an engine's inputs and outputs, NUL-terminated.
struct Names {
    inputs: Vec<CString>,
    outputs: Vec<CString>,
}

impl Names {
    fn of(e: &Engine) -> Names {
        let c = |s: &str| CString::new(s.replace('\0', " ")).unwrap_or_default();
        Names {
            inputs: e.model().inputs.iter().map(|p| c(&p.name)).collect(),
            outputs: e.model().outputs.iter().map(|o| c(&o.name)).collect(),
        }
    }
}

/// One graph input or output (see `bxflow_tensor_info` in the header).
#[repr(C)]
pub struct BxflowTensorInfo {
    pub name: *const c_char,
    pub offset: usize,
    pub len: usize,
    pub ty: BxflowFixedType,
}

/// Opaque pipeline handle.
pub struct BxflowPipeline {
    engine: Arc<Engine>,
    prod: Option<Producer>,
    cons: Option<Consumer>,
    /// Block policy: how long a push waits for room (`None`: forever).
    push_timeout: Option<Duration>,
}

/// A fixed-point type: value = code x 2^-(width - int_bits).
#[repr(C)]
pub struct BxflowFixedType {
    pub width: u32,
    pub int_bits: i32,
    pub is_signed: c_int,
}

/// Pipeline settings (see `bxflow_pipeline_options` in the header).
#[repr(C)]
pub struct BxflowPipelineOptions {
    pub size: usize,
    pub workers: usize,
    pub batch: usize,
    pub queue: usize,
    pub drop_when_full: c_int,
    pub max_wait_us: i64,
    pub spin_us: i64,
    pub push_timeout_us: i64,
}

/// Pipeline counters (see `bxflow_stats` in the header).
#[repr(C)]
pub struct BxflowStats {
    pub pushed: u64,
    pub dropped: u64,
    pub processed: u64,
    pub failed: u64,
    pub delivered: u64,
    pub in_flight: u64,
    pub latency_p50_ns: u64,
    pub latency_p99_ns: u64,
    pub latency_p999_ns: u64,
    pub latency_max_ns: u64,
}

/// The calling thread's last error message (never NULL). Valid until the
/// next bxflow call on this thread; "no error" after a success.
#[no_mangle]
pub extern "C" fn bxflow_last_error() -> *const c_char {
    LAST.with(|l| l.borrow().0.as_ptr())
}

/// The code of the calling thread's last error (`BXFLOW_OK` after a
/// success): what a call that returns a pointer failed with, which its
/// `NULL` alone cannot say.
#[no_mangle]
pub extern "C" fn bxflow_last_error_code() -> c_int {
    LAST.with(|l| l.borrow().1)
}

/// The library's version, "MAJOR.MINOR.PATCH" (static storage).
#[no_mangle]
pub extern "C" fn bxflow_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The ABI this library implements: compare with `BXFLOW_ABI_VERSION`.
#[no_mangle]
pub extern "C" fn bxflow_abi_version() -> c_int {
    BXFLOW_ABI_VERSION
}

/// What a status or error code means, in a few words (static storage;
/// an unknown code gives "unknown bxflow code").
#[no_mangle]
pub extern "C" fn bxflow_strerror(code: c_int) -> *const c_char {
    let s: &'static str = match code {
        BXFLOW_OK => "ok\0",
        BXFLOW_END => "end of the stream\0",
        BXFLOW_EMPTY => "nothing within the timeout\0",
        BXFLOW_DROPPED => "event dropped: the pipeline was full\0",
        BXFLOW_ERR_NULL => "a required pointer is NULL\0",
        BXFLOW_ERR_LENGTH => "a length does not match the model\0",
        BXFLOW_ERR_INPUT => "an input code is outside the input type\0",
        BXFLOW_ERR_IO => "the model cannot be read\0",
        BXFLOW_ERR_CLOSED => "the pipeline's input is finished\0",
        BXFLOW_ERR_WORKER => "a batch failed in a worker\0",
        BXFLOW_ERR_PANIC => "internal error\0",
        BXFLOW_ERR_LIMIT => "an argument is over its documented limit\0",
        BXFLOW_ERR_TIMEOUT => "no room in the pipeline within the timeout\0",
        _ => "unknown bxflow code\0",
    };
    s.as_ptr().cast()
}

/// Opens a `.bxq` model (an `.onnx`, quantized at the default precision,
/// only in a build with the `onnx` feature; otherwise the error says to
/// quantize it first). NULL on error.
///
/// # Safety
/// `path` must be NULL or a valid NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn bxflow_engine_open(path: *const c_char) -> *mut BxflowEngine {
    let mut out = std::ptr::null_mut();
    guard(|| {
        if path.is_null() {
            return set_err(BXFLOW_ERR_NULL, "bxflow_engine_open: path is NULL");
        }
        let p = match CStr::from_ptr(path).to_str() {
            Ok(p) => Path::new(p),
            Err(_) => return set_err(BXFLOW_ERR_IO, "bxflow_engine_open: path is not UTF-8"),
        };
        match Engine::load(p) {
            Ok(e) => {
                let names = Names::of(&e);
                out = Box::into_raw(Box::new(BxflowEngine(Arc::new(e), names)));
                BXFLOW_OK
            }
            Err(e) => engine_err(e),
        }
    });
    out
}

/// Frees an engine (NULL is ignored). Pipelines keep their own reference.
///
/// # Safety
/// `e` must be NULL or a handle from `bxflow_engine_open`, freed once.
#[no_mangle]
pub unsafe extern "C" fn bxflow_engine_free(e: *mut BxflowEngine) {
    if !e.is_null() {
        drop(Box::from_raw(e));
    }
}

/// Values per event in (0 if `e` is NULL).
///
/// # Safety
/// `e` must be NULL or a live engine handle.
#[no_mangle]
pub unsafe extern "C" fn bxflow_engine_input_len(e: *const BxflowEngine) -> usize {
    e.as_ref().map_or(0, |e| e.0.input_len())
}

/// Values per event out (0 if `e` is NULL).
///
/// # Safety
/// `e` must be NULL or a live engine handle.
#[no_mangle]
pub unsafe extern "C" fn bxflow_engine_output_len(e: *const BxflowEngine) -> usize {
    e.as_ref().map_or(0, |e| e.0.output_len())
}

unsafe fn type_of(
    e: *const BxflowEngine,
    out: *mut BxflowFixedType,
    pick: fn(&Engine) -> Result<FixedType, String>,
) -> c_int {
    guard(|| {
        let (Some(e), false) = (e.as_ref(), out.is_null()) else {
            return set_err(BXFLOW_ERR_NULL, "engine or out is NULL");
        };
        let t = match pick(&e.0) {
            Ok(t) => t,
            Err(msg) => return set_err(BXFLOW_ERR_LIMIT, msg),
        };
        let (width, int_bits, signed) = (t.width, t.int_bits, t.signed);
        *out = BxflowFixedType {
            width,
            int_bits,
            is_signed: signed.into(),
        };
        BXFLOW_OK
    })
}

/// The one type `tys` all have, or `BXFLOW_ERR_LIMIT` naming the call to use.
fn common_type(tys: impl Iterator<Item = FixedType>, what: &str) -> Result<FixedType, String> {
    let tys: Vec<FixedType> = tys.collect();
    match tys.split_first() {
        Some((t, rest)) if rest.iter().all(|u| u == t) => Ok(*t),
        _ => Err(format!(
            "the model's {what}s have different types: use bxflow_engine_{what}_info"
        )),
    }
}

/// The input type, when every input of the model has the same one: the
/// raw entry points take its codes.
///
/// # Safety
/// `e` NULL or live; `out` NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn bxflow_engine_input_type(
    e: *const BxflowEngine,
    out: *mut BxflowFixedType,
) -> c_int {
    type_of(e, out, |e| {
        common_type(e.model().inputs.iter().map(|p| p.ty), "input")
    })
}

/// The output type, when every output of the model has the same one: the
/// raw entry points return its codes.
///
/// # Safety
/// `e` NULL or live; `out` NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn bxflow_engine_output_type(
    e: *const BxflowEngine,
    out: *mut BxflowFixedType,
) -> c_int {
    type_of(e, out, |e| {
        let m = e.model();
        common_type(m.outputs.iter().map(|o| m.ty(o.tensor)), "output")
    })
}

/// Number of graph inputs (0 if `e` is NULL).
///
/// # Safety
/// `e` must be NULL or a live engine handle.
#[no_mangle]
pub unsafe extern "C" fn bxflow_engine_num_inputs(e: *const BxflowEngine) -> usize {
    e.as_ref().map_or(0, |e| e.0.model().inputs.len())
}

/// Number of graph outputs (0 if `e` is NULL).
///
/// # Safety
/// `e` must be NULL or a live engine handle.
#[no_mangle]
pub unsafe extern "C" fn bxflow_engine_num_outputs(e: *const BxflowEngine) -> usize {
    e.as_ref().map_or(0, |e| e.0.model().outputs.len())
}

/// An input's or output's name, range within the flat event, and type.
type TensorInfo<'a> = (&'a CStr, std::ops::Range<usize>, FixedType);

/// Input or output `k` of `e`, from `pick`, written to `out`.
unsafe fn tensor_info(
    e: *const BxflowEngine,
    k: usize,
    out: *mut BxflowTensorInfo,
    what: &str,
    pick: fn(&BxflowEngine, usize) -> Option<TensorInfo<'_>>,
) -> c_int {
    guard(|| {
        let (Some(e), false) = (e.as_ref(), out.is_null()) else {
            return set_err(BXFLOW_ERR_NULL, "engine or out is NULL");
        };
        let Some((name, r, t)) = pick(e, k) else {
            return set_err(
                BXFLOW_ERR_LIMIT,
                format!("the model has no {what} {k} (they are numbered from 0)"),
            );
        };
        *out = BxflowTensorInfo {
            name: name.as_ptr(),
            offset: r.start,
            len: r.len(),
            ty: BxflowFixedType {
                width: t.width,
                int_bits: t.int_bits,
                is_signed: t.signed.into(),
            },
        };
        BXFLOW_OK
    })
}

/// Input `k`: its ONNX name (valid while `e` lives), where its values lie
/// in an event's input, and its type. `BXFLOW_ERR_LIMIT` if there is no
/// input `k`.
///
/// # Safety
/// `e` NULL or live; `out` NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn bxflow_engine_input_info(
    e: *const BxflowEngine,
    k: usize,
    out: *mut BxflowTensorInfo,
) -> c_int {
    tensor_info(e, k, out, "input", |e, k| {
        let m = e.0.model();
        let p = m.inputs.get(k)?;
        Some((e.1.inputs[k].as_c_str(), m.input_range(k), p.ty))
    })
}

/// Output `k`: its ONNX name (valid while `e` lives), where its values lie
/// in an event's output, and its type. `BXFLOW_ERR_LIMIT` if there is no
/// output `k`.
///
/// # Safety
/// `e` NULL or live; `out` NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn bxflow_engine_output_info(
    e: *const BxflowEngine,
    k: usize,
    out: *mut BxflowTensorInfo,
) -> c_int {
    tensor_info(e, k, out, "output", |e, k| {
        let m = e.0.model();
        let o = m.outputs.get(k)?;
        Some((e.1.outputs[k].as_c_str(), m.output_range(k), m.ty(o.tensor)))
    })
}

/// The caller's buffers as slices, once their lengths are checked against
/// the model (one event, or `batch`: a whole number of events): a slice is
/// never made from a length the model does not give (`SIZE_MAX` would be
/// undefined behaviour before any check).
unsafe fn slices<'a, I, O>(
    e: *const BxflowEngine,
    input: *const I,
    in_len: usize,
    output: *mut O,
    out_len: usize,
    batch: bool,
) -> Result<(&'a Engine, &'a [I], &'a mut [O]), c_int> {
    let Some(e) = e.as_ref() else {
        return Err(set_err(BXFLOW_ERR_NULL, "engine is NULL"));
    };
    if input.is_null() || output.is_null() {
        return Err(set_err(BXFLOW_ERR_NULL, "input or output is NULL"));
    }
    let (il, ol) = (e.0.input_len(), e.0.output_len());
    let events = if batch { in_len / il.max(1) } else { 1 };
    if in_len != events * il {
        let per = if batch { "a multiple of " } else { "" };
        return Err(set_err(
            BXFLOW_ERR_LENGTH,
            format!("in_len is {in_len}; the model takes {per}{il} inputs per event"),
        ));
    }
    if out_len != events * ol {
        return Err(set_err(
            BXFLOW_ERR_LENGTH,
            format!(
                "out_len is {out_len}; {events} event(s) of {ol} outputs need {}",
                events * ol
            ),
        ));
    }
    Ok((
        &e.0,
        std::slice::from_raw_parts(input, in_len),
        std::slice::from_raw_parts_mut(output, out_len),
    ))
}

/// The body of the inference entry points, for any input and output type:
/// one event, or (`batch`) events back to back.
unsafe fn infer<I: engine::InputValue, O: engine::OutputValue>(
    e: *const BxflowEngine,
    input: *const I,
    in_len: usize,
    output: *mut O,
    out_len: usize,
    batch: bool,
) -> c_int {
    guard(|| match slices(e, input, in_len, output, out_len, batch) {
        Ok((e, x, y)) if batch => e.infer_batch(x, y).map_or_else(engine_err, |_| BXFLOW_OK),
        Ok((e, x, y)) => e.infer(x, y).map_or_else(engine_err, |_| BXFLOW_OK),
        Err(c) => c,
    })
}

/// One event: float features in (quantized with the input type), float outputs.
///
/// # Safety
/// Pointers must be valid for the given lengths.
#[no_mangle]
pub unsafe extern "C" fn bxflow_infer_f32(
    e: *const BxflowEngine,
    input: *const f32,
    in_len: usize,
    output: *mut f32,
    out_len: usize,
) -> c_int {
    infer(e, input, in_len, output, out_len, false)
}

/// One event of raw fixed-point codes in and out.
///
/// # Safety
/// Pointers must be valid for the given lengths.
#[no_mangle]
pub unsafe extern "C" fn bxflow_infer_raw(
    e: *const BxflowEngine,
    input: *const i64,
    in_len: usize,
    output: *mut i64,
    out_len: usize,
) -> c_int {
    infer(e, input, in_len, output, out_len, false)
}

/// Events back to back: `input` holds `in_len` floats (n x input_len),
/// `output` room for `out_len` (n x output_len).
///
/// # Safety
/// Pointers must be valid for those lengths.
#[no_mangle]
pub unsafe extern "C" fn bxflow_infer_batch_f32(
    e: *const BxflowEngine,
    input: *const f32,
    in_len: usize,
    output: *mut f32,
    out_len: usize,
) -> c_int {
    infer(e, input, in_len, output, out_len, true)
}

/// Events back to back, raw codes in and out (as `bxflow_infer_batch_f32`).
///
/// # Safety
/// Pointers must be valid for those lengths.
#[no_mangle]
pub unsafe extern "C" fn bxflow_infer_batch_raw(
    e: *const BxflowEngine,
    input: *const i64,
    in_len: usize,
    output: *mut i64,
    out_len: usize,
) -> c_int {
    infer(e, input, in_len, output, out_len, true)
}

/// Microseconds from the C side: negative means "none" (forever, or off).
fn micros(us: i64) -> Option<Duration> {
    u64::try_from(us).ok().map(Duration::from_micros)
}

/// Fills `*o` with the defaults (and its `size`).
///
/// # Safety
/// `o` NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn bxflow_pipeline_options_init(o: *mut BxflowPipelineOptions) {
    if let Some(o) = o.as_mut() {
        let d = PipelineConfig::default();
        let us = |d: Option<Duration>| d.map_or(-1, |d| d.as_micros() as i64);
        *o = BxflowPipelineOptions {
            size: std::mem::size_of::<BxflowPipelineOptions>(),
            workers: d.workers,
            batch: d.batch,
            queue: d.queue,
            drop_when_full: 0,
            max_wait_us: us(d.max_wait),
            spin_us: us(Some(d.spin)),
            push_timeout_us: -1,
        };
    }
}

/// Starts a pipeline with `*o` (from `bxflow_pipeline_options_init`, then
/// changed). NULL on error; a setting over its limit is refused
/// (`BXFLOW_ERR_LIMIT`) before anything is allocated or started.
///
/// # Safety
/// `e` NULL or a live engine; `o` NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn bxflow_pipeline_create_opts(
    e: *const BxflowEngine,
    o: *const BxflowPipelineOptions,
) -> *mut BxflowPipeline {
    let mut out = std::ptr::null_mut();
    guard(|| {
        let (Some(e), Some(o)) = (e.as_ref(), o.as_ref()) else {
            return set_err(BXFLOW_ERR_NULL, "engine or options is NULL");
        };
        if o.size != std::mem::size_of::<BxflowPipelineOptions>() {
            return set_err(
                BXFLOW_ERR_LIMIT,
                format!(
                    "options.size is {}, this library's bxflow_pipeline_options has {} bytes: \
                     call bxflow_pipeline_options_init, and build against this library's header",
                    o.size,
                    std::mem::size_of::<BxflowPipelineOptions>()
                ),
            );
        }
        let spin = micros(o.spin_us).unwrap_or_default();
        let cfg = PipelineConfig {
            workers: o.workers,
            batch: if o.batch == 0 { 256 } else { o.batch },
            queue: if o.queue == 0 { 64 } else { o.queue },
            overload: if o.drop_when_full != 0 {
                Overload::Drop
            } else {
                Overload::Block
            },
            spin,
            max_wait: micros(o.max_wait_us),
            ..Default::default()
        };
        match pipeline(e.0.clone(), &cfg) {
            Ok((prod, cons)) => {
                out = Box::into_raw(Box::new(BxflowPipeline {
                    engine: e.0.clone(),
                    prod: Some(prod),
                    cons: Some(cons),
                    push_timeout: micros(o.push_timeout_us),
                }));
                BXFLOW_OK
            }
            Err(err) => pipe_err(err),
        }
    });
    out
}

/// Starts a pipeline with the defaults but for `workers`, `batch` and the
/// policy (`drop_when_full` 0 = block, 1 = drop). See
/// `bxflow_pipeline_create_opts`.
///
/// # Safety
/// `e` must be NULL or a live engine handle.
#[no_mangle]
pub unsafe extern "C" fn bxflow_pipeline_create(
    e: *const BxflowEngine,
    workers: usize,
    batch: usize,
    drop_when_full: c_int,
) -> *mut BxflowPipeline {
    let mut o = std::mem::MaybeUninit::<BxflowPipelineOptions>::uninit();
    bxflow_pipeline_options_init(o.as_mut_ptr());
    let mut o = o.assume_init();
    o.workers = workers;
    o.batch = batch;
    o.drop_when_full = drop_when_full;
    bxflow_pipeline_create_opts(e, &o)
}

/// The body of the push entry points.
unsafe fn push_one<I: engine::InputValue>(
    p: *mut BxflowPipeline,
    event: *const I,
    len: usize,
    seq: *mut u64,
) -> c_int {
    guard(|| {
        let Some(p) = p.as_mut() else {
            return set_err(BXFLOW_ERR_NULL, "pipeline is NULL");
        };
        if event.is_null() {
            return set_err(BXFLOW_ERR_NULL, "event is NULL");
        }
        let Some(prod) = p.prod.as_mut() else {
            return set_err(BXFLOW_ERR_CLOSED, "pipeline input is finished");
        };
        if len != p.engine.input_len() {
            return set_err(
                BXFLOW_ERR_LENGTH,
                format!(
                    "len is {len}; the model takes {} inputs",
                    p.engine.input_len()
                ),
            );
        }
        let x = std::slice::from_raw_parts(event, len);
        let r = match p.push_timeout {
            Some(t) => prod.push_timeout(x, t),
            None => prod.push(x),
        };
        match r {
            Ok(pushed) => {
                if !seq.is_null() {
                    *seq = pushed.first;
                }
                if pushed.dropped > 0 {
                    BXFLOW_DROPPED
                } else {
                    BXFLOW_OK
                }
            }
            Err(e) => pipe_err(e),
        }
    })
}

/// Pushes one event of float features (quantized with the input type); its
/// sequence number goes to `*seq` (if not NULL). Block policy: waits for
/// room (at most the push timeout, then `BXFLOW_ERR_TIMEOUT` and the event
/// was not taken). Drop policy: a full pipeline refuses the event,
/// `BXFLOW_DROPPED` (its number is skipped by the results and counted in
/// `dropped`).
///
/// # Safety
/// `p` live, `event` valid for `len` floats, `seq` NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn bxflow_pipeline_push_f32(
    p: *mut BxflowPipeline,
    event: *const f32,
    len: usize,
    seq: *mut u64,
) -> c_int {
    push_one(p, event, len, seq)
}

/// Pushes one event of raw input codes (as `bxflow_pipeline_push_f32`; a
/// code outside the input type is `BXFLOW_ERR_INPUT`, nothing taken).
///
/// # Safety
/// `p` live, `event` valid for `len` codes, `seq` NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn bxflow_pipeline_push_raw(
    p: *mut BxflowPipeline,
    event: *const i64,
    len: usize,
    seq: *mut u64,
) -> c_int {
    push_one(p, event, len, seq)
}

/// Sends the partly filled batch now (waiting for room if the queue is
/// full, under either policy: its events were accepted).
///
/// # Safety
/// `p` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn bxflow_pipeline_flush(p: *mut BxflowPipeline) -> c_int {
    guard(|| {
        let Some(p) = p.as_mut() else {
            return set_err(BXFLOW_ERR_NULL, "pipeline is NULL");
        };
        match p.prod.as_mut() {
            Some(prod) => prod.flush().map_or_else(pipe_err, |_| BXFLOW_OK),
            None => set_err(BXFLOW_ERR_CLOSED, "pipeline input is finished"),
        }
    })
}

/// Sends the last batch and closes the input side: workers drain what is
/// in flight; pop until `BXFLOW_END`. Waits for room in the queue, so pop
/// from another thread if the queues may be full.
///
/// # Safety
/// `p` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn bxflow_pipeline_finish(p: *mut BxflowPipeline) -> c_int {
    guard(|| {
        let Some(p) = p.as_mut() else {
            return set_err(BXFLOW_ERR_NULL, "pipeline is NULL");
        };
        match p.prod.take() {
            Some(prod) => prod.close().map_or_else(pipe_err, |_| BXFLOW_OK),
            None => BXFLOW_OK,
        }
    })
}

/// The body of the pop entry points: `put(outputs, raw)` writes one event.
unsafe fn pop_one<O>(
    p: *mut BxflowPipeline,
    seq: *mut u64,
    out: *mut O,
    out_len: usize,
    timeout_us: i64,
    put: impl Fn(&Engine, &mut [O], &[i64]),
) -> c_int {
    guard(|| {
        let Some(p) = p.as_mut() else {
            return set_err(BXFLOW_ERR_NULL, "pipeline is NULL");
        };
        if out.is_null() {
            return set_err(BXFLOW_ERR_NULL, "out is NULL");
        }
        if out_len != p.engine.output_len() {
            return set_err(
                BXFLOW_ERR_LENGTH,
                format!(
                    "out_len {out_len}, the model produces {}",
                    p.engine.output_len()
                ),
            );
        }
        let Some(cons) = p.cons.as_mut() else {
            return set_err(BXFLOW_ERR_CLOSED, "pipeline is closed");
        };
        match cons.next_timeout(micros(timeout_us)) {
            Ok(Next::Event(s, raw, _)) => {
                put(&p.engine, std::slice::from_raw_parts_mut(out, out_len), raw);
                if !seq.is_null() {
                    *seq = s;
                }
                BXFLOW_OK
            }
            Ok(Next::Empty) => BXFLOW_EMPTY,
            Ok(Next::End) => BXFLOW_END,
            Err(e) => pipe_err(e),
        }
    })
}

/// Next result in event order: `BXFLOW_OK` with `*seq` and `out_len`
/// floats written, `BXFLOW_EMPTY` if nothing came within `timeout_us`
/// (negative: wait forever), `BXFLOW_END` after `finish` once everything
/// is delivered, or `BXFLOW_ERR_WORKER` for a batch that failed (the
/// message says which events). Floats round outputs wider than 24 bits:
/// use `bxflow_pipeline_pop_raw` for exact codes.
///
/// # Safety
/// `p` live, `out` valid for `out_len` floats, `seq` NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn bxflow_pipeline_pop_f32(
    p: *mut BxflowPipeline,
    seq: *mut u64,
    out: *mut f32,
    out_len: usize,
    timeout_us: i64,
) -> c_int {
    pop_one(p, seq, out, out_len, timeout_us, |e, y, raw| {
        for (i, (d, &r)) in y.iter_mut().zip(raw).enumerate() {
            *d = e.output_value(i, r) as f32;
        }
    })
}

/// As `bxflow_pipeline_pop_f32`, with the raw output codes (exact).
///
/// # Safety
/// `p` live, `out` valid for `out_len` codes, `seq` NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn bxflow_pipeline_pop_raw(
    p: *mut BxflowPipeline,
    seq: *mut u64,
    out: *mut i64,
    out_len: usize,
    timeout_us: i64,
) -> c_int {
    pop_one(p, seq, out, out_len, timeout_us, |_, y, raw| {
        y.copy_from_slice(raw)
    })
}

/// Copies the counters and latency percentiles into `*out`.
///
/// # Safety
/// `p` NULL or live; `out` NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn bxflow_pipeline_stats(
    p: *const BxflowPipeline,
    out: *mut BxflowStats,
) -> c_int {
    guard(|| {
        let (Some(p), false) = (p.as_ref(), out.is_null()) else {
            return set_err(BXFLOW_ERR_NULL, "pipeline or out is NULL");
        };
        let Some(cons) = p.cons.as_ref() else {
            return set_err(BXFLOW_ERR_CLOSED, "pipeline is closed");
        };
        let s = cons.stats();
        *out = BxflowStats {
            pushed: s.pushed,
            dropped: s.dropped,
            processed: s.processed,
            failed: s.failed,
            delivered: s.delivered,
            in_flight: s.in_flight,
            latency_p50_ns: s.latency.p50,
            latency_p99_ns: s.latency.p99,
            latency_p999_ns: s.latency.p999,
            latency_max_ns: s.latency.max,
        };
        BXFLOW_OK
    })
}

/// Discards undelivered results, stops the workers and frees the pipeline
/// (NULL is ignored). Never waits for a consumer.
///
/// # Safety
/// `p` NULL or live, closed once.
#[no_mangle]
pub unsafe extern "C" fn bxflow_pipeline_close(p: *mut BxflowPipeline) {
    if p.is_null() {
        return;
    }
    let mut p = Box::from_raw(p);
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // The consumer goes first: workers blocked on a full output queue
        // see it gone and stop, so closing the input cannot wait on them.
        drop(p.cons.take());
        if let Some(prod) = p.prod.take() {
            let _ = prod.close();
        }
    }));
}
