//! bxflow's CPU engine: runs a quantized network ([`quantize::qmodel::QModel`])
//! bit-exactly to `quantize::golden::evaluate`, as fast as the CPU allows.
//!
//! * [`Engine`]: a model compiled into an execution [`plan::Plan`] of integer
//!   kernels for one [`Isa`] (detected at run time, or forced for tests).
//!   `infer` is `&self`, thread-safe and allocation-free after a thread's
//!   first call (per-thread [`Scratch`]).
//! * [`pipeline`]: a streaming pipeline (producer -> N workers -> in-order
//!   consumer) with an explicit overload policy and a latency histogram.
//! * [`events`]: the `.bxev` event file format (zero-copy via memmap2) and `.npy` input.
//!
//! The C API for DAQ programs is the `capi` crate (`libbxflow`), built on this one.
//!
//! The library reads no environment variables: the instruction set and
//! fusion are [`EngineOptions`]. It loads `.bxq` artifacts; `.onnx` only with
//! the `onnx` feature (which pulls in tract, kept out of the C library).

mod chain;
pub mod dense;
mod epi;
pub mod events;
pub mod hist;
pub mod isa;
pub mod peak;
pub mod pipeline;
pub mod plan;
pub mod rq;
mod scalar;
pub mod sched;

use std::cell::RefCell;
use std::path::Path;

use dense::MULTI;
pub use isa::Isa;
pub use plan::{LayerKernel, LayerProblem, Plan, PlanError, Scratch};
use quantize::fixed::FixedType;
use quantize::qmodel::QModel;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("input has {got} values but the model expects {expected} per event")]
    InputLength { got: usize, expected: usize },
    #[error("output buffer has {got} values but the model produces {expected} per event")]
    OutputLength { got: usize, expected: usize },
    #[error("input value {raw} at index {index} is outside the input type {ty}")]
    InputRange { index: usize, raw: i64, ty: String },
    #[error("instruction set {0} is not available on this CPU")]
    IsaUnavailable(Isa),
    #[error("model cannot be compiled: {0}")]
    Model(#[from] PlanError),
    #[error("cannot load the model: {0}")]
    Load(#[from] quantize::LoadError),
    #[error("the CPU engine ({isa}) and the golden model disagree on event {event}, output {output}: {engine} against {golden} (a bug in bxflow; evaluate with the golden model instead)")]
    Disagrees {
        isa: Isa,
        event: usize,
        output: usize,
        engine: f64,
        golden: f64,
    },
    #[error("an engine thread panicked")]
    Panicked,
}

/// How [`Engine::with_options`] compiles a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineOptions {
    /// The kernel family; `None`: the best this CPU has ([`Isa::detect`]).
    pub isa: Option<Isa>,
    /// Fuse runs of Dense and elementwise layers ([`plan`]); off only to
    /// compare against the unfused plan (both are bit-exact).
    pub fuse: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            isa: None,
            fuse: true,
        }
    }
}

/// A batch of raw integer codes borrowed from the caller, which a fused
/// chain packs straight into its lanes (no i64 staging copy: for wide
/// inputs such as the Conv1D tagger's 96 values, that copy cost more than
/// a layer).
#[derive(Clone, Copy, Debug)]
pub enum RawCodes<'a> {
    I16(&'a [i16]),
    I32(&'a [i32]),
    I64(&'a [i64]),
}

impl<'a> RawCodes<'a> {
    /// The codes `r`.
    fn slice(self, r: std::ops::Range<usize>) -> RawCodes<'a> {
        match self {
            RawCodes::I16(x) => RawCodes::I16(&x[r]),
            RawCodes::I32(x) => RawCodes::I32(&x[r]),
            RawCodes::I64(x) => RawCodes::I64(&x[r]),
        }
    }

    /// The number of codes.
    fn len(self) -> usize {
        match self {
            RawCodes::I16(x) => x.len(),
            RawCodes::I32(x) => x.len(),
            RawCodes::I64(x) => x.len(),
        }
    }

    /// Whether every code lies in `lo..=hi` (branch-free, AVX2 where the CPU has it).
    fn in_range(self, lo: i64, hi: i64) -> bool {
        match self {
            RawCodes::I16(x) => in_range(x, lo, hi),
            RawCodes::I32(x) => in_range(x, lo, hi),
            RawCodes::I64(x) => in_range(x, lo, hi),
        }
    }
}

/// A value the engine accepts as model input.
pub trait InputValue: Copy {
    /// `src` as raw codes, for the integer types (whose values are raw
    /// codes already); `None` for values that must be quantized.
    #[inline]
    fn as_raw(src: &[Self]) -> Option<RawCodes<'_>> {
        let _ = src;
        None
    }

    /// The raw code of the input type; raw integers must already be in range.
    fn to_raw(self, ty: &FixedType, index: usize) -> Result<i64, EngineError>;

    /// `dst[i] = src[i].to_raw(ty, i)` for a whole event; `lo..=hi` is the
    /// input type's raw range. Implementations may check the range once
    /// for the whole event (the error names the first bad value either way).
    #[inline]
    fn to_raw_slice(
        src: &[Self],
        ty: &FixedType,
        _lo: i64,
        _hi: i64,
        dst: &mut [i64],
    ) -> Result<(), EngineError> {
        for (i, (d, &v)) in dst.iter_mut().zip(src).enumerate() {
            *d = v.to_raw(ty, i)?;
        }
        Ok(())
    }
}

/// Raw integer inputs: copy with one branch-free range check per event.
#[inline(always)]
fn raw_slice<T: Copy + Into<i64>>(
    src: &[T],
    ty: &FixedType,
    lo: i64,
    hi: i64,
    dst: &mut [i64],
) -> Result<(), EngineError> {
    if copy_check(src, lo, hi, dst) {
        let (index, &raw) = dst
            .iter()
            .enumerate()
            .find(|(_, &v)| v < lo || v > hi)
            .expect("a value is out of range");
        return Err(EngineError::InputRange {
            index,
            raw,
            ty: ty.ap_string(),
        });
    }
    Ok(())
}

/// Storage for raw codes: i64, or i16 where the input type fits (the
/// pipeline's batches). `store` truncates; callers check the range.
pub(crate) trait RawStore: Copy {
    fn store(v: i64) -> Self;
}

impl RawStore for i64 {
    #[inline(always)]
    fn store(v: i64) -> i64 {
        v
    }
}

impl RawStore for i16 {
    #[inline(always)]
    fn store(v: i64) -> i16 {
        v as i16
    }
}

/// Whether every value of `src` lies in `lo..=hi` ([`copy_check`] without the copy).
#[inline]
fn in_range<T: Copy + Into<i64>>(src: &[T], lo: i64, hi: i64) -> bool {
    #[cfg(target_arch = "x86_64")]
    if Isa::Avx2.available() {
        // SAFETY: AVX2 was just checked available.
        return unsafe { in_range_avx2(src, lo, hi) };
    }
    in_range_any(src, lo, hi)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn in_range_avx2<T: Copy + Into<i64>>(src: &[T], lo: i64, hi: i64) -> bool {
    in_range_any(src, lo, hi)
}

#[inline(always)]
pub(crate) fn in_range_any<T: Copy + Into<i64>>(src: &[T], lo: i64, hi: i64) -> bool {
    // Counted, not folded into a bool: a count vectorizes, `&&` does not.
    let bad: usize = src
        .iter()
        .map(|&v| {
            let v: i64 = v.into();
            usize::from((v < lo) | (v > hi))
        })
        .sum();
    bad == 0
}

/// `dst = src` (stored as `U`); whether any value lies outside `lo..=hi`.
/// Compiled for AVX2 when the CPU has it: baseline x86-64 has no 64-bit
/// vector compare, and the check would take a value at a time.
#[inline]
pub(crate) fn copy_check<T: Copy + Into<i64>, U: RawStore>(
    src: &[T],
    lo: i64,
    hi: i64,
    dst: &mut [U],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if Isa::Avx2.available() {
        // SAFETY: AVX2 was just checked available.
        return unsafe { copy_check_avx2(src, lo, hi, dst) };
    }
    copy_check_any(src, lo, hi, dst)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn copy_check_avx2<T: Copy + Into<i64>, U: RawStore>(
    src: &[T],
    lo: i64,
    hi: i64,
    dst: &mut [U],
) -> bool {
    copy_check_any(src, lo, hi, dst)
}

#[inline(always)]
fn copy_check_any<T: Copy + Into<i64>, U: RawStore>(
    src: &[T],
    lo: i64,
    hi: i64,
    dst: &mut [U],
) -> bool {
    let mut bad = false;
    for (d, &v) in dst.iter_mut().zip(src) {
        let v: i64 = v.into();
        bad |= (v < lo) | (v > hi);
        *d = U::store(v);
    }
    bad
}

/// Raw codes of any integer width: widened to i64 and range-checked.
macro_rules! raw_input {
    ($($t:ty => $v:ident),*) => {$(
        impl InputValue for $t {
            #[inline]
            fn as_raw(src: &[$t]) -> Option<RawCodes<'_>> {
                Some(RawCodes::$v(src))
            }

            #[inline]
            fn to_raw(self, ty: &FixedType, index: usize) -> Result<i64, EngineError> {
                let raw = i64::from(self);
                if ty.contains_raw(raw) {
                    Ok(raw)
                } else {
                    Err(EngineError::InputRange {
                        index,
                        raw,
                        ty: ty.ap_string(),
                    })
                }
            }

            #[inline]
            fn to_raw_slice(
                src: &[$t],
                ty: &FixedType,
                lo: i64,
                hi: i64,
                dst: &mut [i64],
            ) -> Result<(), EngineError> {
                raw_slice(src, ty, lo, hi, dst)
            }
        }
    )*};
}

raw_input!(i64 => I64, i32 => I32, i16 => I16);

impl InputValue for f32 {
    /// Quantized with the input type (its rounding and overflow modes), as
    /// `quantize::golden::quantize_input` does.
    #[inline]
    fn to_raw(self, ty: &FixedType, _: usize) -> Result<i64, EngineError> {
        Ok(ty.quantize_f64(self as f64))
    }
}

impl InputValue for f64 {
    #[inline]
    fn to_raw(self, ty: &FixedType, _: usize) -> Result<i64, EngineError> {
        Ok(ty.quantize_f64(self))
    }
}

/// A value the engine writes as model output.
pub trait OutputValue: Copy + Default {
    fn from_raw(raw: i64, out: &OutScale) -> Self;

    /// `dst` as raw codes, for raw outputs (i64), which a plan of one
    /// chain then writes in place; `None` for values converted from them.
    #[inline]
    fn as_raw_mut(dst: &mut [Self]) -> Option<&mut [i64]> {
        let _ = dst;
        None
    }
}

/// How raw outputs become numbers: exact scaling when the type allows it.
#[derive(Clone, Copy, Debug)]
pub struct OutScale {
    ty: FixedType,
    scale: f64,
    exact: bool,
}

impl OutScale {
    fn new(ty: FixedType) -> OutScale {
        let f = ty.frac_bits();
        let exact = ty.width <= 53 && (-900..=900).contains(&f);
        OutScale {
            ty,
            scale: if exact { (-f as f64).exp2() } else { 0.0 },
            exact,
        }
    }

    #[inline]
    pub fn to_f64(&self, raw: i64) -> f64 {
        if self.exact {
            raw as f64 * self.scale
        } else {
            self.ty.to_f64(raw)
        }
    }
}

impl OutputValue for i64 {
    #[inline]
    fn from_raw(raw: i64, _: &OutScale) -> i64 {
        raw
    }

    #[inline]
    fn as_raw_mut(dst: &mut [i64]) -> Option<&mut [i64]> {
        Some(dst)
    }
}

impl OutputValue for f64 {
    #[inline]
    fn from_raw(raw: i64, s: &OutScale) -> f64 {
        s.to_f64(raw)
    }
}

impl OutputValue for f32 {
    #[inline]
    fn from_raw(raw: i64, s: &OutScale) -> f32 {
        s.to_f64(raw) as f32
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// A quantized model compiled for one instruction set. `Send + Sync`: share
/// it between threads behind an `Arc` or a reference.
#[derive(Clone, Debug)]
pub struct Engine {
    model: QModel,
    plan: Plan,
    /// Each graph input: its type and where it lies in an event and in the arena.
    ports: Vec<InPort>,
    /// How each value of an event's flat output becomes a number.
    out_scales: Vec<OutScale>,
    in_len: usize,
    out_len: usize,
}

/// A graph input as the engine converts it into the arena.
#[derive(Clone, Debug)]
pub(crate) struct InPort {
    pub(crate) ty: FixedType,
    pub(crate) lo: i64,
    pub(crate) hi: i64,
    /// Its values in an event's flat input.
    pub(crate) event: std::ops::Range<usize>,
    /// Its tensor in the arena.
    arena: std::ops::Range<usize>,
}

impl Engine {
    /// Compiles `model` for the best instruction set of this CPU.
    pub fn new(model: &QModel) -> Result<Engine, EngineError> {
        Engine::with_options(model, &EngineOptions::default())
    }

    /// Compiles `model` for `isa`; an error if the CPU lacks it.
    pub fn with_isa(model: &QModel, isa: Isa) -> Result<Engine, EngineError> {
        let options = EngineOptions {
            isa: Some(isa),
            ..EngineOptions::default()
        };
        Engine::with_options(model, &options)
    }

    /// Compiles `model` as `options` say; an error if the CPU lacks the
    /// requested instruction set.
    pub fn with_options(model: &QModel, options: &EngineOptions) -> Result<Engine, EngineError> {
        let isa = options.isa.unwrap_or_else(Isa::detect);
        if !isa.available() {
            return Err(EngineError::IsaUnavailable(isa));
        }
        let plan = Plan::compile(model, isa, options.fuse)?;
        let ports = model
            .inputs
            .iter()
            .zip(plan.input_ranges())
            .enumerate()
            .map(|(k, (p, arena))| InPort {
                ty: p.ty,
                lo: p.ty.min_raw(),
                hi: p.ty.max_raw(),
                event: model.input_range(k),
                arena: arena.clone(),
            })
            .collect();
        Ok(Engine {
            ports,
            out_scales: model.output_types().map(OutScale::new).collect(),
            in_len: model.input_len(),
            out_len: model.output_len(),
            model: model.clone(),
            plan,
        })
    }

    /// Loads a `.bxq` file (or, with the `onnx` feature, an `.onnx`
    /// quantized at the default precision) and compiles it for the best
    /// instruction set.
    pub fn load(path: &Path) -> Result<Engine, EngineError> {
        let m = quantize::load_model(path, None)?;
        Engine::new(&m)
    }

    pub fn model(&self) -> &QModel {
        &self.model
    }
    /// Each graph input: its type, raw range and place in an event.
    pub(crate) fn ports(&self) -> &[InPort] {
        &self.ports
    }
    pub fn plan(&self) -> &Plan {
        &self.plan
    }
    pub fn isa(&self) -> Isa {
        self.plan.isa
    }
    pub fn input_len(&self) -> usize {
        self.in_len
    }
    pub fn output_len(&self) -> usize {
        self.out_len
    }
    /// The real value of raw code `raw` at `index` of an event's flat output.
    pub fn output_value(&self, index: usize, raw: i64) -> f64 {
        self.out_scales[index].to_f64(raw)
    }

    /// Which kernel each layer runs.
    pub fn kernels(&self) -> Vec<LayerKernel> {
        self.plan.describe(&self.model)
    }

    /// The dequantized outputs of every event of `x` (flat, `input_len()`
    /// values per event), split over `threads` threads in whole passes of
    /// the fused chains; then the first `sample` events again with the
    /// golden model, which must give the same bits: what evaluates data
    /// sets (`bxflow eval`, reports, `--auto`, Python's `predict`) runs at
    /// engine speed and still checks itself against the reference.
    pub fn outputs_checked(
        &self,
        x: &[f32],
        threads: usize,
        sample: usize,
    ) -> Result<Vec<f64>, EngineError> {
        let (il, ol) = (self.input_len().max(1), self.output_len());
        let n = x.len() / il;
        let mut out = vec![0f64; n * ol];
        let per = n
            .div_ceil(threads.max(1))
            .next_multiple_of(MULTI)
            .max(MULTI);
        std::thread::scope(|scope| -> Result<(), EngineError> {
            let jobs: Vec<_> = x
                .chunks(per * il)
                .zip(out.chunks_mut(per * ol))
                .map(|(xs, ys)| {
                    scope.spawn(move || self.infer_batch_with(&mut self.scratch(), xs, ys))
                })
                .collect();
            for j in jobs {
                j.join().map_err(|_| EngineError::Panicked)??;
            }
            Ok(())
        })?;
        let k = n.min(sample);
        let one = quantize::work::Work {
            threads: 1,
            ..Default::default()
        };
        let golden = quantize::calibrate::fixed_outputs(&self.model, &x[..k * il], &one).concat();
        if let Some(i) = (0..k * ol).find(|&i| golden[i].to_bits() != out[i].to_bits()) {
            return Err(EngineError::Disagrees {
                isa: self.isa(),
                event: i / ol.max(1),
                output: i % ol.max(1),
                engine: out[i],
                golden: golden[i],
            });
        }
        Ok(out)
    }

    /// [`Engine::outputs_checked`] of `model` compiled for `isa` (`None`:
    /// the best this CPU has): what evaluates data sets in one call.
    pub fn outputs_of(
        model: &QModel,
        isa: Option<Isa>,
        x: &[f32],
        threads: usize,
        sample: usize,
    ) -> Result<Vec<f64>, EngineError> {
        let options = EngineOptions {
            isa,
            ..EngineOptions::default()
        };
        Engine::with_options(model, &options)?.outputs_checked(x, threads, sample)
    }

    /// A scratch sized for this engine (for [`Engine::infer_with`]).
    pub fn scratch(&self) -> Scratch {
        let mut s = Scratch::default();
        s.ensure(&self.plan.sizes);
        s
    }

    /// One event, with this thread's scratch. Inputs: `i64`/`i32` raw codes
    /// of the input type, or `f32`/`f64` quantized on the way in; outputs:
    /// `i64` raw codes or `f32`/`f64` values.
    #[inline]
    pub fn infer<I: InputValue, O: OutputValue>(
        &self,
        input: &[I],
        output: &mut [O],
    ) -> Result<(), EngineError> {
        SCRATCH.with(|s| self.infer_with(&mut s.borrow_mut(), input, output))
    }

    /// One event with caller-provided scratch (never allocates once sized).
    #[inline]
    pub fn infer_with<I: InputValue, O: OutputValue>(
        &self,
        s: &mut Scratch,
        input: &[I],
        output: &mut [O],
    ) -> Result<(), EngineError> {
        if input.len() != self.in_len {
            return Err(EngineError::InputLength {
                got: input.len(),
                expected: self.in_len,
            });
        }
        if output.len() != self.out_len {
            return Err(EngineError::OutputLength {
                got: output.len(),
                expected: self.out_len,
            });
        }
        s.ensure(&self.plan.sizes);
        self.run_one(s, input, output)
    }

    #[inline]
    fn run_one<I: InputValue, O: OutputValue>(
        &self,
        s: &mut Scratch,
        input: &[I],
        output: &mut [O],
    ) -> Result<(), EngineError> {
        if let Some(x) = self.direct_raw(input) {
            let p = &self.ports[0];
            // Raw outputs straight from the chain: no copy through the
            // arena, which is on a single event's critical path.
            if let Some(y) = O::as_raw_mut(output) {
                if self.plan.run_raw(s, x, p.lo, p.hi, Some(y)) {
                    return Ok(());
                }
            } else if self.plan.run_raw(s, x, p.lo, p.hi, None) {
                self.unpack(&s.arena, output);
                return Ok(());
            }
        }
        self.raw(input, &mut s.arena)?;
        self.plan.run(s);
        self.unpack(&s.arena, output);
        Ok(())
    }

    /// Integer codes of one event that a plan of one chain can pack
    /// straight into its lanes.
    #[inline]
    fn direct_raw<'a, I: InputValue>(&self, input: &'a [I]) -> Option<RawCodes<'a>> {
        self.plan.direct_chain()?;
        I::as_raw(input)
    }

    /// One event's raw codes from `src` (its flat input) into an `arena`,
    /// each input converted with its type and range checked; an error
    /// names the index within the event.
    #[inline]
    fn raw<I: InputValue>(&self, src: &[I], arena: &mut [i64]) -> Result<(), EngineError> {
        for p in &self.ports {
            let dst = &mut arena[p.arena.clone()];
            I::to_raw_slice(&src[p.event.clone()], &p.ty, p.lo, p.hi, dst).map_err(
                |e| match e {
                    EngineError::InputRange { index, raw, ty } => EngineError::InputRange {
                        index: index + p.event.start,
                        raw,
                        ty,
                    },
                    e => e,
                },
            )?;
        }
        Ok(())
    }

    /// One event's flat output from its `arena`.
    #[inline]
    fn unpack<O: OutputValue>(&self, arena: &[i64], output: &mut [O]) {
        let mut d = output.iter_mut().zip(&self.out_scales);
        for r in self.plan.output_ranges() {
            for (&v, (d, s)) in arena[r.clone()].iter().zip(&mut d) {
                *d = O::from_raw(v, s);
            }
        }
    }

    /// Many events: `inputs` holds `n * input_len` values, `outputs` `n * output_len`.
    pub fn infer_batch<I: InputValue, O: OutputValue>(
        &self,
        inputs: &[I],
        outputs: &mut [O],
    ) -> Result<usize, EngineError> {
        SCRATCH.with(|s| self.infer_batch_with(&mut s.borrow_mut(), inputs, outputs))
    }

    /// [`Engine::infer_batch_with`] for raw codes already range checked
    /// (the pipeline's narrowed batches): a whole-chain plan packs them
    /// straight into its lanes, without the i64 staging.
    pub(crate) fn infer_batch_raw16(
        &self,
        s: &mut Scratch,
        inputs: &[i16],
        outputs: &mut [i64],
    ) -> Result<usize, EngineError> {
        let (il, ol) = (self.in_len, self.out_len);
        let n = inputs.len().checked_div(il).unwrap_or(0);
        if self.plan.direct_chain().is_none() || n < MULTI || outputs.len() != n * ol {
            return self.infer_batch_with(s, inputs, outputs);
        }
        s.ensure_multi(&self.plan.sizes);
        let passes = n / MULTI;
        for (x, y) in inputs
            .chunks_exact(MULTI * il)
            .zip(outputs.chunks_exact_mut(MULTI * ol))
            .take(passes)
        {
            self.plan.run_multi_raw(s, RawCodes::I16(x));
            y.copy_from_slice(&s.barena[MULTI * il..MULTI * (il + ol)]);
        }
        let e0 = passes * MULTI;
        self.infer_batch_with(s, &inputs[e0 * il..], &mut outputs[e0 * ol..])?;
        Ok(n)
    }

    pub fn infer_batch_with<I: InputValue, O: OutputValue>(
        &self,
        s: &mut Scratch,
        inputs: &[I],
        outputs: &mut [O],
    ) -> Result<usize, EngineError> {
        let n = inputs
            .len()
            .checked_div(self.in_len)
            .unwrap_or(outputs.len() / self.out_len.max(1));
        if inputs.len() != n * self.in_len {
            return Err(EngineError::InputLength {
                got: inputs.len(),
                expected: n * self.in_len,
            });
        }
        if outputs.len() != n * self.out_len {
            return Err(EngineError::OutputLength {
                got: outputs.len(),
                expected: n * self.out_len,
            });
        }
        let mut e0 = 0;
        if self.plan.has_chain() && n >= MULTI {
            // MULTI events per pass: fused chains read each weight once per pass.
            s.ensure_multi(&self.plan.sizes);
            let a = self.plan.sizes.arena;
            let (il, ol) = (self.in_len, self.out_len);
            if self.plan.direct_chain().is_some() {
                // One input and one output: the pass's inputs in one check
                // and copy, outputs in one copy.
                let p = &self.ports[0];
                let s0 = self.out_scales[0];
                let raw = I::as_raw(inputs);
                while e0 + MULTI <= n {
                    let (r, src) = (
                        e0 * il..(e0 + MULTI) * il,
                        &inputs[e0 * il..(e0 + MULTI) * il],
                    );
                    let direct = raw.map(|x| x.slice(r)).filter(|x| x.in_range(p.lo, p.hi));
                    if let Some(x) = direct {
                        self.plan.run_multi_raw(s, x);
                    } else {
                        let dst = &mut s.barena[..MULTI * il];
                        if I::to_raw_slice(src, &p.ty, p.lo, p.hi, dst).is_err() {
                            // The error names the index within the event, as for one event.
                            for x in src.chunks(il) {
                                I::to_raw_slice(x, &p.ty, p.lo, p.hi, &mut s.barena[..il])?;
                            }
                        }
                        self.plan.run_multi(s);
                    }
                    let y = &s.barena[MULTI * il..MULTI * (il + ol)];
                    for (d, &v) in outputs[e0 * ol..(e0 + MULTI) * ol].iter_mut().zip(y) {
                        *d = O::from_raw(v, &s0);
                    }
                    e0 += MULTI;
                }
            } else {
                while e0 + MULTI <= n {
                    for e in 0..MULTI {
                        let src = &inputs[(e0 + e) * il..(e0 + e + 1) * il];
                        self.raw(src, &mut s.barena[e * a..(e + 1) * a])?;
                    }
                    self.plan.run_multi(s);
                    for e in 0..MULTI {
                        let dst = &mut outputs[(e0 + e) * ol..(e0 + e + 1) * ol];
                        self.unpack(&s.barena[e * a..(e + 1) * a], dst);
                    }
                    e0 += MULTI;
                }
            }
        }
        s.ensure(&self.plan.sizes);
        for e in e0..n {
            self.run_one(
                s,
                &inputs[e * self.in_len..(e + 1) * self.in_len],
                &mut outputs[e * self.out_len..(e + 1) * self.out_len],
            )?;
        }
        Ok(n)
    }
}
