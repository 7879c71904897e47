//! A convolution window's geometry as a table, computed once per layer.
//!
//! [`Window::tap`] is the one rule of which input an output position reads;
//! it works out coordinates dimension by dimension. Asking it again for
//! every output channel, input channel and event made the float and golden
//! evaluation of an image model spend most of their time on geometry rather
//! than on multiply-adds. The spatial taps of an output position are the
//! same for every channel and every event, so both evaluators read them
//! from this table instead, in the order the window gives them.

use crate::qmodel::Window;
use std::ops::{AddAssign, Mul};

/// For every kernel offset `k` and output position `p`, the input spatial
/// position `q` that the tap reads, or `None` for padding. A convolution's
/// weight for input channel `ic` is then at `ic * kernel_size + k` within an
/// output channel's weights, and its input at `ic * in_positions + q`,
/// exactly as [`Window::conv_taps`] gives them.
///
/// Also stored kernel offset by kernel offset as [`Run`]s, so that one
/// weight is applied to a whole row of output positions in a loop without
/// branches: the loop the evaluators spend their time in.
#[derive(Clone, Debug)]
pub struct Taps {
    positions: usize,
    q: Vec<Option<u32>>,
    /// `runs[run_start[k]..run_start[k + 1]]` are the runs of kernel offset `k`.
    runs: Vec<Run>,
    run_start: Vec<usize>,
}

/// Output positions `p..p + len` reading input positions `q, q + step, ...`
/// at one kernel offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub p: usize,
    pub q: usize,
    pub len: usize,
    pub step: usize,
}

impl Run {
    /// `out[p] += w * x[q]` over the run, positions in order: the inner loop
    /// of both evaluators. A contiguous run is a plain slice loop, which
    /// the compiler vectorizes.
    pub fn accumulate<T>(&self, out: &mut [T], x: &[T], w: T)
    where
        T: Copy + Mul<Output = T> + AddAssign,
    {
        let out = &mut out[self.p..self.p + self.len];
        if self.step == 1 {
            for (s, &v) in out.iter_mut().zip(&x[self.q..self.q + self.len]) {
                *s += w * v;
            }
        } else {
            for (s, &v) in out.iter_mut().zip(x[self.q..].iter().step_by(self.step)) {
                *s += w * v;
            }
        }
    }
}

impl Taps {
    pub fn new(w: &Window) -> Taps {
        let (ksz, positions) = (w.kernel_size(), w.out_positions());
        assert!(
            u32::try_from(w.in_positions()).is_ok(),
            "input positions fit in u32"
        );
        let q: Vec<Option<u32>> = (0..ksz)
            .flat_map(|k| (0..positions).map(move |p| w.tap(p, k).map(|q| q as u32)))
            .collect();
        let (mut runs, mut run_start) = (Vec::new(), vec![0]);
        for col in q.chunks(positions.max(1)).take(ksz) {
            let mut cur: Option<Run> = None;
            for (p, t) in col.iter().enumerate() {
                let Some(t) = t.map(|t| t as usize) else {
                    runs.extend(cur.take());
                    continue;
                };
                cur = match cur {
                    Some(r) if r.len == 1 && t > r.q => Some(Run {
                        len: 2,
                        step: t - r.q,
                        ..r
                    }),
                    Some(r) if r.len > 1 && t == r.q + r.len * r.step => Some(Run {
                        len: r.len + 1,
                        ..r
                    }),
                    r => {
                        runs.extend(r);
                        Some(Run {
                            p,
                            q: t,
                            len: 1,
                            step: 1,
                        })
                    }
                };
            }
            runs.extend(cur);
            run_start.push(runs.len());
        }
        Taps {
            positions,
            q,
            runs,
            run_start,
        }
    }

    /// Number of output positions.
    pub fn positions(&self) -> usize {
        self.positions
    }

    /// The runs of kernel offset `k`: every output position that reads a
    /// tap (not padding) at `k` is in exactly one.
    pub fn runs(&self, k: usize) -> &[Run] {
        &self.runs[self.run_start[k]..self.run_start[k + 1]]
    }

    /// The taps `(k, q)` of output position `p`, in kernel order.
    pub fn at(&self, p: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        let ksz = self.q.len() / self.positions.max(1);
        (0..ksz).filter_map(move |k| self.q[k * self.positions + p].map(|q| (k, q as usize)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_gives_the_windows_own_convolution_taps() {
        let mut w = Window::plain(
            3,
            vec![5, 4],
            vec![3, 2],
            vec![2, 1],
            vec![1, 0],
            vec![1, 1],
        );
        // Dilated both ways, as a transposed convolution's window is.
        w.dilation = vec![1, 2];
        w.in_dilation = vec![2, 1];
        let t = Taps::new(&w);
        assert_eq!(t.positions(), w.out_positions());
        let in_runs: usize = (0..w.kernel_size())
            .flat_map(|k| t.runs(k))
            .map(|r| r.len)
            .sum();
        assert_eq!(
            in_runs,
            (0..t.positions()).map(|p| t.at(p).count()).sum::<usize>()
        );
        let (ksz, inp) = (w.kernel_size(), w.in_positions());
        for p in 0..t.positions() {
            let from_table: Vec<(usize, usize)> = (0..w.in_channels)
                .flat_map(|ic| t.at(p).map(move |(k, q)| (ic * ksz + k, ic * inp + q)))
                .collect();
            assert_eq!(
                from_table,
                w.conv_taps(0, p).collect::<Vec<_>>(),
                "position {p}"
            );
            for (k, q) in t.at(p) {
                let in_runs: Vec<usize> = t
                    .runs(k)
                    .iter()
                    .filter(|r| (r.p..r.p + r.len).contains(&p))
                    .map(|r| r.q + (p - r.p) * r.step)
                    .collect();
                assert_eq!(in_runs, [q], "position {p} offset {k}");
            }
        }
    }
}
