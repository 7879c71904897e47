//! Products on ECP5's MULT18X18D with its own input and output registers.
//!
//! On a die whose DSP sites are nearly all used, the routing into and out
//! of a multiplier took 7 to 10 ns however the fabric registers around it
//! were placed (nextpnr does not put a register beside the DSP it alone
//! drives), and Yosys' `synth_ecp5` maps `*` to a MULT18X18D with its
//! registers unused. So for ECP5 the pipeline gives each product that fits
//! one DSP a stage of its own ([`crate::pipeline::Delays::dsp_registers`]),
//! and the printer moves the registers around it into the primitive: the
//! registers of its two operands become the DSP's input registers and,
//! when the product is read only through registers, those become its
//! output register. The netlist itself is unchanged (the same registers,
//! the same cycles), so its simulators need nothing new; a Verilog
//! simulator needs a model of the primitive, which [`MODEL`] provides
//! (behind `ifndef SYNTHESIS`, so synthesis sees Lattice's primitive).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use super::ir::{op_inputs, signed_width, Netlist, NodeId, Op};

/// The operand width of the MULT18X18D.
const W: u32 = 18;

/// A product mapped to a MULT18X18D.
pub(super) struct Dsp {
    /// The registers whose inputs feed the DSP's input registers (`b`
    /// `None`: a constant operand).
    pub(super) a: NodeId,
    pub(super) b: Option<NodeId>,
    /// The product of the operands' magnitudes, unsigned.
    unsigned: bool,
    /// The registers of the product that the DSP's output register
    /// replaces (empty: the output is not registered in the DSP).
    pub(super) outs: Vec<NodeId>,
}

/// The products of `net` that go to a MULT18X18D with its registers: a
/// product of two registers (or of a register and a constant) that fits
/// 18 x 18 bits, with its output register when every reader of the
/// product is a register.
pub(super) fn plan(net: &Netlist) -> HashMap<NodeId, Dsp> {
    let plain_reg = |x: NodeId| {
        matches!(net.nodes[x].op, Op::Reg { reset: false, .. }) && !net.nodes[x].boolean
    };
    let mut readers: Vec<Vec<NodeId>> = vec![Vec::new(); net.nodes.len()];
    for (i, n) in net.nodes.iter().enumerate() {
        for a in op_inputs(&n.op) {
            readers[a].push(i);
        }
    }
    let outputs: HashSet<NodeId> = net.outputs.iter().map(|f| f.node).collect();
    let mut dsps = HashMap::new();
    for (i, n) in net.nodes.iter().enumerate() {
        let (a, b, unsigned) = match n.op {
            Op::Mul(a, b) if plain_reg(a) && plain_reg(b) => {
                let unsigned = net.magnitudes(a, b);
                let sign = u32::from(!unsigned);
                let fits = net.width(a) - 1 + sign <= W && net.width(b) - 1 + sign <= W;
                if !fits {
                    continue;
                }
                (a, Some(b), unsigned)
            }
            Op::MulConst(a, c) if plain_reg(a) => {
                if net.width(a) > W || signed_width(c, c) > W {
                    continue;
                }
                (a, None, false)
            }
            _ => continue,
        };
        let rs = &readers[i];
        let registered =
            !rs.is_empty() && !outputs.contains(&i) && rs.iter().all(|&r| plain_reg(r));
        let outs = if registered { rs.clone() } else { Vec::new() };
        dsps.insert(
            i,
            Dsp {
                a,
                b,
                unsigned,
                outs,
            },
        );
    }
    dsps
}

impl Netlist {
    /// The 18-bit DSP input for register `r`: the value it is about to
    /// take (its input `next`, at its width), sign-extended, or for a
    /// product of magnitudes its magnitude zero-extended.
    fn dsp_operand(&self, r: NodeId, next: &str, unsigned: bool) -> String {
        let w = self.width(r);
        if unsigned && w - 1 == W {
            format!("{next}[{}:0]", W - 1)
        } else if unsigned {
            format!("{{{}'b0, {next}[{}:0]}}", W - (w - 1), w - 2)
        } else if w == W {
            next.to_string()
        } else {
            format!("{{{{{}{{{next}[{}]}}}}, {next}}}", W - w, w - 1)
        }
    }

    /// Prints the MULT18X18D of product `i` into `s`: its operands `na`,
    /// `nb` (the next values of its input registers, Verilog text) and
    /// `c` (a constant operand), its product as the 36-bit `n{i}_p`.
    pub(super) fn print_dsp(
        &self,
        s: &mut String,
        i: NodeId,
        d: &Dsp,
        (na, nb): (&str, Option<&str>),
        ce: &str,
    ) {
        let a = self.dsp_operand(d.a, na, d.unsigned);
        let b = match (d.b, nb, &self.nodes[i].op) {
            (Some(rb), Some(nb), _) => self.dsp_operand(rb, nb, d.unsigned),
            (_, _, Op::MulConst(_, c)) => {
                let bits = (*c as u128) & ((1u128 << W) - 1);
                format!("{W}'h{bits:x}")
            }
            _ => unreachable!("a DSP product has two registers or a constant"),
        };
        let signed = if d.unsigned { "1'b0" } else { "1'b1" };
        let _ = writeln!(s, "  wire [{}:0] n{i}_da = {a};", W - 1);
        let _ = writeln!(s, "  wire [{}:0] n{i}_db = {b};", W - 1);
        let _ = writeln!(s, "  wire [{}:0] n{i}_p;", 2 * W - 1);
        let out = if d.outs.is_empty() { "NONE" } else { "CLK0" };
        let _ = write!(
            s,
            "  MULT18X18D #(.REG_INPUTA_CLK(\"CLK0\"), .REG_INPUTB_CLK(\"CLK0\"), .REG_OUTPUT_CLK(\"{out}\")) n{i}_dsp (\n   "
        );
        for (port, v) in [('A', "da"), ('B', "db")] {
            for k in 0..W {
                let _ = write!(s, " .{port}{k}(n{i}_{v}[{k}]),");
            }
            s.push_str("\n   ");
        }
        for k in 0..W {
            let _ = write!(s, " .C{k}(1'b0),");
        }
        let _ = write!(
            s,
            "\n    .SIGNEDA({signed}), .SIGNEDB({signed}), .SOURCEA(1'b0), .SOURCEB(1'b0),\n    .CLK0(clock), .CE0({ce}), .RST0(1'b0),\n   "
        );
        for k in 0..2 * W {
            let sep = if k + 1 == 2 * W { "" } else { "," };
            let _ = write!(s, " .P{k}(n{i}_p[{k}]){sep}");
        }
        s.push_str("\n  );\n");
    }

    /// Node `r` (at most 36 bits: a product or its register) read from the
    /// DSP output `n{i}_p`.
    pub(super) fn dsp_output(&self, i: NodeId, r: NodeId) -> String {
        let w = self.width(r);
        debug_assert!(w <= 2 * W);
        format!("$signed(n{i}_p[{}:0])", w - 1)
    }
}

/// A behavioural model of the MULT18X18D for Verilog simulators, the part
/// bxflow uses: `P = A * B` (each signed or not), input registers and an
/// output register on `CLK0` with `CE0` and a synchronous `RST0`, each
/// present unless its `REG_*_CLK` parameter is `"NONE"`; every register
/// powers up at 0. Written from Lattice's description of the primitive
/// (FPGA-TN-02205, sysDSP); define `BXFLOW_NO_ECP5_MODELS` to simulate with
/// Lattice's own library instead.
pub(super) fn model() -> String {
    let bits = |p: char, n: u32| -> String {
        (0..n)
            .map(|k| format!("{p}{k}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let cat = |p: char, n: u32| -> String {
        (0..n)
            .rev()
            .map(|k| format!("{p}{k}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "`ifndef SYNTHESIS\n`ifndef BXFLOW_NO_ECP5_MODELS\n`ifndef BXFLOW_ECP5_MULT18X18D\n`define BXFLOW_ECP5_MULT18X18D\n// bxflow's simulation model of the ECP5 MULT18X18D (the part its kernels use);\n// synthesis reads Lattice's primitive instead.\n/* verilator lint_off UNUSEDSIGNAL */\n/* verilator lint_off UNUSEDPARAM */\n/* verilator lint_off DECLFILENAME */\nmodule MULT18X18D #(\n  parameter REG_INPUTA_CLK = \"NONE\",\n  parameter REG_INPUTB_CLK = \"NONE\",\n  parameter REG_OUTPUT_CLK = \"NONE\"\n) (\n  input wire {},\n  input wire {},\n  input wire {},\n  input wire SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK0, CE0, RST0,\n  output wire {}\n);",
        bits('A', W),
        bits('B', W),
        bits('C', W),
        bits('P', 2 * W)
    );
    let _ = writeln!(
        s,
        "  wire [17:0] a = {{{}}};\n  wire [17:0] b = {{{}}};",
        cat('A', W),
        cat('B', W)
    );
    s.push_str(
        "  reg [17:0] ra = 18'h0;
  reg [17:0] rb = 18'h0;
  reg [35:0] rp = 36'h0;
  wire [17:0] ia = (REG_INPUTA_CLK == \"NONE\") ? a : ra;
  wire [17:0] ib = (REG_INPUTB_CLK == \"NONE\") ? b : rb;
  wire signed [37:0] sa = $signed({{20{SIGNEDA & ia[17]}}, ia});
  wire signed [37:0] sb = $signed({{20{SIGNEDB & ib[17]}}, ib});
  wire signed [37:0] full = sa * sb;
  wire [35:0] prod = full[35:0];
  always @(posedge CLK0) begin
    if (RST0) begin
      ra <= 18'h0;
      rb <= 18'h0;
      rp <= 36'h0;
    end else if (CE0) begin
      ra <= a;
      rb <= b;
      rp <= prod;
    end
  end
  wire [35:0] p = (REG_OUTPUT_CLK == \"NONE\") ? prod : rp;
",
    );
    let _ = writeln!(
        s,
        "  assign {{{}}} = p;\nendmodule\n/* verilator lint_on DECLFILENAME */\n/* verilator lint_on UNUSEDPARAM */\n/* verilator lint_on UNUSEDSIGNAL */\n`endif\n`endif\n`endif",
        cat('P', 2 * W)
    );
    s
}
