//! Ternary adders on UltraScale+: [`Op::Sum3`] as a LUT6_2 per bit and the
//! CARRY8 chain.
//!
//! Yosys maps `a + b + c` to two carry chains, a LUT per bit each. The
//! fabric can do it in one: bit `k`'s LUT6_2 takes `a[k]`, `b[k]`, `c[k]`
//! and the majority of the three bits below (the carry-save bit, which the
//! LUT of bit `k - 1` computes on its second output), and the carry chain
//! adds the sum bits to the carry-save bits. A subtracted term is inverted
//! inside the LUT and its `+1` enters as the carry-save bit of bit 0 or the
//! chain's carry input. The export prints one instance of a small module
//! of its own (`NAME_add3`, so that two exports can share a design) per
//! ternary sum, and behavioural models of the two primitives for Verilog
//! simulators, behind `ifndef SYNTHESIS`: synthesis (Yosys, Vivado) reads
//! AMD's primitives instead.

use std::fmt::Write as _;

use super::ir::{Netlist, NodeId, Op};

/// The LUT6_2's INIT for bit `k` of `t0 + t1 + t2` with the terms inverted
/// where `inv` says: inputs `I0..I2` the terms' bits, `I3` the carry-save
/// bit from below, `I5` tied high, so `O6` reads `INIT[63:32]` (the sum
/// bit xor the carry-save bit: the chain's propagate) and `O5` reads
/// `INIT[31:0]` (the majority: the carry-save bit for bit `k + 1`).
fn init(inv: [bool; 3]) -> u64 {
    let (mut o5, mut o6) = (0u64, 0u64);
    for i in 0..32u32 {
        let bit = |k: u32| (i >> k) & 1 == 1;
        let t: Vec<bool> = (0..3).map(|k| bit(k) != inv[k as usize]).collect();
        let ones = t.iter().filter(|&&x| x).count();
        if ones >= 2 {
            o5 |= 1 << i;
        }
        if (ones % 2 == 1) != bit(3) {
            o6 |= 1 << i;
        }
    }
    (o6 << 32) | o5
}

/// Low bits of `n` known to be zero: a shift's, a constant's.
fn known_zeros(net: &Netlist, n: NodeId) -> u32 {
    match net.nodes[n].op {
        Op::Shl(a, k) => k.saturating_add(known_zeros(net, a)),
        Op::Const(v) if v != 0 => v.trailing_zeros(),
        Op::Const(_) => u32::MAX,
        _ => 0,
    }
}

impl Netlist {
    /// Prints node `i`, `t[0] +- t[1] +- t[2]` of width `w`, as an instance
    /// of `{module}_add3` on the operands `ops` (each `t[k]` as a `w`-bit
    /// wire); returns the node's expression. Low bits zero in all three
    /// terms are left out of the adder.
    pub(super) fn print_add3(
        &self,
        s: &mut String,
        module: &str,
        i: NodeId,
        (t, neg): ([NodeId; 3], [bool; 3]),
        ops: &[String; 3],
    ) -> String {
        let w = self.width(i);
        let low = t
            .iter()
            .map(|&x| known_zeros(self, x))
            .min()
            .unwrap_or(0)
            .min(w - 1);
        let n = w - low;
        let subtracted = neg.iter().filter(|&&x| x).count();
        let _ = writeln!(s, "  wire [{}:0] n{i}_y;", n - 1);
        let _ = writeln!(
            s,
            "  {module}_add3 #(.W({n}), .NEG(3'b{}{}{}), .INIT(64'h{:016x}), .CS0(1'b{}), .CI(1'b{})) n{i}_add3 (.a({}[{}:{low}]), .b({}[{}:{low}]), .c({}[{}:{low}]), .y(n{i}_y));",
            u8::from(neg[2]),
            u8::from(neg[1]),
            u8::from(neg[0]),
            init(neg),
            u8::from(subtracted >= 1),
            u8::from(subtracted >= 2),
            ops[0],
            w - 1,
            ops[1],
            w - 1,
            ops[2],
            w - 1,
        );
        if low == 0 {
            format!("$signed(n{i}_y)")
        } else {
            format!("$signed({{n{i}_y, {low}'b0}})")
        }
    }
}

/// The ternary adder module of export `module`, and the primitives'
/// simulation models (see the module docs).
pub(super) fn add3_module(module: &str) -> String {
    format!(
        r#"// A ternary adder on UltraScale+: y = a + b + c modulo 2^W, term k
// inverted where NEG[k] is (the LUTs' INIT says the same), CS0 and CI
// adding 1 each (a subtracted term's). Synthesis, and simulation with
// BXFLOW_ADD3_PRIMITIVES defined, build it from LUT6_2 and CARRY8; other
// simulations compute the same sum arithmetically, which is much faster.
/* verilator lint_off DECLFILENAME */
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off UNUSEDPARAM */
/* verilator lint_off UNOPTFLAT */
module {module}_add3 #(
  parameter integer W = 8,
  parameter [2:0] NEG = 3'b000,
  parameter [63:0] INIT = 64'h0,
  parameter [0:0] CS0 = 1'b0,
  parameter [0:0] CI = 1'b0
) (
  input  wire [W-1:0] a,
  input  wire [W-1:0] b,
  input  wire [W-1:0] c,
  output wire [W-1:0] y
);
`ifndef SYNTHESIS
`ifndef BXFLOW_ADD3_PRIMITIVES
`define {module}_ADD3_ARITHMETIC
`endif
`endif
`ifdef {module}_ADD3_ARITHMETIC
  wire [W-1:0] ta = (a ^ {{W{{NEG[0]}}}});
  wire [W-1:0] tb = (b ^ {{W{{NEG[1]}}}});
  wire [W-1:0] tc = (c ^ {{W{{NEG[2]}}}});
  wire [W-1:0] ab = (ta + tb);
  wire [W-1:0] abc = (ab + tc);
  wire [W:0] cs0 = {{{{W{{1'b0}}}}, CS0}};
  wire [W:0] ci = {{{{W{{1'b0}}}}, CI}};
  wire [W:0] ones = (cs0 + ci);
  assign y = (abc + ones[W-1:0]);
`else
  localparam integer N = (W + 7) / 8;
  wire [8*N:0] cs;
  wire [8*N-1:0] p;
  wire [8*N-1:0] o;
  wire [8*N-1:0] co;
  wire [N:0] cin;
  assign cs[0] = CS0;
  assign cin[0] = CI;
  genvar k;
  generate
    for (k = 0; k < 8*N; k = k + 1) begin : bits
      if (k < W) begin : lut
        LUT6_2 #(.INIT(INIT)) l (.O6(p[k]), .O5(cs[k+1]), .I0(a[k]), .I1(b[k]), .I2(c[k]), .I3(cs[k]), .I4(1'b0), .I5(1'b1));
      end else begin : pad
        assign p[k] = 1'b0;
        assign cs[k+1] = 1'b0;
      end
    end
    for (k = 0; k < N; k = k + 1) begin : chain
      CARRY8 #(.CARRY_TYPE("SINGLE_CY8")) c8 (.CO(co[8*k+7:8*k]), .O(o[8*k+7:8*k]), .CI(cin[k]), .CI_TOP(1'b0), .DI(cs[8*k+7:8*k]), .S(p[8*k+7:8*k]));
      assign cin[k+1] = co[8*k+7];
    end
  endgenerate
  assign y = o[W-1:0];
`endif
endmodule
/* verilator lint_on UNOPTFLAT */
/* verilator lint_on UNUSEDPARAM */
/* verilator lint_on UNUSEDSIGNAL */
/* verilator lint_on DECLFILENAME */
`ifndef SYNTHESIS
`ifndef BXFLOW_NO_XILINX_MODELS
`ifndef BXFLOW_XILINX_PRIMITIVES
`define BXFLOW_XILINX_PRIMITIVES
// bxflow's simulation models of AMD's LUT6_2 and CARRY8 (the parts its
// kernels use: CARRY8 as one 8-bit chain); synthesis reads AMD's
// primitives instead. Define BXFLOW_NO_XILINX_MODELS to simulate with
// AMD's UNISIM library.
/* verilator lint_off DECLFILENAME */
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off UNUSEDPARAM */
/* verilator lint_off UNOPTFLAT */
/* verilator lint_off MULTITOP */
module LUT6_2 #(
  parameter [63:0] INIT = 64'h0
) (
  output wire O6,
  output wire O5,
  input  wire I0, I1, I2, I3, I4, I5
);
  wire [5:0] i = {{I5, I4, I3, I2, I1, I0}};
  assign O6 = INIT[i];
  assign O5 = INIT[{{1'b0, i[4:0]}}];
endmodule
module CARRY8 #(
  parameter CARRY_TYPE = "SINGLE_CY8"
) (
  output wire [7:0] CO,
  output wire [7:0] O,
  input  wire CI,
  input  wire CI_TOP,
  input  wire [7:0] DI,
  input  wire [7:0] S
);
  wire [8:0] c;
  assign c[0] = CI;
  genvar k;
  generate
    for (k = 0; k < 8; k = k + 1) begin : chain
      assign c[k+1] = S[k] ? c[k] : DI[k];
    end
  endgenerate
  assign CO = c[8:1];
  assign O = (S ^ c[7:0]);
endmodule
/* verilator lint_on MULTITOP */
/* verilator lint_on UNOPTFLAT */
/* verilator lint_on UNUSEDPARAM */
/* verilator lint_on UNUSEDSIGNAL */
/* verilator lint_on DECLFILENAME */
`endif
`endif
`endif
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The LUT's two outputs and the chain, evaluated bit by bit as the
    /// primitives' models do, add the three terms for every sign pattern
    /// the printer emits.
    #[test]
    fn init_adds_three_terms_modulo_the_width() {
        let w = 12u32;
        let mask = (1i64 << w) - 1;
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s as i64) & mask
        };
        for inv in [
            [false; 3],
            [false, true, false],
            [false, false, true],
            [false, true, true],
        ] {
            let f = init(inv);
            let k = inv.iter().filter(|&&x| x).count();
            for _ in 0..2000 {
                let t = [next(), next(), next()];
                let (mut cs, mut carry, mut y) = ((k >= 1) as u64, (k >= 2) as u64, 0i64);
                for b in 0..w {
                    let idx =
                        (0..3).fold(0u64, |a, j| a | ((((t[j] >> b) & 1) as u64) << j)) | (cs << 3);
                    let o6 = (f >> (32 + idx)) & 1;
                    let o5 = (f >> idx) & 1;
                    y |= ((o6 ^ carry) as i64) << b;
                    carry = if o6 == 1 { carry } else { cs };
                    cs = o5;
                }
                let want = t
                    .iter()
                    .zip(inv)
                    .map(|(&x, n)| if n { -x } else { x })
                    .sum::<i64>()
                    & mask;
                assert_eq!(y, want, "{t:?} {inv:?}");
            }
        }
    }
}
