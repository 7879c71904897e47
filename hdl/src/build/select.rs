//! Lookups and maxima: tables (ROMs indexed by a clamped, shifted input),
//! max trees, and the softmax's exponent stage, used by the Table, Softmax
//! and max-pooling lowerings.

use quantize::qmodel::Table;

use super::arith::Builder;
use crate::netlist::NodeId;

impl Builder {
    pub(super) fn table(&mut self, x: NodeId, t: &Table) -> NodeId {
        let off = self.net.konst(t.offset as i128);
        let d = self.net.sub(x, off);
        self.table_offset(d, t)
    }

    /// The table lookup of `x` given `d = x - t.offset`.
    pub(super) fn table_offset(&mut self, d: NodeId, t: &Table) -> NodeId {
        let net = &mut self.net;
        let s = net.shr(d, t.shift);
        let last = t.values.len() as i128 - 1;
        let zero = net.konst(0);
        let lastc = net.konst(last);
        let below = net.lt(s, zero);
        let above = net.lt(lastc, s);
        let hi = net.mux(above, lastc, s);
        let idx = net.mux(below, zero, hi);
        let idx = net.narrow(idx, 0, last);
        net.rom(idx, t.values.iter().map(|&v| v as i128).collect())
    }

    /// `exp_table[v - max(group)]` for each `v` of a softmax group.
    ///
    /// Small groups avoid the serial max tree (compare, select, compare, ...)
    /// followed by two subtractions: all pairwise comparisons at once give a
    /// one-hot select of the first maximum, and the differences
    /// `v_i - (v_j + offset)` computed meanwhile are selected by it, so the
    /// table index is ready after one comparator, a few LUT levels and two
    /// adders side by side. Exactly one select is set, and every selected
    /// difference equals `v_i - max - offset`.
    #[allow(clippy::needless_range_loop)] // pairwise indices read best as such
    pub(super) fn softmax_exp(&mut self, group: &[NodeId], t: &Table) -> Vec<NodeId> {
        let n = group.len();
        if !(2..=8).contains(&n) {
            let m = self.max_tree(group.to_vec());
            return group
                .iter()
                .map(|&v| {
                    let d = self.net.sub(v, m);
                    let (l, _) = self.net.range(d);
                    let d = self.net.narrow(d, l, 0);
                    self.table(d, t)
                })
                .collect();
        }
        let off = t.offset as i128;
        // c[a][b] = v_a < v_b for a < b.
        let mut c = vec![vec![usize::MAX; n]; n];
        for a in 0..n {
            for b in a + 1..n {
                c[a][b] = self.net.lt(group[a], group[b]);
            }
        }
        // sel[j]: v_j is the first maximum (above all before it, not below any after it).
        let mut sel = Vec::with_capacity(n);
        for j in 0..n {
            let mut s = self.net.bool_const(true);
            for k in 0..n {
                let term = if k < j {
                    c[k][j]
                } else if k > j {
                    self.net.not(c[j][k])
                } else {
                    continue;
                };
                s = self.net.and(s, term);
            }
            sel.push(s);
        }
        let offc = self.net.konst(off);
        let shifted: Vec<NodeId> = group.iter().map(|&v| self.net.add(v, offc)).collect();
        let max_hi = group
            .iter()
            .map(|&v| self.net.range(v).1)
            .max()
            .unwrap_or(0);
        let mut e = Vec::with_capacity(n);
        for i in 0..n {
            // (select, v_i - v_j - offset) for every j, reduced pairwise.
            let mut cand: Vec<(NodeId, NodeId)> = (0..n)
                .map(|j| {
                    let d = if i == j {
                        self.net.konst(-off)
                    } else {
                        self.net.sub(group[i], shifted[j])
                    };
                    (sel[j], d)
                })
                .collect();
            while cand.len() > 1 {
                let mut next = Vec::with_capacity(cand.len() / 2 + 1);
                for p in cand.chunks(2) {
                    if p.len() == 1 {
                        next.push(p[0]);
                        continue;
                    }
                    let s = self.net.or(p[0].0, p[1].0);
                    let v = self.net.mux(p[0].0, p[0].1, p[1].1);
                    next.push((s, v));
                }
                cand = next;
            }
            let lo = self.net.range(group[i]).0 - max_hi - off;
            let d = self.net.narrow(cand[0].1, lo, -off);
            e.push(self.table_offset(d, t));
        }
        e
    }

    fn max2(&mut self, a: NodeId, b: NodeId) -> NodeId {
        let lt = self.net.lt(a, b);
        self.net.mux(lt, b, a)
    }

    pub(super) fn max_tree(&mut self, mut v: Vec<NodeId>) -> NodeId {
        while v.len() > 1 {
            v = v
                .chunks(2)
                .map(|p| {
                    if p.len() == 2 {
                        self.max2(p[0], p[1])
                    } else {
                        p[0]
                    }
                })
                .collect();
        }
        v[0]
    }
}
