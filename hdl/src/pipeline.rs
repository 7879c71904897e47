//! Pipelining: places registers so that no register-to-register path is
//! longer than a delay budget, and reports the latency.
//!
//! The delay of each node is estimated from its kind and width with a simple
//! model of the target [`Family`] ([`Delays`]): a carry-chain adder or
//! comparator of N bits costs `carry_entry + N/8 * carry8` (LUT, routing and
//! the carry chain), a level of LUT logic (multiplexer, gate, ROM slice)
//! `lut`, wiring nothing, a multiplier that fits one DSP block `dsp`, a
//! wider one a whole stage (on a family that uses the DSP's own registers,
//! [`Delays::dsp_registers`], every product a whole stage of its own, its
//! operands registered). Two refinements keep the
//! estimate close to what synthesis produces:
//!
//! * **Carry overlap.** Every value carries two arrival times, of its lowest
//!   and of its highest bit: in a tree of ripple-carry adders the low bits of
//!   the next adder start before the carry of the previous one has reached
//!   the top, so a tree of depth d and width N costs about
//!   `d * carry_entry + N/8 * carry8`, not `d` times the full adder delay.
//! * **LUT cones.** Consecutive LUT logic (the saturation multiplexers, the
//!   ReLU select, rounding gates) whose per-bit inputs fit one LUT6 is one
//!   level, not one per operator; an adder absorbs a small cone in front of
//!   its carry chain (its LUT has spare inputs).
//!
//! Each node gets a stage (clock cycle): the latest stage of its operands,
//! or the next one if the path would exceed the budget. Then, readers
//! first, logic moves to a later stage where its value would otherwise
//! wait in registers and the move saves register bits (the latency stays;
//! `Schedule::sink`). Operands from earlier stages are brought along by
//! register chains (shared between all readers). Constants are not
//! registered. The outputs are registered once more at the end, so the
//! latency is the last stage + 1.

use std::collections::HashMap;

use crate::netlist::{map_inputs, op_inputs, Netlist, NodeId, Op};

/// The FPGA family a kernel is built for: it sets the delay model
/// ([`Delays`]) that places the pipeline registers, and the synthesis flow
/// of `bxflow synth` (Yosys `synth_xilinx` or `synth_ecp5`, and for ECP5
/// open place and route with nextpnr).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// AMD/Xilinx UltraScale+ (LUT6, CARRY8, DSP48E2), speed grade -2. No
    /// open place and route exists: the model comes from data-sheet figures
    /// and Yosys level counts; the Vivado script beside the export checks it.
    #[default]
    Xcup,
    /// Lattice ECP5 (LUT4, CCU2C carry, MULT18X18D), speed grade 6:
    /// calibrated against nextpnr-ecp5's place and route; each product a
    /// MULT18X18D instance with its own registers.
    Ecp5,
}

impl Family {
    /// The name on the command line and in the manifest.
    pub fn name(self) -> &'static str {
        match self {
            Family::Xcup => "xcup",
            Family::Ecp5 => "ecp5",
        }
    }

    /// The family's delay model.
    pub fn delays(self) -> Delays {
        match self {
            Family::Xcup => Delays {
                carry_entry: 400,
                carry8: 50,
                lut: 500,
                lut_inputs: 6,
                adder_lut_inputs: 4,
                wide_mux: 100,
                dsp: 2500,
                dsp_a: 27,
                dsp_b: 18,
                dsp_unsigned: false,
                dsp_registers: false,
                ternary_adders: true,
                register: 200,
                // Not modelled: no open place and route to measure it, and
                // the Vivado script's timing report checks it.
                bram: 0,
                bram_rom_bits: 2049,
            },
            // Calibrated against nextpnr-ecp5 (speed 6) after place and
            // route of the shipped MLPs, where routing is most of every
            // path: a hop between cells costs 0.1 to 2.8 ns, and a carry
            // chain split across rows costs a hop. Entering a CCU2C chain
            // (routing, its LUT, the sum out) about 3.3 ns with that margin,
            // each further 8 bits (4 CCU2C) 0.4 ns, a LUT4 level with its
            // routing 1.5 ns; PFUMX/L6MUX widen a LUT4 by an input. The
            // register is clock-to-out (0.53 ns) and setup. On the 85k die
            // of the reused kernels (100 to 140 DSPs, 8 to 17 k cells)
            // routed paths were 27 to 39 % longer than that model said, 25
            // % on the MLPs' own: entering a chain and a LUT level each
            // carry a quarter more (4.1 and 1.9 ns).
            Family::Ecp5 => Delays {
                carry_entry: 4100,
                carry8: 400,
                lut: 1900,
                lut_inputs: 4,
                adder_lut_inputs: 2,
                wide_mux: 300,
                // Measured on a Conv1D's softmax product: 2.87 ns of
                // routing into the MULT18X18D, 3.93 ns through it.
                dsp: 6800,
                dsp_a: 18,
                dsp_b: 18,
                dsp_unsigned: true,
                // Measured routing into and out of the MULT18X18D on a
                // nearly full 85k die: 7 to 10 ns, whatever stage the
                // fabric registers make (README, issue 17).
                dsp_registers: true,
                ternary_adders: false,
                register: 700,
                // A DP16KD without its output register: 5.61 ns clock to
                // data out after place and route (a Conv1D's softmax table),
                // against a register's 0.53 ns. Yosys 0.23 maps a ROM to
                // block RAM when its logic cost (a sixteenth of its bits)
                // exceeds a DP16KD's (128): the softmax tables of 512 x 19
                // and 2,048 x 18 bits went to block RAM, the reused
                // kernels' weight tables of 128 x 8 to logic.
                bram: 5100,
                bram_rom_bits: 2049,
            },
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Delay model in picoseconds of one [`Family`].
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Delays {
    /// LUT plus routing into a carry chain plus its first 8 bits.
    pub carry_entry: u32,
    /// Each further 8 bits of a carry chain.
    pub carry8: u32,
    /// One level of LUT logic including routing.
    pub lut: u32,
    /// Inputs of one LUT.
    pub lut_inputs: u32,
    /// Inputs a carry-chain LUT has left for logic in front of an adder.
    pub adder_lut_inputs: u32,
    /// Each wide-function multiplexer level (MUXF7/F8, PFUMX/L6MUX) that
    /// widens a LUT by one input.
    pub wide_mux: u32,
    /// A multiplication that fits one DSP block (`dsp_a` x `dsp_b` bits)
    /// without its internal registers, input and output routing included.
    /// Wider products (cascaded DSPs) take a whole stage.
    pub dsp: u32,
    pub dsp_a: u32,
    pub dsp_b: u32,
    /// The DSP also multiplies unsigned operands of `dsp_a` x `dsp_b` bits
    /// (ECP5's MULT18X18D; the DSP48E2 is signed only): a product of two
    /// non-negative values, printed as one of magnitudes, fits one DSP by
    /// its operands' widths less their sign bits.
    pub dsp_unsigned: bool,
    /// A product that fits one DSP takes a stage of its own, its operands
    /// and its result registered, so that the export can use the DSP's
    /// own input and output registers (ECP5's MULT18X18D: Yosys'
    /// `synth_ecp5` leaves them unused, and nextpnr does not place a
    /// fabric register beside the DSP it drives, so the routing into and
    /// out of the DSP stays in the stage).
    pub dsp_registers: bool,
    /// Sums of three terms ([`Op::Sum3`]) are one ternary adder: a LUT6 per
    /// bit computes the three bits' sum and the majority (carry-save) of
    /// the bits below, and the carry chain adds the two (UltraScale+'s
    /// LUT6_2 and CARRY8). That takes one LUT level more than a binary
    /// adder and half the LUTs of two. Without it a ternary sum is two
    /// binary adders in a row.
    pub ternary_adders: bool,
    /// Register overhead per stage: clock-to-out plus setup.
    pub register: u32,
    /// A block RAM's clock-to-data-out beyond a register's: synthesis
    /// turns a registered ROM into block RAM, and the stage after it
    /// starts that late.
    pub bram: u32,
    /// ROMs of at least this many bits (the words of their address space,
    /// `2^index bits`, as synthesis sees it however many of them the table
    /// fills, times their width) are taken for block RAM.
    pub bram_rom_bits: u32,
}

impl Default for Delays {
    fn default() -> Self {
        Family::default().delays()
    }
}

/// Delay of one "adder level" of the `--levels` option: a 16-bit adder.
pub const ADDER_LEVEL_PS: u32 = 500;

/// The share of the period, in percent, kept out of every stage's logic
/// by default: hls4ml's default clock uncertainty. It covers jitter and
/// the routing the delay model does not see; a firmware engineer who has
/// place and route to check lowers it for fewer cycles.
pub const DEFAULT_UNCERTAINTY_PCT: f64 = 12.5;

/// The logic delay a stage has at `clock_mhz` on a family with `delays`, in
/// ps: the period less `uncertainty_pct` percent of it and the register
/// overhead (below one adder level, or negative, for clocks no stage fits).
pub fn stage_logic_ps(clock_mhz: f64, uncertainty_pct: f64, delays: &Delays) -> f64 {
    1.0e6 / clock_mhz * (1.0 - uncertainty_pct / 100.0) - delays.register as f64
}

/// The fastest clock at which a stage still holds one adder level.
pub fn max_clock_mhz(uncertainty_pct: f64, delays: &Delays) -> f64 {
    1.0e6 * (1.0 - uncertainty_pct / 100.0) / (delays.register + ADDER_LEVEL_PS) as f64
}

/// The logic delay budget per stage at `clock_mhz` ([`stage_logic_ps`]),
/// at least one adder level.
pub fn budget_for_clock(clock_mhz: f64, uncertainty_pct: f64, delays: &Delays) -> u32 {
    (stage_logic_ps(clock_mhz, uncertainty_pct, delays).max(0.0) as u32).max(ADDER_LEVEL_PS)
}

/// The budget for `levels` adder levels of 16 bits per stage.
pub fn budget_for_levels(levels: u32) -> u32 {
    levels.max(1) * ADDER_LEVEL_PS
}

/// Timing of one node inside its stage.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Arrival {
    /// Arrival of the lowest bit and of the highest bit (= of the value).
    lo: u32,
    hi: u32,
    /// For LUT logic: per-bit inputs of the cone it heads (0: not a cone),
    /// and the arrival of the cone's inputs.
    cone: u32,
    base: Arrival0,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Arrival0 {
    lo: u32,
    hi: u32,
}

/// A signed product one DSP block computes.
fn fits_dsp(d: &Delays, wa: u32, wb: u32) -> bool {
    (wa <= d.dsp_a && wb <= d.dsp_b) || (wa <= d.dsp_b && wb <= d.dsp_a)
}

fn carry(d: &Delays, bits: u32) -> u32 {
    bits.div_ceil(8).saturating_sub(1) * d.carry8
}

/// Arrival of the low and high bits out of a `bits`-wide carry chain
/// whose inputs arrive at `lo` (low bits) and `hi` (high bits).
fn chain(d: &Delays, lo: u32, hi: u32, bits: u32) -> (u32, u32) {
    let out_lo = lo + d.carry_entry;
    (out_lo, (out_lo + carry(d, bits)).max(hi + d.carry_entry))
}

/// Arrival of node `op` (width `w`) given its operands' arrivals (`None`:
/// a constant). Returns `(arrival, whole_stage)`.
/// `magnitudes`: a product printed as one of magnitudes
/// ([`Netlist::magnitudes`]).
fn arrive(
    op: &Op,
    w: u32,
    ins: &[Option<Arrival>],
    d: &Delays,
    widths: &[u32],
    magnitudes: bool,
) -> (Arrival, bool) {
    let live: Vec<Arrival> = ins.iter().flatten().copied().collect();
    let max_lo = live.iter().map(|a| a.lo).max().unwrap_or(0);
    let max_hi = live.iter().map(|a| a.hi).max().unwrap_or(0);
    let plain = |lo: u32, hi: u32| Arrival {
        lo,
        hi,
        ..Default::default()
    };
    // One LUT level over the operands, merged with operand cones when the
    // inputs per bit still fit one LUT.
    let lut = || -> Arrival {
        let mut n = 0;
        let (mut blo, mut bhi) = (0, 0);
        for a in ins.iter().flatten() {
            if a.cone > 0 {
                n += a.cone;
                blo = blo.max(a.base.lo);
                bhi = bhi.max(a.base.hi);
            } else {
                n += 1;
                blo = blo.max(a.lo);
                bhi = bhi.max(a.hi);
            }
        }
        if n > d.lut_inputs {
            n = ins.iter().flatten().count() as u32;
            blo = max_lo;
            bhi = max_hi;
        }
        Arrival {
            lo: blo + d.lut,
            hi: bhi + d.lut,
            cone: n.max(1),
            base: Arrival0 { lo: blo, hi: bhi },
        }
    };
    match op {
        Op::Input { .. } | Op::InValid | Op::Const(_) | Op::Reg { .. } => (plain(0, 0), false),
        Op::Add(..) | Op::Sub(..) | Op::Eq(..) => {
            // Operands that are small LUT cones fold into the adder's LUTs.
            let mut n = 0;
            let (mut lo, mut hi) = (0, 0);
            for a in ins.iter().flatten() {
                let (c, l, h) = if a.cone > 0 {
                    (a.cone, a.base.lo, a.base.hi)
                } else {
                    (1, a.lo, a.hi)
                };
                n += c;
                lo = lo.max(l);
                hi = hi.max(h);
            }
            if n > d.adder_lut_inputs {
                lo = max_lo;
                hi = max_hi;
            }
            let bits = op_inputs(op)
                .iter()
                .map(|&a| widths[a])
                .max()
                .unwrap_or(w)
                .max(w);
            let (out_lo, out_hi) = chain(d, lo, hi, bits);
            if matches!(op, Op::Eq(..)) {
                (plain(out_hi, out_hi), false)
            } else {
                (plain(out_lo, out_hi), false)
            }
        }
        Op::Sum3 { t, .. } => {
            let bits = t.iter().map(|&a| widths[a]).max().unwrap_or(w).max(w);
            // The carry-save bit comes from the LUT below: one level more
            // before the chain (no operand logic folds into these LUTs).
            // Without ternary adders: a first chain before the second.
            let (lo, hi) = if d.ternary_adders {
                (max_lo + d.lut, max_hi + d.lut)
            } else {
                chain(d, max_lo, max_hi, bits)
            };
            let (out_lo, out_hi) = chain(d, lo, hi, bits);
            (plain(out_lo, out_hi), false)
        }
        Op::MulConst(a, c) => {
            let (wa, wc) = (widths[*a], crate::netlist::signed_width(*c, *c));
            if fits_dsp(d, wa, wc) && !d.dsp_registers {
                (plain(max_hi + d.dsp, max_hi + d.dsp), false)
            } else {
                (plain(0, 0), true)
            }
        }
        Op::Mul(a, b) => {
            let sign = u32::from(!(d.dsp_unsigned && magnitudes));
            if fits_dsp(d, widths[*a] - 1 + sign, widths[*b] - 1 + sign) && !d.dsp_registers {
                (plain(max_hi + d.dsp, max_hi + d.dsp), false)
            } else {
                (plain(0, 0), true)
            }
        }
        // Wiring: the value's bits (a cone stays a cone).
        Op::Shl(..) | Op::Wrap { .. } | Op::BoolToInt(_) => (ins[0].unwrap_or_default(), false),
        Op::Shr(_, k) => {
            let mut r = ins[0].unwrap_or_default();
            r.lo = (r.lo + carry(d, *k + 1)).min(r.hi);
            (r, false)
        }
        Op::Bit(a, k) => {
            let mut r = ins[0].unwrap_or_default();
            if *k + 1 < widths[*a] {
                r.hi = (r.lo + carry(d, *k + 1)).min(r.hi);
            }
            r.lo = r.hi;
            (r, false)
        }
        Op::Any(_, l, h) | Op::All(_, l, h) => {
            let bits = h - l;
            if bits <= d.lut_inputs {
                let t = max_hi + d.lut;
                let base = Arrival0 {
                    lo: max_hi,
                    hi: max_hi,
                };
                (
                    Arrival {
                        lo: t,
                        hi: t,
                        cone: bits,
                        base,
                    },
                    false,
                )
            } else {
                let mut levels = 1;
                let mut n = bits.div_ceil(d.lut_inputs);
                while n > 1 {
                    n = n.div_ceil(d.lut_inputs);
                    levels += 1;
                }
                let t = max_hi + levels * d.lut;
                (plain(t, t), false)
            }
        }
        Op::Not(_) | Op::And(..) | Op::Or(..) | Op::Mux(..) => {
            let mut r = lut();
            if let Op::Mux(..) = op {
                // The select reaches every bit at once.
                r.lo = r.hi;
            }
            (r, false)
        }
        Op::Rom { idx, values } => {
            let bits = widths[*idx].min(64);
            debug_assert!(!values.is_empty());
            // A LUT, then two wide multiplexer levels, then LUT levels.
            let t = if bits <= d.lut_inputs {
                d.lut
            } else if bits <= d.lut_inputs + 2 {
                d.lut + d.wide_mux * (bits - d.lut_inputs)
            } else {
                d.lut
                    + 2 * d.wide_mux
                    + d.lut * (bits - d.lut_inputs - 2).div_ceil(d.lut_inputs - 1)
            };
            (plain(max_hi + t, max_hi + t), false)
        }
    }
}

/// The stage and arrival of every node while registers are placed.
struct Schedule<'a> {
    comb: &'a Netlist,
    widths: Vec<u32>,
    /// ROMs that synthesis makes block RAM (their data arrives late).
    bram: Vec<bool>,
    delays: &'a Delays,
    budget: u32,
    /// `None`: a constant, available in every stage (or dead logic).
    stage: Vec<Option<u32>>,
    arr: Vec<Arrival>,
}

impl Schedule<'_> {
    /// The arrivals of node `i`'s operands as seen in stage `s`: the same
    /// stage's logic as it settles, an earlier stage's value from a
    /// register, `None` for a constant.
    fn view(&self, i: NodeId, s: u32) -> Vec<Option<Arrival>> {
        op_inputs(&self.comb.nodes[i].op)
            .iter()
            .map(|&a| match self.stage[a] {
                None => None,
                Some(sa) if sa == s => Some(self.arr[a]),
                // From the register right after a ROM that becomes
                // block RAM: its data arrives late.
                Some(sa) if sa + 1 == s && self.bram[a] => Some(Arrival {
                    lo: self.delays.bram,
                    hi: self.delays.bram,
                    ..Default::default()
                }),
                // From a register.
                Some(_) => Some(Arrival::default()),
            })
            .collect()
    }

    /// Node `i`'s arrival in stage `s`, or `None` when it does not fit the
    /// budget there behind its operands (a node that does not fit even
    /// behind registers fits: nothing earlier would help it).
    fn fit(&self, i: NodeId, s: u32) -> Option<Arrival> {
        let node = &self.comb.nodes[i];
        let ins = self.view(i, s);
        let busy = ins.iter().flatten().any(|a| a.hi > 0);
        let magnitudes = matches!(node.op, Op::Mul(a, b) if self.comb.magnitudes(a, b));
        let (a, whole) = arrive(
            &node.op,
            node.width,
            &ins,
            self.delays,
            &self.widths,
            magnitudes,
        );
        if busy && (whole || a.hi > self.budget) {
            None
        } else if whole {
            Some(Arrival {
                lo: self.budget,
                hi: self.budget,
                ..Default::default()
            })
        } else {
            Some(a)
        }
    }

    /// Moves logic into later stages where that takes fewer register bits,
    /// the latency unchanged. Placing every node as early as it fits
    /// leaves values waiting in register chains for a reader stages later
    /// (a shared subexpression or a short branch of an adder tree read at
    /// the tree's top): computed later, the value waits less, and its
    /// operands, often carried that far for other readers anyway, wait
    /// longer. Nodes are visited readers first, so a move can pull its
    /// operands after it; each takes the stage that saves the most bits,
    /// if it saves any and every node it feeds in that stage still fits.
    /// Products, ROMs and loop registers stay where they are, with their
    /// readers and operands (their register rules are placed above).
    fn sink(&mut self, live: &[bool], last: u32) {
        let comb = self.comb;
        let n = comb.nodes.len();
        let mut users: Vec<Vec<NodeId>> = vec![Vec::new(); n];
        for (i, node) in comb.nodes.iter().enumerate() {
            if live[i] && self.stage[i].is_some() {
                let mut ops = op_inputs(&node.op);
                ops.sort_unstable();
                ops.dedup();
                for a in ops {
                    users[a].push(i);
                }
            }
        }
        let mut out = vec![false; n];
        for f in &comb.outputs {
            out[f.node] = true;
        }
        let fixed = |a: NodeId| {
            matches!(
                comb.nodes[a].op,
                Op::Mul(..)
                    | Op::MulConst(..)
                    | Op::Rom { .. }
                    | Op::Reg { .. }
                    | Op::Input { .. }
                    | Op::InValid
                    | Op::Const(_)
            )
        };
        for i in (0..n).rev() {
            let Some(s) = self.stage[i] else { continue };
            if !live[i] || fixed(i) || users[i].iter().any(|&c| fixed(c)) {
                continue;
            }
            let mut ins: Vec<NodeId> = op_inputs(&comb.nodes[i].op)
                .into_iter()
                .filter(|&a| self.stage[a].is_some())
                .collect();
            ins.sort_unstable();
            ins.dedup();
            if ins
                .iter()
                .any(|&a| fixed(a) && !matches!(comb.nodes[a].op, Op::Input { .. } | Op::InValid))
            {
                continue;
            }
            // The latest stage: its first reader's (an output's: the last).
            let first_reader = users[i].iter().filter_map(|&c| self.stage[c]).min();
            let Some(m) = (if out[i] {
                Some(first_reader.map_or(last, |r| r.min(last)))
            } else {
                first_reader
            }) else {
                continue;
            };
            // The last stage that reads each operand now.
            let needs: Vec<u32> = ins
                .iter()
                .map(|&a| {
                    let r = users[a].iter().filter_map(|&c| self.stage[c]).max();
                    r.unwrap_or(0).max(if out[a] { last + 1 } else { 0 })
                })
                .collect();
            let w = i64::from(self.widths[i]);
            let mut moves: Vec<(i64, u32)> = (s + 1..=m)
                .map(|t| {
                    let grown: i64 = ins
                        .iter()
                        .zip(&needs)
                        .map(|(&a, &r)| i64::from(self.widths[a]) * i64::from(t.max(r) - r))
                        .sum();
                    (grown - w * i64::from(t - s), t)
                })
                .filter(|&(d, _)| d < 0)
                .collect();
            moves.sort_unstable();
            for (_, t) in moves {
                if self.try_move(i, t, &users) {
                    break;
                }
            }
        }
    }

    /// Puts node `i` into stage `t` if it and every node it feeds there
    /// still fit the budget; else leaves everything as it was.
    fn try_move(&mut self, i: NodeId, t: u32, users: &[Vec<NodeId>]) -> bool {
        let (old_stage, old_arr) = (self.stage[i], self.arr[i]);
        self.stage[i] = Some(t);
        let mut changed = vec![(i, old_arr)];
        let mut todo = std::collections::BTreeSet::from([i]);
        while let Some(c) = todo.pop_first() {
            match self.fit(c, t) {
                Some(a) if c == i || a != self.arr[c] => {
                    if c != i {
                        changed.push((c, self.arr[c]));
                    }
                    self.arr[c] = a;
                    todo.extend(users[c].iter().filter(|&&u| self.stage[u] == Some(t)));
                }
                Some(_) => {}
                None => {
                    for &(c, a) in changed.iter().rev() {
                        self.arr[c] = a;
                    }
                    self.stage[i] = old_stage;
                    return false;
                }
            }
        }
        true
    }
}

/// Returns the pipelined netlist and its latency in cycles, with at most
/// `budget_ps` of estimated logic delay between registers.
pub fn pipeline(comb: &Netlist, budget_ps: u32, delays: &Delays) -> (Netlist, u32) {
    let budget = budget_ps.max(1);
    let n = comb.nodes.len();
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
    let widths: Vec<u32> = comb.nodes.iter().map(|x| x.width).collect();
    let bram: Vec<bool> = comb
        .nodes
        .iter()
        .map(|x| {
            delays.bram > 0
                && matches!(x.op, Op::Rom { idx, .. }
                if widths[idx] >= 32 || (1u64 << widths[idx]) * x.width as u64 >= delays.bram_rom_bits as u64)
        })
        .collect();
    let mut sched = Schedule {
        comb,
        widths,
        bram,
        delays,
        budget,
        stage: vec![None; n],
        arr: vec![Arrival::default(); n],
    };
    for (i, node) in comb.nodes.iter().enumerate() {
        if !live[i] || matches!(node.op, Op::Const(_)) {
            continue;
        }
        let ops = op_inputs(&node.op);
        let stage = &sched.stage;
        let s = ops.iter().filter_map(|&a| stage[a]).max().unwrap_or(0);
        // The first stage where the node fits: its inputs' stage, or a
        // later one where they come from registers (two later behind a
        // block RAM, whose data arrives late).
        // A product for a DSP with its own registers reads registers
        // ([`Delays::dsp_registers`]).
        let product = delays.dsp_registers && matches!(node.op, Op::Mul(..) | Op::MulConst(..));
        // And the registers it takes in feed on registers: the wires into a
        // DSP on a full die take most of a period by themselves (11.5 ns on
        // the reuse-64 tagger), so no logic goes in front of them. An
        // operand computed by logic is registered twice, a register or an
        // input port once, a block RAM (whose first register is its own,
        // 5.1 ns clock to out) three times.
        let mut s = s;
        if product {
            for &a in &ops {
                if let Some(sa) = stage[a] {
                    let hops = match comb.nodes[a].op {
                        Op::Reg { .. } | Op::Input { .. } => 1,
                        _ if sched.bram[a] => 3,
                        _ => 2,
                    };
                    s = s.max(sa + hops);
                }
            }
        }
        // Out of a DSP the same: logic reads a product through its
        // output register and one more, a register through the output
        // register alone.
        if delays.dsp_registers {
            for &a in &ops {
                if let (Some(sa), Op::Mul(..) | Op::MulConst(..)) = (stage[a], &comb.nodes[a].op) {
                    let hops = if matches!(node.op, Op::Reg { .. }) {
                        1
                    } else {
                        2
                    };
                    s = s.max(sa + hops);
                }
            }
        }
        let (s, a) = loop {
            match sched.fit(i, s) {
                Some(a) => break (s, a),
                None => s += 1,
            }
        };
        sched.stage[i] = Some(s);
        sched.arr[i] = a;
    }
    // An output is read by logic outside (a reuse loop's accumulator, the
    // next segment), so a product leaves through two registers on ECP5 too:
    // its output register inside the DSP and one beside that logic. The
    // tagger's reuse-64 accumulators read their products straight out of
    // the DSPs and missed 100 MHz on that route.
    let product_out = |a: NodeId| {
        delays.dsp_registers && matches!(comb.nodes[a].op, Op::Mul(..) | Op::MulConst(..))
    };
    let last = comb
        .outputs
        .iter()
        .filter_map(|f| Some(sched.stage[f.node]? + u32::from(product_out(f.node))))
        .max()
        .unwrap_or(0);
    let latency = last + 1;
    sched.sink(&live, last);
    let Schedule { stage, arr, .. } = sched;

    let mut net = Netlist::new();
    net.in_width = comb.in_width;
    let mut map = vec![usize::MAX; n];
    let mut delayed: HashMap<(NodeId, u32), NodeId> = HashMap::new();
    // A register carrying old node `a`'s value into stage `s`: it belongs
    // to `a`'s layer.
    let delay = |net: &mut Netlist, prev: NodeId, a: NodeId, s: u32| {
        let r = net.reg(prev, false);
        net.nodes[r].layer = comb.nodes[a].layer;
        net.nodes[r].stage = Some(s);
        net.nodes[r].predicted_ps = Some(0);
        r
    };
    // The new id of old node `a` as seen in stage `s`.
    fn at(
        net: &mut Netlist,
        map: &[NodeId],
        stage: &[Option<u32>],
        delayed: &mut HashMap<(NodeId, u32), NodeId>,
        delay: &impl Fn(&mut Netlist, NodeId, NodeId, u32) -> NodeId,
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
        let prev = at(net, map, stage, delayed, delay, a, s - 1);
        let r = delay(net, prev, a, s);
        delayed.insert((a, s), r);
        r
    }
    for (i, node) in comb.nodes.iter().enumerate() {
        if !live[i] {
            continue;
        }
        let s = stage[i].unwrap_or(0);
        let op = map_inputs(&node.op, |a| {
            at(&mut net, &map, &stage, &mut delayed, &delay, a, s)
        });
        let id = net.push_raw(op, node.lo, node.hi, node.boolean);
        net.nodes[id].tag = node.tag.clone();
        net.nodes[id].layer = node.layer;
        net.nodes[id].stage = stage[i];
        net.nodes[id].predicted_ps = stage[i].map(|_| match node.op {
            Op::Reg { .. } => 0,
            _ => arr[i].hi,
        });
        map[i] = id;
    }
    for f in &comb.outputs {
        let o = at(&mut net, &map, &stage, &mut delayed, &delay, f.node, last);
        let r = if stage[f.node].is_some() {
            delay(&mut net, o, f.node, latency)
        } else {
            o
        };
        net.outputs.push(crate::netlist::OutField {
            node: r,
            width: f.width,
        });
    }
    let mut v = net.in_valid();
    net.nodes[v].stage = Some(0);
    for s in 1..=latency {
        v = net.reg(v, true);
        net.nodes[v].stage = Some(s);
    }
    net.out_valid = Some(v);
    (net, latency)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlist::OutField;

    fn register_bits(net: &Netlist) -> u32 {
        net.nodes
            .iter()
            .filter(|n| matches!(n.op, Op::Reg { .. }))
            .map(|n| n.width)
            .sum()
    }

    /// A short branch read at the top of a deep chain is computed a stage
    /// before its reader, not as early as it could be: its value would
    /// wait 5 stages (85 register bits); its operands are carried that far
    /// for the chain's other readers anyway. In its reader's stage it
    /// would wait for none, but the two adders in a row would not fit.
    #[test]
    fn a_short_branch_is_computed_late_when_that_saves_registers() {
        let d = Family::Xcup.delays();
        // One adder a stage: a 24-bit adder fits, two in a row do not.
        let budget = chain(&d, 0, 0, 24).1;
        assert!(chain(&d, d.carry_entry, budget, 24).1 > budget);
        let mut c = Netlist::new();
        c.in_width = 32;
        let x = c.input(0, 16, true);
        let y = c.input(16, 16, true);
        let p = c.add(x, y);
        c.tag(p, "p".into());
        let mut q = c.sub(x, y);
        for _ in 0..3 {
            q = c.add(q, x);
        }
        q = c.add(q, y);
        let top = c.add(q, p);
        let o2 = c.add(q, y);
        let o3 = c.sub(q, x);
        for o in [top, o2, o3] {
            c.outputs.push(OutField {
                node: o,
                width: c.width(o),
            });
        }
        let (net, latency) = pipeline(&c, budget, &d);
        assert_eq!(latency, 6, "the chain's 6 adders take a stage each");
        let p = net
            .nodes
            .iter()
            .find(|n| n.tag.as_deref() == Some("p"))
            .unwrap();
        assert_eq!(p.stage, Some(4), "computed the stage before its reader");
        // Registers: once each of the chain's 5 values and the 3 outputs,
        // p once (17), x and y to stage 5 (5 x 16 each), and the valid
        // bit's 6.
        let chain_bits: u32 = net
            .nodes
            .iter()
            .filter(|n| matches!(n.op, Op::Add(..) | Op::Sub(..)) && n.tag.is_none())
            .map(|n| n.width)
            .sum();
        assert_eq!(register_bits(&net), chain_bits + 17 + 5 * 16 + 5 * 16 + 6);
        for n in &net.nodes {
            assert!(n.predicted_ps.unwrap_or(0) <= budget, "{n:?}");
        }
    }
}
