//! Scalar group kernels over raw codes: Softmax on its proven-exact i64
//! path, one-hot Argmax and the table lookup they use. A leaf module, so
//! that the plan's steps and a fused chain's tail ([`crate::chain`]) share
//! one copy without importing each other.

use crate::rq::{FastRq, Rq};
use quantize::fixed::FixedType;
use quantize::qmodel::Table;

/// Softmax over groups of `n` values of `x` on the i64 path that
/// [`softmax_fast`] proved exact for the input type's range (`rq` is its
/// requantizer). Shared by the Softmax step and a fused chain's tail.
/// `free`: [`clamp_free`] holds for these tables and `n`.
#[inline(always)]
pub(crate) fn softmax64<T: Copy + Ord + Into<i64>>(
    x: &[T],
    y: &mut [i64],
    n: usize,
    exp_table: &Table,
    inv_table: &Table,
    rq: &FastRq,
    free: bool,
) {
    // The requantizer's overflow mode picked once, not per value.
    let (e, i) = (exp_table, inv_table);
    match (rq.mode, free) {
        (0, false) => softmax_mode::<T, 0, false>(x, y, n, e, i, rq),
        (0, true) => softmax_mode::<T, 0, true>(x, y, n, e, i, rq),
        (1, false) => softmax_mode::<T, 1, false>(x, y, n, e, i, rq),
        (1, true) => softmax_mode::<T, 1, true>(x, y, n, e, i, rq),
        (_, false) => softmax_mode::<T, 2, false>(x, y, n, e, i, rq),
        (_, true) => softmax_mode::<T, 2, true>(x, y, n, e, i, rq),
    }
}

/// Whether a softmax over groups of `n` needs no clamp in its table
/// lookups but the exponential's lower one (differences below the
/// table's range): the difference 0 (the group's maximum) lies within the
/// exponential's table, so no difference lies above it, and every sum of
/// `n` of its values within the reciprocal's table. On a single event's
/// critical path that is three conditional moves fewer per group.
pub(crate) fn clamp_free(n: usize, exp_table: &Table, inv_table: &Table) -> bool {
    let idx = |t: &Table, x: i128| (x - t.offset as i128) >> t.shift.min(63);
    let last = |t: &Table| t.values.len() as i128 - 1;
    let i0 = idx(exp_table, 0);
    if n == 0 || !(0..=last(exp_table)).contains(&i0) {
        return false;
    }
    let e0 = exp_table.values[i0 as usize] as i128;
    // The table is not empty: it holds the difference 0.
    let (lo, hi) = exp_table
        .values
        .iter()
        .fold((i128::MAX, i128::MIN), |(l, h), &v| {
            (l.min(v as i128), h.max(v as i128))
        });
    let m = n as i128 - 1;
    idx(inv_table, e0 + m * lo) >= 0 && idx(inv_table, e0 + m * hi) <= last(inv_table)
}

#[inline(always)]
fn softmax_mode<T: Copy + Ord + Into<i64>, const MODE: u8, const FREE: bool>(
    x: &[T],
    y: &mut [i64],
    n: usize,
    exp_table: &Table,
    inv_table: &Table,
    rq: &FastRq,
) {
    // Locals, not fields: after inlining, the compiler otherwise reloads
    // every table field and requantizer constant for each value (a single
    // event's 5-class softmax took about 385 instructions that way).
    let (exp, inv, rq) = (Lookup::new(exp_table), Lookup::new(inv_table), *rq);
    let len = x.len().min(y.len());
    let (x, y) = (&x[..len], &mut y[..len]);
    // A group size known at compile time turns every loop of `group` into
    // straight-line code; with a run-time size the compiler splits each
    // into a vector body and a remainder (one event of a 5-class tagger:
    // about 200 instructions, against about 100 unrolled).
    macro_rules! fixed {
        ($($k:literal)*) => {
            match n {
                $($k => {
                    let (xs, _) = x.as_chunks::<$k>();
                    let (ys, _) = y.as_chunks_mut::<$k>();
                    for (g, yg) in xs.iter().zip(ys) {
                        group::<T, MODE, FREE>(g, yg, &exp, &inv, &rq);
                    }
                })*
                _ => {
                    // Indexed groups: `chunks(n)` with a run-time `n`
                    // costs two divisions.
                    let mut i = 0;
                    while i + n <= len {
                        group::<T, MODE, FREE>(&x[i..i + n], &mut y[i..i + n], &exp, &inv, &rq);
                        i += n;
                    }
                }
            }
        };
    }
    fixed!(2 3 4 5 6 7 8);
}

/// One softmax group `g` into `yg` (same length); `FREE`: [`clamp_free`].
#[inline(always)]
fn group<T: Copy + Ord + Into<i64>, const MODE: u8, const FREE: bool>(
    g: &[T],
    yg: &mut [i64],
    exp: &Lookup,
    inv: &Lookup,
    rq: &FastRq,
) {
    // By value: `iter().max()` tracks a reference and compiles to
    // data-dependent branches, which mispredict on every event.
    let m = tree(g, &|v: &T| (*v).into(), &|a: i64, b: i64| a.max(b));
    for (e, &v) in yg.iter_mut().zip(g) {
        *e = exp.get::<false, FREE>(v.into() - m);
    }
    let sum = tree(yg, &|e: &i64| *e, &|a: i64, b: i64| a + b);
    let r = inv.get::<FREE, FREE>(sum);
    for e in yg.iter_mut() {
        *e = in_reg(rq.apply_mode::<MODE>(in_reg(*e * r)));
    }
}

/// `v`, held in a general register: an optimization barrier that keeps
/// the compiler from vectorizing the group's last loop. Its vector form
/// (the values moved into vector registers, the 64-bit products emulated
/// with three `vpmuludq`, the arithmetic shifts with logical ones) is
/// fewer instructions but about twice the latency of the scalar chain,
/// and a single event's softmax is latency bound: it waits for the last
/// layer and its result is the event's.
#[inline(always)]
fn in_reg(mut v: i64) -> i64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: an empty template; `v` stays as it is.
    unsafe {
        std::arch::asm!("/* {v} */", v = inout(reg) v, options(pure, nomem, nostack, preserves_flags));
    }
    v
}

/// `f` over `g`'s values (at least one) as a balanced tree: for a group
/// of compile-time size, a chain of depth `log2(n)` instead of `n - 1`
/// (the max and the sum are on a single event's critical path). Groups
/// longer than 8 fold their tail into the first 8 first.
#[inline(always)]
fn tree<T>(g: &[T], v: &impl Fn(&T) -> i64, f: &impl Fn(i64, i64) -> i64) -> i64 {
    let mut w = [0i64; 8];
    for (i, x) in g.iter().enumerate() {
        w[i % 8] = if i < 8 { v(x) } else { f(w[i % 8], v(x)) };
    }
    let mut n = g.len().min(8);
    while n > 1 {
        let h = n.div_ceil(2);
        for i in 0..n / 2 {
            w[i] = f(w[i], w[i + h]);
        }
        n = h;
    }
    w[0]
}

/// `Table::lookup` in i64 with the table's fields held in locals, for
/// arguments the caller proved within +-2^62 (with the table's offset
/// within +-2^61, `x - offset` cannot overflow).
#[derive(Clone, Copy)]
struct Lookup<'a> {
    values: &'a [i64],
    offset: i64,
    shift: u32,
    last: i64,
}

impl<'a> Lookup<'a> {
    #[inline(always)]
    fn new(t: &'a Table) -> Lookup<'a> {
        assert!(!t.values.is_empty(), "a lookup table without values");
        Lookup {
            values: &t.values,
            offset: t.offset,
            shift: t.shift.min(63),
            last: t.values.len() as i64 - 1,
        }
    }

    /// The lookup, its index clamped to the table unless proven to lie
    /// within it at its lower end (`IN_LO`) or upper end (`IN_HI`)
    /// ([`clamp_free`]).
    #[inline(always)]
    fn get<const IN_LO: bool, const IN_HI: bool>(&self, x: i64) -> i64 {
        let d = (x - self.offset) >> self.shift;
        // Clamped without branches: from `max(0)` the compiler made a
        // branch on the data, which mispredicted for about one class in
        // five of the jet tagger's events; a bounds check on the clamped
        // index made it split its selects into branches too.
        let i = if IN_LO { d } else { max0(d) };
        let i = if IN_HI {
            i
        } else {
            std::hint::select_unpredictable(i < self.last, i, self.last)
        };
        debug_assert!((0..=self.last).contains(&i), "a lookup proven in range");
        // SAFETY: 0 <= i <= last = len - 1 (clamped, or where not, proven
        // by `clamp_free`), and `new` refuses an empty table.
        unsafe { *self.values.get_unchecked(i as usize) }
    }
}

/// `d.max(0)` as a conditional move. Written as `max`, a mask or
/// `select_unpredictable`, the compiler recognizes a maximum and, in a
/// loop, turns its conditional move into a branch.
#[inline(always)]
fn max0(d: i64) -> i64 {
    #[cfg(target_arch = "x86_64")]
    {
        let mut r = d;
        // SAFETY: two register instructions, no memory, flags only.
        unsafe {
            std::arch::asm!(
                "test {r}, {r}",
                "cmovs {r}, {z}",
                r = inout(reg) r,
                z = in(reg) 0i64,
                options(pure, nomem, nostack),
            );
        }
        r
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        d.max(0)
    }
}

/// One-hot argmax (the first maximum) over groups of `n` values; `one` is 1
/// in the output type. Shared by the Argmax step and a fused chain's tail.
#[inline(always)]
pub(crate) fn argmax<T: Copy + Ord>(x: &[T], y: &mut [i64], n: usize, one: i64) {
    let mut i = 0;
    while i + n <= x.len().min(y.len()) {
        let (g, yg) = (&x[i..i + n], &mut y[i..i + n]);
        // Branch-free (selects, not jumps): the winner is data-dependent.
        let (mut best, mut bv) = (0, g[0]);
        for (k, &v) in g.iter().enumerate().skip(1) {
            let gt = v > bv;
            best = if gt { k } else { best };
            bv = if gt { v } else { bv };
        }
        yg.fill(0);
        yg[best] = one;
        i += n;
    }
}

/// The softmax's i64 requantizer, if the i64 path is exact: differences,
/// sums and products all provably stay within +-2^62.
pub(crate) fn softmax_fast(
    in_ty: FixedType,
    n: usize,
    exp_table: &Table,
    inv_table: &Table,
    pf: i32,
    out_ty: FixedType,
) -> Option<FastRq> {
    let lim = 1i128 << 61;
    if in_ty.width > 60 || exp_table.offset.unsigned_abs() as i128 > lim {
        return None;
    }
    if inv_table.offset.unsigned_abs() as i128 > lim {
        return None;
    }
    let ext = |t: &Table| {
        t.values.iter().fold((0i128, 0i128), |(a, b), &v| {
            (a.min(v as i128), b.max(v as i128))
        })
    };
    let (elo, ehi) = ext(exp_table);
    let (rlo, rhi) = ext(inv_table);
    let emax = elo.abs().max(ehi.abs());
    if emax * n as i128 > lim {
        return None;
    }
    let p = [elo * rlo, elo * rhi, ehi * rlo, ehi * rhi];
    let (plo, phi) = (*p.iter().min()?, *p.iter().max()?);
    if plo < -lim || phi > lim {
        return None;
    }
    match Rq::new(pf, out_ty, plo, phi) {
        Rq::Fast(f) => Some(f),
        Rq::Slow { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where `clamp_free` holds, no group of differences (its maximum's
    /// 0 among them) takes a lookup outside the tables; and it fails
    /// where the reciprocal's table misses the sums, or the exponential's
    /// misses 0.
    #[test]
    fn clamp_free_is_a_proof() {
        use rand::{rngs::SmallRng, Rng, SeedableRng};
        let mut rng = SmallRng::seed_from_u64(5);
        let (mut free, mut not) = (0, 0);
        for _ in 0..2_000 {
            let n = rng.gen_range(1..6);
            let exp = Table {
                offset: -rng.gen_range(0..300),
                shift: rng.gen_range(0..3),
                values: (0..rng.gen_range(1..70))
                    .map(|_| rng.gen_range(0..50))
                    .collect(),
            };
            let inv = Table {
                offset: rng.gen_range(-20..60),
                shift: rng.gen_range(0..3),
                values: vec![0; rng.gen_range(1..80)],
            };
            if !clamp_free(n, &exp, &inv) {
                not += 1;
                continue;
            }
            free += 1;
            let idx = |t: &Table, x: i64| (x - t.offset) >> t.shift;
            let last = |t: &Table| t.values.len() as i64 - 1;
            assert!((0..=last(&exp)).contains(&idx(&exp, 0)));
            for _ in 0..50 {
                let mut sum = exp.lookup(0);
                for _ in 1..n {
                    let d = -rng.gen_range(0..1000);
                    assert!(idx(&exp, d) <= last(&exp));
                    sum += exp.lookup(d);
                }
                assert!((0..=last(&inv)).contains(&idx(&inv, sum)), "{sum}");
            }
        }
        assert!(free > 100 && not > 100, "{free} {not}");
        // The exponential's table must hold the difference 0: here its
        // index is -1.
        let exp = Table {
            offset: 1,
            shift: 0,
            values: vec![1; 4],
        };
        let inv = Table {
            offset: 0,
            shift: 2,
            values: (0..64).map(|i| 40 + i).collect(),
        };
        assert!(!clamp_free(3, &exp, &inv));
    }

    /// The branch-free clamp gives the table's own lookup on both sides of
    /// its range, at its ends and inside, for shifts 0 and 3.
    #[test]
    fn lookup_clamps_like_the_table() {
        for shift in [0, 3] {
            let t = Table {
                offset: -40,
                shift,
                values: (0..17).map(|i| 1000 + i * 7).collect(),
            };
            let l = Lookup::new(&t);
            for x in (-200..=200).chain([i64::MIN / 4, i64::MAX / 4]) {
                assert_eq!(
                    l.get::<false, false>(x),
                    t.lookup(x),
                    "x = {x}, shift {shift}"
                );
            }
        }
        assert_eq!(max0(-1), 0);
        assert_eq!(max0(i64::MIN), 0);
        assert_eq!(max0(5), 5);
    }
}
