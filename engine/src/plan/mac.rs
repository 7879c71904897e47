//! Dense and Conv layers: the choice between the i32 SIMD dot product and
//! the general i128 path at compile time, and both paths at run time. Where
//! the product and bias bits sit relative to the accumulator is
//! `quantize::accum::MacLayout`'s rule, shared with the golden model.

use super::types::{Mac, MacPath, PAD};
use crate::dense::PackedDense;
use crate::isa::Isa;
use crate::rq::Rq;
use quantize::accum::MacLayout;
use quantize::fixed::FixedType;
use quantize::qmodel::Window;

/// The types and constants of one multiply-accumulate layer.
pub(super) struct MacSpec<'a> {
    pub(super) x_ty: FixedType,
    pub(super) weights: &'a [i64],
    pub(super) w_ty: FixedType,
    pub(super) bias: &'a [i64],
    pub(super) b_ty: FixedType,
    pub(super) acc_ty: FixedType,
    pub(super) out_ty: FixedType,
}

/// For each output position of a Conv window, the input index of each
/// `[in_channel][tap]` term of channel group `g` (`PAD` for padding and for
/// the zeros an input dilation inserts).
pub(super) fn conv_gather(w: &Window, g: usize) -> Vec<u32> {
    let (gc, ksz, inp, outp) = (
        w.group_channels(),
        w.kernel_size(),
        w.in_positions(),
        w.out_positions(),
    );
    let mut g_idx = Vec::with_capacity(outp * gc * ksz);
    for p in 0..outp {
        for ic in g * gc..(g + 1) * gc {
            for k in 0..ksz {
                g_idx.push(match w.tap(p, k) {
                    Some(q) => (ic * inp + q) as u32,
                    None => PAD,
                });
            }
        }
    }
    g_idx
}

/// The i32 dot-product path when the exact dot product provably fits i32
/// and the accumulator is at or finer than the product LSB; otherwise the
/// general path.
pub(super) fn compile_mac(
    isa: Isa,
    s: &MacSpec,
    n_in: usize,
    n_out: usize,
    positions: usize,
    gather: Vec<u32>,
) -> Mac {
    let layout = MacLayout::new(s.x_ty, s.w_ty, s.b_ty, s.acc_ty);
    let (pf, af) = (layout.prod_frac, layout.acc_frac);
    let (acc_ty, weights) = (s.acc_ty, s.weights);
    let general = MacPath::General {
        weights: weights.to_vec(),
        bias: s.bias.to_vec(),
        layout,
        acc_ty,
        out_ty: s.out_ty,
    };
    let mk = |path| Mac {
        n_in,
        n_out,
        positions,
        gather: gather.clone(),
        path,
    };
    // Products rounded one by one, or shifted far: general path.
    if af < pf || af - pf > 30 {
        return mk(general);
    }
    let sl = (af - pf) as u32;
    let (xlo, xhi) = (s.x_ty.min_raw().min(0), s.x_ty.max_raw().max(0));
    let lim32 = (i32::MIN as i128, i32::MAX as i128);
    let mut bias_al = Vec::with_capacity(n_out);
    let (mut alo, mut ahi) = (i128::MAX, i128::MIN);
    let (mut dlo, mut dhi) = (0i128, 0i128);
    for o in 0..n_out {
        let (mut lo, mut hi) = (0i128, 0i128);
        for &w in &weights[o * n_in..(o + 1) * n_in] {
            let (p, q) = (w as i128 * xlo as i128, w as i128 * xhi as i128);
            lo += p.min(q);
            hi += p.max(q);
        }
        if lo < lim32.0 || hi > lim32.1 {
            return mk(general);
        }
        let b = layout.bias(s.bias[o]);
        if b.abs() > 1i128 << 61 {
            return mk(general);
        }
        bias_al.push(b as i64);
        dlo = dlo.min(lo);
        dhi = dhi.max(hi);
        alo = alo.min(b + (lo << sl));
        ahi = ahi.max(b + (hi << sl));
    }
    if n_out == 0 {
        (alo, ahi) = (0, 0);
    }
    let Some(k) = PackedDense::new(weights, n_in, n_out, isa, xlo, xhi) else {
        return mk(general);
    };
    let arange = (alo, ahi);
    let acc = if alo >= acc_ty.min_raw() as i128 && ahi <= acc_ty.max_raw() as i128 {
        None
    } else {
        (alo, ahi) = (acc_ty.min_raw() as i128, acc_ty.max_raw() as i128);
        Some((acc_ty, af))
    };
    let rq = Rq::new(af, s.out_ty, alo, ahi);
    mk(MacPath::Fast {
        k,
        bias_al,
        sl,
        acc,
        rq,
        drange: (dlo, dhi),
        arange,
    })
}

/// One MAC step: every output position, on the path the plan chose.
#[inline(always)]
pub(super) fn run_mac(
    m: &Mac,
    x: &[i64],
    y: &mut [i64],
    dot: &mut [i32],
    xpack: &mut [u16],
    col: &mut [i64],
    accb: &mut [i64],
) {
    for p in 0..m.positions {
        let xin: &[i64] = if m.gather.is_empty() {
            x
        } else {
            let g = &m.gather[p * m.n_in..(p + 1) * m.n_in];
            for (c, &q) in col.iter_mut().zip(g) {
                *c = if q == PAD { 0 } else { x[q as usize] };
            }
            &col[..m.n_in]
        };
        match &m.path {
            MacPath::Fast {
                k,
                bias_al,
                sl,
                acc,
                rq,
                ..
            } => {
                k.run(xin, xpack, dot);
                let a = &mut accb[..m.n_out];
                let sl = *sl;
                for ((a, &b), &d) in a.iter_mut().zip(bias_al).zip(&dot[..m.n_out]) {
                    *a = b + ((d as i64) << sl);
                }
                if let Some((ty, af)) = acc {
                    for v in a.iter_mut() {
                        *v = ty.quantize_raw(*v as i128, *af);
                    }
                }
                if m.positions == 1 {
                    rq.apply_slice(a, &mut y[..m.n_out]);
                } else {
                    for o in 0..m.n_out {
                        y[o * m.positions + p] = rq.apply(a[o]);
                    }
                }
            }
            MacPath::General {
                weights,
                bias,
                layout,
                acc_ty,
                out_ty,
            } => {
                let af = layout.acc_frac;
                for o in 0..m.n_out {
                    let row = &weights[o * m.n_in..(o + 1) * m.n_in];
                    let mut sum = layout.bias(bias[o]);
                    if af >= layout.prod_frac {
                        // Exact alignment (a left shift): one shift for the whole dot product.
                        let mut d = 0i128;
                        for (&w, &v) in row.iter().zip(xin) {
                            d += w as i128 * v as i128;
                        }
                        sum += layout.product(d);
                    } else {
                        for (&w, &v) in row.iter().zip(xin) {
                            sum += layout.product(w as i128 * v as i128);
                        }
                    }
                    let a = acc_ty.quantize_raw(sum, af);
                    y[o * m.positions + p] = out_ty.quantize_raw(a as i128, af);
                }
            }
        }
    }
}
