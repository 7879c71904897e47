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
    pub(crate) w16: Vec<i16>,
    pub(crate) w8: Vec<i8>,
    w32: Vec<i32>,
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
            w16: Vec::new(),
            w8: Vec::new(),
            w32: Vec::new(),
        };
        let wt = |o: usize, i: usize| -> i64 {
            if o < n_out && i < n_in {
                weights[o * n_in + i]
            } else {
                0
            }
        };
        match operand {
            Operand::I32 => p.w32 = weights.iter().map(|&w| w as i32).collect(),
            Operand::I16 => {
                for b in 0..nblk {
                    for q in 0..ngroups {
                        for l in 0..16 {
                            for j in 0..2 {
                                p.w16.push(wt(b * 16 + l, q * 2 + j) as i16);
                            }
                        }
                    }
                }
            }
            Operand::U8 => {
                for b in 0..nblk {
                    for q in 0..ngroups {
                        for l in 0..16 {
                            for j in 0..4 {
                                p.w8.push(wt(b * 16 + l, q * 4 + j) as i8);
                            }
                        }
                    }
                }
            }
        }
        Some(p)
    }

    /// `dot[o]` for `o < n_out` (`dot` needs `n_out` rounded up to 16 entries);
    /// `xpack` is scratch of at least [`xpack_len`] bytes, as u16 words.
    #[inline(always)]
    pub fn run(&self, x: &[i64], xpack: &mut [u16], dot: &mut [i32]) {
        debug_assert!(x.len() >= self.n_in && dot.len() >= self.nblk * 16);
        match self.operand {
            Operand::I32 => {
                for (o, d) in dot[..self.n_out].iter_mut().enumerate() {
                    let row = &self.w32[o * self.n_in..(o + 1) * self.n_in];
                    let mut s = 0i32;
                    for (w, &v) in row.iter().zip(x) {
                        s = s.wrapping_add(w.wrapping_mul(v as i32));
                    }
                    *d = s;
                }
            }
            Operand::I16 => {
                let xp = &mut xpack[..self.ngroups * 2];
                xp.fill(0);
                for (d, &v) in xp.iter_mut().zip(&x[..self.n_in]) {
                    *d = (v + self.off) as i16 as u16;
                }
                // SAFETY: the ISA was checked available when the plan was built;
                // buffer sizes are as packed.
                unsafe {
                    match self.isa {
                        #[cfg(target_arch = "x86_64")]
                        Isa::Avx512Vnni => x86::i16_vnni(self, xp, dot),
                        #[cfg(target_arch = "x86_64")]
                        Isa::Avx512 => x86::i16_avx512(self, xp, dot),
                        #[cfg(target_arch = "x86_64")]
                        Isa::Avx2 => x86::i16_avx2(self, xp, dot),
                        _ => unreachable!("i16 kernels need x86_64 SIMD"),
                    }
                }
            }
            Operand::U8 => {
                // Reinterpret the u16 scratch as bytes.
                let bytes = self.ngroups * 4;
                // SAFETY: u16 -> u8 view of the same memory, length within bounds.
                let xp =
                    unsafe { std::slice::from_raw_parts_mut(xpack.as_mut_ptr() as *mut u8, bytes) };
                xp.fill(0);
                for (d, &v) in xp.iter_mut().zip(&x[..self.n_in]) {
                    *d = (v + self.off) as u8;
                }
                #[cfg(target_arch = "x86_64")]
                // SAFETY: VNNI checked at plan time.
                unsafe {
                    x86::u8_vnni(self, xp, dot)
                }
                #[cfg(not(target_arch = "x86_64"))]
                unreachable!()
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
        // SAFETY: the ISA was checked available when the plan was built;
        // the packed sizes are asserted above.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            let b = std::slice::from_raw_parts(xp.as_ptr() as *const u8, self.ngroups * 4);
            match (self.operand, self.isa) {
                (Operand::U8, _) => x86::u8_vnni(self, b, dot),
                (Operand::I16, Isa::Avx512Vnni) => x86::i16_vnni(self, xp, dot),
                (Operand::I16, Isa::Avx512) => x86::i16_avx512(self, xp, dot),
                (Operand::I16, Isa::Avx2) => x86::i16_avx2(self, xp, dot),
                _ => unreachable!("packed kernels need x86_64 SIMD"),
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
            match (self.operand, self.isa) {
                (Operand::U8, _) => x86::u8_vnni_multi::<MULTI>(self, x, xb, d, ds),
                (Operand::I16, Isa::Avx512Vnni) => x86::i16_vnni_multi::<MULTI>(self, x, xb, d, ds),
                (Operand::I16, Isa::Avx512) => x86::i16_avx512_multi::<MULTI>(self, x, xb, d, ds),
                _ => {
                    for e in 0..MULTI {
                        self.run_packed(&xp[e * xs..], &mut dot[e * ds..]);
                    }
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        for e in 0..MULTI {
            self.run_packed(&xp[e * xs..], &mut dot[e * ds..]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::PackedDense;
    use std::arch::x86_64::*;

    #[inline(always)]
    unsafe fn bcast(p: *const u8) -> i32 {
        std::ptr::read_unaligned(p as *const i32)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn i16_vnni(p: &PackedDense, xp: &[u16], dot: &mut [i32]) {
        let g = p.ngroups;
        let xb = xp.as_ptr() as *const u8;
        for b in 0..p.nblk {
            let w = p.w16.as_ptr().add(b * g * 32) as *const __m512i;
            let mut a0 = _mm512_loadu_si512(p.init.as_ptr().add(b * 16) as *const _);
            let (mut a1, mut a2, mut a3) = (
                _mm512_setzero_si512(),
                _mm512_setzero_si512(),
                _mm512_setzero_si512(),
            );
            let mut q = 0;
            while q + 4 <= g {
                a0 = _mm512_dpwssd_epi32(
                    a0,
                    _mm512_set1_epi32(bcast(xb.add(q * 4))),
                    _mm512_loadu_si512(w.add(q) as *const _),
                );
                a1 = _mm512_dpwssd_epi32(
                    a1,
                    _mm512_set1_epi32(bcast(xb.add(q * 4 + 4))),
                    _mm512_loadu_si512(w.add(q + 1) as *const _),
                );
                a2 = _mm512_dpwssd_epi32(
                    a2,
                    _mm512_set1_epi32(bcast(xb.add(q * 4 + 8))),
                    _mm512_loadu_si512(w.add(q + 2) as *const _),
                );
                a3 = _mm512_dpwssd_epi32(
                    a3,
                    _mm512_set1_epi32(bcast(xb.add(q * 4 + 12))),
                    _mm512_loadu_si512(w.add(q + 3) as *const _),
                );
                q += 4;
            }
            while q < g {
                a0 = _mm512_dpwssd_epi32(
                    a0,
                    _mm512_set1_epi32(bcast(xb.add(q * 4))),
                    _mm512_loadu_si512(w.add(q) as *const _),
                );
                q += 1;
            }
            let s = _mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3));
            _mm512_storeu_si512(dot.as_mut_ptr().add(b * 16) as *mut _, s);
        }
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn i16_avx512(p: &PackedDense, xp: &[u16], dot: &mut [i32]) {
        let g = p.ngroups;
        let xb = xp.as_ptr() as *const u8;
        for b in 0..p.nblk {
            let w = p.w16.as_ptr().add(b * g * 32) as *const __m512i;
            let mut a0 = _mm512_loadu_si512(p.init.as_ptr().add(b * 16) as *const _);
            let (mut a1, mut a2, mut a3) = (
                _mm512_setzero_si512(),
                _mm512_setzero_si512(),
                _mm512_setzero_si512(),
            );
            let mut q = 0;
            while q + 4 <= g {
                a0 = _mm512_add_epi32(
                    a0,
                    _mm512_madd_epi16(
                        _mm512_set1_epi32(bcast(xb.add(q * 4))),
                        _mm512_loadu_si512(w.add(q) as *const _),
                    ),
                );
                a1 = _mm512_add_epi32(
                    a1,
                    _mm512_madd_epi16(
                        _mm512_set1_epi32(bcast(xb.add(q * 4 + 4))),
                        _mm512_loadu_si512(w.add(q + 1) as *const _),
                    ),
                );
                a2 = _mm512_add_epi32(
                    a2,
                    _mm512_madd_epi16(
                        _mm512_set1_epi32(bcast(xb.add(q * 4 + 8))),
                        _mm512_loadu_si512(w.add(q + 2) as *const _),
                    ),
                );
                a3 = _mm512_add_epi32(
                    a3,
                    _mm512_madd_epi16(
                        _mm512_set1_epi32(bcast(xb.add(q * 4 + 12))),
                        _mm512_loadu_si512(w.add(q + 3) as *const _),
                    ),
                );
                q += 4;
            }
            while q < g {
                a0 = _mm512_add_epi32(
                    a0,
                    _mm512_madd_epi16(
                        _mm512_set1_epi32(bcast(xb.add(q * 4))),
                        _mm512_loadu_si512(w.add(q) as *const _),
                    ),
                );
                q += 1;
            }
            let s = _mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3));
            _mm512_storeu_si512(dot.as_mut_ptr().add(b * 16) as *mut _, s);
        }
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn i16_avx2(p: &PackedDense, xp: &[u16], dot: &mut [i32]) {
        let g = p.ngroups;
        let xb = xp.as_ptr() as *const u8;
        for b in 0..p.nblk {
            let w = p.w16.as_ptr().add(b * g * 32) as *const __m256i;
            let mut l0 = _mm256_loadu_si256(p.init.as_ptr().add(b * 16) as *const _);
            let mut h0 = _mm256_loadu_si256(p.init.as_ptr().add(b * 16 + 8) as *const _);
            let (mut l1, mut h1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
            let mut q = 0;
            while q + 2 <= g {
                let x0 = _mm256_set1_epi32(bcast(xb.add(q * 4)));
                let x1 = _mm256_set1_epi32(bcast(xb.add(q * 4 + 4)));
                l0 = _mm256_add_epi32(l0, _mm256_madd_epi16(x0, _mm256_loadu_si256(w.add(2 * q))));
                h0 = _mm256_add_epi32(
                    h0,
                    _mm256_madd_epi16(x0, _mm256_loadu_si256(w.add(2 * q + 1))),
                );
                l1 = _mm256_add_epi32(
                    l1,
                    _mm256_madd_epi16(x1, _mm256_loadu_si256(w.add(2 * q + 2))),
                );
                h1 = _mm256_add_epi32(
                    h1,
                    _mm256_madd_epi16(x1, _mm256_loadu_si256(w.add(2 * q + 3))),
                );
                q += 2;
            }
            if q < g {
                let x0 = _mm256_set1_epi32(bcast(xb.add(q * 4)));
                l0 = _mm256_add_epi32(l0, _mm256_madd_epi16(x0, _mm256_loadu_si256(w.add(2 * q))));
                h0 = _mm256_add_epi32(
                    h0,
                    _mm256_madd_epi16(x0, _mm256_loadu_si256(w.add(2 * q + 1))),
                );
            }
            _mm256_storeu_si256(
                dot.as_mut_ptr().add(b * 16) as *mut _,
                _mm256_add_epi32(l0, l1),
            );
            _mm256_storeu_si256(
                dot.as_mut_ptr().add(b * 16 + 8) as *mut _,
                _mm256_add_epi32(h0, h1),
            );
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn u8_vnni(p: &PackedDense, xp: &[u8], dot: &mut [i32]) {
        let g = p.ngroups;
        let xb = xp.as_ptr();
        for b in 0..p.nblk {
            let w = p.w8.as_ptr().add(b * g * 64) as *const __m512i;
            let mut a0 = _mm512_loadu_si512(p.init.as_ptr().add(b * 16) as *const _);
            let (mut a1, mut a2, mut a3) = (
                _mm512_setzero_si512(),
                _mm512_setzero_si512(),
                _mm512_setzero_si512(),
            );
            let mut q = 0;
            while q + 4 <= g {
                a0 = _mm512_dpbusd_epi32(
                    a0,
                    _mm512_set1_epi32(bcast(xb.add(q * 4))),
                    _mm512_loadu_si512(w.add(q) as *const _),
                );
                a1 = _mm512_dpbusd_epi32(
                    a1,
                    _mm512_set1_epi32(bcast(xb.add(q * 4 + 4))),
                    _mm512_loadu_si512(w.add(q + 1) as *const _),
                );
                a2 = _mm512_dpbusd_epi32(
                    a2,
                    _mm512_set1_epi32(bcast(xb.add(q * 4 + 8))),
                    _mm512_loadu_si512(w.add(q + 2) as *const _),
                );
                a3 = _mm512_dpbusd_epi32(
                    a3,
                    _mm512_set1_epi32(bcast(xb.add(q * 4 + 12))),
                    _mm512_loadu_si512(w.add(q + 3) as *const _),
                );
                q += 4;
            }
            while q < g {
                a0 = _mm512_dpbusd_epi32(
                    a0,
                    _mm512_set1_epi32(bcast(xb.add(q * 4))),
                    _mm512_loadu_si512(w.add(q) as *const _),
                );
                q += 1;
            }
            let s = _mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3));
            _mm512_storeu_si512(dot.as_mut_ptr().add(b * 16) as *mut _, s);
        }
    }
    /// `E` events per pass: each weight vector is loaded once and used for
    /// every event (`E` independent accumulators).
    macro_rules! multi {
        ($name:ident, $feat:literal, $wfield:ident, $wstride:expr, $op:expr) => {
            #[target_feature(enable = $feat)]
            pub unsafe fn $name<const E: usize>(
                p: &PackedDense,
                xb: *const u8,
                xs: usize,
                dot: *mut i32,
                ds: usize,
            ) {
                let g = p.ngroups;
                for b in 0..p.nblk {
                    let w = p.$wfield.as_ptr().add(b * g * $wstride) as *const __m512i;
                    let init = _mm512_loadu_si512(p.init.as_ptr().add(b * 16) as *const _);
                    let mut acc = [init; E];
                    let mut q = 0;
                    while q < g {
                        let wv = _mm512_loadu_si512(w.add(q) as *const _);
                        for e in 0..E {
                            let x = _mm512_set1_epi32(bcast(xb.add(e * xs + q * 4)));
                            acc[e] = $op(acc[e], x, wv);
                        }
                        q += 1;
                    }
                    for e in 0..E {
                        _mm512_storeu_si512(dot.add(e * ds + b * 16) as *mut _, acc[e]);
                    }
                }
            }
        };
    }

    #[inline(always)]
    unsafe fn madd_add(a: __m512i, x: __m512i, w: __m512i) -> __m512i {
        _mm512_add_epi32(a, _mm512_madd_epi16(x, w))
    }

    multi!(
        i16_vnni_multi,
        "avx512f,avx512bw,avx512vnni",
        w16,
        32,
        _mm512_dpwssd_epi32
    );
    multi!(
        u8_vnni_multi,
        "avx512f,avx512bw,avx512vnni",
        w8,
        64,
        _mm512_dpbusd_epi32
    );
    multi!(i16_avx512_multi, "avx512f,avx512bw", w16, 32, madd_add);
}
