//! Export of a kernel: Verilog, a self-checking testbench with golden test
//! vectors (`$readmemh`), a JSON manifest and an integration note; and the
//! runners that co-simulate the exported Verilog with Verilator or Icarus.
//!
//! Bus packing: the graph inputs one after the other on `in_data`, in order,
//! each value (row-major within its tensor) as wide as its input's type `W`,
//! the raw two's complement code of the fixed-point value (unsigned types:
//! the raw unsigned code); the first value in the least significant bits.
//! The outputs lie on `out_data` likewise. The manifest lists where each
//! input and output starts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use quantize::golden::{Arithmetic, Golden, GoldenError};
use quantize::qmodel::QModel;

use crate::eda::{self, Driver, EdaError};
use crate::kernel::{Field, Kernel};
use crate::manifest::{BusInfo, Manifest, MANIFEST_FILE};
use crate::netmap::NetMap;
use crate::pipeline::Family;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{what} {}: {source}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Eda(#[from] EdaError),
    #[error("golden model: {0}")]
    Golden(#[from] GoldenError),
    #[error("the testbench printed no summary line:\n{0}")]
    NoSummary(String),
}

/// Maps an I/O error on `path` to [`ExportError::Io`].
fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ExportError {
    let path = path.to_path_buf();
    move |source| ExportError::Io { what, path, source }
}

/// Writes `text` to `dir/name`.
fn write(dir: &Path, name: &str, text: impl AsRef<[u8]>) -> Result<(), ExportError> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(io("write", &path))
}

/// Hex string of values packed into fields (field 0 in the LSBs).
pub fn pack_hex(values: &[i64], fields: &[Field]) -> String {
    let total: u32 = fields.iter().map(|f| f.width).sum::<u32>().max(1);
    let mut bits = vec![0u8; total as usize];
    for (v, f) in values.iter().zip(fields) {
        for b in 0..f.width {
            bits[(f.lsb + b) as usize] = ((*v >> b.min(63)) & 1) as u8;
        }
    }
    let digits = total.div_ceil(4) as usize;
    let mut s = String::with_capacity(digits);
    for d in (0..digits).rev() {
        let mut x = 0u8;
        for b in 0..4 {
            let i = d * 4 + b;
            if i < bits.len() {
                x |= bits[i] << b;
            }
        }
        s.push(char::from_digit(x as u32, 16).unwrap());
    }
    s
}

/// Inverse of [`pack_hex`]: raw values (sign-extended for signed fields).
pub fn unpack_hex(hex: &str, fields: &[Field]) -> Option<Vec<i64>> {
    let hex = hex.trim();
    let mut bits = Vec::with_capacity(hex.len() * 4);
    for c in hex.chars().rev() {
        let d = c.to_digit(16)?;
        for b in 0..4 {
            bits.push(((d >> b) & 1) as u8);
        }
    }
    Some(
        fields
            .iter()
            .map(|f| {
                let mut v: i64 = 0;
                for b in 0..f.width {
                    let bit = *bits.get((f.lsb + b) as usize).unwrap_or(&0) as i64;
                    v |= bit << b;
                }
                if f.signed && f.width < 64 && (v >> (f.width - 1)) & 1 == 1 {
                    v -= 1i64 << f.width;
                }
                v
            })
            .collect(),
    )
}

/// Verilog text of the self-checking testbench for `n` events: it reads
/// `inputs.hex` and `expected.hex`, offers one event per cycle with a bubble
/// every 7th cycle, holding each until the kernel takes it (`in_ready`),
/// checks each output against the expectation and its latency from the
/// cycle it was taken, writes `outputs.hex`, and prints one summary line
/// `BXFLOW_TB events=E mismatches=M latency_errors=L`, then `PASS` or `FAIL`.
/// A kernel with a clock enable gets `ce` low on one edge in five, and its
/// latency is counted in enabled edges.
pub fn testbench(k: &Kernel, n: usize) -> String {
    let (iw, ow, lat, name) = (
        k.in_width().max(1),
        k.out_width().max(1),
        k.latency,
        &k.name,
    );
    format!(
        r#"`timescale 1ns/1ps
// Self-checking testbench for {name}: latency {lat} cycles, II {ii}.
module {name}_tb;
  localparam N = {n};
  localparam LAT = {lat};
  reg clock = 1'b0;
  reg reset = 1'b1;
  reg in_valid = 1'b0;
  wire in_ready;
  reg [{iw1}:0] in_data = {iw}'d0;
  wire out_valid;
  wire [{ow1}:0] out_data;
  reg [{iw1}:0] vin [0:N-1];
  reg [{ow1}:0] vexp [0:N-1];
  integer tsent [0:N-1];
  // Clock enable (driven low one edge in five when the kernel has one);
  // latency counts enabled edges (ecyc).
  reg ce = 1'b1;
  integer sent = 0, got = 0, bad = 0, laterr = 0, cyc = 0, ecyc = 0, fd;
  {name} dut (.clock(clock), .reset(reset),{ce_port} .in_valid(in_valid), .in_ready(in_ready),
              .in_data(in_data), .out_valid(out_valid), .out_data(out_data));
  always #5 clock = ~clock;
  initial begin
    $readmemh("inputs.hex", vin);
    $readmemh("expected.hex", vexp);
    fd = $fopen("outputs.hex", "w");
  end
  always @(posedge clock) begin
    cyc = cyc + 1;
    if (ce) ecyc = ecyc + 1;
    if (cyc == 3) reset <= 1'b0;
    if (!reset) begin
      if (out_valid) begin
        $fwrite(fd, "%h\n", out_data);
        if (got < N) begin
          if (out_data !== vexp[got]) begin
            bad = bad + 1;
            if (bad <= 5) $display("MISMATCH event %0d: got %h expected %h", got, out_data, vexp[got]);
          end
          if (ecyc - tsent[got] != LAT) laterr = laterr + 1;
        end
        got = got + 1;
      end
      if (in_valid && !(in_ready && ce)) begin
        // Not taken at this edge: offered again, timed from the next one.
        tsent[sent - 1] = ecyc + 1;
      end else if (sent < N && (cyc % 7) != 3) begin
        in_valid <= 1'b1;
        in_data <= vin[sent];
        tsent[sent] = ecyc + 1;
        sent = sent + 1;
      end else begin
        in_valid <= 1'b0;
      end
    end
    {ce_drive}
    if (got >= N || cyc > 2 * ({ii} + 1) * N + 2 * LAT + 100) begin
      $display("BXFLOW_TB events=%0d mismatches=%0d latency_errors=%0d", got, bad, laterr);
      if (got == N && bad == 0 && laterr == 0) $display("PASS"); else $display("FAIL");
      $fclose(fd);
      $finish;
    end
  end
endmodule
"#,
        iw1 = iw - 1,
        ow1 = ow - 1,
        ii = k.ii,
        ce_port = if k.options.clock_enable {
            " .ce(ce),"
        } else {
            ""
        },
        ce_drive = if k.options.clock_enable {
            "ce <= (cyc % 5) != 2;"
        } else {
            ""
        },
    )
}

/// Verilog text of the self-checking testbench of the AXI4-Stream wrapper
/// for `n` events: a master that offers `inputs.hex` with random gaps
/// (holding each transfer until it is taken, as AXI4-Stream requires) and a
/// slave whose `m_axis_tready` is random, with stalls of 60 cycles in every
/// 200 that fill the queue. Every result must arrive, in order, equal to
/// `expected.hex`, with `m_axis_tlast` high; same summary line as
/// [`testbench`] (latency is not checked under stalls: `latency_errors`
/// counts transfers without `tlast`).
pub fn axis_testbench(m: &Manifest, n: usize) -> Option<String> {
    let a = m.axis.as_ref()?;
    let (iw, ow) = (m.port_width("in_data"), m.port_width("out_data"));
    Some(format!(
        r#"`timescale 1ns/1ps
// Self-checking testbench of {am}: random valid and ready, long stalls.
module {am}_tb;
  localparam N = {n};
  reg aclk = 1'b0;
  reg aresetn = 1'b0;
  reg s_tvalid = 1'b0;
  wire s_tready;
  reg [{ib1}:0] s_tdata = {ib}'d0;
  wire m_tvalid;
  reg m_tready = 1'b0;
  wire [{ob1}:0] m_tdata;
  wire m_tlast;
  reg [{iw1}:0] vin [0:N-1];
  reg [{ow1}:0] vexp [0:N-1];
  reg [31:0] lfsr = 32'h1234_5678;
  // ACLKEN, low on random edges when the kernel has a clock enable.
  reg en = 1'b1;
  integer sent = 0, got = 0, bad = 0, nolast = 0, cyc = 0, fd;
  {am} dut (.aclk(aclk), .aresetn(aresetn),{aclken}
    .s_axis_tvalid(s_tvalid), .s_axis_tready(s_tready), .s_axis_tdata(s_tdata), .s_axis_tlast(1'b1),
    .m_axis_tvalid(m_tvalid), .m_axis_tready(m_tready), .m_axis_tdata(m_tdata), .m_axis_tlast(m_tlast));
  always #5 aclk = ~aclk;
  initial begin
    $readmemh("inputs.hex", vin);
    $readmemh("expected.hex", vexp);
    fd = $fopen("outputs.hex", "w");
  end
  always @(posedge aclk) begin
    cyc = cyc + 1;
    lfsr <= {{lfsr[30:0], lfsr[31] ^ lfsr[21] ^ lfsr[1] ^ lfsr[0]}};
    if (cyc == 3) aresetn <= 1'b1;
    if (m_tvalid && m_tready && en) begin
      $fwrite(fd, "%h\n", m_tdata[{ow1}:0]);
      if (got < N && m_tdata[{ow1}:0] !== vexp[got]) begin
        bad = bad + 1;
        if (bad <= 5) $display("MISMATCH event %0d: got %h expected %h", got, m_tdata[{ow1}:0], vexp[got]);
      end
      if (!m_tlast) nolast = nolast + 1;
      got = got + 1;
    end
    m_tready <= (cyc % 200) >= 60 && (lfsr[3] || lfsr[4]);
    {en_drive}
    if (s_tvalid && !(s_tready && en)) begin
      // Held until taken.
    end else if (aresetn && sent < N && (lfsr[0] || lfsr[1])) begin
      s_tvalid <= 1'b1;
      s_tdata <= {{{pad}vin[sent]}};
      sent = sent + 1;
    end else begin
      s_tvalid <= 1'b0;
    end
    if (got >= N || cyc > 20 * N + {lat} + 1000) begin
      $display("BXFLOW_TB events=%0d mismatches=%0d latency_errors=%0d", got, bad, nolast);
      if (got == N && bad == 0 && nolast == 0) $display("PASS"); else $display("FAIL");
      $fclose(fd);
      $finish;
    end
  end
endmodule
"#,
        am = a.module,
        ib = a.tdata_in_bits,
        ib1 = a.tdata_in_bits - 1,
        ob1 = a.tdata_out_bits - 1,
        iw1 = iw - 1,
        ow1 = ow - 1,
        pad = if a.tdata_in_bits > iw {
            format!("{}'d0, ", a.tdata_in_bits - iw)
        } else {
            String::new()
        },
        lat = m.latency_cycles * m.ii.max(1),
        aclken = if m.has_ce() { " .aclken(en)," } else { "" },
        en_drive = if m.has_ce() {
            "en <= lfsr[5] || lfsr[6] || lfsr[7];"
        } else {
            ""
        },
    ))
}

/// `n` random events uniformly over the input type (seeded, reproducible).
pub fn random_events(model: &QModel, n: usize, seed: u64) -> Vec<Vec<i64>> {
    use rand::SeedableRng;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    (0..n)
        .map(|_| quantize::random::random_input(&mut rng, model))
        .collect()
}

/// Golden outputs for events.
pub fn golden_outputs(model: &QModel, events: &[Vec<i64>]) -> Result<Vec<Vec<i64>>, ExportError> {
    let golden = Golden::new(model, Arithmetic::Fast);
    events
        .iter()
        .map(|e| golden.evaluate(e).map_err(ExportError::from))
        .collect()
}

/// Writes the full export into `dir`.
pub fn write_export(
    dir: &Path,
    k: &Kernel,
    model: &QModel,
    events: &[Vec<i64>],
) -> Result<PathBuf, ExportError> {
    std::fs::create_dir_all(dir).map_err(io("create output directory", dir))?;
    let expected = golden_outputs(model, events)?;
    let m = Manifest::new(k, model, events.len());
    let mut v = format!(
        "// Generated by bxflow hdl from model '{}': latency {} cycles, II {}, target {} MHz.\n// Bus packing: the graph inputs (outputs) one after the other on in_data (out_data),\n// raw two's complement codes, each as wide as its type (see manifest.json).\n`default_nettype none\n",
        model.name, k.latency, k.ii, k.options.clock_mhz
    );
    let kernel = k.verilog();
    v.push_str(&kernel);
    v.push_str(&m.ports_wrapper());
    v.push_str(&m.axis_wrapper());
    v.push_str("`default_nettype wire\n");
    write(dir, &m.files.verilog, v)?;
    write(dir, &m.files.testbench, testbench(k, events.len()))?;
    if let Some(tb) = axis_testbench(&m, events.len()) {
        write(dir, &m.files.axis_testbench, tb)?;
    }
    write_vectors(dir, k, events, &expected)?;
    write(dir, &m.files.vhdl_components, m.vhdl_components())?;
    write(dir, &m.files.xdc, m.xdc())?;
    write(dir, &m.files.vivado_tcl, m.vivado_tcl())?;
    write(dir, &m.files.net_map, NetMap::new(k, model).to_json())?;
    write(dir, MANIFEST_FILE, m.to_json())?;
    write(
        dir,
        "INTEGRATION.md",
        integration_note(k, model, &m, &kernel),
    )?;
    Ok(dir.join(&m.files.verilog))
}

pub fn write_vectors(
    dir: &Path,
    k: &Kernel,
    events: &[Vec<i64>],
    expected: &[Vec<i64>],
) -> Result<(), ExportError> {
    let mut ins = String::new();
    for e in events {
        let _ = writeln!(ins, "{}", pack_hex(e, &k.inputs));
    }
    let mut outs = String::new();
    for e in expected {
        let _ = writeln!(outs, "{}", pack_hex(e, &k.outputs));
    }
    write(dir, "inputs.hex", ins)?;
    write(dir, "expected.hex", outs)
}

/// Which vendor primitives `kernel`, the Verilog of module `name`,
/// instantiates, and how a simulator reads them.
fn primitives_note(name: &str, kernel: &str) -> String {
    if kernel.contains(&format!("{name}_add3 #(")) {
        format!("with AMD primitives: each sum of three terms is an UltraScale+\n  ternary adder, an instance of `{name}_add3` (in the same file) that is\n  a LUT6_2 per bit and CARRY8 chains, which Vivado and Yosys read from\n  their libraries. Simulators compute the same sum arithmetically unless\n  `BXFLOW_ADD3_PRIMITIVES` is defined; then the file's own models of LUT6_2\n  and CARRY8 serve (skipped under `SYNTHESIS`; define\n  `BXFLOW_NO_XILINX_MODELS` to use AMD's UNISIM library). `bxflow hdl\n  --binary-adders` builds the kernel without them.")
    } else if kernel.contains("MULT18X18D #(") {
        "with Lattice `MULT18X18D` primitives (see Timing below).".into()
    } else {
        "no vendor primitives.".into()
    }
}

/// How the delay model of `family` was set and how to check the clock.
fn timing_note(name: &str, family: Family, uncertainty: f64) -> String {
    let d = family.delays();
    match family {
        Family::Xcup => format!(
            "The estimate is bxflow's UltraScale+ (speed grade -2) delay\n  model (`hdl/src/pipeline.rs`: a LUT level {} ps with routing, a carry\n  chain {} ps to enter and {} ps per CARRY8, a DSP48E2 product {} ps,\n  {uncertainty} % of the period kept for clock uncertainty\n  (`--clock-uncertainty`) and {} ps per register), set\n  from data sheet figures and Yosys's logic-level counts; no open place and\n  route exists for this family. `{name}.xdc` constrains `clock` to the target period;\n  with Vivado, `vivado -mode batch -source {name}_vivado.tcl -tclargs PART`\n  synthesizes, places and routes the kernel out of context, writes\n  `{name}_timing.rpt` and `{name}_utilization.rpt`, prints the worst setup\n  slack and exits with status 1 if it is negative (rebuild with a lower\n  `--clock`, or a smaller `--levels`). `{nets}` gives the layer and\n  pipeline stage of every signal `nN` of the Verilog, whose names the\n  report's cells keep (`n123_reg[4]`).",
            d.lut,
            d.carry_entry,
            d.carry8,
            d.dsp,
            d.register,
            nets = crate::netmap::file_name(name),
        ),
        Family::Ecp5 => format!(
            "The estimate is bxflow's ECP5 (speed grade 6) delay model\n  (`hdl/src/pipeline.rs`: a LUT4 level {} ps with routing, a CCU2C carry\n  chain {} ps to enter and {} ps per further 8 bits,\n  {uncertainty} % of the period kept for clock uncertainty\n  (`--clock-uncertainty`) and {} ps per register), calibrated against\n  nextpnr-ecp5's place and route. Check it on this export with\n  `bxflow synth DIR --place-route` (Yosys `synth_ecp5`, nextpnr-ecp5 out of\n  context, the kernel between registers): it reports the Fmax achieved and\n  the critical path, with the layer and pipeline stage where it starts and\n  ends, and exits with status 1 below {name}'s target. `{nets}`\n  gives the layer and stage of every signal `nN` of the Verilog, for\n  reading other timing reports (the tools keep `nN` in their cells' names).\n  Each product that fits 18 x 18 bits is a `MULT18X18D` instance `nN_dsp`\n  with its input registers and, where the product is read only through a\n  register, its output register on `clock` (`ce` its clock enable): a\n  product takes a pipeline stage of its own. The Verilog file ends with a\n  simulation model of the primitive (skipped under `SYNTHESIS`; define\n  `BXFLOW_NO_ECP5_MODELS` to simulate with Lattice's library instead).",
            d.lut,
            d.carry_entry,
            d.carry8,
            d.register,
            nets = crate::netmap::file_name(name),
        ),
    }
}

fn integration_note(k: &Kernel, model: &QModel, m: &Manifest, kernel: &str) -> String {
    let lines = |bus: &str, v: &[BusInfo]| {
        v.iter()
            .map(|b| {
                format!(
                    "  - `{}`: shape {:?} of `{}`, value `i` at `{bus}[{} + i*{w} +: {w}]` (port `{}` of `{}_ports`)\n",
                    b.name,
                    b.shape,
                    b.ty,
                    b.lsb,
                    b.port,
                    m.module,
                    w = b.value_bits
                )
            })
            .collect::<String>()
    };
    format!(
        r#"# Integrating `{name}`

Generated by `bxflow hdl` from model `{model}`. Verilog-2001, one file
(`{name}.v`), {prims}

* Clock `clock`; `reset` is synchronous and active high. It clears the
  valid pipeline and the handshake's counters only; the data path has no
  reset. Every register also has a power-up value in the Verilog (0 or the
  nearest value of its range), which FPGA bitstreams load, so reset is not
  needed at power-up; assert it for at least one edge to flush events in
  flight. An event offered on an edge with `reset` high is dropped (it
  never gives a result), and so are events taken before it; after that
  edge `in_ready` is high, and `out_valid` low until new events come out.
* Present an event with `in_valid = 1` and the packed features on `in_data`
  ({iw} bits); it is taken on a clock edge where `in_ready` is also high.
  Edge to edge: an event taken at edge t has its result on `out_data` ({ow}
  bits) with `out_valid = 1` right after edge t + **{lat}**, so a consumer
  samples it at edge t + {lat} + 1. Initiation interval **{ii}**: {ii_note}
* Packing: the graph inputs one after the other on `in_data`, the outputs on
  `out_data`, each value the raw code of its type (value = raw * 2^-frac).
  Within a tensor the values are one event of the ONNX tensor in row-major
  order, with the axes as the ONNX graph has them (the manifest's `shape`,
  without the batch axis): a Keras Conv1D export `[steps, channels]` stays
  channels-last. ONNX carries no class names: output value i is element i
  of the ONNX output.
{ins}{outs}* The same file has module `{name}_ports`: the kernel with one port per graph
  input and output (the ports named above), for designs that wire them apart.
  `{name}_pkg.vhd` declares both as VHDL components (package `{name}_pkg`)
  for VHDL top levels.
* AXI4-Stream: module `{name}_axis` in the same file wraps the kernel as a
  slave (`s_axis_tvalid/tready/tdata/tlast`) and a master (`m_axis_*`) on
  `aclk` with `aresetn` (active low, synchronous): one event per transfer,
  `in_data` in the low bits of `s_axis_tdata` ({axi_in} bits), `out_data` in
  the low bits of `m_axis_tdata` ({axi_out} bits, the rest zero),
  `m_axis_tlast` high on every transfer, `s_axis_tlast` ignored, results in
  order. The kernel cannot stall its output, so results wait in a queue of
  {depth} entries and `s_axis_tready` stays low while that many events are
  taken and not yet delivered: `m_axis_tready` may stall the stream for any
  time and nothing is lost.
* Bit-exact to `quantize::golden::evaluate`; check it with the testbench:
  `iverilog -g2012 -o tb {name}_tb.v {name}.v && vvp tb` or
  `verilator --binary --timing {name}_tb.v {name}.v --top-module {name}_tb && obj_dir/V{name}_tb`
  (run where `inputs.hex`/`expected.hex` are; prints PASS or FAIL). The
  AXI4-Stream wrapper's testbench `{name}_axis_tb.v` runs the same way
  (top module `{name}_axis_tb`), with random gaps and stalls on both sides.
* Timing: registers placed so that no path exceeds an estimated {lv} ps of logic
  for the {clk} MHz target; see `manifest.json` for widths and resource
  estimates. {timing}
"#,
        name = k.name,
        model = model.name,
        iw = k.in_width(),
        ow = k.out_width(),
        lat = k.latency,
        ii = k.ii,
        clk = k.options.clock_mhz,
        ins = lines("in_data", &m.inputs),
        outs = lines("out_data", &m.outputs),
        lv = k.options.budget_ps(),
        axi_in = m.axis.as_ref().map_or(0, |a| a.tdata_in_bits),
        axi_out = m.axis.as_ref().map_or(0, |a| a.tdata_out_bits),
        depth = m.axis.as_ref().map_or(0, |a| a.queue_depth),
        timing = timing_note(&k.name, k.options.family, k.options.clock_uncertainty),
        prims = primitives_note(&k.name, kernel),
        ii_note = if !k.cells.is_empty() {
            let loops: Vec<String> = k
                .cells
                .iter()
                .map(|c| {
                    format!(
                        "`{}`..`{}` ({} layers) computes {} time steps, one round of a {}-cycle loop each",
                        c.first_layer, c.last_layer, c.layers_per_step, c.steps, c.period_cycles
                    )
                })
                .collect();
            format!(
                "recurrent cells are reused across time steps: {}. Up to that many sequences are in a loop at once, so `in_ready` is low only on cycles where a new event would meet one coming round; events {} cycles apart are always taken, and a {} MHz clock takes at most {:.1} M events/s on average.",
                loops.join("; "),
                k.ii,
                k.options.clock_mhz,
                k.options.clock_mhz / k.ii as f64
            )
        } else if k.ii == 1 {
            "a new event every cycle; `in_ready` is constant 1 and may be left open.".to_string()
        } else {
            format!(
                "after taking an event the kernel holds `in_ready` low for {} cycles (multipliers shared {} times); a {} MHz clock takes at most {:.1} M events/s.",
                k.ii - 1,
                k.ii,
                k.options.clock_mhz,
                k.options.clock_mhz / k.ii as f64
            )
        },
    )
}

/// Result of a testbench run.
#[derive(Debug, Clone)]
pub struct TbResult {
    pub events: usize,
    pub mismatches: usize,
    pub latency_errors: usize,
    pub pass: bool,
    pub log: String,
    /// Outputs as written by the testbench (`outputs.hex`), decoded.
    pub outputs: Vec<Vec<i64>>,
}

fn parse_tb(dir: &Path, k: &Kernel, log: String) -> Result<TbResult, ExportError> {
    let line = log
        .lines()
        .find(|l| l.contains("BXFLOW_TB"))
        .ok_or_else(|| ExportError::NoSummary(log.clone()))?;
    let num = |key: &str| -> usize {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or(usize::MAX)
    };
    let out_path = dir.join("outputs.hex");
    let outputs = std::fs::read_to_string(&out_path)
        .map_err(io("read", &out_path))?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| unpack_hex(l, &k.outputs).unwrap_or_default())
        .collect();
    Ok(TbResult {
        events: num("events="),
        mismatches: num("mismatches="),
        latency_errors: num("latency_errors="),
        pass: log.lines().any(|l| l.trim() == "PASS"),
        log,
        outputs,
    })
}

/// Builds the exported design and testbench in `dir` with Verilator
/// ([`eda::verilate`]) and runs it there.
pub fn run_verilator(dir: &Path, k: &Kernel) -> Result<TbResult, ExportError> {
    verilate_tb(dir, k, &format!("{}_tb", k.name))
}

/// Builds the AXI4-Stream wrapper's testbench ([`axis_testbench`]) in `dir`
/// with Verilator and runs it there.
pub fn run_verilator_axis(dir: &Path, k: &Kernel) -> Result<TbResult, ExportError> {
    verilate_tb(dir, k, &format!("{}_axis_tb", k.name))
}

/// Verilates testbench `top` (file `top.v`) with the kernel's file in `dir`
/// and runs it there.
fn verilate_tb(dir: &Path, k: &Kernel, top: &str) -> Result<TbResult, ExportError> {
    let (tb, v) = (format!("{top}.v"), format!("{}.v", k.name));
    let exe = eda::verilate(
        dir,
        top,
        &[&tb, &v],
        Driver::VerilogTestbench,
        &format!("V{top}"),
    )?;
    let log = eda::run(Command::new(exe).current_dir(dir), "verilated testbench")?;
    parse_tb(dir, k, log)
}

/// Runs the exported self-checking testbench in `dir` under Icarus Verilog.
pub fn run_iverilog(dir: &Path, k: &Kernel) -> Result<TbResult, ExportError> {
    let top = format!("{}_tb", k.name);
    let log = eda::icarus(dir, &top, &[&format!("{top}.v"), &format!("{}.v", k.name)])?;
    parse_tb(dir, k, log)
}
