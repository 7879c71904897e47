//! What a build produces and is asked for: the options ([`Strategy`],
//! [`Options`]), the built [`Kernel`] with its bus fields, its resource
//! [`Stats`], and the build error. A leaf module, so that the builders (the
//! combinational one and the folded one) and the readers of a kernel (export,
//! waveforms, rust-hdl block) share these types without importing each other.

use serde::{Deserialize, Serialize};

use crate::netlist::{Netlist, NetlistError, Op, Sim};
use crate::pipeline::{budget_for_clock, budget_for_levels, Delays, Family};

/// How multiplications by constant weights are built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Strategy {
    /// One multiplier (`*`, DSP) per weight with two or more signed digits.
    Dsp,
    /// Multiplier-free: canonical signed digits, shifts and adders (no DSP),
    /// except in Dense layers folded by a reuse factor above 1, whose
    /// multipliers take another weight every cycle.
    #[cfg_attr(feature = "clap", value(alias = "shiftadd", alias = "csd"))]
    ShiftAdd,
}

impl Strategy {
    /// The name on the command line and in the export's manifest.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Dsp => "dsp",
            Strategy::ShiftAdd => "shift-add",
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "dsp" => Ok(Strategy::Dsp),
            "shift-add" | "shiftadd" | "csd" => Ok(Strategy::ShiftAdd),
            other => Err(format!(
                "unknown strategy '{other}': expected dsp or shift-add"
            )),
        }
    }
}

/// How the time steps of a recurrent layer (RNN, GRU, LSTM, unrolled at
/// import) are built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Recurrent {
    /// Every step its own hardware: II 1, the most area.
    #[default]
    Unrolled,
    /// One cell for all the steps of a layer, in a loop: a new sequence
    /// every T cycles (T steps), about 1/T of the multipliers.
    Reused,
}

#[derive(Clone, Debug, Serialize)]
pub struct Options {
    pub strategy: Strategy,
    /// Target clock in MHz.
    pub clock_mhz: f64,
    /// Percent of the clock period kept out of each stage's logic (clock
    /// uncertainty, as hls4ml's `ClockUncertainty`; default
    /// [`crate::pipeline::DEFAULT_UNCERTAINTY_PCT`]).
    pub clock_uncertainty: f64,
    /// Pipeline stages hold this many 16-bit adder levels (0.5 ns each, see
    /// [`crate::pipeline::budget_for_levels`]); when `None` the stage budget
    /// comes from the clock ([`crate::pipeline::budget_for_clock`]).
    pub levels: Option<u32>,
    /// Reuse factor of every Dense layer (II = R); `None`: each layer's own
    /// from the model's configuration.
    pub reuse: Option<u32>,
    /// Recurrent layers unrolled or as a reused cell.
    pub recurrent: Recurrent,
    /// Verilog module name; `None`: derived from the model and these
    /// options ([`Options::module_name`]).
    pub module: Option<String>,
    /// The FPGA family whose delay model places the pipeline registers.
    pub family: Family,
    /// A clock enable input `ce` on the kernel (see
    /// [`crate::netlist::Netlist::verilog_with`]).
    pub clock_enable: bool,
    /// Adder trees of two-input adders only, where they would have ternary
    /// adders ([`Options::ternary_adders`]): fewer cycles, more LUTs, and
    /// Verilog without AMD primitives.
    pub binary_adders: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            strategy: Strategy::ShiftAdd,
            clock_mhz: 200.0,
            clock_uncertainty: crate::pipeline::DEFAULT_UNCERTAINTY_PCT,
            levels: None,
            reuse: None,
            recurrent: Recurrent::Unrolled,
            module: None,
            family: Family::Xcup,
            clock_enable: false,
            binary_adders: false,
        }
    }
}

/// Words Verilog reserves that a module may not be named.
const VERILOG_KEYWORDS: &[&str] = &[
    "always",
    "and",
    "assign",
    "begin",
    "buf",
    "case",
    "casex",
    "casez",
    "default",
    "defparam",
    "disable",
    "else",
    "end",
    "endcase",
    "endfunction",
    "endmodule",
    "endtask",
    "for",
    "forever",
    "function",
    "generate",
    "if",
    "initial",
    "inout",
    "input",
    "integer",
    "localparam",
    "module",
    "nand",
    "negedge",
    "nor",
    "not",
    "or",
    "output",
    "parameter",
    "posedge",
    "real",
    "reg",
    "repeat",
    "signed",
    "task",
    "time",
    "wait",
    "while",
    "wire",
    "xor",
];

impl Options {
    /// Refuses options that no kernel can honour, rather than building
    /// something else: a reuse factor or `levels` of 0, and a clock whose
    /// period leaves less logic per stage than one 16-bit adder, the least
    /// the pipeline places between registers (the kernel would be built
    /// for a slower clock than asked and could never meet this one).
    pub fn check(&self) -> Result<(), BuildError> {
        let bad = |m: String| Err(BuildError::Options(m));
        if self.reuse == Some(0) {
            return bad("reuse factor 0: each multiplier serves at least one product per event; give 1 (nothing shared, II 1) or more".into());
        }
        if self.levels == Some(0) {
            return bad("levels 0: a pipeline stage holds at least one adder level; give 1 or more, or leave it to --clock".into());
        }
        let mhz = self.clock_mhz;
        if !(mhz.is_finite() && mhz > 0.0) {
            return bad(format!("clock {mhz} MHz: give a positive frequency"));
        }
        let u = self.clock_uncertainty;
        if !(u.is_finite() && (0.0..100.0).contains(&u)) {
            return bad(format!(
                "clock uncertainty {u} %: give the share of the period kept out of each stage's logic, from 0 to below 100 (default {})",
                crate::pipeline::DEFAULT_UNCERTAINTY_PCT
            ));
        }
        let d = self.delays();
        let logic = crate::pipeline::stage_logic_ps(mhz, u, &d);
        if self.levels.is_none() && logic < crate::pipeline::ADDER_LEVEL_PS as f64 {
            let most = crate::pipeline::max_clock_mhz(u, &d);
            return bad(format!(
                "clock {mhz} MHz leaves {:.0} ps of logic per pipeline stage on {} (the period less {u} % clock uncertainty and {} ps of register overhead), less than one 16-bit adder ({} ps), the least a stage holds: give at most {:.0} MHz",
                logic.max(0.0),
                self.family,
                d.register,
                crate::pipeline::ADDER_LEVEL_PS,
                most.floor()
            ));
        }
        Ok(())
    }

    /// The Verilog module name of a kernel of model `model` built with these
    /// options: `module` when given, else the model's name made an
    /// identifier with a suffix for each option that changes the hardware
    /// from the default (`_r4` reuse 4, `_dsp`, `_cell` reused recurrent
    /// cells, `_ce` a clock enable, `_ecp5` another family, `_bin` binary
    /// adders only, `_250mhz` another
    /// clock, `_u5` another clock uncertainty (`_u7p5` for 7.5 %), `_l3`
    /// levels), so that two builds of one model can live in one design.
    pub fn module_name(&self, model: &str) -> Result<String, BuildError> {
        if let Some(m) = &self.module {
            let ident = m
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && m.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ident || VERILOG_KEYWORDS.contains(&m.as_str()) {
                return Err(BuildError::Module(format!(
                    "module name '{m}' is not a Verilog identifier: a letter or _ first, then letters, digits or _, and not a keyword"
                )));
            }
            return Ok(m.clone());
        }
        let mut name = crate::build::module_name(model);
        if let Some(r) = self.reuse.filter(|&r| r > 1) {
            name += &format!("_r{r}");
        }
        if self.strategy == Strategy::Dsp {
            name += "_dsp";
        }
        if self.recurrent == Recurrent::Reused {
            name += "_cell";
        }
        if self.clock_enable {
            name += "_ce";
        }
        if self.family != Family::default() {
            name += &format!("_{}", self.family.name());
        }
        if self.binary_adders && self.ternary_possible() {
            name += "_bin";
        }
        match self.levels {
            Some(l) => name += &format!("_l{l}"),
            None => {
                if self.clock_mhz != Options::default().clock_mhz {
                    name += &format!("_{}mhz", self.clock_mhz.round() as u64);
                }
                if self.clock_uncertainty != crate::pipeline::DEFAULT_UNCERTAINTY_PCT {
                    name += &format!("_u{}", self.clock_uncertainty).replace('.', "p");
                }
            }
        }
        Ok(name)
    }

    /// Estimated logic delay allowed between pipeline registers, in ps:
    /// `levels` 16-bit adders when given, else what the clock leaves after
    /// the clock uncertainty and the family's register overhead (4175 ps at
    /// 200 MHz and 12.5 % on UltraScale+).
    pub fn budget_ps(&self) -> u32 {
        match self.levels {
            Some(l) => budget_for_levels(l),
            None => budget_for_clock(self.clock_mhz, self.clock_uncertainty, &self.delays()),
        }
    }

    /// The delay model of the target family.
    pub fn delays(&self) -> Delays {
        let mut d = self.family.delays();
        d.ternary_adders = self.ternary_adders();
        d
    }

    /// Whether adder trees sum three terms per adder: on a family that has
    /// ternary adders, for the shift-add strategy, unless `binary_adders`.
    /// A ternary level takes longer than a binary one for the terms it
    /// removes, so the DSP strategy, built for the least latency, keeps
    /// binary trees (ternary ones took the jet tagger at `fixed<16,6>`
    /// from 10 to 11 cycles at 200 MHz).
    pub fn ternary_adders(&self) -> bool {
        self.ternary_possible() && !self.binary_adders
    }

    /// Ternary adder trees unless `binary_adders` asks otherwise.
    fn ternary_possible(&self) -> bool {
        self.family.delays().ternary_adders && self.strategy == Strategy::ShiftAdd
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BuildError {
    #[error("layer {layer} ({kind}) is not supported by the HDL backend: {why}")]
    Unsupported {
        layer: String,
        kind: &'static str,
        why: String,
    },
    #[error(transparent)]
    Netlist(#[from] NetlistError),
    /// The model's inputs or outputs (`quantize::validate::ports`).
    #[error("{0}")]
    Ports(String),
    /// A reused recurrent cell that cannot be built.
    #[error("{0}")]
    Recurrent(String),
    /// `--module` is not a Verilog identifier.
    #[error("{0}")]
    Module(String),
    /// An option no kernel can be built with ([`Options::check`]).
    #[error("{0}")]
    Options(String),
}

/// A field of a bus: one value of a fixed-point type, two's complement raw bits.
#[derive(Clone, Debug, Serialize)]
pub struct Field {
    pub lsb: u32,
    pub width: u32,
    pub signed: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub adders: usize,
    pub adder_bits: u64,
    /// Equality tests; an ordering comparison is a subtraction's sign,
    /// counted with the adders.
    pub comparators: usize,
    pub multipliers: usize,
    pub muxes: usize,
    pub registers: usize,
    pub register_bits: u64,
    pub rom_bits: u64,
    /// Rough LUT estimate: one LUT per adder/comparator/mux bit.
    pub lut_estimate: u64,
    pub dsp_estimate: u64,
}

/// A built kernel: the pipelined netlist and its interface.
pub struct Kernel {
    pub name: String,
    pub net: Netlist,
    pub latency: u32,
    pub ii: u32,
    pub inputs: Vec<Field>,
    pub outputs: Vec<Field>,
    pub options: Options,
    /// The recurrent cells built as loops (empty when unrolled).
    pub cells: Vec<crate::build::CellInfo>,
}

impl Kernel {
    pub fn in_width(&self) -> u32 {
        self.inputs.iter().map(|f| f.width).sum()
    }
    pub fn out_width(&self) -> u32 {
        self.outputs.iter().map(|f| f.width).sum()
    }

    pub fn verilog(&self) -> String {
        self.verilog_as(&self.name, self.options.clock_enable)
    }

    /// The kernel's Verilog as module `name`, with the family's primitives
    /// (ECP5 DSPs with their registers, UltraScale+ ternary adders) as the
    /// options ask, and a clock enable input when `clock_enable`.
    pub fn verilog_as(&self, name: &str, clock_enable: bool) -> String {
        let d = self.options.delays();
        self.net
            .verilog_with(name, clock_enable, d.dsp_registers, d.ternary_adders)
    }

    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        for n in &self.net.nodes {
            let w = n.width as u64;
            match &n.op {
                Op::Add(..) | Op::Sub(..) | Op::Sum3 { .. } => {
                    s.adders += 1;
                    s.adder_bits += w;
                    s.lut_estimate += w;
                }
                Op::Eq(a, b) => {
                    s.comparators += 1;
                    s.lut_estimate += self.net.width(*a).max(self.net.width(*b)) as u64;
                }
                Op::Mux(..) => {
                    s.muxes += 1;
                    s.lut_estimate += w;
                }
                Op::MulConst(..) | Op::Mul(..) => {
                    s.multipliers += 1;
                    // A DSP48E2 multiplies 27 x 18.
                    s.dsp_estimate += w.div_ceil(27).max(1);
                }
                Op::Rom { values, .. } => {
                    s.rom_bits += values.len() as u64 * w;
                    s.lut_estimate += (values.len() as u64 / 64).max(1) * w;
                }
                Op::Reg { .. } => {
                    s.registers += 1;
                    s.register_bits += w;
                }
                _ => {}
            }
        }
        s
    }

    /// Runs the cycle simulator on `events` (one every II cycles, the
    /// fastest the kernel takes them) and returns the raw outputs of each
    /// event, checking that the kernel is ready for every event and that
    /// every output appears exactly `latency` cycles after its input.
    pub fn simulate(&self, events: &[Vec<i64>]) -> Vec<Vec<i64>> {
        let mut sim = Sim::new(&self.net);
        sim.step(true, false, &vec![0; self.inputs.len()]);
        let zero = vec![0; self.inputs.len()];
        let mut out = Vec::with_capacity(events.len());
        let (ii, lat) = (self.ii.max(1) as usize, self.latency as usize);
        let total = events.len() * ii + lat;
        for t in 0..total {
            let k = (t % ii == 0)
                .then_some(t / ii)
                .filter(|&k| k < events.len());
            let ev = k.map_or(&zero, |k| &events[k]);
            let (ov, o) = sim.step_checked(false, k.is_some(), ev, t >= lat);
            assert!(
                k.is_none() || sim.was_ready(),
                "in_ready low at cycle {t} (II {ii})"
            );
            let expect_valid = t >= lat && (t - lat) % ii == 0;
            assert_eq!(
                ov, expect_valid,
                "out_valid at cycle {t} (latency {lat}, II {ii})"
            );
            if ov {
                out.push(self.decode(&o));
            }
        }
        out
    }

    /// Output bus values as raw codes of the output fields (each field's low
    /// bits, sign-extended where it is signed): what every driver of the
    /// kernel's simulation compares with the golden model.
    pub fn decode(&self, o: &[i128]) -> Vec<i64> {
        o.iter()
            .zip(&self.outputs)
            .map(|(&v, f)| {
                let sh = 128 - f.width;
                if f.signed {
                    ((v << sh) >> sh) as i64
                } else {
                    (((v as u128) << sh) >> sh) as i64
                }
            })
            .collect()
    }
}
