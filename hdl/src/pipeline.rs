//! Pipelining: places registers so that no path between registers holds more
//! than a given number of adder levels, and reports the latency.
//!
//! Each node gets a stage (clock cycle) and a depth (delay inside the stage,
//! in half adder levels: a carry-chain adder or comparator costs 2, a LUT of
//! logic or a multiplexer 1, wiring 0, a multiplier a whole stage). A node
//! whose inputs would leave it deeper than the budget starts the next stage;
//! operands from earlier stages are brought along by register chains (shared
//! between all readers). Constants are not registered. The outputs are
//! registered once more at the end, so the latency is the last stage + 1.

use std::collections::HashMap;

use crate::netlist::{map_inputs, op_inputs, Netlist, NodeId, Op};

fn cost(op: &Op, budget: u32) -> u32 {
    match op {
        Op::Add(..) | Op::Sub(..) | Op::Lt(..) | Op::Eq(..) | Op::Rom { .. } => 2,
        Op::MulConst(..) | Op::Mul(..) => budget,
        Op::Mux(..) | Op::Not(_) | Op::And(..) | Op::Or(..) | Op::Any(..) => 1,
        _ => 0,
    }
}

/// Returns the pipelined netlist and its latency in cycles.
pub fn pipeline(comb: &Netlist, adder_levels: u32) -> (Netlist, u32) {
    let budget = 2 * adder_levels.max(1);
    let n = comb.nodes.len();
    // None: a constant, available in every stage.
    // Dead logic (values no output depends on) is dropped.
    let mut live = vec![false; n];
    for f in &comb.outputs {
        live[f.node] = true;
    }
    // Input ports stay (they are free, and keep the bus fields in place).
    for (i, node) in comb.nodes.iter().enumerate() {
        if matches!(node.op, Op::Input { .. }) {
            live[i] = true;
        }
    }
    for i in (0..n).rev() {
        if live[i] {
            for a in op_inputs(&comb.nodes[i].op) {
                live[a] = true;
            }
        }
    }
    let mut stage: Vec<Option<u32>> = vec![None; n];
    let mut depth = vec![0u32; n];
    for (i, node) in comb.nodes.iter().enumerate() {
        if !live[i] || matches!(node.op, Op::Const(_)) {
            continue;
        }
        let ins = op_inputs(&node.op);
        let s = ins.iter().filter_map(|&a| stage[a]).max().unwrap_or(0);
        let d = ins
            .iter()
            .filter(|&&a| stage[a] == Some(s))
            .map(|&a| depth[a])
            .max()
            .unwrap_or(0);
        let c = cost(&node.op, budget);
        let (s, d) = if d > 0 && d + c > budget {
            (s + 1, 0)
        } else {
            (s, d)
        };
        stage[i] = Some(s);
        depth[i] = d + c;
    }
    let last = comb
        .outputs
        .iter()
        .filter_map(|f| stage[f.node])
        .max()
        .unwrap_or(0);
    let latency = last + 1;

    let mut net = Netlist::new();
    net.in_width = comb.in_width;
    let mut map = vec![usize::MAX; n];
    let mut delayed: HashMap<(NodeId, u32), NodeId> = HashMap::new();
    // The new id of old node `a` as seen in stage `s`.
    fn at(
        net: &mut Netlist,
        map: &[NodeId],
        stage: &[Option<u32>],
        delayed: &mut HashMap<(NodeId, u32), NodeId>,
        a: NodeId,
        s: u32,
    ) -> NodeId {
        let Some(sa) = stage[a] else { return map[a] };
        if sa >= s {
            return map[a];
        }
        if let Some(&d) = delayed.get(&(a, s)) {
            return d;
        }
        let prev = at(net, map, stage, delayed, a, s - 1);
        let r = net.reg(prev, false);
        delayed.insert((a, s), r);
        r
    }
    for (i, node) in comb.nodes.iter().enumerate() {
        if !live[i] {
            continue;
        }
        let s = stage[i].unwrap_or(0);
        let op = map_inputs(&node.op, |a| at(&mut net, &map, &stage, &mut delayed, a, s));
        let id = net.push_raw(op, node.lo, node.hi, node.boolean);
        net.nodes[id].tag = node.tag.clone();
        map[i] = id;
    }
    for f in &comb.outputs {
        let o = at(&mut net, &map, &stage, &mut delayed, f.node, last);
        let r = if stage[f.node].is_some() {
            net.reg(o, false)
        } else {
            o
        };
        net.outputs.push(crate::netlist::OutField {
            node: r,
            width: f.width,
        });
    }
    let mut v = net.in_valid();
    for _ in 0..latency {
        v = net.reg(v, true);
    }
    net.out_valid = Some(v);
    (net, latency)
}
