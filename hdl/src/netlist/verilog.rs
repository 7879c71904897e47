//! The Verilog printer: one declared signed wire per node, every expression
//! fully parenthesized (see the module docs of [`crate::netlist`]).

use std::fmt::Write as _;

use super::ir::{signed_width, Netlist, NodeId, Op};

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
