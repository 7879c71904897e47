//! VCD waveforms of a kernel's first events, from the netlist simulator: the
//! ports as a firmware engineer probes them (clock, reset, the handshake,
//! every input and output field as its own signed value), for a waveform
//! viewer such as GTKWave or Surfer.

use std::io::{self, Write};

use vcd::{IdCode, TimescaleUnit, Value};

use crate::kernel::{Field, Kernel};
use crate::netlist::Sim;

fn bits(v: i128, width: u32) -> Vec<Value> {
    (0..width)
        .rev()
        .map(|b| {
            if (v >> b.min(127)) & 1 == 1 {
                Value::V1
            } else {
                Value::V0
            }
        })
        .collect()
}

fn level(b: bool) -> Value {
    if b {
        Value::V1
    } else {
        Value::V0
    }
}

fn fields(w: &mut vcd::Writer<impl Write>, prefix: &str, f: &[Field]) -> io::Result<Vec<IdCode>> {
    f.iter()
        .enumerate()
        .map(|(i, f)| w.add_wire(f.width, &format!("{prefix}_{i}")))
        .collect()
}

/// Writes the waveform of `events` offered back to back (each as soon as
/// `in_ready` allows), one reset cycle first, until the last output has
/// appeared. Returns the number of clock cycles written.
pub fn write_vcd(k: &Kernel, events: &[Vec<i64>], out: impl Write) -> io::Result<u64> {
    let mut w = vcd::Writer::new(out);
    w.timescale(1, TimescaleUnit::PS)?;
    w.add_module(&k.name)?;
    let clock = w.add_wire(1, "clock")?;
    let reset = w.add_wire(1, "reset")?;
    let in_valid = w.add_wire(1, "in_valid")?;
    let in_ready = w.add_wire(1, "in_ready")?;
    let ins = fields(&mut w, "in", &k.inputs)?;
    let out_valid = w.add_wire(1, "out_valid")?;
    let outs = fields(&mut w, "out", &k.outputs)?;
    w.upscope()?;
    w.enddefinitions()?;

    let period = (1.0e6 / k.options.clock_mhz).round().max(2.0) as u64;
    let zero = vec![0i64; k.inputs.len()];
    let mut sim = Sim::new(&k.net);
    let (mut sent, mut seen, mut t) = (0usize, 0usize, 0u64);
    // Enough cycles for every event at the kernel's II, with slack.
    let limit = 1 + (events.len() as u64 + 1) * k.ii.max(1) as u64 + k.latency as u64 + 4;
    while seen < events.len() && t < limit {
        let rst = t == 0;
        // `in_ready` depends on registers only: its value this cycle is
        // known before the inputs are chosen.
        let offer = !rst && sent < events.len() && sim.ready_now();
        let ev = if offer { &events[sent] } else { &zero };
        let (ov, o) = sim.step(rst, offer, ev);
        w.timestamp(t * period)?;
        w.change_scalar(clock, Value::V1)?;
        w.change_scalar(reset, level(rst))?;
        w.change_scalar(in_valid, level(offer))?;
        w.change_scalar(in_ready, level(sim.was_ready()))?;
        for ((id, f), &v) in ins.iter().zip(&k.inputs).zip(ev) {
            w.change_vector(*id, &bits(v as i128, f.width))?;
        }
        w.change_scalar(out_valid, level(ov && !rst))?;
        for ((id, f), &v) in outs.iter().zip(&k.outputs).zip(&o) {
            w.change_vector(*id, &bits(v, f.width))?;
        }
        w.timestamp(t * period + period / 2)?;
        w.change_scalar(clock, Value::V0)?;
        sent += offer as usize;
        seen += (ov && !rst) as usize;
        t += 1;
    }
    w.timestamp(t * period)?;
    Ok(t)
}
