//! The IR: ops, nodes with exact value ranges, the netlist container, and
//! the meaning of each op ([`eval_op`]) that both constant folding and the
//! simulator use.

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
    /// `t[0] +- t[1] +- t[2]`, `neg[k]` subtracting `t[k]` (`neg[0]` always
    /// false, at most one other set): one ternary adder on a LUT6 family
    /// (a LUT per bit and the carry chain, as one binary adder costs),
    /// two chained adders elsewhere.
    Sum3 {
        t: [NodeId; 3],
        neg: [bool; 3],
    },
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
    /// Boolean `a == b`.
    Eq(NodeId, NodeId),
    /// Boolean: bit `i` of `a` (below its width).
    Bit(NodeId, u32),
    /// Boolean: OR of bits `lo..hi` of `a` (within its width).
    Any(NodeId, u32, u32),
    /// Boolean: AND of bits `lo..hi` of `a` (within its width).
    All(NodeId, u32, u32),
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
    /// The layer of the model (its index in `QModel::layers`) whose
    /// hardware this node is, so that a timing report's cells, named after
    /// the Verilog's `nN`, can be traced to a layer (see
    /// [`crate::netmap`]); `None` for the buses and the control (valid
    /// chain, handshake, loop counters).
    pub layer: Option<usize>,
    /// The pipeline stage: the cycle, counted from the edge that takes an
    /// event, in which the node's value is computed (a register: the cycle
    /// in which it holds the value). Set by [`crate::pipeline::pipeline`];
    /// `None` in a loop that works on an event over several cycles (a
    /// folded layer's phases, a reused recurrent cell's rounds).
    pub stage: Option<u32>,
    /// When the delay model has this value settle after the start of its
    /// stage, in ps (0 for a register's output and an input port); set by
    /// [`crate::pipeline::pipeline`]. Into a register, it is the logic
    /// delay the model predicted for that register's path, which `bxflow
    /// synth --place-route` sets beside the routed one.
    pub predicted_ps: Option<u32>,
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
    /// The layer that nodes are stamped with as they are added
    /// ([`Node::layer`]): set while that layer is built.
    pub current_layer: Option<usize>,
}

pub(super) fn wrap_value(v: i128, width: u32, signed: bool) -> i128 {
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
            layer: self.current_layer,
            stage: None,
            predicted_ps: None,
        });
        self.nodes.len() - 1
    }

    /// Adds a node, folding it to a constant when all its operands are
    /// constants (evaluated by the simulator's own rule).
    pub(super) fn push(&mut self, op: Op, lo: i128, hi: i128, boolean: bool) -> NodeId {
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

    pub(super) fn konst_b(&mut self, v: i128, boolean: bool) -> NodeId {
        self.push_raw(Op::Const(v), v, v, boolean)
    }

    pub fn out_width(&self) -> u32 {
        self.outputs.iter().map(|f| f.width).sum()
    }
}

/// For each `Input` node of `net`, its field index in bus order (by LSB).
pub(super) fn input_order(net: &Netlist) -> Vec<usize> {
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
        Op::Add(a, b) | Op::Sub(a, b) | Op::Mul(a, b) | Op::Eq(a, b) => {
            vec![*a, *b]
        }
        Op::And(a, b) | Op::Or(a, b) => vec![*a, *b],
        Op::Shl(a, _) | Op::Shr(a, _) | Op::MulConst(a, _) | Op::Bit(a, _) => vec![*a],
        Op::Any(a, _, _) | Op::All(a, _, _) | Op::Not(a) | Op::BoolToInt(a) => vec![*a],
        Op::Wrap { a, .. } | Op::Reg { a, .. } => vec![*a],
        Op::Mux(s, a, b) => vec![*s, *a, *b],
        Op::Sum3 { t, .. } => t.to_vec(),
        Op::Rom { idx, .. } => vec![*idx],
    }
}

/// Rebuilds `op` with its operands renamed by `f`.
pub fn map_inputs(op: &Op, mut f: impl FnMut(NodeId) -> NodeId) -> Op {
    match op.clone() {
        Op::Add(a, b) => Op::Add(f(a), f(b)),
        Op::Sub(a, b) => Op::Sub(f(a), f(b)),
        Op::Mul(a, b) => Op::Mul(f(a), f(b)),
        Op::Eq(a, b) => Op::Eq(f(a), f(b)),
        Op::And(a, b) => Op::And(f(a), f(b)),
        Op::Or(a, b) => Op::Or(f(a), f(b)),
        Op::Shl(a, k) => Op::Shl(f(a), k),
        Op::Shr(a, k) => Op::Shr(f(a), k),
        Op::MulConst(a, c) => Op::MulConst(f(a), c),
        Op::Bit(a, i) => Op::Bit(f(a), i),
        Op::Any(a, l, h) => Op::Any(f(a), l, h),
        Op::All(a, l, h) => Op::All(f(a), l, h),
        Op::Not(a) => Op::Not(f(a)),
        Op::BoolToInt(a) => Op::BoolToInt(f(a)),
        Op::Wrap { a, width, signed } => Op::Wrap {
            a: f(a),
            width,
            signed,
        },
        Op::Reg { a, reset } => Op::Reg { a: f(a), reset },
        Op::Mux(s, a, b) => Op::Mux(f(s), f(a), f(b)),
        Op::Sum3 { t, neg } => Op::Sum3 {
            t: t.map(&mut f),
            neg,
        },
        Op::Rom { idx, values } => Op::Rom {
            idx: f(idx),
            values,
        },
        other => other,
    }
}

/// The value of one combinational op given the values of all earlier nodes.
/// `regs`: the state of registers (only read by `Reg`, through `vals`).
pub(super) fn eval_op(op: &Op, v: impl Fn(NodeId) -> i128, in_valid: bool) -> i128 {
    match op {
        Op::Input { .. } => unreachable!("inputs are set by the simulator"),
        Op::InValid => in_valid as i128,
        Op::Const(v) => *v,
        Op::Add(a, b) => v(*a) + v(*b),
        Op::Sub(a, b) => v(*a) - v(*b),
        Op::Sum3 { t, neg } => t
            .iter()
            .zip(neg)
            .map(|(&x, &n)| if n { -v(x) } else { v(x) })
            .sum(),
        Op::Shl(a, k) => v(*a) << k,
        Op::Shr(a, k) => v(*a) >> k,
        Op::MulConst(a, c) => v(*a) * c,
        Op::Mul(a, b) => v(*a) * v(*b),
        Op::Wrap { a, width, signed } => wrap_value(v(*a), *width, *signed),
        Op::Eq(a, b) => (v(*a) == v(*b)) as i128,
        Op::Bit(a, i) => bit_of(v(*a), *i),
        Op::Any(a, l, h) => {
            let x = v(*a);
            ((*l..*h).any(|i| bit_of(x, i) == 1)) as i128
        }
        Op::All(a, l, h) => {
            let x = v(*a);
            ((*l..*h).all(|i| bit_of(x, i) == 1)) as i128
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
