//! The export's `manifest.json` as a typed record: written by the export,
//! read back by synthesis and the command line, so that the field names
//! exist once, here.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use quantize::qmodel::{QModel, TensorId};
use serde::{Deserialize, Serialize};

use crate::build::{layer_reuse, CellInfo};
use crate::kernel::{Field, Kernel, Stats};
use crate::pipeline::Family;

/// File name of the manifest inside an export directory.
pub const MANIFEST_FILE: &str = "manifest.json";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Verilog module name.
    pub module: String,
    /// Name of the model it was built from.
    pub model: String,
    pub files: Files,
    /// Number of golden test vectors in `inputs.hex` / `expected.hex`.
    pub test_vectors: usize,
    pub ports: Vec<Port>,
    pub bus_packing: String,
    /// Where each graph input lies on `in_data`, in order.
    pub inputs: Vec<BusInfo>,
    /// Where each graph output lies on `out_data`, in order.
    pub outputs: Vec<BusInfo>,
    pub latency_cycles: u32,
    pub ii: u32,
    pub reuse: Vec<LayerReuse>,
    /// Recurrent cells reused across time steps (`--recurrent reused`): each
    /// a loop that a sequence goes round once per step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cells: Vec<CellInfo>,
    pub clock_mhz: f64,
    /// Percent of the period kept out of each stage's logic
    /// (`--clock-uncertainty`; 12.5 in exports before the option).
    #[serde(default = "default_uncertainty")]
    pub clock_uncertainty_pct: f64,
    pub levels_option: Option<u32>,
    pub logic_budget_ps_per_stage: u32,
    /// `dsp` or `shift-add`.
    pub strategy: String,
    /// Adder trees sum three terms per adder (UltraScale+ LUT6_2 and
    /// CARRY8 instances in the Verilog; false in exports before them and
    /// with `--binary-adders`).
    #[serde(default)]
    pub ternary_adders: bool,
    /// The FPGA family whose delay model placed the registers (`xcup` in
    /// exports before the option).
    #[serde(default)]
    pub family: Family,
    /// The AXI4-Stream wrapper `<module>_axis` in the kernel's file (absent
    /// in exports before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub axis: Option<AxisInfo>,
    pub resource_estimate: Stats,
}

/// The export's files, relative to its directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Files {
    pub verilog: String,
    pub testbench: String,
    pub inputs: String,
    pub expected: String,
    /// VHDL package declaring the kernel and its per-port wrapper as
    /// components, for VHDL top levels (absent in exports before it).
    #[serde(default)]
    pub vhdl_components: String,
    /// Vivado clock constraint for the kernel's target clock (absent in
    /// exports before it).
    #[serde(default)]
    pub xdc: String,
    /// Vivado batch script: out-of-context synthesis, place, route, timing
    /// and utilization reports, exit status 1 on negative slack.
    #[serde(default)]
    pub vivado_tcl: String,
    /// Self-checking testbench of the AXI4-Stream wrapper (absent in
    /// exports before it).
    #[serde(default)]
    pub axis_testbench: String,
    /// The layer and pipeline stage of every signal of the Verilog
    /// ([`crate::netmap::NetMap`]), for tracing a timing report's cells
    /// (absent in exports before it).
    #[serde(default)]
    pub net_map: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Port {
    pub name: String,
    /// `in` or `out`.
    pub dir: String,
    pub width: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One graph input or output on its bus: `shape` values of `type`, value
/// `i` (row-major) at `data[lsb + i*value_bits +: value_bits]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BusInfo {
    /// The ONNX name of the input or output.
    pub name: String,
    /// Its own port on the `<module>_ports` wrapper (`in_`/`out_` and the
    /// name made a Verilog identifier).
    pub port: String,
    /// The fixed-point type of every value, as `quantize` prints it.
    #[serde(rename = "type")]
    pub ty: String,
    pub shape: Vec<usize>,
    /// First bit on the bus.
    pub lsb: u32,
    pub value_bits: u32,
    /// Bits in all: `value_bits` times the number of values.
    pub bits: u32,
}

/// The AXI4-Stream wrapper of a kernel: one event per transfer each way.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AxisInfo {
    /// Its module name, `<module>_axis`.
    pub module: String,
    /// `s_axis_tdata` width: `in_data`'s rounded up to whole bytes, the
    /// event in the low bits (packed as `bus_packing` says), the rest ignored.
    pub tdata_in_bits: u32,
    /// `m_axis_tdata` width: `out_data`'s rounded up to whole bytes, the
    /// results in the low bits, the rest zero.
    pub tdata_out_bits: u32,
    /// Results the output queue holds while `m_axis_tready` is low; more
    /// events than this are never taken in, so none is lost.
    pub queue_depth: u32,
    pub note: String,
}

const AXIS_NOTE: &str = "one event per transfer: s_axis_tdata holds in_data, m_axis_tdata out_data, both in the low bits; m_axis_tlast is high on every transfer and s_axis_tlast is ignored; results come out in the order events went in; s_axis_tready is low while aresetn is low, while the kernel's in_ready is low, and while queue_depth events are taken but not yet delivered, so m_axis_tready may stall the stream for any time without loss; aresetn (active low, synchronous) resets the kernel and empties the queue";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerReuse {
    pub layer: String,
    pub reuse: u32,
}

/// Why an export's manifest cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{} is not a `bxflow hdl` export (no {MANIFEST_FILE})", .dir.display())]
    Missing {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {}{source}", .path.display(), .field.as_ref().map(|f| format!("field `{f}`: ")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        /// The field on the line where parsing failed, when there is one.
        field: Option<String>,
        #[source]
        source: serde_json::Error,
    },
}

const RESET_NOTE: &str = "synchronous, active high; clears the valid pipeline and the handshake counters (the data path has no reset); not needed at power-up, every register has a power-up value; an event offered during reset is dropped";
const CE_NOTE: &str = "clock enable, active high: on an edge with ce low every register holds and no event is taken (in_valid is ignored), reset still acts; out_valid is low while ce is, so each result is seen on exactly one enabled edge; latency and II count enabled edges";
const IN_READY_NOTE: &str = "an event is taken on a clock edge with in_valid and in_ready high; low for II-1 cycles after each (constant 1 when II = 1)";
const CELL_READY_NOTE: &str = "an event is taken on a clock edge with in_valid and in_ready high; low on the cycles when the event would meet a sequence coming round a reused cell's loop (see `cells`): events II cycles apart are always taken, bursts of up to a loop's period_cycles events too";
const BUS_PACKING: &str = "graph inputs (outputs) one after the other on in_data (out_data), in the order of `inputs` (`outputs`); value i of one at data[lsb + i*W +: W], W its type's width, the raw two's complement code of the fixed-point type (unsigned types: raw unsigned code); the first value in the LSBs";

/// The bus records of tensors `(name, tensor)` laid out one after the other
/// on `fields`, with wrapper ports named `prefix` and the name.
fn buses<'a>(
    model: &QModel,
    tensors: impl Iterator<Item = (&'a str, TensorId)>,
    fields: &[Field],
    prefix: &str,
) -> Vec<BusInfo> {
    let mut first = 0;
    let mut ports: Vec<String> = Vec::new();
    tensors
        .map(|(name, t)| {
            let (ty, n) = (model.ty(t), model.tensor_len(t));
            let lsb = fields.get(first).map_or(0, |f| f.lsb);
            first += n;
            let mut port = format!("{prefix}_{}", identifier(name));
            if ports.contains(&port) {
                port = format!("{port}_{}", ports.len());
            }
            ports.push(port.clone());
            BusInfo {
                name: name.into(),
                port,
                ty: ty.to_string(),
                shape: model.shape(t).to_vec(),
                lsb,
                value_bits: ty.width,
                bits: ty.width * n as u32,
            }
        })
        .collect()
}

/// `name` as a Verilog identifier: letters, digits and `_`, lower case.
fn identifier(name: &str) -> String {
    name.chars()
        .map(|c| match c.is_ascii_alphanumeric() {
            true => c.to_ascii_lowercase(),
            false => '_',
        })
        .collect()
}

fn port(name: &str, dir: &str, width: u32, note: Option<&str>) -> Port {
    Port {
        name: name.into(),
        dir: dir.into(),
        width,
        note: note.map(str::to_string),
    }
}

impl Manifest {
    /// The manifest of kernel `k` built from `model`, exported with `vectors` test vectors.
    pub fn new(k: &Kernel, model: &QModel, vectors: usize) -> Manifest {
        Manifest {
            module: k.name.clone(),
            model: model.name.clone(),
            files: Files {
                verilog: format!("{}.v", k.name),
                testbench: format!("{}_tb.v", k.name),
                inputs: "inputs.hex".into(),
                expected: "expected.hex".into(),
                vhdl_components: format!("{}_pkg.vhd", k.name),
                xdc: format!("{}.xdc", k.name),
                vivado_tcl: format!("{}_vivado.tcl", k.name),
                axis_testbench: format!("{}_axis_tb.v", k.name),
                net_map: crate::netmap::file_name(&k.name),
            },
            test_vectors: vectors,
            ports: [
                port("clock", "in", 1, None),
                port("reset", "in", 1, Some(RESET_NOTE)),
            ]
            .into_iter()
            .chain(
                k.options
                    .clock_enable
                    .then(|| port("ce", "in", 1, Some(CE_NOTE))),
            )
            .chain([
                port("in_valid", "in", 1, None),
                port(
                    "in_ready",
                    "out",
                    1,
                    Some(if k.cells.is_empty() {
                        IN_READY_NOTE
                    } else {
                        CELL_READY_NOTE
                    }),
                ),
                port("in_data", "in", k.in_width(), None),
                port("out_valid", "out", 1, None),
                port("out_data", "out", k.out_width(), None),
            ])
            .collect(),
            bus_packing: BUS_PACKING.into(),
            inputs: buses(
                model,
                model
                    .inputs
                    .iter()
                    .enumerate()
                    .map(|(t, p)| (p.name.as_str(), t)),
                &k.inputs,
                "in",
            ),
            outputs: buses(
                model,
                model.outputs.iter().map(|o| (o.name.as_str(), o.tensor)),
                &k.outputs,
                "out",
            ),
            latency_cycles: k.latency,
            ii: k.ii,
            reuse: layer_reuse(model, k.options.reuse)
                .unwrap_or_default()
                .iter()
                .zip(&model.layers)
                .map(|(&reuse, l)| LayerReuse {
                    layer: l.name.clone(),
                    reuse,
                })
                .collect(),
            cells: k.cells.clone(),
            clock_mhz: k.options.clock_mhz,
            clock_uncertainty_pct: k.options.clock_uncertainty,
            levels_option: k.options.levels,
            logic_budget_ps_per_stage: k.options.budget_ps(),
            strategy: k.options.strategy.name().into(),
            ternary_adders: k.options.ternary_adders(),
            family: k.options.family,
            axis: Some(AxisInfo {
                module: format!("{}_axis", k.name),
                tdata_in_bits: k.in_width().max(1).next_multiple_of(8),
                tdata_out_bits: k.out_width().max(1).next_multiple_of(8),
                // Every event in flight (one a cycle at most, for `latency`
                // cycles) plus one, as a power of two for the pointers.
                queue_depth: (k.latency + 2).next_power_of_two().max(2),
                note: AXIS_NOTE.into(),
            }),
            resource_estimate: k.stats(),
        }
    }

    /// Verilog of module `<module>_ports`: the kernel with one port per
    /// graph input and output instead of the packed `in_data`/`out_data`.
    pub fn ports_wrapper(&self) -> String {
        let mut v = format!(
            "// `{m}` with one port per graph input and output (names from the ONNX graph;\n// see manifest.json); clock, reset and handshake as on `{m}`. It shares the\n// kernel's file, whose name is the kernel's.\n/* verilator lint_off DECLFILENAME */\nmodule {m}_ports (\n  input  wire clock,\n  input  wire reset,\n{ce}  input  wire in_valid,\n  output wire in_ready,\n",
            m = self.module,
            ce = if self.has_ce() { "  input  wire ce,\n" } else { "" }
        );
        let decl = |dir: &str, b: &BusInfo| {
            format!(
                "  {dir} wire [{}:0] {},  // '{}' {:?} {}\n",
                b.bits.max(1) - 1,
                b.port,
                b.name,
                b.shape,
                b.ty
            )
        };
        for b in &self.inputs {
            v.push_str(&decl("input ", b));
        }
        for b in &self.outputs {
            v.push_str(&decl("output", b));
        }
        v.push_str("  output wire out_valid\n);\n");
        let cat = |v: &[BusInfo]| {
            let parts: Vec<&str> = v.iter().rev().map(|b| b.port.as_str()).collect();
            format!("{{{}}}", parts.join(", "))
        };
        let _ = writeln!(
            v,
            "  {m} core (\n    .clock(clock), .reset(reset),{ce} .in_valid(in_valid), .in_ready(in_ready),\n    .in_data({}), .out_valid(out_valid), .out_data({})\n  );\nendmodule\n/* verilator lint_on DECLFILENAME */",
            cat(&self.inputs),
            cat(&self.outputs),
            m = self.module,
            ce = if self.has_ce() { " .ce(ce)," } else { "" }
        );
        v
    }

    /// Whether the kernel has a clock enable input `ce`.
    pub fn has_ce(&self) -> bool {
        self.ports.iter().any(|p| p.name == "ce")
    }

    /// Width of port `name` of the kernel, at least 1 (a bus of no values
    /// is one unused bit in the Verilog).
    pub fn port_width(&self, name: &str) -> u32 {
        self.ports
            .iter()
            .find(|p| p.name == name)
            .map_or(1, |p| p.width.max(1))
    }

    /// Verilog of the AXI4-Stream wrapper `<module>_axis` ([`AxisInfo`]):
    /// the kernel has no output stall, so its results go into a queue of
    /// `queue_depth` entries, and an event is taken only while fewer than
    /// that many are taken and not yet delivered; empty for exports
    /// without `axis`.
    pub fn axis_wrapper(&self) -> String {
        let Some(a) = &self.axis else {
            return String::new();
        };
        let (iw, ow) = (self.port_width("in_data"), self.port_width("out_data"));
        let d = a.queue_depth;
        let ab = d.trailing_zeros();
        let pad = if a.tdata_out_bits > ow {
            format!("{}'d0, ", a.tdata_out_bits - ow)
        } else {
            String::new()
        };
        format!(
            r#"// `{m}` as an AXI4-Stream slave (events in) and master (results out); see
// manifest.json `axis`. Shares the kernel's file, whose name is the kernel's,
// beside `{m}_ports`: two top levels, of which a design uses one.
/* verilator lint_off DECLFILENAME */
/* verilator lint_off MULTITOP */
/* verilator lint_off UNUSEDSIGNAL */
module {am} (
  input  wire aclk,
  input  wire aresetn,
{aclken}  input  wire s_axis_tvalid,
  output wire s_axis_tready,
  input  wire [{ib1}:0] s_axis_tdata,
  input  wire s_axis_tlast,  // ignored: every transfer is one event
  output wire m_axis_tvalid,
  input  wire m_axis_tready,
  output wire [{ob1}:0] m_axis_tdata,
  output wire m_axis_tlast
);
  wire reset = ~aresetn;
  wire en = {en};
  wire core_ready, core_valid;
  wire [{ow1}:0] core_data;
  // Events taken and not yet delivered: in the kernel or in the queue.
  reg [{ab}:0] owed = {ab1}'d0;
  // Queue pointers with a wrap bit.
  reg [{ab}:0] wr = {ab1}'d0;
  reg [{ab}:0] rd = {ab1}'d0;
  reg [{ow1}:0] queue [0:{d1}];
  wire take = s_axis_tvalid & s_axis_tready & en;
  wire give = m_axis_tvalid & m_axis_tready & en;
  assign s_axis_tready = aresetn & core_ready & (owed != {ab1}'d{d});
  assign m_axis_tvalid = wr != rd;
  assign m_axis_tdata = {{{pad}queue[rd[{ab0}:0]]}};
  assign m_axis_tlast = 1'b1;
  {m} core (
    .clock(aclk), .reset(reset),{ce_conn} .in_valid(take), .in_ready(core_ready),
    .in_data(s_axis_tdata[{iw1}:0]), .out_valid(core_valid), .out_data(core_data)
  );
  always @(posedge aclk) begin
    if (reset) begin
      owed <= {ab1}'d0;
      wr <= {ab1}'d0;
      rd <= {ab1}'d0;
    end else begin
      owed <= owed + {{{ab}'d0, take}} - {{{ab}'d0, give}};
      if (core_valid) wr <= wr + {ab1}'d1;
      if (give) rd <= rd + {ab1}'d1;
    end
  end
  always @(posedge aclk) begin
    if (core_valid) queue[wr[{ab0}:0]] <= core_data;
  end
endmodule
/* verilator lint_on UNUSEDSIGNAL */
/* verilator lint_on MULTITOP */
/* verilator lint_on DECLFILENAME */
"#,
            m = self.module,
            am = a.module,
            aclken = if self.has_ce() {
                "  input  wire aclken,  // AXI4-Stream ACLKEN: the kernel's ce\n"
            } else {
                ""
            },
            en = if self.has_ce() { "aclken" } else { "1'b1" },
            ce_conn = if self.has_ce() { " .ce(en)," } else { "" },
            ib1 = a.tdata_in_bits - 1,
            ob1 = a.tdata_out_bits - 1,
            ow1 = ow - 1,
            iw1 = iw - 1,
            ab1 = ab + 1,
            ab0 = ab.max(1) - 1,
            d1 = d - 1,
        )
    }

    /// A VHDL package (`<module>_pkg`) with the component declarations of
    /// the kernel and of `<module>_ports`, so that a VHDL top level
    /// instantiates the Verilog as the vendor tools' mixed-language flow
    /// expects. Ports and widths are the manifest's.
    /// The Vivado constraints: the clock on port `clock` at the kernel's
    /// target, for out-of-context runs (the kernel's ports are not pins).
    pub fn xdc(&self) -> String {
        format!(
            "# Generated by bxflow hdl: the clock of `{m}` ({mhz} MHz target).\n\
             # Out of context: the kernel's ports are internal nets of the user's design,\n\
             # so no I/O delays; add this file to the top level's constraints as it is,\n\
             # or scope it with `read_xdc -ref {m}`.\n\
             create_clock -period {ns:.3} -name clock [get_ports clock]\n",
            m = self.module,
            mhz = self.clock_mhz,
            ns = 1000.0 / self.clock_mhz
        )
    }

    /// The Vivado batch script: `vivado -mode batch -source {module}_vivado.tcl
    /// [-tclargs PART]` synthesizes the kernel out of context, places and
    /// routes it, writes timing and utilization reports, prints the worst
    /// setup slack and exits with status 1 when it is negative.
    pub fn vivado_tcl(&self) -> String {
        format!(
            r#"# Generated by bxflow hdl: place and route `{m}` alone with Vivado and check
# its {mhz} MHz target. Run where {v} and {x} are:
#   vivado -mode batch -source {t} [-tclargs PART]
# PART defaults to the UltraScale+ part hls4ml's examples use.
if {{$argc > 0}} {{
    set part [lindex $argv 0]
}} else {{
    set part xcu250-figd2104-2L-e
}}
read_verilog {v}
read_xdc -mode out_of_context {x}
synth_design -top {m} -part $part -mode out_of_context
opt_design
place_design
route_design
report_timing_summary -file {m}_timing.rpt
report_utilization -file {m}_utilization.rpt
set wns [get_property SLACK [get_timing_paths -max_paths 1 -nworst 1 -setup]]
puts "bxflow: {m} worst setup slack $wns ns at {mhz} MHz on $part"
if {{$wns < 0}} {{
    puts "bxflow: TIMING FAILED: rebuild with a lower --clock or a smaller --levels"
    exit 1
}}
puts "bxflow: TIMING MET"
exit 0
"#,
            m = self.module,
            mhz = self.clock_mhz,
            v = self.files.verilog,
            x = self.files.xdc,
            t = self.files.vivado_tcl
        )
    }

    pub fn vhdl_components(&self) -> String {
        let m = &self.module;
        let vector = |bits: u32| format!("std_logic_vector({} downto 0)", bits.max(1) - 1);
        let mut v = format!(
            "-- Component declarations of the Verilog modules `{m}`, `{m}_ports` and\n-- `{m}_axis` (see manifest.json and INTEGRATION.md), for VHDL top levels.\nlibrary ieee;\nuse ieee.std_logic_1164.all;\n\npackage {m}_pkg is\n  component {m} is\n    port (\n"
        );
        let packed: Vec<String> = self
            .ports
            .iter()
            .map(|p| {
                let ty = if p.width == 1 && !p.name.ends_with("_data") {
                    "std_logic".to_string()
                } else {
                    vector(p.width)
                };
                format!("      {:<10} : {:<3} {ty}", p.name, p.dir)
            })
            .collect();
        v.push_str(&packed.join(";\n"));
        let _ = write!(
            v,
            "\n    );\n  end component;\n\n  component {m}_ports is\n    port (\n"
        );
        let mut split: Vec<String> = ["clock", "reset", "ce", "in_valid"]
            .iter()
            .filter(|&&p| p != "ce" || self.has_ce())
            .map(|p| format!("      {p:<10} : in  std_logic"))
            .collect();
        split.push(format!("      {:<10} : out std_logic", "in_ready"));
        for (b, dir) in self
            .inputs
            .iter()
            .map(|b| (b, "in "))
            .chain(self.outputs.iter().map(|b| (b, "out")))
        {
            split.push(format!("      {:<10} : {dir} {}", b.port, vector(b.bits)));
        }
        split.push(format!("      {:<10} : out std_logic", "out_valid"));
        v.push_str(&split.join(";\n"));
        let _ = write!(v, "\n    );\n  end component;\n");
        if let Some(a) = &self.axis {
            let _ = write!(v, "\n  component {} is\n    port (\n", a.module);
            let bit = |n: &str, d: &str| format!("      {n:<13} : {d} std_logic");
            let mut axis = vec![bit("aclk", "in "), bit("aresetn", "in ")];
            if self.has_ce() {
                axis.push(bit("aclken", "in "));
            }
            axis.extend([
                bit("s_axis_tvalid", "in "),
                bit("s_axis_tready", "out"),
                format!(
                    "      {:<13} : in  {}",
                    "s_axis_tdata",
                    vector(a.tdata_in_bits)
                ),
                bit("s_axis_tlast", "in "),
                bit("m_axis_tvalid", "out"),
                bit("m_axis_tready", "in "),
                format!(
                    "      {:<13} : out {}",
                    "m_axis_tdata",
                    vector(a.tdata_out_bits)
                ),
                bit("m_axis_tlast", "out"),
            ]);
            v.push_str(&axis.join(";\n"));
            let _ = write!(v, "\n    );\n  end component;\n");
        }
        let _ = writeln!(v, "end package {m}_pkg;");
        v
    }

    /// Reads the manifest of the export in `dir`.
    pub fn read(dir: &Path) -> Result<Manifest, ManifestError> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Missing {
            dir: dir.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ManifestError::Invalid {
            field: field_at_line(&text, source.line()),
            path,
            source,
        })
    }

    /// The manifest as written to `manifest.json`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a manifest is plain data")
    }
}

/// The key on line `line` (1-based) of pretty-printed JSON, if any: serde
/// reports a wrong value by its position, the reader wants its name.
fn field_at_line(text: &str, line: usize) -> Option<String> {
    let l = text.lines().nth(line.checked_sub(1)?)?.trim_start();
    let rest = l.strip_prefix('"')?;
    let (key, after) = rest.split_once('"')?;
    after.trim_start().starts_with(':').then(|| key.to_string())
}

fn default_uncertainty() -> f64 {
    crate::pipeline::DEFAULT_UNCERTAINTY_PCT
}
