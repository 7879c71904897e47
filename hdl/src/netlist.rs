//! The one description of a kernel: a netlist of integer signals with exact
//! value ranges. Both the cycle simulator ([`Netlist::step`]) and the Verilog
//! printer ([`Netlist::verilog`]) read this structure and nothing else, so they
//! cannot diverge by construction; what remains to check (and the tests do) is
//! that each op's Verilog text means what its simulation computes.
//!
//! Every numeric signal is a signed two's complement integer whose width is
//! the smallest that holds its range `[lo, hi]` (interval arithmetic from the
//! constants of the model), so adders are exactly as wide as their values.
//! Booleans are 1-bit unsigned wires used only as selects and in logic.
//! Every Verilog expression is fully parenthesized, every operand of an
//! arithmetic operator is a declared `signed` wire, and part selects and
//! concatenations are wrapped in `$signed(...)`, so no operator precedence or
//! signedness rule of the language is relied upon.

use std::fmt::Write as _;

pub type NodeId = usize;

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A field of the input bus: `in_data[lsb +: width]`, signed or zero-extended.
    Input {
        lsb: u32,
        width: u32,
        signed: bool,
    },
    /// The `in_valid` port (boolean).
    InValid,
    Const(i128),
    Add(NodeId, NodeId),
    Sub(NodeId, NodeId),
    /// `a * 2^k` (wiring).
    Shl(NodeId, u32),
    /// `floor(a / 2^k)`, `k` below the width of `a` (wiring).
    Shr(NodeId, u32),
    /// Multiplication by a constant on a multiplier (DSP).
    MulConst(NodeId, i128),
    /// Multiplication of two signals.
    Mul(NodeId, NodeId),
    /// The low `width` bits of `a`, read as signed or unsigned (wrap-around);
    /// also used to narrow a signal whose value is known to fit.
    Wrap {
        a: NodeId,
        width: u32,
        signed: bool,
    },
    /// Boolean `a < b`.
    Lt(NodeId, NodeId),
    /// Boolean `a == b`.
    Eq(NodeId, NodeId),
    /// Boolean: bit `i` of `a` (below its width).
    Bit(NodeId, u32),
    /// Boolean: OR of bits `lo..hi` of `a` (within its width).
    Any(NodeId, u32, u32),
    Not(NodeId),
    And(NodeId, NodeId),
    Or(NodeId, NodeId),
    /// A boolean as the integer 0 or 1.
    BoolToInt(NodeId),
    /// `sel ? a : b`.
    Mux(NodeId, NodeId, NodeId),
    /// `values[idx]`, `idx` known to be in range.
    Rom {
        idx: NodeId,
        values: Vec<i128>,
    },
    /// A pipeline register; `reset` clears it to 0 (used for the valid chain only).
    Reg {
        a: NodeId,
        reset: bool,
    },
}

#[derive(Clone, Debug)]
pub struct Node {
    pub op: Op,
    pub lo: i128,
    pub hi: i128,
    pub boolean: bool,
    pub width: u32,
    /// Optional tag printed as a comment (weights, layer names): lets a reader
    /// (and the mutation test) find a term in the Verilog.
    pub tag: Option<String>,
}

impl Node {
    /// Power-up value of a register: 0, or the range bound nearest to it, so
    /// that every signal stays within its declared range from the first cycle.
    pub fn reset_value(&self) -> i128 {
        0i128.clamp(self.lo, self.hi)
    }
}

/// Smallest signed two's complement width holding `[lo, hi]`.
pub fn signed_width(lo: i128, hi: i128) -> u32 {
    let mut w = 1u32;
    while w < 128 {
        let half = 1i128 << (w - 1);
        if lo >= -half && hi < half {
            break;
        }
        w += 1;
    }
    w
}

/// Widest signal the simulator (i128) supports.
pub const MAX_WIDTH: u32 = 120;

#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum NetlistError {
    #[error("a signal would need {0} bits, more than the {MAX_WIDTH} supported (node {1})")]
    TooWide(u32, String),
}

/// Output field of the output bus: node and how many bits it occupies.
#[derive(Clone, Debug)]
pub struct OutField {
    pub node: NodeId,
    pub width: u32,
}

#[derive(Clone, Debug, Default)]
pub struct Netlist {
    pub nodes: Vec<Node>,
    pub in_width: u32,
    pub outputs: Vec<OutField>,
    pub out_valid: Option<NodeId>,
    /// The `in_ready` port (boolean); `None`: always ready (II = 1).
    pub in_ready: Option<NodeId>,
    /// First error met while building (checked by the builders).
    pub error: Option<NetlistError>,
}

fn wrap_value(v: i128, width: u32, signed: bool) -> i128 {
    let sh = 128 - width;
    if signed {
        (v << sh) >> sh
    } else {
        (((v as u128) << sh) >> sh) as i128
    }
}

fn bit_of(v: i128, i: u32) -> i128 {
    (v >> i.min(127)) & 1
}

impl Netlist {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn node(&self, n: NodeId) -> &Node {
        &self.nodes[n]
    }

    pub fn width(&self, n: NodeId) -> u32 {
        self.nodes[n].width
    }

    pub fn range(&self, n: NodeId) -> (i128, i128) {
        (self.nodes[n].lo, self.nodes[n].hi)
    }

    pub fn const_value(&self, n: NodeId) -> Option<i128> {
        match self.nodes[n].op {
            Op::Const(v) => Some(v),
            _ => None,
        }
    }

    pub(crate) fn push_raw(&mut self, op: Op, lo: i128, hi: i128, boolean: bool) -> NodeId {
        let width = if boolean { 1 } else { signed_width(lo, hi) };
        if width > MAX_WIDTH && self.error.is_none() {
            self.error = Some(NetlistError::TooWide(width, format!("{op:?}")));
        }
        self.nodes.push(Node {
            op,
            lo,
            hi,
            boolean,
            width,
            tag: None,
        });
        self.nodes.len() - 1
    }

    /// Adds a node, folding it to a constant when all its operands are
    /// constants (evaluated by the simulator's own rule).
    fn push(&mut self, op: Op, lo: i128, hi: i128, boolean: bool) -> NodeId {
        let operands = op_inputs(&op);
        let foldable = !matches!(
            op,
            Op::Input { .. } | Op::InValid | Op::Reg { .. } | Op::Const(_)
        ) && operands.iter().all(|&a| self.const_value(a).is_some());
        if foldable {
            let v = eval_op(&op, |a| self.const_value(a).unwrap_or(0), false);
            return self.konst_b(v, boolean);
        }
        self.push_raw(op, lo, hi, boolean)
    }

    fn konst_b(&mut self, v: i128, boolean: bool) -> NodeId {
        self.push_raw(Op::Const(v), v, v, boolean)
    }

    pub fn tag(&mut self, n: NodeId, tag: String) {
        self.nodes[n].tag = Some(tag);
    }

    pub fn konst(&mut self, v: i128) -> NodeId {
        self.konst_b(v, false)
    }

    pub fn bool_const(&mut self, b: bool) -> NodeId {
        self.konst_b(b as i128, true)
    }

    pub fn input(&mut self, lsb: u32, width: u32, signed: bool) -> NodeId {
        let (lo, hi) = if signed {
            (-(1i128 << (width - 1)), (1i128 << (width - 1)) - 1)
        } else {
            (0, (1i128 << width) - 1)
        };
        self.in_width = self.in_width.max(lsb + width);
        self.push_raw(Op::Input { lsb, width, signed }, lo, hi, false)
    }

    /// A signed input field whose values the producer keeps within `[lo, hi]`
    /// (an instance's input fed from a node of known range, see [`Netlist::embed`]).
    pub fn input_in(&mut self, lsb: u32, width: u32, lo: i128, hi: i128) -> NodeId {
        let n = self.input(lsb, width, true);
        let (l, h) = self.range(n);
        self.nodes[n].lo = lo.max(l);
        self.nodes[n].hi = hi.min(h);
        n
    }

    pub fn in_valid(&mut self) -> NodeId {
        self.push_raw(Op::InValid, 0, 1, true)
    }

    pub fn add(&mut self, a: NodeId, b: NodeId) -> NodeId {
        if self.const_value(b) == Some(0) {
            return a;
        }
        if self.const_value(a) == Some(0) {
            return b;
        }
        let (al, ah) = self.range(a);
        let (bl, bh) = self.range(b);
        self.push(Op::Add(a, b), al + bl, ah + bh, false)
    }

    pub fn sub(&mut self, a: NodeId, b: NodeId) -> NodeId {
        if self.const_value(b) == Some(0) {
            return a;
        }
        let (al, ah) = self.range(a);
        let (bl, bh) = self.range(b);
        self.push(Op::Sub(a, b), al - bh, ah - bl, false)
    }

    pub fn shl(&mut self, a: NodeId, k: u32) -> NodeId {
        if k == 0 {
            return a;
        }
        let (l, h) = self.range(a);
        if self.width(a) + k > MAX_WIDTH {
            if self.error.is_none() {
                self.error = Some(NetlistError::TooWide(
                    self.width(a) + k,
                    "shift left".into(),
                ));
            }
            return self.konst(0);
        }
        self.push(Op::Shl(a, k), l << k, h << k, false)
    }

    /// `floor(a / 2^k)` for any `k`.
    pub fn shr(&mut self, a: NodeId, k: u32) -> NodeId {
        if k == 0 {
            return a;
        }
        let (l, h) = self.range(a);
        let (lo, hi) = (l >> k.min(127), h >> k.min(127));
        if lo == hi {
            return self.konst(lo);
        }
        if k >= self.width(a) {
            // Only the sign is left: 0 or -1.
            let s = self.bit(a, self.width(a) - 1);
            let one = self.bool_to_int(s);
            let z = self.konst(0);
            return self.sub(z, one);
        }
        self.push(Op::Shr(a, k), lo, hi, false)
    }

    pub fn mul_const(&mut self, a: NodeId, c: i128) -> NodeId {
        let (l, h) = self.range(a);
        let (p, q) = (l * c, h * c);
        self.push(Op::MulConst(a, c), p.min(q), p.max(q), false)
    }

    pub fn mul(&mut self, a: NodeId, b: NodeId) -> NodeId {
        let (al, ah) = self.range(a);
        let (bl, bh) = self.range(b);
        let c = [al * bl, al * bh, ah * bl, ah * bh];
        let (lo, hi) = (*c.iter().min().unwrap(), *c.iter().max().unwrap());
        self.push(Op::Mul(a, b), lo, hi, false)
    }

    /// Low `width` bits of `a`, signed or unsigned: the WRAP overflow mode.
    pub fn wrap(&mut self, a: NodeId, width: u32, signed: bool) -> NodeId {
        let (lo, hi) = if signed {
            (-(1i128 << (width - 1)), (1i128 << (width - 1)) - 1)
        } else {
            (0, (1i128 << width) - 1)
        };
        let (l, h) = self.range(a);
        if l >= lo && h <= hi {
            return a;
        }
        self.push(Op::Wrap { a, width, signed }, lo, hi, false)
    }

    /// Declares that `a`'s value lies in `[lo, hi]` (the caller guarantees it,
    /// the simulator checks it) and narrows the wire accordingly.
    pub fn narrow(&mut self, a: NodeId, lo: i128, hi: i128) -> NodeId {
        let (l, h) = self.range(a);
        let (lo, hi) = (lo.max(l), hi.min(h));
        let w = signed_width(lo, hi);
        if w >= self.width(a) {
            return a;
        }
        self.push(
            Op::Wrap {
                a,
                width: w,
                signed: true,
            },
            lo,
            hi,
            false,
        )
    }

    pub fn lt(&mut self, a: NodeId, b: NodeId) -> NodeId {
        let (al, ah) = self.range(a);
        let (bl, bh) = self.range(b);
        if ah < bl {
            return self.bool_const(true);
        }
        if al >= bh {
            return self.bool_const(false);
        }
        // `a < 0` is the sign bit (wiring, no comparator).
        if self.const_value(b) == Some(0) {
            return self.bit(a, u32::MAX);
        }
        self.push(Op::Lt(a, b), 0, 1, true)
    }

    pub fn eq(&mut self, a: NodeId, b: NodeId) -> NodeId {
        let (al, ah) = self.range(a);
        let (bl, bh) = self.range(b);
        if ah < bl || bh < al {
            return self.bool_const(false);
        }
        self.push(Op::Eq(a, b), 0, 1, true)
    }

    /// Bit `i` of `a`'s infinite two's complement expansion.
    pub fn bit(&mut self, a: NodeId, i: u32) -> NodeId {
        let w = self.width(a);
        let (l, h) = self.range(a);
        if i >= w - 1 {
            // The sign.
            if l >= 0 {
                return self.bool_const(false);
            }
            if h < 0 {
                return self.bool_const(true);
            }
            return self.push(Op::Bit(a, w - 1), 0, 1, true);
        }
        self.push(Op::Bit(a, i), 0, 1, true)
    }

    /// OR of bits `lo..hi` of `a`'s infinite two's complement expansion.
    pub fn any(&mut self, a: NodeId, lo: u32, hi: u32) -> NodeId {
        if hi <= lo {
            return self.bool_const(false);
        }
        let w = self.width(a);
        let inner = if lo < w {
            let top = hi.min(w);
            self.push(Op::Any(a, lo, top), 0, 1, true)
        } else {
            self.bool_const(false)
        };
        if hi > w {
            let s = self.bit(a, w - 1);
            self.or(inner, s)
        } else {
            inner
        }
    }

    pub fn not(&mut self, a: NodeId) -> NodeId {
        if let Some(v) = self.const_value(a) {
            return self.bool_const(v == 0);
        }
        self.push(Op::Not(a), 0, 1, true)
    }

    pub fn and(&mut self, a: NodeId, b: NodeId) -> NodeId {
        match (self.const_value(a), self.const_value(b)) {
            (Some(0), _) | (_, Some(0)) => self.bool_const(false),
            (Some(_), _) => b,
            (_, Some(_)) => a,
            _ => self.push(Op::And(a, b), 0, 1, true),
        }
    }

    pub fn or(&mut self, a: NodeId, b: NodeId) -> NodeId {
        match (self.const_value(a), self.const_value(b)) {
            (Some(0), _) => b,
            (_, Some(0)) => a,
            (Some(_), _) | (_, Some(_)) => self.bool_const(true),
            _ => self.push(Op::Or(a, b), 0, 1, true),
        }
    }

    pub fn bool_to_int(&mut self, a: NodeId) -> NodeId {
        self.push(Op::BoolToInt(a), 0, 1, false)
    }

    pub fn mux(&mut self, sel: NodeId, a: NodeId, b: NodeId) -> NodeId {
        if let Some(v) = self.const_value(sel) {
            return if v != 0 { a } else { b };
        }
        if a == b {
            return a;
        }
        let (al, ah) = self.range(a);
        let (bl, bh) = self.range(b);
        self.push(Op::Mux(sel, a, b), al.min(bl), ah.max(bh), false)
    }

    pub fn rom(&mut self, idx: NodeId, values: Vec<i128>) -> NodeId {
        let lo = *values.iter().min().expect("non-empty ROM");
        let hi = *values.iter().max().expect("non-empty ROM");
        if lo == hi {
            return self.konst(lo);
        }
        self.push(Op::Rom { idx, values }, lo, hi, false)
    }

    pub fn reg(&mut self, a: NodeId, reset: bool) -> NodeId {
        let n = &self.nodes[a];
        let (lo, hi, b) = (n.lo, n.hi, n.boolean);
        self.push_raw(Op::Reg { a, reset }, lo, hi, b)
    }

    /// A register whose input is built later ([`Netlist::connect`]): the
    /// state of a loop (accumulator, counter, held operand). It is declared
    /// before its readers, so the simulator's in-order evaluation and the
    /// Verilog's declaration order both hold; the range is the caller's
    /// promise, checked by the simulator like any other.
    pub fn state(&mut self, lo: i128, hi: i128, boolean: bool, reset: bool) -> NodeId {
        let id = self.nodes.len();
        self.push_raw(Op::Reg { a: id, reset }, lo, hi, boolean)
    }

    /// Closes the loop of a [`Netlist::state`] register: its next value is `a`.
    pub fn connect(&mut self, reg: NodeId, a: NodeId) {
        match &mut self.nodes[reg].op {
            Op::Reg { a: input, .. } => *input = a,
            op => panic!("connect: node {reg} is {op:?}, not a register"),
        }
    }

    /// Copies `sub` into this netlist as an instance: its input fields (in
    /// bus order) read `inputs`, its `in_valid` reads `valid`. Returns the
    /// nodes of its outputs and of its `out_valid` (or `valid` when it has none).
    pub fn embed(
        &mut self,
        sub: &Netlist,
        inputs: &[NodeId],
        valid: NodeId,
    ) -> (Vec<NodeId>, NodeId) {
        let order = input_order(sub);
        for (i, n) in sub.nodes.iter().enumerate() {
            if let Op::Input { width, .. } = n.op {
                assert!(
                    self.width(inputs[order[i]]) <= width,
                    "embed: input field {} is narrower than its source",
                    order[i]
                );
            }
        }
        // Ids are assigned up front so that registers' forward references
        // (loops built with `state`) can be renamed before their inputs exist;
        // inputs and `in_valid` become wiring to the given nodes.
        let mut next = self.nodes.len();
        let map: Vec<NodeId> = sub
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| match n.op {
                Op::Input { .. } => inputs[order[i]],
                Op::InValid => valid,
                _ => {
                    next += 1;
                    next - 1
                }
            })
            .collect();
        for n in &sub.nodes {
            if matches!(n.op, Op::Input { .. } | Op::InValid) {
                continue;
            }
            let op = map_inputs(&n.op, |a| map[a]);
            let id = self.push_raw(op, n.lo, n.hi, n.boolean);
            self.nodes[id].tag = n.tag.clone();
        }
        let outs = sub.outputs.iter().map(|f| map[f.node]).collect();
        (outs, sub.out_valid.map(|v| map[v]).unwrap_or(valid))
    }
}

/// For each `Input` node of `net`, its field index in bus order (by LSB).
fn input_order(net: &Netlist) -> Vec<usize> {
    let mut field = vec![usize::MAX; net.nodes.len()];
    let mut inputs: Vec<(u32, usize)> = net
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| match n.op {
            Op::Input { lsb, .. } => Some((lsb, i)),
            _ => None,
        })
        .collect();
    inputs.sort();
    for (k, (_, i)) in inputs.iter().enumerate() {
        field[*i] = k;
    }
    field
}

pub fn op_inputs(op: &Op) -> Vec<NodeId> {
    match op {
        Op::Input { .. } | Op::InValid | Op::Const(_) => vec![],
        Op::Add(a, b) | Op::Sub(a, b) | Op::Mul(a, b) | Op::Lt(a, b) | Op::Eq(a, b) => {
            vec![*a, *b]
        }
        Op::And(a, b) | Op::Or(a, b) => vec![*a, *b],
        Op::Shl(a, _) | Op::Shr(a, _) | Op::MulConst(a, _) | Op::Bit(a, _) => vec![*a],
        Op::Any(a, _, _) | Op::Not(a) | Op::BoolToInt(a) => vec![*a],
        Op::Wrap { a, .. } | Op::Reg { a, .. } => vec![*a],
        Op::Mux(s, a, b) => vec![*s, *a, *b],
        Op::Rom { idx, .. } => vec![*idx],
    }
}

/// Rebuilds `op` with its operands renamed by `f`.
pub fn map_inputs(op: &Op, mut f: impl FnMut(NodeId) -> NodeId) -> Op {
    match op.clone() {
        Op::Add(a, b) => Op::Add(f(a), f(b)),
        Op::Sub(a, b) => Op::Sub(f(a), f(b)),
        Op::Mul(a, b) => Op::Mul(f(a), f(b)),
        Op::Lt(a, b) => Op::Lt(f(a), f(b)),
        Op::Eq(a, b) => Op::Eq(f(a), f(b)),
        Op::And(a, b) => Op::And(f(a), f(b)),
        Op::Or(a, b) => Op::Or(f(a), f(b)),
        Op::Shl(a, k) => Op::Shl(f(a), k),
        Op::Shr(a, k) => Op::Shr(f(a), k),
        Op::MulConst(a, c) => Op::MulConst(f(a), c),
        Op::Bit(a, i) => Op::Bit(f(a), i),
        Op::Any(a, l, h) => Op::Any(f(a), l, h),
        Op::Not(a) => Op::Not(f(a)),
        Op::BoolToInt(a) => Op::BoolToInt(f(a)),
        Op::Wrap { a, width, signed } => Op::Wrap {
            a: f(a),
            width,
            signed,
        },
        Op::Reg { a, reset } => Op::Reg { a: f(a), reset },
        Op::Mux(s, a, b) => Op::Mux(f(s), f(a), f(b)),
        Op::Rom { idx, values } => Op::Rom {
            idx: f(idx),
            values,
        },
        other => other,
    }
}

/// The value of one combinational op given the values of all earlier nodes.
/// `regs`: the state of registers (only read by `Reg`, through `vals`).
fn eval_op(op: &Op, v: impl Fn(NodeId) -> i128, in_valid: bool) -> i128 {
    match op {
        Op::Input { .. } => unreachable!("inputs are set by the simulator"),
        Op::InValid => in_valid as i128,
        Op::Const(v) => *v,
        Op::Add(a, b) => v(*a) + v(*b),
        Op::Sub(a, b) => v(*a) - v(*b),
        Op::Shl(a, k) => v(*a) << k,
        Op::Shr(a, k) => v(*a) >> k,
        Op::MulConst(a, c) => v(*a) * c,
        Op::Mul(a, b) => v(*a) * v(*b),
        Op::Wrap { a, width, signed } => wrap_value(v(*a), *width, *signed),
        Op::Lt(a, b) => (v(*a) < v(*b)) as i128,
        Op::Eq(a, b) => (v(*a) == v(*b)) as i128,
        Op::Bit(a, i) => bit_of(v(*a), *i),
        Op::Any(a, l, h) => {
            let x = v(*a);
            ((*l..*h).any(|i| bit_of(x, i) == 1)) as i128
        }
        Op::Not(a) => 1 - v(*a),
        Op::And(a, b) => v(*a) & v(*b),
        Op::Or(a, b) => v(*a) | v(*b),
        Op::BoolToInt(a) => v(*a),
        Op::Mux(s, a, b) => {
            if v(*s) != 0 {
                v(*a)
            } else {
                v(*b)
            }
        }
        Op::Rom { idx, values } => {
            // As the Verilog `case` with its `default`.
            let i = v(*idx);
            if i >= 0 && (i as usize) < values.len() {
                values[i as usize]
            } else {
                values[values.len() - 1]
            }
        }
        Op::Reg { .. } => unreachable!("registers are read from state"),
    }
}

/// The state of a netlist under simulation: the value of every node.
/// Shared by the cycle simulator [`Sim`] and the rust-hdl block
/// ([`crate::block::KernelBlock`]), so the two cannot diverge.
#[derive(Clone, Debug)]
pub struct SimState {
    pub vals: Vec<i128>,
    /// Input field index of each `Input` node.
    field: Vec<usize>,
}

impl SimState {
    /// Power-up state of `net`.
    pub fn new(net: &Netlist) -> Self {
        let field = input_order(net);
        let vals = net.nodes.iter().map(|n| n.reset_value()).collect();
        SimState { vals, field }
    }

    /// Evaluates the combinational logic from the port values and the
    /// registers' current state. `input(k, node)` is the value of input field
    /// `k`. With `check`, panics if a value leaves its declared range.
    pub fn eval(
        &mut self,
        net: &Netlist,
        in_valid: bool,
        input: impl Fn(usize, &Node) -> i128,
        check: bool,
    ) {
        for (i, n) in net.nodes.iter().enumerate() {
            let v = match &n.op {
                Op::Input { .. } => input(self.field[i], n),
                Op::Reg { .. } => self.vals[i],
                op => {
                    let vals = &self.vals;
                    eval_op(op, |a| vals[a], in_valid)
                }
            };
            if check {
                assert!(
                    n.lo <= v && v <= n.hi,
                    "node {i} {:?}: value {v} outside its range [{}, {}]",
                    n.op,
                    n.lo,
                    n.hi
                );
            }
            self.vals[i] = if n.boolean {
                v & 1
            } else {
                wrap_value(v, n.width, true)
            };
        }
    }

    /// `in_ready` of the last evaluation.
    pub fn ready(&self, net: &Netlist) -> bool {
        net.in_ready.map(|r| self.vals[r] != 0).unwrap_or(true)
    }

    /// `(out_valid, outputs)` of the last evaluation.
    pub fn outputs(&self, net: &Netlist) -> (bool, Vec<i128>) {
        let outs = net.outputs.iter().map(|f| self.vals[f.node]).collect();
        let valid = net.out_valid.map(|v| self.vals[v] != 0).unwrap_or(true);
        (valid, outs)
    }

    /// A rising clock edge: all registers take their input at once; `reset`
    /// clears the reset registers.
    pub fn clock(&mut self, net: &Netlist, reset: bool) {
        let next: Vec<(usize, i128)> = net
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| match n.op {
                Op::Reg { a, reset: r } => Some((i, if r && reset { 0 } else { self.vals[a] })),
                _ => None,
            })
            .collect();
        for (i, v) in next {
            self.vals[i] = v;
        }
    }
}

/// Cycle simulator of a netlist: one call of [`Sim::step`] is one rising clock edge.
pub struct Sim<'a> {
    net: &'a Netlist,
    state: SimState,
    ready: bool,
}

impl<'a> Sim<'a> {
    /// `in_ready` in the current cycle, before the inputs are set: it
    /// depends on registers only.
    pub fn ready_now(&mut self) -> bool {
        if self.net.in_ready.is_none() {
            return true;
        }
        self.state.eval(self.net, false, |_, _| 0, false);
        self.state.ready(self.net)
    }

    /// Whether the kernel took the event presented in the last step
    /// (`in_ready` was high; an event is taken when `in_valid` and `in_ready`
    /// are both high at the edge).
    pub fn was_ready(&self) -> bool {
        self.ready
    }

    /// Current value of every node (after the last evaluation).
    pub fn values(&self) -> &[i128] {
        &self.state.vals
    }

    pub fn new(net: &'a Netlist) -> Self {
        Sim {
            net,
            state: SimState::new(net),
            ready: true,
        }
    }

    /// Evaluates the combinational logic with the given port values (the
    /// registers holding their current state), checks every value against
    /// its declared range, and returns `(out_valid, outputs)` as seen before
    /// the edge; then clocks the registers. `reset` clears the reset registers.
    pub fn step(&mut self, reset: bool, in_valid: bool, inputs: &[i64]) -> (bool, Vec<i128>) {
        self.step_checked(reset, in_valid, inputs, false)
    }

    /// As [`Sim::step`]; with `check`, panics if a value leaves the range its
    /// width was derived from (meaningful once the pipeline is filled with
    /// data computed from real inputs: power-up register contents need not
    /// be consistent with each other). Values are kept modulo their width,
    /// as in the Verilog.
    pub fn step_checked(
        &mut self,
        reset: bool,
        in_valid: bool,
        inputs: &[i64],
        check: bool,
    ) -> (bool, Vec<i128>) {
        self.state
            .eval(self.net, in_valid, |k, _| inputs[k] as i128, check);
        self.ready = self.state.ready(self.net);
        let r = self.state.outputs(self.net);
        self.state.clock(self.net, reset);
        r
    }
}

fn hex_const(v: i128, width: u32) -> String {
    let bits = (v as u128)
        & if width >= 128 {
            u128::MAX
        } else {
            (1u128 << width) - 1
        };
    format!("{width}'sh{bits:x}")
}

impl Netlist {
    pub fn out_width(&self) -> u32 {
        self.outputs.iter().map(|f| f.width).sum()
    }

    /// Verilog text of the low `width` bits of node `a` (sign-extended when
    /// `a` is narrower), as an unsigned vector.
    fn low_bits(&self, a: NodeId, width: u32) -> String {
        let wa = self.width(a);
        if self.nodes[a].boolean {
            if width == 1 {
                return format!("n{a}");
            }
            return format!("{{{}'b0, n{a}}}", width - 1);
        }
        if width <= wa {
            format!("n{a}[{}:0]", width - 1)
        } else {
            format!("{{{{{}{{n{a}[{}]}}}}, n{a}}}", width - wa, wa - 1)
        }
    }

    /// Verilog-2001 text of the netlist as module `name`.
    pub fn verilog(&self, name: &str) -> String {
        let mut s = String::new();
        let iw = self.in_width.max(1);
        let ow = self.out_width().max(1);
        let _ = writeln!(
            s,
            "module {name} (\n  input  wire clock,\n  input  wire reset,\n  input  wire in_valid,\n  output wire in_ready,\n  input  wire [{}:0] in_data,\n  output wire out_valid,\n  output wire [{}:0] out_data\n);",
            iw - 1,
            ow - 1
        );
        let n = |i: NodeId| format!("n{i}");
        let mut regs = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let w = node.width;
            let decl = if node.boolean {
                "wire".to_string()
            } else {
                format!("wire signed [{}:0]", w - 1)
            };
            let expr = match &node.op {
                Op::Input { lsb, width, signed } => {
                    if *signed {
                        format!("$signed(in_data[{}:{}])", lsb + width - 1, lsb)
                    } else {
                        format!("$signed({{1'b0, in_data[{}:{}]}})", lsb + width - 1, lsb)
                    }
                }
                Op::InValid => "in_valid".into(),
                Op::Const(v) => {
                    if node.boolean {
                        format!("1'b{}", v & 1)
                    } else {
                        hex_const(*v, w)
                    }
                }
                Op::Add(a, b) => format!("({} + {})", n(*a), n(*b)),
                Op::Sub(a, b) => format!("({} - {})", n(*a), n(*b)),
                Op::Shl(a, k) => format!("$signed({{{}, {}'b0}})", n(*a), k),
                Op::Shr(a, k) => format!("$signed({}[{}:{}])", n(*a), self.width(*a) - 1, k),
                Op::MulConst(a, c) => {
                    let cw = signed_width(*c, *c);
                    format!("({} * {})", n(*a), hex_const(*c, cw))
                }
                Op::Mul(a, b) => format!("({} * {})", n(*a), n(*b)),
                Op::Wrap { a, width, signed } => {
                    let low = self.low_bits(*a, *width);
                    if *signed {
                        format!("$signed({low})")
                    } else {
                        format!("$signed({{1'b0, {low}}})")
                    }
                }
                Op::Lt(a, b) => format!("({} < {})", n(*a), n(*b)),
                Op::Eq(a, b) => format!("({} == {})", n(*a), n(*b)),
                Op::Bit(a, k) => format!("{}[{}]", n(*a), k),
                Op::Any(a, l, h) => format!("(|{}[{}:{}])", n(*a), h - 1, l),
                Op::Not(a) => format!("(~{})", n(*a)),
                Op::And(a, b) => format!("({} & {})", n(*a), n(*b)),
                Op::Or(a, b) => format!("({} | {})", n(*a), n(*b)),
                Op::BoolToInt(a) => format!("$signed({{1'b0, {}}})", n(*a)),
                Op::Mux(c, a, b) => format!("({} ? {} : {})", n(*c), n(*a), n(*b)),
                Op::Rom { idx, values } => {
                    let reg_decl = decl.replace("wire", "reg");
                    let _ = writeln!(s, "  {reg_decl} n{i};");
                    let _ = writeln!(s, "  always @(*) begin\n    case ($unsigned({}))", n(*idx));
                    let last = values.len() - 1;
                    for (k, v) in values.iter().enumerate() {
                        if k == last {
                            let _ = writeln!(s, "      default: n{i} = {};", hex_const(*v, w));
                        } else {
                            let _ = writeln!(s, "      {k}: n{i} = {};", hex_const(*v, w));
                        }
                    }
                    let _ = writeln!(s, "    endcase\n  end");
                    continue;
                }
                Op::Reg { a, reset } => {
                    let reg_decl = decl.replace("wire", "reg");
                    let _ = writeln!(
                        s,
                        "  {reg_decl} n{i} = {};",
                        if node.boolean {
                            "1'b0".to_string()
                        } else {
                            hex_const(node.reset_value(), w)
                        }
                    );
                    regs.push((i, *a, *reset));
                    continue;
                }
            };
            match &node.tag {
                Some(t) => {
                    let _ = writeln!(s, "  {decl} n{i} = {expr}; // {t}");
                }
                None => {
                    let _ = writeln!(s, "  {decl} n{i} = {expr};");
                }
            }
        }
        if !regs.is_empty() {
            let _ = writeln!(s, "  always @(posedge clock) begin");
            for (i, a, reset) in &regs {
                if *reset {
                    let _ = writeln!(s, "    n{i} <= reset ? 1'b0 : n{a};");
                } else {
                    let _ = writeln!(s, "    n{i} <= n{a};");
                }
            }
            let _ = writeln!(s, "  end");
        }
        match self.in_ready {
            Some(r) => {
                let _ = writeln!(s, "  assign in_ready = n{r};");
            }
            None => {
                let _ = writeln!(s, "  assign in_ready = 1'b1;");
            }
        }
        match self.out_valid {
            Some(v) => {
                let _ = writeln!(s, "  assign out_valid = n{v};");
            }
            None => {
                let _ = writeln!(s, "  assign out_valid = in_valid;");
            }
        }
        let mut lsb = 0;
        for f in &self.outputs {
            let _ = writeln!(
                s,
                "  assign out_data[{}:{}] = {};",
                lsb + f.width - 1,
                lsb,
                self.low_bits(f.node, f.width)
            );
            lsb += f.width;
        }
        if self.outputs.is_empty() {
            let _ = writeln!(s, "  assign out_data = 1'b0;");
        }
        let _ = writeln!(s, "endmodule");
        s
    }
}
