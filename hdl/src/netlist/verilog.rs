//! The Verilog printer: one declared signed wire per node, every expression
//! fully parenthesized (see the module docs of [`crate::netlist`]).

use std::collections::HashSet;
use std::fmt::Write as _;

use super::ir::{Netlist, NodeId, Op};

fn hex_const(v: i128, width: u32) -> String {
    let bits = (v as u128)
        & if width >= 128 {
            u128::MAX
        } else {
            (1u128 << width) - 1
        };
    format!("{width}'sh{bits:x}")
}

/// Verilog text of the low `width` bits of the `from`-bit signed wire
/// `src` (sign-extended when it is narrower), as an unsigned vector.
fn low_bits_of(src: &str, from: u32, width: u32) -> String {
    if width <= from {
        format!("{src}[{}:0]", width - 1)
    } else {
        format!("{{{{{}{{{src}[{}]}}}}, {src}}}", width - from, from - 1)
    }
}

impl Netlist {
    /// Whether a product of `a` and `b` is printed as the product of their
    /// magnitudes: both are numbers (not booleans) known non-negative.
    pub fn magnitudes(&self, a: NodeId, b: NodeId) -> bool {
        [a, b].iter().all(|&x| {
            let n = &self.nodes[x];
            !n.boolean && n.lo >= 0 && n.width >= 2
        })
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
        low_bits_of(&format!("n{a}"), wa, width)
    }

    /// Node `a` as a `w`-bit signed wire: its own, or one declared (once)
    /// in `s` that holds it sign-extended (a boolean zero-extended) or cut to
    /// its low `w` bits. Every operand of `+`, `-`, `*`, `?:` and a register
    /// is brought to the width of the wire it feeds, so no operator widens
    /// or truncates implicitly (`verilator -Wall` reports no WIDTH warnings)
    /// and operands stay plain wires. Cutting is exact where it is used: the
    /// result fits `w` bits (its range says so), and the low `w` bits of a
    /// sum or product depend only on the low `w` bits of its operands.
    fn fit(&self, s: &mut String, made: &mut HashSet<(NodeId, u32)>, a: NodeId, w: u32) -> String {
        let wa = self.width(a);
        let boolean = self.nodes[a].boolean;
        if (boolean && w == 1) || (!boolean && wa == w) {
            return format!("n{a}");
        }
        let name = format!("n{a}_{w}");
        if made.insert((a, w)) {
            let low = self.low_bits(a, w);
            let _ = writeln!(s, "  wire signed [{}:0] {name} = $signed({low});", w - 1);
        }
        name
    }

    /// Verilog-2001 text of the netlist as module `name`.
    pub fn verilog(&self, name: &str) -> String {
        self.verilog_with(name, false, false, false)
    }

    /// Verilog-2001 text of the netlist as module `name`, with a clock
    /// enable input `ce` when `clock_enable`: on an edge with `ce` low every
    /// register holds (as if the edge had not come) except that `reset`
    /// still resets, no event is taken, and `out_valid` is low while `ce`
    /// is, so a result is seen exactly once. `ecp5_dsp`: the products
    /// between registers go to MULT18X18D primitives with those registers
    /// inside (the `ecp5` module), and a simulation model of the primitive
    /// follows the module. `ternary`: each [`Op::Sum3`] is one UltraScale+
    /// ternary adder (the `xilinx` module), else two adders in a row.
    pub fn verilog_with(
        &self,
        name: &str,
        clock_enable: bool,
        ecp5_dsp: bool,
        ternary: bool,
    ) -> String {
        let mut s = String::new();
        let iw = self.in_width.max(1);
        let ow = self.out_width().max(1);
        let _ = writeln!(
            s,
            "module {name} (\n  input  wire clock,\n  input  wire reset,\n{}  input  wire in_valid,\n  output wire in_ready,\n  input  wire [{}:0] in_data,\n  output wire out_valid,\n  output wire [{}:0] out_data\n);",
            if clock_enable { "  input  wire ce,\n" } else { "" },
            iw - 1,
            ow - 1
        );
        // An event counts only on an enabled edge.
        let ce = if clock_enable { " & ce" } else { "" };
        // Rounding shifts and wrap-arounds drop low or high bits of their
        // operands by design; `verilator -Wall` would list each one.
        let _ = writeln!(
            s,
            "  // Bits that rounding and overflow drop are unused by design.\n  /* verilator lint_off UNUSEDSIGNAL */"
        );
        let n = |i: NodeId| format!("n{i}");
        let mut made = HashSet::new();
        let mut fit = |s: &mut String, a: NodeId, w: u32| self.fit(s, &mut made, a, w);
        let mut regs = Vec::new();
        let mut add3 = false;
        let dsps = if ecp5_dsp {
            super::ecp5::plan(self)
        } else {
            Default::default()
        };
        // The product whose DSP holds each absorbed output register.
        let dsp_of: std::collections::HashMap<NodeId, NodeId> = dsps
            .iter()
            .flat_map(|(&m, d)| d.outs.iter().map(move |&r| (r, m)))
            .collect();
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
                Op::InValid => format!("in_valid{ce}"),
                Op::Const(v) => {
                    if node.boolean {
                        format!("1'b{}", v & 1)
                    } else {
                        hex_const(*v, w)
                    }
                }
                Op::Mul(..) | Op::MulConst(..) if dsps.contains_key(&i) => {
                    let d = &dsps[&i];
                    let mut next = |s: &mut String, r: NodeId| match self.nodes[r].op {
                        Op::Reg { a, .. } => fit(s, a, self.width(r)),
                        _ => unreachable!("a DSP operand is a register"),
                    };
                    let na = next(&mut s, d.a);
                    let nb = d.b.map(|b| next(&mut s, b));
                    let ce_in = if clock_enable { "ce" } else { "1'b1" };
                    self.print_dsp(&mut s, i, d, (&na, nb.as_deref()), ce_in);
                    if !d.outs.is_empty() {
                        // Read only through the DSP's output register.
                        continue;
                    }
                    self.dsp_output(i, i)
                }
                Op::Mul(a, b) if self.magnitudes(*a, *b) => {
                    // Both operands non-negative: the product of their
                    // magnitudes, unsigned, so that synthesis fits it to a
                    // DSP's unsigned width (an 18-bit magnitude carried in
                    // a 19-bit signed wire would take a second DSP on ECP5).
                    // Unsigned wires of the product's width (lint-clean,
                    // one operator per expression).
                    let (ua, ub) = (self.width(*a) - 1, self.width(*b) - 1);
                    let pw = ua + ub;
                    for (x, u, tag) in [(*a, ua, 'a'), (*b, ub, 'b')] {
                        let _ = writeln!(
                            s,
                            "  wire [{}:0] n{i}_{tag} = {{{}'b0, n{x}[{}:0]}};",
                            pw - 1,
                            pw - u,
                            u - 1
                        );
                    }
                    let _ = writeln!(s, "  wire [{}:0] n{i}_u = (n{i}_a * n{i}_b);", pw - 1);
                    // The value fits `w - 1` bits (the node's range).
                    if pw < w {
                        format!("$signed({{{}'b0, n{i}_u}})", w - pw)
                    } else {
                        format!("$signed(n{i}_u[{}:0])", w - 1)
                    }
                }
                Op::Add(a, b) | Op::Sub(a, b) | Op::Mul(a, b) => {
                    let op = match node.op {
                        Op::Add(..) => "+",
                        Op::Sub(..) => "-",
                        _ => "*",
                    };
                    let (x, y) = (fit(&mut s, *a, w), fit(&mut s, *b, w));
                    format!("({x} {op} {y})")
                }
                // Wiring whose natural width (`a`'s plus `k`, or less `k`)
                // may differ from the node's: through a wire of that width.
                Op::Shl(a, k) | Op::Shr(a, k) => {
                    let wa = self.width(*a);
                    let (raw, nat) = match node.op {
                        Op::Shl(..) => (format!("$signed({{{}, {k}'b0}})", n(*a)), wa + k),
                        _ => (format!("$signed({}[{}:{k}])", n(*a), wa - 1), wa - k),
                    };
                    if nat == w {
                        raw
                    } else {
                        let _ = writeln!(s, "  wire signed [{}:0] n{i}_w = {raw};", nat - 1);
                        format!("$signed({})", low_bits_of(&format!("n{i}_w"), nat, w))
                    }
                }
                Op::Sum3 { t, neg } => {
                    let ops = t.map(|x| fit(&mut s, x, w));
                    let sign = |n: bool| if n { "-" } else { "+" };
                    if ternary {
                        add3 = true;
                        self.print_add3(&mut s, name, i, (*t, *neg), &ops)
                    } else {
                        // Exact at the node's width: the low `w` bits of
                        // the partial sum are all the sum's depend on.
                        let _ = writeln!(
                            s,
                            "  wire signed [{}:0] n{i}_s = ({} {} {});",
                            w - 1,
                            ops[0],
                            sign(neg[1]),
                            ops[1]
                        );
                        format!("(n{i}_s {} {})", sign(neg[2]), ops[2])
                    }
                }
                Op::MulConst(a, c) => format!("({} * {})", fit(&mut s, *a, w), hex_const(*c, w)),
                Op::Wrap { a, width, signed } => {
                    let low = self.low_bits(*a, *width);
                    if *signed {
                        format!("$signed({low})")
                    } else {
                        format!("$signed({{1'b0, {low}}})")
                    }
                }
                Op::Eq(a, b) => {
                    // Compared at the wider operand's width, never cut.
                    let m = self.width(*a).max(self.width(*b));
                    let (x, y) = (fit(&mut s, *a, m), fit(&mut s, *b, m));
                    format!("({x} == {y})")
                }
                Op::Bit(a, k) => format!("{}[{}]", n(*a), k),
                Op::Any(a, l, h) => format!("(|{}[{}:{}])", n(*a), h - 1, l),
                Op::All(a, l, h) => format!("(&{}[{}:{}])", n(*a), h - 1, l),
                Op::Not(a) => format!("(~{})", n(*a)),
                Op::And(a, b) => format!("({} & {})", n(*a), n(*b)),
                Op::Or(a, b) => format!("({} | {})", n(*a), n(*b)),
                Op::BoolToInt(a) => format!("$signed({{1'b0, {}}})", n(*a)),
                Op::Mux(c, a, b) => {
                    let (x, y) = (fit(&mut s, *a, w), fit(&mut s, *b, w));
                    format!("({} ? {x} : {y})", n(*c))
                }
                Op::Rom { idx, values } => {
                    let reg_decl = decl.replace("wire", "reg");
                    let _ = writeln!(s, "  {reg_decl} n{i};");
                    let _ = writeln!(s, "  always @(*) begin\n    case ($unsigned({}))", n(*idx));
                    let last = values.len() - 1;
                    let wi = self.width(*idx);
                    for (k, v) in values.iter().enumerate() {
                        if k == last {
                            let _ = writeln!(s, "      default: n{i} = {};", hex_const(*v, w));
                        } else {
                            let _ = writeln!(s, "      {wi}'d{k}: n{i} = {};", hex_const(*v, w));
                        }
                    }
                    let _ = writeln!(s, "    endcase\n  end");
                    continue;
                }
                Op::Reg { .. } if dsp_of.contains_key(&i) => self.dsp_output(dsp_of[&i], i),
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
        // Each register's next value as a wire of its width, declared
        // before the block that assigns the registers.
        let nexts: Vec<String> = regs
            .iter()
            .map(|&(i, a, _)| {
                if self.nodes[i].boolean {
                    format!("n{a}")
                } else {
                    fit(&mut s, a, self.width(i))
                }
            })
            .collect();
        if !regs.is_empty() {
            let _ = writeln!(s, "  always @(posedge clock) begin");
            for (&(i, _, reset), next) in regs.iter().zip(&nexts) {
                if reset {
                    let zero = if self.nodes[i].boolean {
                        "1'b0".to_string()
                    } else {
                        hex_const(0, self.width(i))
                    };
                    if clock_enable {
                        let _ = writeln!(s, "    n{i} <= reset ? {zero} : ce ? {next} : n{i};");
                    } else {
                        let _ = writeln!(s, "    n{i} <= reset ? {zero} : {next};");
                    }
                } else if clock_enable {
                    let _ = writeln!(s, "    if (ce) n{i} <= {next};");
                } else {
                    let _ = writeln!(s, "    n{i} <= {next};");
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
                let _ = writeln!(s, "  assign out_valid = n{v}{ce};");
            }
            None => {
                let _ = writeln!(s, "  assign out_valid = in_valid{ce};");
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
        let _ = writeln!(s, "  /* verilator lint_on UNUSEDSIGNAL */\nendmodule");
        if !dsps.is_empty() {
            s.push_str(&super::ecp5::model());
        }
        if add3 {
            s.push_str(&super::xilinx::add3_module(name));
        }
        s
    }
}
