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
//! i16 after an input offset), or u8 x i8 for VNNI `vpdpbusd` (inputs shifted
//! by `off` into 0..=255, weights fit i8). The offset is undone by starting
//! each accumulator at `-off * sum_i w[o][i]` (mod 2^32).
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

/// One 64-byte weight vector, aligned to a cache line.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub(crate) struct Line(pub [u8; 64]);

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
        } else if isa == Isa::Avx512Vnni && fits(wmin, wmax, -128, 127) && span <= 255 {
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
        let wt = |o: usize, i: usize| -> i64 {
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
        let off = self.off;
        if self.operand == Operand::U8 {
            // SAFETY: a byte view of the same u16 buffer.
            let b =
                unsafe { std::slice::from_raw_parts_mut(xp.as_mut_ptr() as *mut u8, xp.len() * 2) };
            for (d, &v) in b.iter_mut().zip(&x[..self.n_in]) {
                *d = (v.into() + off) as u8;
            }
        } else {
            for (d, &v) in xp.iter_mut().zip(&x[..self.n_in]) {
                *d = (v.into() + off) as i16 as u16;
            }
        }
    }
}

/// Events per pass of the multi-event kernels ([`PackedDense::run_packed_multi`]).
pub const MULTI: usize = 8;

impl PackedDense {
    /// Input offset added to each raw input before it enters a lane.
    pub fn offset(&self) -> i64 {
        self.off
    }

    /// u16 words of one packed input vector: `ngroups` pairs of i16 lanes
    /// `(x + off)` (`Operand::I16`), or `ngroups` quads of u8 lanes
    /// `(x + off)` (`Operand::U8`, the words viewed as bytes).
    pub fn packed_words(&self) -> usize {
        self.ngroups * 2
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
                (_, Isa::Avx512Vnni) => x86::vnni::<1, 4>(self, x, 0, d, 0),
                (_, Isa::Avx512) => x86::avx512::<1, 4>(self, x, 0, d, 0),
                (_, Isa::Avx2) => x86::i16_avx2(self, x, d),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("packed kernels need x86_64 SIMD")
    }

    /// [`MULTI`] events in one pass over the weights: packed input `e` at
    /// `xp[e * xs..]` (words), its `dot` at `dot[e * ds..]`.
    #[inline(always)]
    pub fn run_packed_multi(&self, xp: &[u16], xs: usize, dot: &mut [i32], ds: usize) {
        assert!(xp.len() >= (MULTI - 1) * xs + self.packed_words());
        assert!(dot.len() >= (MULTI - 1) * ds + self.dot_len());
        #[cfg(target_arch = "x86_64")]
        // SAFETY: ISA checked at plan time; bounds asserted above.
        unsafe {
            let (x, d, xb) = (xp.as_ptr() as *const u8, dot.as_mut_ptr(), xs * 2);
            match self.isa {
                Isa::Avx512Vnni => return x86::vnni::<MULTI, 1>(self, x, xb, d, ds),
                Isa::Avx512 => return x86::avx512::<MULTI, 1>(self, x, xb, d, ds),
                _ => {}
            }
        }
        for e in 0..MULTI {
            self.run_packed(&xp[e * xs..], &mut dot[e * ds..]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    //! One AVX-512 dot-product loop ([`blocks`]) serves every multiply
    //! family, event count and epilogue; AVX2 keeps its own 256-bit loop.
    use super::{Operand, PackedDense};
    use std::arch::x86_64::*;

    /// The multiply-accumulate of [`blocks`]: `vpdpwssd` (i16 x i16, VNNI),
    /// `vpdpbusd` (u8 x i8, VNNI) or `vpmaddwd` + `vpaddd` (AVX-512 BW).
    pub(crate) const DPWSSD: u8 = 0;
    pub(crate) const DPBUSD: u8 = 1;
    pub(crate) const MADD: u8 = 2;

    #[inline(always)]
    pub(crate) unsafe fn mac<const OP: u8>(a: __m512i, x: __m512i, w: __m512i) -> __m512i {
        match OP {
            DPWSSD => _mm512_dpwssd_epi32(a, x, w),
            DPBUSD => _mm512_dpbusd_epi32(a, x, w),
            _ => _mm512_add_epi32(a, _mm512_madd_epi16(x, w)),
        }
    }

    #[inline(always)]
    unsafe fn bcast(p: *const u8) -> __m512i {
        _mm512_set1_epi32(std::ptr::read_unaligned(p as *const i32))
    }

    /// What [`blocks`] does with each block's sums. A trait with
    /// `inline(always)` methods rather than a closure: closures are not
    /// reliably inlined, and out of line their intrinsics lose AVX-512.
    pub(crate) trait Sink {
        /// The sums of 16-output block `b`, one register per event: all
        /// events at once, so that a sink loads its per-block constants once.
        unsafe fn put<const E: usize>(&mut self, b: usize, s: [__m512i; E]);
    }

    /// Stores the sums: event `e`'s block `b` at `dot + e * ds + 16 * b`.
    pub(crate) struct Store(pub *mut i32, pub usize);

    impl Sink for Store {
        #[inline(always)]
        unsafe fn put<const E: usize>(&mut self, b: usize, s: [__m512i; E]) {
            for (e, &v) in s.iter().enumerate() {
                _mm512_storeu_si512(self.0.add(e * self.1 + b * 16) as *mut _, v)
            }
        }
    }

    /// The lanewise sum of `J` partial accumulators, as a balanced tree.
    #[inline(always)]
    unsafe fn sum<const J: usize>(mut a: [__m512i; J]) -> __m512i {
        let mut n = J;
        while n > 1 {
            let h = n / 2;
            for i in 0..h {
                a[i] = _mm512_add_epi32(a[i], a[n - 1 - i]);
            }
            n -= h;
        }
        a[0]
    }

    /// For each 16-output block: `E` events' dot products (each weight
    /// vector loaded once for all events, `J` partial accumulators per
    /// event to shorten the dependency chains), then `sink.put(block, sums)`.
    /// Event `e`'s packed input is at `x + e * xs` bytes.
    #[inline(always)]
    pub(crate) unsafe fn blocks<const E: usize, const J: usize, const OP: u8>(
        p: &PackedDense,
        x: *const u8,
        xs: usize,
        sink: &mut impl Sink,
    ) {
        let g = p.ngroups;
        let w0 = p.w.as_ptr() as *const __m512i;
        for b in 0..p.nblk {
            let w = w0.add(b * g);
            let init = _mm512_loadu_si512(p.init.as_ptr().add(b * 16) as *const _);
            let mut acc = [[_mm512_setzero_si512(); J]; E];
            for a in acc.iter_mut() {
                a[0] = init;
            }
            let mut q = 0;
            while q + J <= g {
                for j in 0..J {
                    let wv = _mm512_loadu_si512(w.add(q + j) as *const _);
                    for (e, a) in acc.iter_mut().enumerate() {
                        a[j] = mac::<OP>(a[j], bcast(x.add(e * xs + (q + j) * 4)), wv);
                    }
                }
                q += J;
            }
            while q < g {
                let wv = _mm512_loadu_si512(w.add(q) as *const _);
                for (e, a) in acc.iter_mut().enumerate() {
                    a[0] = mac::<OP>(a[0], bcast(x.add(e * xs + q * 4)), wv);
                }
                q += 1;
            }
            // A loop, not `acc.map`: closures may stay out of line, and out
            // of line their intrinsics lose AVX-512.
            let mut s = [_mm512_setzero_si512(); E];
            for (d, a) in s.iter_mut().zip(acc) {
                *d = sum(a);
            }
            sink.put(b, s);
        }
    }

    /// `E` events on AVX-512 VNNI (i16 or u8 operands): packed input `e` at
    /// `x + e * xs` bytes, its dot products at `dot + e * ds`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn vnni<const E: usize, const J: usize>(
        p: &PackedDense,
        x: *const u8,
        xs: usize,
        dot: *mut i32,
        ds: usize,
    ) {
        if p.operand == Operand::U8 {
            blocks::<E, J, DPBUSD>(p, x, xs, &mut Store(dot, ds))
        } else {
            blocks::<E, J, DPWSSD>(p, x, xs, &mut Store(dot, ds))
        }
    }

    /// [`vnni`] for i16 operands on AVX-512 BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn avx512<const E: usize, const J: usize>(
        p: &PackedDense,
        x: *const u8,
        xs: usize,
        dot: *mut i32,
        ds: usize,
    ) {
        blocks::<E, J, MADD>(p, x, xs, &mut Store(dot, ds))
    }

    /// One event, i16 operands, on 256-bit vectors (two per 16-output block).
    #[target_feature(enable = "avx2")]
    pub unsafe fn i16_avx2(p: &PackedDense, xb: *const u8, dot: *mut i32) {
        let g = p.ngroups;
        let bc =
            |q: usize| _mm256_set1_epi32(std::ptr::read_unaligned(xb.add(q * 4) as *const i32));
        for b in 0..p.nblk {
            let w = (p.w.as_ptr() as *const __m256i).add(b * g * 2);
            let mut l0 = _mm256_loadu_si256(p.init.as_ptr().add(b * 16) as *const _);
            let mut h0 = _mm256_loadu_si256(p.init.as_ptr().add(b * 16 + 8) as *const _);
            let (mut l1, mut h1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
            let mac =
                |a, x, q| _mm256_add_epi32(a, _mm256_madd_epi16(x, _mm256_loadu_si256(w.add(q))));
            let mut q = 0;
            while q + 2 <= g {
                let (x0, x1) = (bc(q), bc(q + 1));
                l0 = mac(l0, x0, 2 * q);
                h0 = mac(h0, x0, 2 * q + 1);
                l1 = mac(l1, x1, 2 * q + 2);
                h1 = mac(h1, x1, 2 * q + 3);
                q += 2;
            }
            if q < g {
                let x0 = bc(q);
                l0 = mac(l0, x0, 2 * q);
                h0 = mac(h0, x0, 2 * q + 1);
            }
            _mm256_storeu_si256(dot.add(b * 16) as *mut _, _mm256_add_epi32(l0, l1));
            _mm256_storeu_si256(dot.add(b * 16 + 8) as *mut _, _mm256_add_epi32(h0, h1));
        }
    }
}
