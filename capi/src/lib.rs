//! The C API, declared in `capi/include/bxflow.h` (kept in sync by
//! `tests/capi.rs`). Every function checks its pointers; errors return a
//! negative code and leave a message for `bxflow_last_error()` on the
//! calling thread. No Rust panic crosses the boundary.

use engine::pipeline::{
    pipeline, Consumer, Next, Overload, PipelineConfig, PipelineError, Producer,
};
use engine::Engine;
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

thread_local! {
    static LAST: RefCell<CString> = RefCell::new(CString::new("no error").unwrap());
}

fn set_err(code: c_int, msg: impl std::fmt::Display) -> c_int {
    let s = CString::new(msg.to_string().replace('\0', " ")).unwrap_or_default();
    LAST.with(|l| *l.borrow_mut() = s);
    code
}

fn guard(f: impl FnOnce() -> c_int) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(c) => c,
        Err(_) => set_err(BXFLOW_ERR_PANIC, "internal panic in bxflow"),
    }
}

fn engine_err(e: engine::EngineError) -> c_int {
    use engine::EngineError::*;
    let code = match e {
        InputLength { .. } | OutputLength { .. } => BXFLOW_ERR_LENGTH,
        InputRange { .. } => BXFLOW_ERR_INPUT,
        _ => BXFLOW_ERR_IO,
    };
    set_err(code, e)
}

fn pipe_err(e: PipelineError) -> c_int {
    let code = match &e {
        PipelineError::Closed => BXFLOW_ERR_CLOSED,
        PipelineError::Engine(_) => BXFLOW_ERR_LENGTH,
        PipelineError::Limit { .. } => BXFLOW_ERR_LIMIT,
        _ => BXFLOW_ERR_WORKER,
    };
    set_err(code, e)
}

/// Opaque engine handle.
pub struct BxflowEngine(Arc<Engine>);

/// Opaque pipeline handle.
pub struct BxflowPipeline {
    engine: Arc<Engine>,
    prod: Option<Producer>,
    cons: Consumer,
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

/// The calling thread's last error message (never NULL).
#[no_mangle]
pub extern "C" fn bxflow_last_error() -> *const c_char {
    LAST.with(|l| l.borrow().as_ptr())
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
                out = Box::into_raw(Box::new(BxflowEngine(Arc::new(e))));
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

unsafe fn slices<'a, I, O>(
    e: *const BxflowEngine,
    input: *const I,
    in_len: usize,
    output: *mut O,
    out_len: usize,
) -> Result<(&'a Engine, &'a [I], &'a mut [O]), c_int> {
    let Some(e) = e.as_ref() else {
        return Err(set_err(BXFLOW_ERR_NULL, "engine is NULL"));
    };
    if input.is_null() || output.is_null() {
        return Err(set_err(BXFLOW_ERR_NULL, "input or output is NULL"));
    }
    Ok((
        &e.0,
        std::slice::from_raw_parts(input, in_len),
        std::slice::from_raw_parts_mut(output, out_len),
    ))
}

/// The body of the single-event entry points, for any input and output type.
unsafe fn infer_one<I: engine::InputValue, O: engine::OutputValue>(
    e: *const BxflowEngine,
    input: *const I,
    in_len: usize,
    output: *mut O,
    out_len: usize,
) -> c_int {
    guard(|| match slices(e, input, in_len, output, out_len) {
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
    infer_one(e, input, in_len, output, out_len)
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
    infer_one(e, input, in_len, output, out_len)
}

/// `n_events` events back to back: `input` holds `n_events * input_len`
/// floats, `output` `n_events * output_len`.
///
/// # Safety
/// Pointers must be valid for those lengths.
#[no_mangle]
pub unsafe extern "C" fn bxflow_infer_batch_f32(
    e: *const BxflowEngine,
    input: *const f32,
    output: *mut f32,
    n_events: usize,
) -> c_int {
    guard(|| {
        let Some(eng) = e.as_ref() else {
            return set_err(BXFLOW_ERR_NULL, "engine is NULL");
        };
        let (il, ol) = (eng.0.input_len(), eng.0.output_len());
        match slices(e, input, n_events * il, output, n_events * ol) {
            Ok((e, x, y)) => e.infer_batch(x, y).map_or_else(engine_err, |_| BXFLOW_OK),
            Err(c) => c,
        }
    })
}

/// Starts a pipeline: `workers` threads (0: all CPUs; at most 1024), `batch`
/// events per batch (0: 256; at most 65,536 and 64 MiB of raw codes),
/// `drop_when_full` 0 = block (backpressure), 1 = drop and count. NULL on
/// error; a setting over its limit is refused (`BXFLOW_ERR_LIMIT`) before
/// anything is allocated or started.
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
    let mut out = std::ptr::null_mut();
    guard(|| {
        let Some(e) = e.as_ref() else {
            return set_err(BXFLOW_ERR_NULL, "engine is NULL");
        };
        let cfg = PipelineConfig {
            workers,
            batch: if batch == 0 { 256 } else { batch },
            overload: if drop_when_full != 0 {
                Overload::Drop
            } else {
                Overload::Block
            },
            ..Default::default()
        };
        match pipeline(e.0.clone(), &cfg) {
            Ok((prod, cons)) => {
                out = Box::into_raw(Box::new(BxflowPipeline {
                    engine: e.0.clone(),
                    prod: Some(prod),
                    cons,
                }));
                BXFLOW_OK
            }
            Err(err) => pipe_err(err),
        }
    });
    out
}

/// Pushes one event of float features; its sequence number goes to `*seq`
/// (if not NULL). Under the block policy this waits for room: pop from
/// another thread, or call `bxflow_pipeline_finish` and then pop. Under the
/// drop policy a full pipeline refuses the event: `BXFLOW_DROPPED` (its
/// sequence number is skipped by the results and counted in `dropped`).
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
        match prod.push(std::slice::from_raw_parts(event, len)) {
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

/// Flushes and closes the input side: workers drain what is in flight.
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

/// Next result in event order: `BXFLOW_OK` with `*seq` and `out_len` floats
/// written, `BXFLOW_EMPTY` if nothing came within `timeout_us` (negative:
/// wait forever), `BXFLOW_END` after `finish` once everything is delivered,
/// or `BXFLOW_ERR_WORKER` for a batch that failed (message says which events).
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
        let t = (timeout_us >= 0).then(|| Duration::from_micros(timeout_us as u64));
        let eng = p.engine.clone();
        match p.cons.next_timeout(t) {
            Ok(Next::Event(s, raw, _)) => {
                let y = std::slice::from_raw_parts_mut(out, out_len);
                for (d, &r) in y.iter_mut().zip(raw) {
                    *d = eng.output_value(r) as f32;
                }
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
        let s = p.cons.stats();
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

/// Finishes the input, discards undelivered results, joins the workers and
/// frees the pipeline (NULL is ignored).
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
        if let Some(prod) = p.prod.take() {
            let _ = prod.close();
        }
        while !matches!(p.cons.next(), Ok(None)) {}
    }));
}
