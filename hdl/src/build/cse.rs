//! Common-subexpression elimination for a constant matrix times a vector
//! (the constant matrix-vector multiplication problem): the shift-add
//! network of a whole layer, planned on integers before any hardware is
//! built.
//!
//! Each row `sum w_i x_i` starts as the canonical signed digits of its
//! weights, `+- x_i * 2^k`. Two digits `+- a * 2^s` and `+- b * 2^(s+d)`
//! form the pattern `(a, b, d, same or opposite sign)`, whatever `s` and
//! the leading sign are; one adder computing `a +- b * 2^d` serves every
//! place the pattern occurs, in every row (Hartley's greedy method: take
//! the most frequent pattern, substitute it, repeat while some pattern
//! occurs twice). "Most frequent" is the number of places a substitution
//! can actually use, not the count of all pairs: overlapping pairs and rows
//! at their depth limit make the two differ, and ranking by the raw count
//! spends adders on patterns that then replace few digits (1 % more adders
//! on the jet tagger). A substituted signal is a signal like the inputs, so
//! patterns nest, and a pattern of one input with itself is the per-weight
//! pre-adder `x +- x * 2^d` of the row-by-row builder.
//!
//! Sharing deepens the rows' adder trees; the planner keeps every row no
//! deeper than the row-by-row builder makes it (see [`depth_limit`]), which
//! the pipeline placement then sees as no more adder levels than before.
//! A row whose remaining terms have adder depths `d_t` can be summed in
//! `D` levels exactly when `sum 2^d_t <= 2^D` (Kraft's inequality), so the
//! check of a substitution is one sum per row.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use super::arith::csd;

/// `+- signal * 2^shift`: a term of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Digit {
    /// Signal: an input column below the plan's input count, else the
    /// adder `sig - inputs` of the plan.
    pub sig: usize,
    pub shift: u32,
    pub neg: bool,
}

/// One shared adder: `(a << sa) + (b << sb)`, or `-` when `minus`; one of
/// the shifts is 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Adder {
    pub a: usize,
    pub sa: u32,
    pub b: usize,
    pub sb: u32,
    pub minus: bool,
}

/// The shift-add network of a matrix: the shared adders in the order they
/// can be built, and what each row still sums.
#[derive(Clone, Debug)]
pub(super) struct Plan {
    pub adders: Vec<Adder>,
    /// Adder depth of every signal (inputs first: 0).
    pub depth: Vec<u32>,
    /// Each row's remaining terms, summed by a tree after the adders.
    pub rows: Vec<Vec<Digit>>,
}

impl Plan {
    /// Adders the network costs as [`super::arith::Builder::sum_terms`]
    /// builds it: the shared ones, one per term and bias leaf of each row
    /// but the first, and a negation for a row that sums negative terms
    /// only (`bias[r]`: row `r` has a bias leaf).
    pub fn cost(&self, bias: &[bool]) -> usize {
        self.adders.len()
            + self
                .rows
                .iter()
                .zip(bias)
                .map(|(r, &b)| {
                    let negated = !b && !r.is_empty() && r.iter().all(|d| d.neg);
                    (r.len() + b as usize).saturating_sub(1) + negated as usize
                })
                .sum::<usize>()
    }

    /// Adder levels of row `r`: the depth of its terms' signals and the
    /// balanced tree over them (Kraft: `ceil(log2(sum 2^d))`), with a bias
    /// leaf when `bias`.
    pub fn row_levels(&self, r: usize, bias: bool) -> u32 {
        let terms = self.rows[r].iter().map(|d| 1u128 << self.depth[d.sig]);
        (terms.sum::<u128>() + bias as u128)
            .next_power_of_two()
            .trailing_zeros()
    }

    /// Adder levels of the deepest row (`bias[r]`: row `r` has a bias leaf).
    pub fn levels(&self, bias: &[bool]) -> u32 {
        (0..self.rows.len())
            .map(|r| self.row_levels(r, bias[r]))
            .max()
            .unwrap_or(0)
    }
}

/// A pattern: digits `a * 2^s` and `b * 2^(s+d)`, of opposite signs when
/// `minus`, with `(a, 0) < (b, d)` so that each pair has one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    a: usize,
    b: usize,
    d: i64,
    minus: bool,
}

fn key(p: Digit, q: Digit) -> Key {
    let (p, q) = if (p.sig, p.shift) <= (q.sig, q.shift) {
        (p, q)
    } else {
        (q, p)
    };
    Key {
        a: p.sig,
        b: q.sig,
        d: q.shift as i64 - p.shift as i64,
        minus: p.neg != q.neg,
    }
}

/// The adder depth the row-by-row builder gives a row of `weights` (with
/// the bias as one more leaf when `bias`): one level of pre-adders when a
/// weight has two digits or more, then a balanced tree over one leaf per
/// pair of digits.
pub(super) fn depth_limit(weights: &[i128], bias: bool) -> u32 {
    let digits: Vec<usize> = weights.iter().map(|&w| csd(w).len()).collect();
    let leaves: usize = digits.iter().map(|n| n.div_ceil(2)).sum::<usize>() + bias as usize;
    let pre = digits.iter().any(|&n| n >= 2) as u32;
    pre + leaves.next_power_of_two().trailing_zeros()
}

/// Plans the network of `weights` (`weights[r][i]` multiplies input `i` in
/// row `r`); `bias[r]`: row `r` has a bias leaf in its tree.
pub(super) fn plan(weights: &[Vec<i128>], bias: &[bool]) -> Plan {
    let inputs = weights.first().map_or(0, |r| r.len());
    let rows: Vec<Vec<Digit>> = weights
        .iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .flat_map(|(i, &w)| {
                    csd(w).into_iter().map(move |(k, d)| Digit {
                        sig: i,
                        shift: k,
                        neg: d < 0,
                    })
                })
                .collect()
        })
        .collect();
    let cap: Vec<u128> = weights
        .iter()
        .zip(bias)
        .map(|(w, &b)| 1u128 << depth_limit(w, b))
        .collect();
    let kraft: Vec<u128> = rows
        .iter()
        .zip(bias)
        .map(|(r, &b)| r.len() as u128 + b as u128)
        .collect();
    let mut s = State {
        plan: Plan {
            adders: Vec::new(),
            depth: vec![0; inputs],
            rows,
        },
        cap,
        kraft,
        count: HashMap::new(),
        heap: BinaryHeap::new(),
    };
    for r in 0..s.plan.rows.len() {
        let row = &s.plan.rows[r];
        for (i, &p) in row.iter().enumerate() {
            for &q in &row[i + 1..] {
                *s.count.entry(key(p, q)).or_insert(0) += 1;
            }
        }
    }
    let mut start: Vec<(Key, u32)> = s.count.iter().map(|(&k, &c)| (k, c)).collect();
    start.sort();
    for (k, c) in start {
        s.push(k, c);
    }
    s.run();
    s.plan
}

struct State {
    plan: Plan,
    /// Per row: `2^limit` and the current `sum 2^depth` over its leaves.
    cap: Vec<u128>,
    kraft: Vec<u128>,
    /// Occurrences of each pattern (overlapping ones included: an upper
    /// bound of what a substitution finds).
    count: HashMap<Key, u32>,
    /// Patterns by the places they are known to have at most (the pair
    /// count, or fewer once [`Self::occurrences`] found fewer), shallower
    /// first on ties, with the pair count the entry was made for: entries
    /// go stale when that count changes and are refreshed when popped.
    heap: BinaryHeap<(u32, Reverse<u32>, Reverse<Key>, u32)>,
}

impl State {
    /// Queues `k` ranked by `places`, made for the pair count `c`.
    fn queue(&mut self, k: Key, places: u32, c: u32) {
        if places >= 2 {
            let d = self.plan.depth[k.a].max(self.plan.depth[k.b]);
            self.heap.push((places, Reverse(d), Reverse(k), c));
        }
    }

    fn push(&mut self, k: Key, c: u32) {
        self.queue(k, c, c);
    }

    fn run(&mut self) {
        // Patterns that could not be used twice under the depth limits;
        // rows only get deeper, so they stay refused.
        let mut refused = HashSet::new();
        while let Some((places, _, Reverse(k), c)) = self.heap.pop() {
            let now = self.count.get(&k).copied().unwrap_or(0);
            if now != c {
                self.push(k, now);
                continue;
            }
            if refused.contains(&k) {
                continue;
            }
            let found = self.occurrences(k);
            let n = found.iter().map(|(_, o)| o.len()).sum::<usize>() as u32;
            if n < 2 {
                refused.insert(k);
            } else if n < places {
                // Ranked too high: back in line at what it really replaces.
                // The places only drop while the pair count holds, so this
                // ends with the pattern taken or refused.
                self.queue(k, n, c);
            } else {
                self.substitute(k, found);
            }
        }
    }

    /// Non-overlapping places of `k`, row by row (index pairs into the
    /// row), each within its row's depth limit.
    fn occurrences(&self, k: Key) -> Vec<(usize, Vec<(usize, usize)>)> {
        let depth = &self.plan.depth;
        let (da, db) = (depth[k.a], depth[k.b]);
        let grow = (1u128 << (da.max(db) + 1)) - (1u128 << da) - (1u128 << db);
        let mut out = Vec::new();
        for (r, row) in self.plan.rows.iter().enumerate() {
            let mut kraft = self.kraft[r];
            let mut used = vec![false; row.len()];
            let mut found = Vec::new();
            for (i, p) in row.iter().enumerate() {
                if p.sig != k.a || used[i] || kraft + grow > self.cap[r] {
                    continue;
                }
                let want = p.shift as i64 + k.d;
                let hit = row.iter().enumerate().position(|(j, q)| {
                    j != i
                        && !used[j]
                        && q.sig == k.b
                        && q.shift as i64 == want
                        && (q.neg != p.neg) == k.minus
                });
                if let Some(j) = hit {
                    used[i] = true;
                    used[j] = true;
                    kraft += grow;
                    found.push((i, j));
                }
            }
            if !found.is_empty() {
                out.push((r, found));
            }
        }
        out
    }

    /// One adder for `k`, replacing the digit pairs `found`.
    fn substitute(&mut self, k: Key, found: Vec<(usize, Vec<(usize, usize)>)>) {
        let sig = self.plan.depth.len();
        let (da, db) = (self.plan.depth[k.a], self.plan.depth[k.b]);
        let nd = da.max(db) + 1;
        self.plan.depth.push(nd);
        self.plan.adders.push(Adder {
            a: k.a,
            sa: (-k.d).max(0) as u32,
            b: k.b,
            sb: k.d.max(0) as u32,
            minus: k.minus,
        });
        for (r, pairs) in found {
            let row = std::mem::take(&mut self.plan.rows[r]);
            let mut gone = vec![false; row.len()];
            let mut new = Vec::with_capacity(pairs.len());
            for &(i, j) in &pairs {
                gone[i] = true;
                gone[j] = true;
                let (p, q) = (row[i], row[j]);
                new.push(Digit {
                    sig,
                    shift: p.shift.min(q.shift),
                    neg: p.neg,
                });
            }
            let (removed, kept): (Vec<_>, Vec<_>) =
                row.iter().enumerate().partition(|(i, _)| gone[*i]);
            let removed: Vec<Digit> = removed.into_iter().map(|(_, &d)| d).collect();
            let kept: Vec<Digit> = kept.into_iter().map(|(_, &d)| d).collect();
            for (i, &p) in removed.iter().enumerate() {
                for &q in kept.iter().chain(&removed[i + 1..]) {
                    self.uncount(key(p, q));
                }
            }
            for (i, &p) in new.iter().enumerate() {
                for &q in kept.iter().chain(&new[i + 1..]) {
                    let kk = key(p, q);
                    let c = self.count.entry(kk).or_insert(0);
                    *c += 1;
                    let c = *c;
                    self.push(kk, c);
                }
            }
            self.kraft[r] += pairs.len() as u128 * ((1u128 << nd) - (1u128 << da) - (1u128 << db));
            self.plan.rows[r] = kept.into_iter().chain(new).collect();
        }
    }

    fn uncount(&mut self, k: Key) {
        if let Some(c) = self.count.get_mut(&k) {
            *c -= 1;
            if *c == 0 {
                self.count.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `rows x cols` matrix with entries in `-max..=max` (xorshift), where
    /// every row repeats a few shapes so that patterns recur.
    fn matrix(rows: usize, cols: usize, max: i128, seed: u64) -> Vec<Vec<i128>> {
        let mut s = seed | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % (2 * max as u64 + 1)) as i128 - max
        };
        (0..rows)
            .map(|_| (0..cols).map(|_| next()).collect())
            .collect()
    }

    /// Each signal of `p` as its coefficients over the `n` inputs.
    fn expand(p: &Plan, n: usize) -> Vec<Vec<i128>> {
        let mut v: Vec<Vec<i128>> = (0..n)
            .map(|i| (0..n).map(|j| (i == j) as i128).collect())
            .collect();
        for a in &p.adders {
            let s: i128 = if a.minus { -1 } else { 1 };
            let row = (0..n)
                .map(|j| (v[a.a][j] << a.sa) + s * (v[a.b][j] << a.sb))
                .collect();
            v.push(row);
        }
        v
    }

    /// Adders the row-by-row builder spends on `m`: the pre-adders (one per
    /// input, distance and sign) and one tree per row.
    fn row_by_row(m: &[Vec<i128>], bias: &[bool]) -> usize {
        let mut pre = HashSet::new();
        let mut trees = 0;
        for (row, &b) in m.iter().zip(bias) {
            let mut leaves = b as usize;
            for (i, &w) in row.iter().enumerate() {
                let d = csd(w);
                for p in d.chunks(2) {
                    if let [(k1, d1), (k2, d2)] = p {
                        pre.insert((i, k2 - k1, d1 != d2));
                    }
                }
                leaves += d.len().div_ceil(2);
            }
            trees += leaves.saturating_sub(1);
        }
        pre.len() + trees
    }

    fn check(m: &[Vec<i128>], bias: &[bool]) -> (usize, usize) {
        let p = plan(m, bias);
        let n = m.first().map_or(0, |r| r.len());
        let v = expand(&p, n);
        for (r, (row, &b)) in p.rows.iter().zip(bias).enumerate() {
            let mut got = vec![0i128; n];
            for d in row {
                let s: i128 = if d.neg { -1 } else { 1 };
                for (j, g) in got.iter_mut().enumerate() {
                    *g += s * (v[d.sig][j] << d.shift);
                }
            }
            assert_eq!(got, m[r], "row {r} sums another row");
            let need = p.row_levels(r, b);
            assert!(
                need <= depth_limit(&m[r], b),
                "row {r} needs {need} adder levels, over its limit {}",
                depth_limit(&m[r], b)
            );
        }
        (p.cost(bias), row_by_row(m, bias))
    }

    #[test]
    fn plans_sum_each_row_exactly_within_its_depth_with_fewer_adders() {
        for (rows, cols, max, seed) in [
            (64, 16, 500, 1),
            (32, 64, 30_000, 2),
            (5, 3, 7, 3),
            (1, 9, 1000, 4),
            (12, 1, 255, 5),
        ] {
            let m = matrix(rows, cols, max, seed);
            let bias: Vec<bool> = (0..rows).map(|r| r % 3 != 0).collect();
            let (cse, rbr) = check(&m, &bias);
            eprintln!("{rows}x{cols} up to {max}: {cse} adders shared, {rbr} row by row");
            assert!(cse <= rbr, "{rows}x{cols}: {cse} > {rbr}");
            if rows * cols >= 64 {
                assert!(cse * 10 < rbr * 9, "{rows}x{cols}: {cse} vs {rbr}");
            }
        }
    }

    #[test]
    fn identical_rows_share_everything() {
        let m = vec![vec![23, -45, 7, 100]; 4];
        let bias = [false; 4];
        let (cse, rbr) = check(&m, &bias);
        // One row's network, then the other rows read its result.
        let p = plan(&m, &bias);
        assert!(p.rows.iter().all(|r| r.len() <= 2), "{:?}", p.rows);
        assert!(cse < rbr / 2, "{cse} vs {rbr}");
    }

    #[test]
    fn empty_and_zero_matrices() {
        check(&[], &[]);
        let (cse, _) = check(&[vec![0, 0], vec![0, 0]], &[true, false]);
        assert_eq!(cse, 0);
    }
}
