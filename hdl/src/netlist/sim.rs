//! The cycle simulator: the value of every node, evaluated in order from the
//! ports and the registers' state with the IR's own op meaning, then a
//! clock edge.

use super::ir::{eval_op, input_order, wrap_value, Netlist, Node, Op};

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
