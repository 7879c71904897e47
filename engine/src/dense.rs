//! Integer dot-product kernels: `dot[o] = sum_i w[o][i] * x[i]` in i32 lanes.
//!
//! Exactness argument. The plan only uses these kernels when every row's
//! exact dot product, over the whole range of the input type, lies in i32
//! (checked from the actual weights at load time). All lane arithmetic is
//! two's complement and non-saturating (`vpmaddwd`, `vpdpwssd`, `vpdpbusd`,
//! `vpaddd`), i.e. exact modulo 2^32, so whatever the order of additions and
//! however partial sums wrap, the final i32 is the exact dot product.
//!
//! Operands must be exact in their lanes: i16 x i16 (weights and inputs fit
//! i16 after an input offset), or u8 x i8 (inputs shifted by `off` into
//! 0..=255, weights fit i8) for VNNI `vpdpbusd`, and for AVX2 `vpmaddubsw`
//! where no pair of adjacent products can reach its i16 saturation
//! (checked per row from the weights and the input span; otherwise the
//! layer runs i16 x i16). The offset is undone by starting each accumulator
//! at `-off * sum_i w[o][i]` (mod 2^32).
//!
//! Weight layout, packed once: blocks of 16 outputs; within a block, for each
//! pair (i16) or quad (u8) of inputs, 16 lanes of 2 or 4 weights (64 bytes),
//! so that one broadcast of 2 or 4 inputs feeds 32 or 64 multiply-accumulates.

use crate::isa::Isa;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    /// Scalar i32 arithmetic (any operand widths, wrapping).
    I32,
    I16,
    U8,
}

#[derive(Clone, Debug)]
pub struct PackedDense {
    pub n_in: usize,
    pub n_out: usize,
    pub operand: Operand,
    pub(crate) isa: Isa,
    pub(crate) nblk: usize,
    /// Pairs (i16) or quads (u8) of inputs.
    pub(crate) ngroups: usize,
    off: i64,
    pub(crate) init: Vec<i32>,
    /// The packed weights (i16 or i8 lanes): one cache line per block and
    /// input group, so that no weight load straddles two lines.
    pub(crate) w: Vec<Line>,
    w32: Vec<i32>,
}

/// The output of its block that lane `l` of an AVX2 kernel of more than 8
/// outputs computes (two registers per 16-output block): outputs 0..4 and
/// 8..12 in the first register, 4..8 and 12..16 in the second, so that
/// `vpackssdw` of the pair, which packs within each 128-bit half, leaves
/// the 16 results in order. Narrowed in output order, each layer's stores
/// would need one cross-lane permute more per block, on the path from one
/// layer to the next. Lanes 4..8 and 8..12 swapped: its own inverse.
pub(crate) const Y2_LANES: [usize; 16] = [0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15];

/// One 64-byte weight vector, aligned to a cache line.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub(crate) struct Line(pub [u8; 64]);

/// Whether `vpmaddubsw` is exact on these weights: for inputs in
/// `0..=span` (u8 lanes), each adjacent pair of products `x0 * w0 + x1 * w1`
/// of a row (the pairs the instruction adds, inputs `2k` and `2k + 1`) lies
/// in i16 for every input, so that its saturation never acts.
fn pairs_fit_i16(weights: &[i64], n_in: usize, span: i64) -> bool {
    weights.chunks(n_in.max(1)).all(|row| {
        row.chunks(2).all(|p| {
            let pos: i64 = p.iter().map(|&w| w.max(0)).sum();
            let neg: i64 = p.iter().map(|&w| w.min(0)).sum();
            span * pos <= i16::MAX as i64 && span * neg >= i16::MIN as i64
        })
    })
}

/// Bytes of packed-input scratch a kernel needs.
pub fn xpack_len(n_in: usize) -> usize {
    (n_in + 4) * 2
}

impl PackedDense {
    /// Packs row-major `weights[o * n_in + i]` for inputs in `[xlo, xhi]`;
    /// `None` if the operands do not fit the kernel family's lanes.
    pub fn new(
        weights: &[i64],
        n_in: usize,
        n_out: usize,
        isa: Isa,
        xlo: i64,
        xhi: i64,
    ) -> Option<PackedDense> {
        let (wmin, wmax) = weights
            .iter()
            .fold((0i64, 0i64), |(a, b), &w| (a.min(w), b.max(w)));
        let fits = |lo: i64, hi: i64, a: i64, b: i64| lo >= a && hi <= b;
        let span = xhi as i128 - xlo as i128;
        let (operand, off) = if isa == Isa::Scalar {
            (Operand::I32, 0)
        } else if fits(wmin, wmax, -128, 127)
            && span <= 255
            && (isa == Isa::Avx512Vnni
                || (isa == Isa::Avx2 && pairs_fit_i16(weights, n_in, span as i64)))
        {
            (Operand::U8, -xlo)
        } else if fits(wmin, wmax, -32768, 32767) && span <= 65535 {
            let off = if fits(xlo, xhi, -32768, 32767) {
                0
            } else {
                -32768 - xlo
            };
            (Operand::I16, off)
        } else {
            return None;
        };
        let nblk = n_out.div_ceil(16);
        let g = match operand {
            Operand::U8 => 4,
            _ => 2,
        };
        let ngroups = n_in.div_ceil(g);
        let mut init = vec![0i32; nblk * 16];
        for o in 0..n_out {
            let s: i64 = weights[o * n_in..(o + 1) * n_in].iter().sum();
            init[o] = (s as i128 * -(off as i128)) as i32; // mod 2^32
        }
        let mut p = PackedDense {
            n_in,
            n_out,
            operand,
            isa,
            nblk,
            ngroups,
            off,
            init,
            w: Vec::new(),
            w32: Vec::new(),
        };
        let mut init = std::mem::take(&mut p.init);
        p.to_lanes(&mut init);
        p.init = init;
        let lanes = p.lanes();
        let wt = |o: usize, i: usize| -> i64 {
            let o = o - o % 16 + lanes[o % 16];
            if o < n_out && i < n_in {
                weights[o * n_in + i]
            } else {
                0
            }
        };
        if operand == Operand::I32 {
            p.w32 = weights.iter().map(|&w| w as i32).collect();
        } else {
            let mut w = Vec::with_capacity(nblk * ngroups * 16 * g);
            for b in 0..nblk {
                for q in 0..ngroups {
                    for l in 0..16 {
                        for j in 0..g {
                            w.push(wt(b * 16 + l, q * g + j));
                        }
                    }
                }
            }
            // Lane-exact: the operand family was chosen from the weights' range.
            let bytes: Vec<u8> = match operand {
                Operand::U8 => w.iter().map(|&v| v as i8 as u8).collect(),
                _ => w.iter().flat_map(|&v| (v as i16).to_le_bytes()).collect(),
            };
            p.w = bytes
                .chunks_exact(64)
                .map(|c| Line(c.try_into().expect("64-byte chunks")))
                .collect();
        }
        Some(p)
    }

    /// `dot[o]` for `o < n_out` (`dot` needs `n_out` rounded up to 16 entries);
    /// `xpack` is scratch of at least [`xpack_len`] bytes, as u16 words.
    #[inline(always)]
    pub fn run(&self, x: &[i64], xpack: &mut [u16], dot: &mut [i32]) {
        debug_assert!(x.len() >= self.n_in && dot.len() >= self.nblk * 16);
        if self.operand == Operand::I32 {
            for (o, d) in dot[..self.n_out].iter_mut().enumerate() {
                let row = &self.w32[o * self.n_in..(o + 1) * self.n_in];
                let mut s = 0i32;
                for (w, &v) in row.iter().zip(x) {
                    s = s.wrapping_add(w.wrapping_mul(v as i32));
                }
                *d = s;
            }
            return;
        }
        let xp = &mut xpack[..self.packed_words()];
        self.pack(x, xp);
        self.run_packed(xp, dot);
    }

    /// Packs `x[..n_in]` into the lane format of [`PackedDense::packed_words`]
    /// (`x + off` as i16, or as u8 for `Operand::U8`); padding lanes are left
    /// as they are (their weights are 0).
    #[inline(always)]
    pub fn pack<T: Copy + Into<i64>>(&self, x: &[T], xp: &mut [u16]) {
        self.pack_all(&x[..self.n_in], xp)
    }

    /// [`PackedDense::pack`] of `x` (`n_in` values), checking their range
    /// as it goes: whether all lie in `lo..=hi`. One pass over a single
    /// event's input instead of a check and then the packing.
    #[inline(always)]
    pub(crate) fn pack_checked<T: Copy + Into<i64>>(
        &self,
        x: &[T],
        lo: i64,
        hi: i64,
        xp: &mut [u16],
    ) -> bool {
        self.pack_counting(&x[..self.n_in], lo, hi, xp) == 0
    }

    /// [`PackedDense::pack`] of every value of `x`, however many inputs
    /// the kernel has (a convolution's window is a run of a longer input).
    #[inline(always)]
    pub(crate) fn pack_all<T: Copy + Into<i64>>(&self, x: &[T], xp: &mut [u16]) {
        // No value lies outside the full range: the count compiles away.
        self.pack_counting(x, i64::MIN, i64::MAX, xp);
    }

    /// Packs every value of `x` and counts those outside `lo..=hi`.
    #[inline(always)]
    fn pack_counting<T: Copy + Into<i64>>(
        &self,
        x: &[T],
        lo: i64,
        hi: i64,
        xp: &mut [u16],
    ) -> usize {
        let off = self.off;
        // Counted, not folded into a bool: a count vectorizes.
        let out = |v: i64| usize::from((v < lo) | (v > hi));
        let mut bad = 0usize;
        if self.operand == Operand::U8 {
            for (d, &v) in bytes(xp).iter_mut().zip(x) {
                let v = v.into();
                bad += out(v);
                *d = (v + off) as u8;
            }
        } else {
            for (d, &v) in xp.iter_mut().zip(x) {
                let v = v.into();
                bad += out(v);
                *d = (v + off) as i16 as u16;
            }
        }
        bad
    }
}

/// A byte view of a u16 buffer (u8 lanes live in the same scratch).
#[inline(always)]
pub(crate) fn bytes(x: &mut [u16]) -> &mut [u8] {
    // SAFETY: the same memory, twice as many elements of a type with no invalid values.
    unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr() as *mut u8, x.len() * 2) }
}

/// A run of input groups a dot product reads: weight groups `w..w + n`
/// against the packed input's groups at byte `x` onwards. A Dense layer
/// reads one run (all its groups); a convolution, per output position,
/// one run per stretch of taps that are adjacent in its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Seg {
    pub w: usize,
    pub x: usize,
    pub n: usize,
}

impl Seg {
    /// Every group of `p`, from the start of the input.
    #[inline(always)]
    pub(crate) fn all(p: &PackedDense) -> [Seg; 1] {
        [Seg {
            w: 0,
            x: 0,
            n: p.ngroups,
        }]
    }
}

/// Events per pass of a fused chain's multi-event kernels (`crate::chain`).
pub const MULTI: usize = 8;

impl PackedDense {
    /// Input offset added to each raw input before it enters a lane.
    #[inline]
    pub fn offset(&self) -> i64 {
        self.off
    }

    /// u16 words of one packed input vector: `ngroups` pairs of i16 lanes
    /// `(x + off)` (`Operand::I16`), or `ngroups` quads of u8 lanes
    /// `(x + off)` (`Operand::U8`, the words viewed as bytes).
    pub fn packed_words(&self) -> usize {
        self.ngroups * 2
    }

    /// The output each lane of a block computes: [`Y2_LANES`] for an AVX2
    /// kernel of more than 8 outputs (run on register pairs), else the
    /// lane's own.
    fn lanes(&self) -> [usize; 16] {
        if self.isa == Isa::Avx2 && self.n_out > 8 {
            Y2_LANES
        } else {
            std::array::from_fn(|l| l)
        }
    }

    /// `v`, one i32 per output in blocks of 16, rearranged into the lane
    /// order ([`PackedDense::lanes`]) in which the kernels load such arrays
    /// (initial accumulators, biases).
    pub(crate) fn to_lanes(&self, v: &mut [i32]) {
        let lanes = self.lanes();
        for blk in v.chunks_exact_mut(16) {
            let out: [i32; 16] = std::array::from_fn(|l| blk[l]);
            for (d, &o) in blk.iter_mut().zip(&lanes) {
                *d = out[o];
            }
        }
    }

    /// i32 entries of `dot` the kernel writes (`n_out` rounded up to 16).
    pub fn dot_len(&self) -> usize {
        self.nblk * 16
    }

    /// `dot` from an input already packed in the lane format (see
    /// [`PackedDense::packed_words`]); padding lanes may hold anything
    /// (their weights are 0). Not for `Operand::I32`.
    #[inline(always)]
    pub fn run_packed(&self, xp: &[u16], dot: &mut [i32]) {
        assert!(xp.len() >= self.packed_words() && dot.len() >= self.dot_len());
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the ISA was checked available when the plan was built;
        // the packed sizes are asserted above.
        unsafe {
            let (x, d) = (xp.as_ptr() as *const u8, dot.as_mut_ptr());
            match (self.operand, self.isa) {
                (Operand::I32, _) | (_, Isa::Scalar) => {
                    unreachable!("packed kernels need x86_64 SIMD")
                }
                (_, Isa::Avx512Vnni) => x86::vnni(self, x, d),
                (_, Isa::Avx512) => x86::avx512(self, x, d),
                (_, Isa::Avx2) => x86::avx2(self, x, d),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("packed kernels need x86_64 SIMD")
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    //! One dot-product loop ([`blocks`]) serves every multiply family,
    //! event count, epilogue and vector width: its arithmetic goes through
    //! [`Lanes`], sixteen i32 lanes that are one AVX-512 register or two
    //! AVX2 registers, so that a 16-output block of packed weights (one
    //! cache line) means the same on both.
    use super::{Line, Operand, PackedDense, Seg};
    use crate::isa::Isa;
    use std::arch::x86_64::*;

    /// The multiply-accumulate of [`blocks`]: `vpdpwssd` (i16 x i16, VNNI),
    /// `vpdpbusd` (u8 x i8, VNNI), `vpmaddwd` + `vpaddd` (AVX-512 BW, AVX2)
    /// or `vpmaddubsw` + `vpmaddwd` + `vpaddd` (u8 x i8 on AVX2, where the
    /// plan proved that no pair of products saturates i16).
    const DPWSSD: u8 = 0;
    const DPBUSD: u8 = 1;
    const MADD: u8 = 2;
    const UBSW: u8 = 3;

    #[inline(always)]
    pub(crate) unsafe fn count(k: u32) -> __m128i {
        _mm_cvtsi32_si128(k as i32)
    }

    /// The i32 lanes of one 16-output block (or, for [`Lanes::Half`], of
    /// its first 8 outputs) and the lane operations the kernels and their
    /// epilogues use. Methods are `inline(always)` so that they take the
    /// `target_feature` of the function they are inlined into.
    pub(crate) trait Lanes: Copy {
        /// A broadcast input group (a pair of i16 or a quad of u8).
        type B: Copy;
        /// The type for layers of at most 8 outputs (whose block's upper
        /// half is padding): 8 lanes where that saves work, else `Self`.
        type Half: Lanes;
        /// Whether `Half` is narrower than `Self`.
        const HALVES: bool;
        unsafe fn zero() -> Self;
        unsafe fn splat(v: i32) -> Self;
        unsafe fn load(p: *const i32) -> Self;
        unsafe fn store(self, p: *mut i32);
        /// The lanes narrowed to i16 (values in range), 32 bytes at `p`.
        unsafe fn store_i16(self, p: *mut u8);
        /// The lanes narrowed to u8 (values in 0..=255), 16 bytes at `p`.
        unsafe fn store_u8(self, p: *mut u8);
        unsafe fn add(self, o: Self) -> Self;
        unsafe fn and(self, o: Self) -> Self;
        unsafe fn shl(self, k: u32) -> Self;
        unsafe fn sra(self, k: u32) -> Self;
        unsafe fn srl(self, k: u32) -> Self;
        unsafe fn max(self, o: Self) -> Self;
        unsafe fn min(self, o: Self) -> Self;
        /// `v >> 31`: all ones where negative.
        unsafe fn sign(self) -> Self;
        /// 0 outside `[lo, hi]`.
        unsafe fn zero_outside(self, lo: i32, hi: i32) -> Self;
        /// `v` where `v > th`, else 0.
        unsafe fn keep_above(self, th: i32) -> Self;
        unsafe fn bcast(p: *const u8) -> Self::B;
        /// One cache line of packed weights.
        unsafe fn weights(p: *const Line) -> Self;
        /// `self + x * w` by the multiply family `OP`.
        unsafe fn mac<const OP: u8>(self, x: Self::B, w: Self) -> Self;
    }

    impl Lanes for __m512i {
        type B = __m512i;
        type Half = __m512i;
        const HALVES: bool = false;
        #[inline(always)]
        unsafe fn zero() -> Self {
            _mm512_setzero_si512()
        }
        #[inline(always)]
        unsafe fn splat(v: i32) -> Self {
            _mm512_set1_epi32(v)
        }
        #[inline(always)]
        unsafe fn load(p: *const i32) -> Self {
            _mm512_loadu_si512(p as *const _)
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut i32) {
            _mm512_storeu_si512(p as *mut _, self)
        }
        #[inline(always)]
        unsafe fn store_i16(self, p: *mut u8) {
            _mm256_storeu_si256(p as *mut _, _mm512_cvtepi32_epi16(self))
        }
        #[inline(always)]
        unsafe fn store_u8(self, p: *mut u8) {
            _mm_storeu_si128(p as *mut _, _mm512_cvtepi32_epi8(self))
        }
        #[inline(always)]
        unsafe fn add(self, o: Self) -> Self {
            _mm512_add_epi32(self, o)
        }
        #[inline(always)]
        unsafe fn and(self, o: Self) -> Self {
            _mm512_and_si512(self, o)
        }
        #[inline(always)]
        unsafe fn shl(self, k: u32) -> Self {
            _mm512_sll_epi32(self, count(k))
        }
        #[inline(always)]
        unsafe fn sra(self, k: u32) -> Self {
            _mm512_sra_epi32(self, count(k))
        }
        #[inline(always)]
        unsafe fn srl(self, k: u32) -> Self {
            _mm512_srl_epi32(self, count(k))
        }
        #[inline(always)]
        unsafe fn max(self, o: Self) -> Self {
            _mm512_max_epi32(self, o)
        }
        #[inline(always)]
        unsafe fn min(self, o: Self) -> Self {
            _mm512_min_epi32(self, o)
        }
        #[inline(always)]
        unsafe fn sign(self) -> Self {
            _mm512_srai_epi32::<31>(self)
        }
        #[inline(always)]
        unsafe fn zero_outside(self, lo: i32, hi: i32) -> Self {
            let out = _mm512_cmpgt_epi32_mask(self, Self::splat(hi))
                | _mm512_cmplt_epi32_mask(self, Self::splat(lo));
            _mm512_maskz_mov_epi32(!out, self)
        }
        #[inline(always)]
        unsafe fn keep_above(self, th: i32) -> Self {
            _mm512_maskz_mov_epi32(_mm512_cmpgt_epi32_mask(self, Self::splat(th)), self)
        }
        #[inline(always)]
        unsafe fn bcast(p: *const u8) -> __m512i {
            _mm512_set1_epi32(std::ptr::read_unaligned(p as *const i32))
        }
        #[inline(always)]
        unsafe fn weights(p: *const Line) -> Self {
            _mm512_load_si512(p as *const _)
        }
        #[inline(always)]
        unsafe fn mac<const OP: u8>(self, x: __m512i, w: Self) -> Self {
            match OP {
                DPWSSD => _mm512_dpwssd_epi32(self, x, w),
                DPBUSD => _mm512_dpbusd_epi32(self, x, w),
                UBSW => _mm512_add_epi32(
                    self,
                    _mm512_madd_epi16(_mm512_maddubs_epi16(x, w), _mm512_set1_epi16(1)),
                ),
                _ => _mm512_add_epi32(self, _mm512_madd_epi16(x, w)),
            }
        }
    }

    /// Sixteen i32 lanes in two AVX2 registers (lanes 0..8, 8..16), lane
    /// `l` holding output [`Y2_LANES`](super::Y2_LANES)`[l]` of its block: i32 arrays it
    /// loads (initial accumulators, biases) are in that order, what it
    /// stores is in output order.
    #[derive(Clone, Copy)]
    pub(crate) struct Y2(__m256i, __m256i);

    impl Y2 {
        #[inline(always)]
        unsafe fn map(self, f: impl Fn(__m256i) -> __m256i) -> Y2 {
            Y2(f(self.0), f(self.1))
        }
        #[inline(always)]
        unsafe fn zip(self, o: Y2, f: impl Fn(__m256i, __m256i) -> __m256i) -> Y2 {
            Y2(f(self.0, o.0), f(self.1, o.1))
        }
        /// The 16 outputs as i16 in order: `vpackssdw` packs within each
        /// 128-bit half, which [`Y2_LANES`](super::Y2_LANES) holds in order.
        #[inline(always)]
        unsafe fn packs(self) -> __m256i {
            _mm256_packs_epi32(self.0, self.1)
        }
    }

    impl Lanes for Y2 {
        type B = __m256i;
        type Half = Y1;
        const HALVES: bool = true;
        #[inline(always)]
        unsafe fn zero() -> Self {
            Y2(_mm256_setzero_si256(), _mm256_setzero_si256())
        }
        #[inline(always)]
        unsafe fn splat(v: i32) -> Self {
            let x = _mm256_set1_epi32(v);
            Y2(x, x)
        }
        #[inline(always)]
        unsafe fn load(p: *const i32) -> Self {
            Y2(
                _mm256_loadu_si256(p as *const _),
                _mm256_loadu_si256(p.add(8) as *const _),
            )
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut i32) {
            // Outputs 0..4 and 4..8, then 8..12 and 12..16 (`Y2_LANES`).
            let lo = _mm256_permute2x128_si256::<0x20>(self.0, self.1);
            let hi = _mm256_permute2x128_si256::<0x31>(self.0, self.1);
            _mm256_storeu_si256(p as *mut _, lo);
            _mm256_storeu_si256(p.add(8) as *mut _, hi);
        }
        #[inline(always)]
        unsafe fn store_i16(self, p: *mut u8) {
            // Saturating packs: exact, the values are in range.
            _mm256_storeu_si256(p as *mut _, self.packs())
        }
        #[inline(always)]
        unsafe fn store_u8(self, p: *mut u8) {
            let w = self.packs();
            let b = _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256::<1>(w));
            _mm_storeu_si128(p as *mut _, b)
        }
        #[inline(always)]
        unsafe fn add(self, o: Self) -> Self {
            self.zip(o, |a, b| _mm256_add_epi32(a, b))
        }
        #[inline(always)]
        unsafe fn and(self, o: Self) -> Self {
            self.zip(o, |a, b| _mm256_and_si256(a, b))
        }
        #[inline(always)]
        unsafe fn shl(self, k: u32) -> Self {
            self.map(|a| _mm256_sll_epi32(a, count(k)))
        }
        #[inline(always)]
        unsafe fn sra(self, k: u32) -> Self {
            self.map(|a| _mm256_sra_epi32(a, count(k)))
        }
        #[inline(always)]
        unsafe fn srl(self, k: u32) -> Self {
            self.map(|a| _mm256_srl_epi32(a, count(k)))
        }
        #[inline(always)]
        unsafe fn max(self, o: Self) -> Self {
            self.zip(o, |a, b| _mm256_max_epi32(a, b))
        }
        #[inline(always)]
        unsafe fn min(self, o: Self) -> Self {
            self.zip(o, |a, b| _mm256_min_epi32(a, b))
        }
        #[inline(always)]
        unsafe fn sign(self) -> Self {
            self.map(|a| _mm256_srai_epi32::<31>(a))
        }
        #[inline(always)]
        unsafe fn zero_outside(self, lo: i32, hi: i32) -> Self {
            let (lo, hi) = (_mm256_set1_epi32(lo), _mm256_set1_epi32(hi));
            self.map(|a| {
                let out = _mm256_or_si256(_mm256_cmpgt_epi32(a, hi), _mm256_cmpgt_epi32(lo, a));
                _mm256_andnot_si256(out, a)
            })
        }
        #[inline(always)]
        unsafe fn keep_above(self, th: i32) -> Self {
            let th = _mm256_set1_epi32(th);
            self.map(|a| _mm256_and_si256(_mm256_cmpgt_epi32(a, th), a))
        }
        #[inline(always)]
        unsafe fn bcast(p: *const u8) -> __m256i {
            _mm256_set1_epi32(std::ptr::read_unaligned(p as *const i32))
        }
        #[inline(always)]
        unsafe fn weights(p: *const Line) -> Self {
            let p = p as *const __m256i;
            Y2(_mm256_load_si256(p), _mm256_load_si256(p.add(1)))
        }
        #[inline(always)]
        unsafe fn mac<const OP: u8>(self, x: __m256i, w: Self) -> Self {
            // Only the families PackedDense chooses for Isa::Avx2.
            debug_assert!(OP == MADD || OP == UBSW);
            self.zip(w, |a, w| {
                let p = if OP == UBSW {
                    _mm256_madd_epi16(_mm256_maddubs_epi16(x, w), _mm256_set1_epi16(1))
                } else {
                    _mm256_madd_epi16(x, w)
                };
                _mm256_add_epi32(a, p)
            })
        }
    }

    /// The first 8 lanes of a 16-output block in one AVX2 register, for
    /// layers of at most 8 outputs: half the multiplies of [`Y2`].
    #[derive(Clone, Copy)]
    pub(crate) struct Y1(__m256i);

    impl Lanes for Y1 {
        type B = __m256i;
        type Half = Y1;
        const HALVES: bool = false;
        #[inline(always)]
        unsafe fn zero() -> Self {
            Y1(_mm256_setzero_si256())
        }
        #[inline(always)]
        unsafe fn splat(v: i32) -> Self {
            Y1(_mm256_set1_epi32(v))
        }
        #[inline(always)]
        unsafe fn load(p: *const i32) -> Self {
            Y1(_mm256_loadu_si256(p as *const _))
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut i32) {
            _mm256_storeu_si256(p as *mut _, self.0)
        }
        #[inline(always)]
        unsafe fn store_i16(self, p: *mut u8) {
            let w = _mm256_packs_epi32(self.0, self.0);
            let w = _mm256_permute4x64_epi64::<0xD8>(w);
            _mm_storeu_si128(p as *mut _, _mm256_castsi256_si128(w))
        }
        #[inline(always)]
        unsafe fn store_u8(self, p: *mut u8) {
            let w = _mm256_permute4x64_epi64::<0xD8>(_mm256_packs_epi32(self.0, self.0));
            let w = _mm256_castsi256_si128(w);
            _mm_storel_epi64(p as *mut _, _mm_packus_epi16(w, w))
        }
        #[inline(always)]
        unsafe fn add(self, o: Self) -> Self {
            Y1(_mm256_add_epi32(self.0, o.0))
        }
        #[inline(always)]
        unsafe fn and(self, o: Self) -> Self {
            Y1(_mm256_and_si256(self.0, o.0))
        }
        #[inline(always)]
        unsafe fn shl(self, k: u32) -> Self {
            Y1(_mm256_sll_epi32(self.0, count(k)))
        }
        #[inline(always)]
        unsafe fn sra(self, k: u32) -> Self {
            Y1(_mm256_sra_epi32(self.0, count(k)))
        }
        #[inline(always)]
        unsafe fn srl(self, k: u32) -> Self {
            Y1(_mm256_srl_epi32(self.0, count(k)))
        }
        #[inline(always)]
        unsafe fn max(self, o: Self) -> Self {
            Y1(_mm256_max_epi32(self.0, o.0))
        }
        #[inline(always)]
        unsafe fn min(self, o: Self) -> Self {
            Y1(_mm256_min_epi32(self.0, o.0))
        }
        #[inline(always)]
        unsafe fn sign(self) -> Self {
            Y1(_mm256_srai_epi32::<31>(self.0))
        }
        #[inline(always)]
        unsafe fn zero_outside(self, lo: i32, hi: i32) -> Self {
            let (lo, hi) = (_mm256_set1_epi32(lo), _mm256_set1_epi32(hi));
            let out = _mm256_or_si256(
                _mm256_cmpgt_epi32(self.0, hi),
                _mm256_cmpgt_epi32(lo, self.0),
            );
            Y1(_mm256_andnot_si256(out, self.0))
        }
        #[inline(always)]
        unsafe fn keep_above(self, th: i32) -> Self {
            Y1(_mm256_and_si256(
                _mm256_cmpgt_epi32(self.0, _mm256_set1_epi32(th)),
                self.0,
            ))
        }
        #[inline(always)]
        unsafe fn bcast(p: *const u8) -> __m256i {
            _mm256_set1_epi32(std::ptr::read_unaligned(p as *const i32))
        }
        #[inline(always)]
        unsafe fn weights(p: *const Line) -> Self {
            Y1(_mm256_load_si256(p as *const __m256i))
        }
        #[inline(always)]
        unsafe fn mac<const OP: u8>(self, x: __m256i, w: Self) -> Self {
            debug_assert!(OP == MADD || OP == UBSW);
            let p = if OP == UBSW {
                _mm256_madd_epi16(_mm256_maddubs_epi16(x, w.0), _mm256_set1_epi16(1))
            } else {
                _mm256_madd_epi16(x, w.0)
            };
            Y1(_mm256_add_epi32(self.0, p))
        }
    }

    /// What [`blocks`] does with each block's sums. A trait with
    /// `inline(always)` methods rather than a closure: closures are not
    /// reliably inlined, and out of line their intrinsics lose the ISA.
    pub(crate) trait Sink<V: Lanes> {
        /// The sums of 16-output block `b`, one value per event: all
        /// events at once, so that a sink loads its per-block constants once.
        unsafe fn put<const E: usize>(&mut self, b: usize, s: [V; E]);
    }

    /// Stores the sums: event `e`'s block `b` at `dot + e * ds + 16 * b`.
    pub(crate) struct Store(pub *mut i32, pub usize);

    impl<V: Lanes> Sink<V> for Store {
        #[inline(always)]
        unsafe fn put<const E: usize>(&mut self, b: usize, s: [V; E]) {
            for (e, &v) in s.iter().enumerate() {
                v.store(self.0.add(e * self.1 + b * 16))
            }
        }
    }

    /// The lanewise sum of `J` partial accumulators, as a balanced tree.
    #[inline(always)]
    unsafe fn sum<V: Lanes, const J: usize>(mut a: [V; J]) -> V {
        let mut n = J;
        while n > 1 {
            let h = n / 2;
            for i in 0..h {
                a[i] = a[i].add(a[n - 1 - i]);
            }
            n -= h;
        }
        a[0]
    }

    /// For each 16-output block: `E` events' dot products over the runs
    /// `segs` (each weight line loaded once for all events, `J` partial
    /// accumulators per event to shorten the dependency chains), then
    /// `sink.put(block, sums)`. Event `e`'s packed input is at `x + e * xs` bytes.
    #[inline(always)]
    unsafe fn blocks_op<V: Lanes, const E: usize, const J: usize, const OP: u8>(
        p: &PackedDense,
        x: *const u8,
        xs: usize,
        segs: &[Seg],
        sink: &mut impl Sink<V>,
    ) {
        // Fields in locals: the sink's stores go through raw pointers,
        // after which the compiler would reload every field per block.
        let (g, w0, init0) = (p.ngroups, p.w.as_ptr(), p.init.as_ptr());
        for b in 0..p.nblk {
            let init = V::load(init0.add(b * 16));
            let mut acc = [[V::zero(); J]; E];
            for a in acc.iter_mut() {
                a[0] = init;
            }
            for s in segs {
                let (w, x, n) = (w0.add(b * g + s.w), x.add(s.x), s.n);
                // At least two groups per iteration: with one partial sum
                // (several events) the loop's bookkeeping would otherwise
                // be a fifth of its instructions.
                let u = if J >= 2 { J } else { 2 };
                let mut q = 0;
                while q + u <= n {
                    for j in 0..u {
                        let wv = V::weights(w.add(q + j));
                        for (e, a) in acc.iter_mut().enumerate() {
                            a[j % J] =
                                a[j % J].mac::<OP>(V::bcast(x.add(e * xs + (q + j) * 4)), wv);
                        }
                    }
                    q += u;
                }
                while q < n {
                    let wv = V::weights(w.add(q));
                    for (e, a) in acc.iter_mut().enumerate() {
                        a[0] = a[0].mac::<OP>(V::bcast(x.add(e * xs + q * 4)), wv);
                    }
                    q += 1;
                }
            }
            // A loop, not `acc.map`: closures may stay out of line, and out
            // of line their intrinsics lose the ISA.
            let mut s = [V::zero(); E];
            for (d, a) in s.iter_mut().zip(acc) {
                *d = sum(a);
            }
            sink.put(b, s);
        }
    }

    /// One event's blocks `b..b + NB` in one pass over the input: each
    /// broadcast input group feeds all `NB` blocks, `J` partial
    /// accumulators per block, four groups per loop iteration.
    #[inline(always)]
    unsafe fn pass<V: Lanes, const NB: usize, const J: usize, const OP: u8>(
        p: &PackedDense,
        x: *const u8,
        segs: &[Seg],
        b: usize,
        sink: &mut impl Sink<V>,
    ) {
        let (g, w0, init0) = (p.ngroups, p.w.as_ptr(), p.init.as_ptr());
        let mut acc = [[V::zero(); J]; NB];
        for (k, a) in acc.iter_mut().enumerate() {
            a[0] = V::load(init0.add((b + k) * 16));
        }
        for s in segs {
            let (w, x, n) = (w0.add(b * g + s.w), x.add(s.x), s.n);
            let mut q = 0;
            while q + 4 <= n {
                for u in 0..4 {
                    let xv = V::bcast(x.add((q + u) * 4));
                    for (k, a) in acc.iter_mut().enumerate() {
                        a[u % J] = a[u % J].mac::<OP>(xv, V::weights(w.add(k * g + q + u)));
                    }
                }
                q += 4;
            }
            while q < n {
                let xv = V::bcast(x.add(q * 4));
                for (k, a) in acc.iter_mut().enumerate() {
                    a[0] = a[0].mac::<OP>(xv, V::weights(w.add(k * g + q)));
                }
                q += 1;
            }
        }
        for (k, a) in acc.into_iter().enumerate() {
            sink.put(b + k, [sum(a)]);
        }
    }

    /// One event's blocks, up to four per pass ([`pass`]): the AVX2 kernel
    /// for a single event. With a separate add after each multiply, one
    /// accumulator per 8 lanes already keeps the multipliers busy, so
    /// wider passes need no partial sums; they share each broadcast and
    /// the loop's bookkeeping among the blocks, and fold no partial sums
    /// (on the jet tagger, a tenth of one event's instructions).
    #[inline(always)]
    unsafe fn wide_op<V: Lanes, const OP: u8>(
        p: &PackedDense,
        x: *const u8,
        segs: &[Seg],
        sink: &mut impl Sink<V>,
    ) {
        let mut b = 0;
        while b + 4 <= p.nblk {
            pass::<V, 4, 1, OP>(p, x, segs, b, sink);
            b += 4;
        }
        if b + 2 <= p.nblk {
            pass::<V, 2, 1, OP>(p, x, segs, b, sink);
            b += 2;
        }
        if b < p.nblk {
            pass::<V, 1, 2, OP>(p, x, segs, b, sink);
        }
    }

    /// [`wide_op`] with the multiply family of the kernel's operands (AVX2).
    #[inline(always)]
    pub(crate) unsafe fn wide<V: Lanes>(
        p: &PackedDense,
        x: *const u8,
        segs: &[Seg],
        sink: &mut impl Sink<V>,
    ) {
        debug_assert_eq!(p.isa, Isa::Avx2);
        match p.operand {
            Operand::U8 => wide_op::<V, UBSW>(p, x, segs, sink),
            _ => wide_op::<V, MADD>(p, x, segs, sink),
        }
    }

    /// [`blocks_op`] with the multiply family of the kernel's operands and ISA.
    #[inline(always)]
    pub(crate) unsafe fn blocks<V: Lanes, const E: usize, const J: usize>(
        p: &PackedDense,
        x: *const u8,
        xs: usize,
        segs: &[Seg],
        sink: &mut impl Sink<V>,
    ) {
        match (p.operand, p.isa) {
            (Operand::U8, Isa::Avx512Vnni) => blocks_op::<V, E, J, DPBUSD>(p, x, xs, segs, sink),
            (Operand::U8, _) => blocks_op::<V, E, J, UBSW>(p, x, xs, segs, sink),
            (_, Isa::Avx512Vnni) => blocks_op::<V, E, J, DPWSSD>(p, x, xs, segs, sink),
            _ => blocks_op::<V, E, J, MADD>(p, x, xs, segs, sink),
        }
    }

    /// One event's dot products on AVX-512 VNNI (i16 or u8 operands),
    /// four partial sums per block: packed input at `x`, sums at `dot`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn vnni(p: &PackedDense, x: *const u8, dot: *mut i32) {
        blocks::<__m512i, 1, 4>(p, x, 0, &Seg::all(p), &mut Store(dot, 0))
    }

    /// [`vnni`] on AVX-512 BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn avx512(p: &PackedDense, x: *const u8, dot: *mut i32) {
        blocks::<__m512i, 1, 4>(p, x, 0, &Seg::all(p), &mut Store(dot, 0))
    }

    /// [`vnni`] on AVX2 (two 256-bit registers per 16-output block, one
    /// for at most 8 outputs).
    #[target_feature(enable = "avx2")]
    pub unsafe fn avx2(p: &PackedDense, x: *const u8, dot: *mut i32) {
        if p.n_out <= 8 {
            blocks::<Y1, 1, 4>(p, x, 0, &Seg::all(p), &mut Store(dot, 0))
        } else {
            blocks::<Y2, 1, 4>(p, x, 0, &Seg::all(p), &mut Store(dot, 0))
        }
    }
}
