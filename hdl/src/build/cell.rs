//! Recurrent cells reused across time steps.
//!
//! The importer unrolls RNN, GRU and LSTM nodes over their sequence, so that
//! every backend runs plain layers and the golden model defines each step.
//! In a model a cell therefore shows as a run of blocks of layers that
//! compute the same function: block `k` computes step `k` from the state
//! that block `k - 1` left (and the first block from tensors made before the
//! run) and from tensors made before the run (the input projections).
//! [`find_cells`] finds such runs from the layers alone, whoever made them,
//! and checks every layer of every block against the first block; the
//! hardware of the first block then computes every step bit for bit, since
//! it computes the very layers of each step.
//!
//! `build_reused` builds each run as one cell in a loop. The cell is
//! pipelined like any segment (latency `d`) and its outputs go back to its
//! inputs through one entry register, padded so that the loop's period `P`
//! shares no factor with the number of steps `T`. The loop is never idle
//! waiting for a step: it holds up to `P` sequences at once, one in each
//! register stage, and each sequence carries with it what its later steps
//! need (its input projections, the tensors the layers after the run read).
//! A sequence takes `T x P` cycles, and a new one can enter every `T` cycles:
//! `P` coprime with `T` means that sequences accepted `T` cycles apart never
//! meet at the loop's entry. `in_ready` comes from a copy of the loop's
//! occupancy kept at the kernel's input (a ring of `P` small registers), so
//! the kernel refuses an event exactly when its entry into some loop would
//! collide, whatever the arrival pattern.
//!
//! A layer of a block whose op differs from step to step (the slice of the
//! input projections that the step reads) reads only tensors made before
//! the run: every step's version is built and the step number selects one.

use std::collections::{BTreeMap, HashMap};

use num_integer::Integer;

use quantize::fixed::FixedType;
use quantize::qmodel::{Port, QLayer, QModel, QOp, TensorId};
use serde::{Deserialize, Serialize};

use super::arith::Builder;
use super::bus::{input_bus, output_bus};
use super::fold::{segment_inputs, select};
use super::lower;
use crate::kernel::{BuildError, Kernel, Options, Strategy};
use crate::netlist::{Netlist, NodeId, OutField};
use crate::pipeline::{pipeline, Delays};

/// A run of `steps` blocks of `len` layers from layer `first` that compute
/// the same step of a recurrence.
#[derive(Clone, Debug)]
pub struct Cell {
    pub first: usize,
    pub len: usize,
    pub steps: usize,
    /// How each layer of a block is built.
    roles: Vec<Role>,
    /// What the blocks hand on to each other.
    states: Vec<State>,
}

/// Where an input of a block's layer comes from, the same in every block.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Src {
    /// A tensor made before the run, read by every step.
    Before(TensorId),
    /// Layer `j` of the same block.
    Within(usize),
    /// State `s` (the previous block's, or before the run for the first).
    State(usize),
    /// A tensor made before the run, another in each step.
    Varying,
}

/// How a layer of a block is built: its inputs, the same in every block,
/// and whether each step needs its own version (its op differs between
/// steps, or it reads a different tensor made before the run).
#[derive(Clone, Debug)]
struct Role {
    srcs: Vec<Src>,
    per_step: bool,
}

/// Block `k`'s state: block `k - 1`'s layer `from` (for the first block,
/// tensor `init`).
#[derive(Clone, Copy, Debug, PartialEq)]
struct State {
    from: usize,
    init: TensorId,
}

/// What the manifest says of a reused cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellInfo {
    /// The first block's first and last layer.
    pub first_layer: String,
    pub last_layer: String,
    /// Time steps computed by the cell (blocks of the run).
    pub steps: usize,
    pub layers_per_step: usize,
    /// Cycles from one step of a sequence to its next (the loop's length).
    pub period_cycles: u32,
    /// A new sequence may enter every `steps` cycles; each takes
    /// `steps x period_cycles` cycles in the loop.
    pub cycles_in_loop: u32,
}

impl Cell {
    /// The number of layers the run covers.
    pub fn layers(&self) -> usize {
        self.len * self.steps
    }

    /// One past its last layer.
    pub fn end(&self) -> usize {
        self.first + self.layers()
    }
}

/// Every run of at least two identical blocks with a state between them
/// and a matrix product (Dense or Conv) inside, the longest first, then
/// the longest in what is left on either side.
pub fn find_cells(model: &QModel) -> Vec<Cell> {
    let sig: Vec<(&str, FixedType, &[usize])> = model
        .layers
        .iter()
        .map(|l| (l.op.kind(), l.ty, l.shape.as_slice()))
        .collect();
    let mut cells = Vec::new();
    search(model, &sig, 0, model.layers.len(), &mut cells);
    cells.sort_by_key(|c| c.first);
    cells
}

type Sig<'a> = (&'a str, FixedType, &'a [usize]);

/// The run covering most layers in `lo..hi` (found among stretches where
/// layer kinds, types and shapes repeat with some period), then the same on
/// either side of it.
fn search(model: &QModel, sig: &[Sig], lo: usize, hi: usize, out: &mut Vec<Cell>) {
    let mut best: Option<Cell> = None;
    let cover = |c: &Option<Cell>| c.as_ref().map_or(0, Cell::layers);
    for len in 1..=(hi - lo) / 2 {
        let mut i = lo;
        while i + len < hi {
            if sig[i] != sig[i + len] {
                i += 1;
                continue;
            }
            let s = i;
            while i + len < hi && sig[i] == sig[i + len] {
                i += 1;
            }
            // Layers s..i+len repeat with period len; try each alignment.
            for a in s..(s + len).min(i) {
                let most = (i + len - a) / len;
                if most < 2 || most * len <= cover(&best) {
                    break;
                }
                if let Some(c) = verify(model, a, len, most) {
                    if c.layers() > cover(&best) {
                        best = Some(c);
                    }
                }
            }
        }
    }
    if let Some(c) = best {
        search(model, sig, lo, c.first, out);
        search(model, sig, c.end(), hi, out);
        out.push(c);
    }
}

/// The longest run of blocks from layer `a` (at most `steps`) that forms a cell.
fn verify(model: &QModel, a: usize, len: usize, mut steps: usize) -> Option<Cell> {
    loop {
        match roles(model, a, len, steps) {
            Ok(c) => return c,
            Err(k) if k >= 2 && k < steps => steps = k,
            Err(_) => return None,
        }
    }
}

/// The roles of the layers of blocks `0..steps` from layer `a`; `Err(k)`:
/// block `k` is the first that differs from the first block. `Ok(None)`:
/// the blocks agree but form no cell (no state, no matrix product, or a
/// state whose first value does not match its type).
fn roles(model: &QModel, a: usize, len: usize, steps: usize) -> Result<Option<Cell>, usize> {
    let layer = |k: usize, j: usize| &model.layers[a + k * len + j];
    let base = |k: usize| model.layer_tensor(a + k * len) as i64;
    let mut reach = steps;
    let mut roles = Vec::with_capacity(len);
    let mut states: Vec<State> = Vec::new();
    for j in 0..len {
        let l0 = layer(0, j);
        if let Some(k) = (1..steps).find(|&k| layer(k, j).inputs.len() != l0.inputs.len()) {
            reach = reach.min(k);
            continue;
        }
        let per_step_op = (1..steps).any(|k| layer(k, j).op != l0.op);
        let mut srcs = Vec::with_capacity(l0.inputs.len());
        for i in 0..l0.inputs.len() {
            let t = |k: usize| layer(k, j).inputs[i] as i64;
            let upto = |ok: &dyn Fn(usize) -> bool| (1..steps).find(|&k| !ok(k)).unwrap_or(steps);
            // The candidates, most specific first (the first of the longest reach wins).
            let mut cands: Vec<(usize, Src)> = Vec::new();
            if t(0) < base(0) {
                cands.push((upto(&|k| t(k) == t(0)), Src::Before(t(0) as usize)));
                let from = t(1) - base(0);
                if (0..len as i64).contains(&from) {
                    let r = upto(&|k| t(k) - base(k - 1) == from);
                    cands.push((r, Src::State(from as usize)));
                }
                cands.push((upto(&|k| t(k) < base(0)), Src::Varying));
            } else {
                let d = t(0) - base(0);
                if (0..j as i64).contains(&d) {
                    cands.push((upto(&|k| t(k) - base(k) == d), Src::Within(d as usize)));
                }
            }
            let best = cands.iter().map(|c| c.0).max().unwrap_or(0);
            reach = reach.min(best);
            let Some(&(_, src)) = cands.iter().find(|c| c.0 == best) else {
                break;
            };
            srcs.push(match src {
                Src::State(from) => {
                    let init = t(0) as usize;
                    let s = match states.iter().position(|s| s.from == from) {
                        Some(s) if states[s].init != init => return Ok(None),
                        Some(s) => s,
                        None => {
                            states.push(State { from, init });
                            states.len() - 1
                        }
                    };
                    Src::State(s)
                }
                other => other,
            });
        }
        let per_step = per_step_op || srcs.contains(&Src::Varying);
        roles.push(Role { srcs, per_step });
    }
    if reach < steps {
        return Err(reach);
    }
    let product = roles.iter().enumerate().any(|(j, r)| {
        !r.per_step && matches!(layer(0, j).op, QOp::Dense { .. } | QOp::Conv { .. })
    });
    let fits = states.iter().all(|s| {
        model.ty(s.init) == layer(0, s.from).ty
            && model.tensor_len(s.init) == layer(0, s.from).shape.iter().product::<usize>()
    });
    Ok((product && fits && !states.is_empty()).then_some(Cell {
        first: a,
        len,
        steps,
        roles,
        states,
    }))
}

/// For every tensor, the last layer that reads it (`layers.len()` for a
/// graph output): it is needed from layer `p` on if that is `>= p`.
fn last_reads(model: &QModel) -> Vec<Option<usize>> {
    let mut last = vec![None; model.tensors()];
    for (li, l) in model.layers.iter().enumerate() {
        for &t in &l.inputs {
            last[t] = Some(li);
        }
    }
    for o in &model.outputs {
        last[o.tensor] = Some(model.layers.len());
    }
    last
}

/// The values available between segments: each tensor's nodes in the top netlist.
type Avail = BTreeMap<TensorId, Vec<NodeId>>;

/// Builds `model` with each run of `cells` (from [`find_cells`], in order,
/// not overlapping) as a reused cell, the layers between them as pipelined
/// segments.
pub(super) fn build_reused(
    model: &QModel,
    options: &Options,
    cells: &[Cell],
) -> Result<Kernel, BuildError> {
    let ctx = Ctx {
        model,
        strategy: options.strategy,
        budget: options.budget_ps(),
        delays: options.delays(),
        last: last_reads(model),
    };
    let mut top = Netlist::new();
    let (inputs, x) = input_bus(&mut top, model);
    let in_valid = top.in_valid();
    // One "the loop's entry is taken" register per cell, connected below.
    let busy: Vec<NodeId> = cells.iter().map(|_| top.state(0, 1, true, true)).collect();
    let mut ready = top.bool_const(true);
    for &b in &busy {
        let free = top.not(b);
        ready = top.and(ready, free);
    }
    top.in_ready = Some(ready);
    let accept = top.and(in_valid, ready);
    let mut avail: Avail = x.into_iter().enumerate().collect();
    let mut valid = accept;
    let mut latency = 0;
    let mut pos = 0;
    let mut infos = Vec::with_capacity(cells.len());
    for (cell, &busy) in cells.iter().zip(&busy) {
        if cell.first > pos {
            latency += ctx.segment(&mut top, &mut avail, &mut valid, pos, cell.first, latency)?;
        }
        let period = ctx.cell_loop(&mut top, cell, &mut avail, &mut valid)?;
        occupancy(&mut top, accept, busy, cell.steps as u32, period);
        latency += cell.steps as u32 * period;
        infos.push(CellInfo {
            first_layer: model.layers[cell.first].name.clone(),
            last_layer: model.layers[cell.first + cell.len - 1].name.clone(),
            steps: cell.steps,
            layers_per_step: cell.len,
            period_cycles: period,
            cycles_in_loop: cell.steps as u32 * period,
        });
        pos = cell.end();
    }
    if pos < model.layers.len() {
        latency += ctx.segment(
            &mut top,
            &mut avail,
            &mut valid,
            pos,
            model.layers.len(),
            latency,
        )?;
    }
    if let Some(e) = top.error.take() {
        return Err(e.into());
    }
    let mut tensors = vec![vec![]; model.tensors()];
    for (t, v) in avail {
        tensors[t] = v;
    }
    let outputs = output_bus(&mut top, model, &model.gather_outputs(&tensors));
    top.out_valid = Some(valid);
    Ok(Kernel {
        name: options.module_name(&model.name)?,
        net: top,
        latency,
        ii: interval(&infos),
        inputs,
        outputs,
        options: options.clone(),
        cells: infos,
    })
}

/// The shortest fixed interval at which events never collide in any loop:
/// sequences `q x ii` cycles apart meet at a loop's entry when that is a
/// multiple `m x P` for a step `m` in `1..T`.
fn interval(loops: &[CellInfo]) -> u32 {
    let start = loops
        .iter()
        .map(|l| l.steps as u32)
        .max()
        .unwrap_or(1)
        .max(1);
    (start..)
        .find(|&ii| {
            loops
                .iter()
                .all(|l| (1..l.steps as u32).all(|m| (m * l.period_cycles) % ii != 0))
        })
        .expect("an interval above every loop's T x P exists")
}

/// The loop's occupancy as seen from the kernel's input: a ring of
/// `period` registers holding `step + 1` of each sequence entering the loop
/// (0: none), driven by `accept` as the loop is by the event's arrival
/// there a fixed number of cycles later. `busy` is set on the cycle a
/// sequence will come round for another step.
fn occupancy(top: &mut Netlist, accept: NodeId, busy: NodeId, steps: u32, period: u32) {
    let t = steps as i128;
    let ring: Vec<NodeId> = (0..period).map(|_| top.state(0, t, false, true)).collect();
    // A sequence coming round whose step is not its last (1 <= s <= T - 1).
    let more = |top: &mut Netlist, s: NodeId| {
        let zero = top.konst(0);
        let empty = top.eq(s, zero);
        let tc = top.konst(t);
        let before_last = top.lt(s, tc);
        let some = top.not(empty);
        top.and(some, before_last)
    };
    let last = ring[ring.len() - 1];
    let again = more(top, last);
    let one = top.konst(1);
    let next = top.add(last, one);
    let zero = top.konst(0);
    let round = top.mux(again, next, zero);
    let entry = top.mux(accept, one, round);
    let entry = top.narrow(entry, 0, t);
    top.connect(ring[0], entry);
    for i in 1..ring.len() {
        top.connect(ring[i], ring[i - 1]);
    }
    // `busy` on the next cycle is what the last register will then hold.
    let soon = more(top, ring[ring.len() - 2]);
    top.connect(busy, soon);
}

/// What every segment builder needs of the model.
struct Ctx<'a> {
    model: &'a QModel,
    strategy: Strategy,
    budget: u32,
    delays: Delays,
    last: Vec<Option<usize>>,
}

/// One group of values riding through a loop: its tensor's values on
/// entry and the range each register holds.
struct Ride {
    entry: Vec<NodeId>,
    ranges: Vec<(i128, i128)>,
}

impl Ctx<'_> {
    fn needed(&self, t: TensorId, from: usize) -> bool {
        self.last[t].is_some_and(|l| l >= from)
    }

    /// Layers `from..to` as one pipelined segment reading `avail`, its
    /// stage 0 the kernel's stage `start`; `avail` becomes what is needed
    /// from layer `to` on. Returns the latency.
    fn segment(
        &self,
        top: &mut Netlist,
        avail: &mut Avail,
        valid: &mut NodeId,
        from: usize,
        to: usize,
        start: u32,
    ) -> Result<u32, BuildError> {
        let model = self.model;
        let mut b = Builder::new(self.strategy, self.delays.ternary_adders);
        let (keys, flat): (Vec<TensorId>, Vec<Vec<NodeId>>) =
            avail.iter().map(|(&t, v)| (t, v.clone())).unzip();
        let flat_in: Vec<NodeId> = flat.concat();
        let ranges: Vec<(i128, i128)> = flat_in.iter().map(|&v| top.range(v)).collect();
        let ins = segment_inputs(&mut b.net, top, &flat_in, &ranges);
        let mut t: Vec<Vec<NodeId>> = vec![vec![]; model.tensors()];
        for (&k, v) in keys.iter().zip(split(&ins, flat.iter().map(Vec::len))) {
            t[k] = v;
        }
        for li in from..to {
            let y = lower::layer(&mut b, model, li, &t)?;
            if let Some(e) = b.net.error.take() {
                return Err(e.into());
            }
            t[model.layer_tensor(li)] = y;
        }
        let outs: Vec<TensorId> = (0..model.layer_tensor(to))
            .filter(|&k| !t[k].is_empty() && self.needed(k, to))
            .collect();
        for &k in &outs {
            for &v in &t[k] {
                let width = b.net.width(v);
                b.net.outputs.push(OutField { node: v, width });
            }
        }
        let (pseg, lat) = pipeline(&b.net, self.budget, &self.delays);
        let (vals, v) = top.embed(&pseg, &flat_in, *valid, Some(start));
        *avail = outs
            .iter()
            .copied()
            .zip(split(&vals, outs.iter().map(|&k| t[k].len())))
            .collect();
        *valid = v;
        Ok(lat)
    }

    /// The loop of `cell`: entry registers, the cell's pipelined segment and
    /// the padding; `avail` becomes what the layers after the run need, on
    /// the cycle `valid` (the sequence's last step out) is high. Returns the
    /// loop's period.
    fn cell_loop(
        &self,
        top: &mut Netlist,
        cell: &Cell,
        avail: &mut Avail,
        valid: &mut NodeId,
    ) -> Result<u32, BuildError> {
        let model = self.model;
        let block = |k: usize, j: usize| cell.first + k * cell.len + j;
        let steps = cell.steps as i128;
        let full = |ty: FixedType| (ty.min_raw() as i128, ty.max_raw() as i128);
        let hull = |a: (i128, i128), b: (i128, i128)| (a.0.min(b.0), a.1.max(b.1));

        // What rides through the loop: the tensors the steps read from before
        // the run, the states, what the layers after the run need from
        // before it, and the steps' tensors they need (captured as made).
        let mut before: Vec<TensorId> = Vec::new();
        for (j, role) in cell.roles.iter().enumerate() {
            for (i, src) in role.srcs.iter().enumerate() {
                match src {
                    Src::Before(t) => before.push(*t),
                    Src::Varying => {
                        before.extend((0..cell.steps).map(|k| model.layers[block(k, j)].inputs[i]))
                    }
                    Src::Within(_) | Src::State(_) => {}
                }
            }
        }
        before.sort_unstable();
        before.dedup();
        let carried: Vec<TensorId> = avail
            .keys()
            .copied()
            .filter(|&t| self.needed(t, cell.end()))
            .collect();
        let last = cell.steps - 1;
        let captured: Vec<(usize, usize)> = (0..cell.steps)
            .flat_map(|k| (0..cell.len).map(move |j| (k, j)))
            .filter(|&(k, j)| {
                self.needed(model.layer_tensor(block(k, j)), cell.end())
                    && !(k == last && cell.states.iter().any(|s| s.from == j))
            })
            .collect();
        let node = |t: TensorId| -> Result<&Vec<NodeId>, BuildError> {
            avail.get(&t).ok_or_else(|| BuildError::Unsupported {
                layer: model.layers[cell.first].name.clone(),
                kind: "recurrent cell",
                why: format!("tensor {t} is read by the cell but not available before it"),
            })
        };
        let mut rides: Vec<Ride> = Vec::new();
        for &t in before.iter().chain(&carried) {
            let entry = node(t)?.clone();
            let ranges = entry.iter().map(|&v| top.range(v)).collect();
            rides.push(Ride { entry, ranges });
        }
        for s in &cell.states {
            let entry = node(s.init)?.clone();
            let ty = model.layers[block(0, s.from)].ty;
            let ranges = entry
                .iter()
                .map(|&v| hull(top.range(v), full(ty)))
                .collect();
            rides.push(Ride { entry, ranges });
        }
        let zero = top.konst(0);
        for &(_, j) in &captured {
            let l = &model.layers[block(0, j)];
            let n = l.shape.iter().product();
            rides.push(Ride {
                entry: vec![zero; n],
                ranges: vec![hull((0, 0), full(l.ty)); n],
            });
        }

        // The entry registers: the step, then every ride's values.
        let step_reg = top.state(0, steps - 1, false, false);
        let valid_reg = top.state(0, 1, true, true);
        let regs: Vec<Vec<NodeId>> = rides
            .iter()
            .map(|r| {
                r.ranges
                    .iter()
                    .map(|&(lo, hi)| top.state(lo, hi, false, false))
                    .collect()
            })
            .collect();
        let mut ports = vec![step_reg];
        let mut ranges = vec![(0, steps - 1)];
        for (r, ride) in regs.iter().zip(&rides) {
            ports.extend(r);
            ranges.extend(&ride.ranges);
        }

        // The cell: the first block's layers as a model of their own, whose
        // inputs are the tensors from before the run and the states.
        let mut b = Builder::new(self.strategy, self.delays.ternary_adders);
        let ins = segment_inputs(&mut b.net, top, &ports, &ranges);
        let step = ins[0];
        let lens = || rides.iter().map(|r| r.entry.len());
        let groups = split(&ins[1..], lens());
        let (n_before, n_carried) = (before.len(), carried.len());
        let port_of: HashMap<TensorId, usize> =
            before.iter().enumerate().map(|(i, &t)| (t, i)).collect();
        let mut sub = QModel {
            name: model.name.clone(),
            inputs: before
                .iter()
                .map(|&t| (t, model.ty(t)))
                .chain(
                    cell.states
                        .iter()
                        .map(|s| (s.init, model.layers[block(0, s.from)].ty)),
                )
                .map(|(t, ty)| Port {
                    name: format!("tensor {t}"),
                    shape: model.shape(t).to_vec(),
                    ty,
                })
                .collect(),
            layers: Vec::new(),
            outputs: Vec::new(),
        };
        let n_ports = sub.inputs.len();
        let mut t: Vec<Vec<NodeId>> = groups[..n_before].to_vec();
        t.extend(
            groups[n_before + n_carried..][..cell.states.len()]
                .iter()
                .cloned(),
        );
        // Tensor of each block layer in `sub`.
        let mut made: Vec<TensorId> = Vec::with_capacity(cell.len);
        for (j, role) in cell.roles.iter().enumerate() {
            // Step k's version of the layer, reading the cell's tensors.
            let version = |k: usize, made: &[TensorId]| QLayer {
                inputs: (role.srcs.iter().zip(&model.layers[block(k, j)].inputs))
                    .map(|(src, x)| match *src {
                        Src::Before(x) => port_of[&x],
                        Src::Varying => port_of[x],
                        Src::Within(j2) => made[j2],
                        Src::State(s) => n_before + s,
                    })
                    .collect(),
                ..model.layers[block(k, j)].clone()
            };
            if role.per_step {
                let mut versions = Vec::with_capacity(cell.steps);
                for k in 0..cell.steps {
                    sub.layers.push(version(k, &made));
                    let y = lower::layer(&mut b, &sub, sub.layers.len() - 1, &t)?;
                    t.push(y.clone());
                    versions.push(y);
                }
                // The step's version, as a layer of the same type and shape.
                sub.layers.push(model.layers[block(0, j)].clone());
                let y: Vec<NodeId> = (0..versions[0].len())
                    .map(|e| {
                        let leaves: Vec<Option<NodeId>> =
                            versions.iter().map(|v| Some(v[e])).collect();
                        select(&mut b.net, step, &leaves).expect("at least two steps")
                    })
                    .collect();
                t.push(y);
            } else {
                sub.layers.push(version(0, &made));
                let y = lower::layer(&mut b, &sub, sub.layers.len() - 1, &t)?;
                t.push(y);
            }
            if let Some(e) = b.net.error.take() {
                return Err(e.into());
            }
            made.push(n_ports + sub.layers.len() - 1);
        }
        // Next values: the step and the rides' pass through, the states
        // are the block's, a capture takes its layer's value on its step.
        let mut outs = vec![step];
        for g in &groups[..n_before + n_carried] {
            outs.extend(g);
        }
        for s in &cell.states {
            outs.extend(&t[made[s.from]]);
        }
        let caps = &groups[n_before + n_carried + cell.states.len()..];
        for (&(k, j), held) in captured.iter().zip(caps) {
            let kc = b.net.konst(k as i128);
            let now = b.net.eq(step, kc);
            for (&v, &h) in t[made[j]].iter().zip(held) {
                let m = b.net.mux(now, v, h);
                outs.push(m);
            }
        }
        for &v in &outs {
            let width = b.net.width(v);
            b.net.outputs.push(OutField { node: v, width });
        }
        let (pseg, d) = pipeline(&b.net, self.budget, &self.delays);
        let (mut back, mut back_valid) = top.embed(&pseg, &ports, valid_reg, None);
        // Pad the loop to a period coprime with the number of steps.
        let mut period = 1 + d;
        while period.gcd(&(cell.steps as u32)) != 1 {
            for v in back.iter_mut() {
                *v = top.reg(*v, false);
            }
            back_valid = top.reg(back_valid, true);
            period += 1;
        }

        // The entry: a new sequence, or one coming round for its next step.
        let back_step = back[0];
        let lastc = top.konst(steps - 1);
        let at_last = top.eq(back_step, lastc);
        let done = top.and(back_valid, at_last);
        let not_last = top.not(at_last);
        let again = top.and(back_valid, not_last);
        let new = *valid;
        let take = top.or(new, again);
        top.connect(valid_reg, take);
        let one = top.konst(1);
        let inc = top.add(back_step, one);
        let inc = top.mux(again, inc, zero);
        let next_step = top.mux(new, zero, inc);
        let next_step = top.narrow(next_step, 0, steps - 1);
        top.connect(step_reg, next_step);
        let mut at = 1;
        for (r, ride) in regs.iter().zip(&rides) {
            for ((&reg, &e), &(lo, hi)) in r.iter().zip(&ride.entry).zip(&ride.ranges) {
                let v = top.mux(new, e, back[at]);
                let v = top.narrow(v, lo, hi);
                top.connect(reg, v);
                at += 1;
            }
        }

        // After the run: the carried tensors, the last states and the
        // captures, each ride's values as they come round the last time.
        let out = split(&back[1..], lens());
        let mut out = out.into_iter().skip(n_before);
        avail.clear();
        for (&x, v) in carried.iter().zip(out.by_ref()) {
            avail.insert(x, v);
        }
        for (s, v) in cell.states.iter().zip(out.by_ref()) {
            let x = model.layer_tensor(block(last, s.from));
            if self.needed(x, cell.end()) {
                avail.insert(x, v);
            }
        }
        for (&(k, j), v) in captured.iter().zip(out) {
            avail.insert(model.layer_tensor(block(k, j)), v);
        }
        *valid = done;
        Ok(period)
    }
}

/// `flat` cut into consecutive pieces of the given lengths.
fn split(flat: &[NodeId], lens: impl IntoIterator<Item = usize>) -> Vec<Vec<NodeId>> {
    let mut at = 0;
    lens.into_iter()
        .map(|n| {
            at += n;
            flat[at - n..at].to_vec()
        })
        .collect()
}
