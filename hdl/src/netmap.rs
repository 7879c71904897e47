//! The export's net map (`NAME_nets.json`): which layer of the model and
//! which pipeline stage every signal `nN` of the kernel's Verilog is, so
//! that a timing report's cells can be traced back to the network.
//!
//! A map beside the Verilog rather than layer and stage in every signal's
//! name: the names stay `nN`, short and the same in the Verilog, the
//! simulator, the waveforms and the tests that look for a term by name;
//! a layer's name is free text from the ONNX graph that would have to be
//! mangled into identifiers (and could collide); and synthesis tools keep
//! `nN` in the names of the cells they make (Yosys and nextpnr
//! `core.n123_TRELLIS_FF_Q`, Vivado `n123_reg[4]`), so one lookup of the
//! number answers for any tool's report, which `bxflow synth
//! --place-route` does for its critical path.

use std::path::Path;

use quantize::qmodel::QModel;
use serde::{Deserialize, Serialize};

use crate::kernel::Kernel;
use crate::netlist::Op;

/// The file name of kernel `module`'s net map.
pub fn file_name(module: &str) -> String {
    format!("{module}_nets.json")
}

/// A layer of the model the kernel was built from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerInfo {
    /// Its index among the model's layers (in a `--layers` slice, counted
    /// from the slice's first layer; the name is the original's).
    pub index: usize,
    pub name: String,
    /// The kind of op (`Dense`, `Relu`, ...).
    pub op: String,
}

/// Signals `n{first}` to `n{last}` (inclusive), all of one layer and stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetRun {
    pub first: usize,
    pub last: usize,
    /// Index into [`NetMap::layers`]; absent for the buses and the control
    /// (valid chain, handshake, loop counters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<usize>,
    /// The cycle after the edge that takes an event in which the value is
    /// computed, or for a register held ([`crate::netlist::Node::stage`]);
    /// absent for constants and in loops (folded layers, reused cells).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<u32>,
}

/// The delay model's prediction for a register: the logic it computed
/// into the register's input, from the start of the stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegDelay {
    /// The register, signal `n{reg}`.
    pub reg: usize,
    pub logic_ps: u32,
}

/// Where every signal of a kernel comes from. Runs of consecutive signals
/// rather than one entry each: pipelining builds a layer's nodes one after
/// the other, so the runs are few and the file stays small for large
/// kernels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetMap {
    pub module: String,
    pub latency_cycles: u32,
    pub layers: Vec<LayerInfo>,
    /// In order of `first`, covering every signal.
    pub nets: Vec<NetRun>,
    /// The registers behind logic, in order of `reg` (a register fed by a
    /// register or a port has no entry).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub predicted: Vec<RegDelay>,
}

impl NetMap {
    /// The net map of kernel `k` built from `model`.
    pub fn new(k: &Kernel, model: &QModel) -> NetMap {
        let mut nets: Vec<NetRun> = Vec::new();
        for (i, n) in k.net.nodes.iter().enumerate() {
            match nets.last_mut() {
                Some(r) if r.layer == n.layer && r.stage == n.stage => r.last = i,
                _ => nets.push(NetRun {
                    first: i,
                    last: i,
                    layer: n.layer,
                    stage: n.stage,
                }),
            }
        }
        NetMap {
            module: k.name.clone(),
            latency_cycles: k.latency,
            layers: model
                .layers
                .iter()
                .enumerate()
                .map(|(index, l)| LayerInfo {
                    index,
                    name: l.name.clone(),
                    op: l.op.kind().into(),
                })
                .collect(),
            nets,
            predicted: k
                .net
                .nodes
                .iter()
                .enumerate()
                .filter_map(|(reg, n)| match n.op {
                    Op::Reg { a, .. } => k.net.nodes[a]
                        .predicted_ps
                        .filter(|&p| p > 0)
                        .map(|logic_ps| RegDelay { reg, logic_ps }),
                    _ => None,
                })
                .collect(),
        }
    }

    /// The logic the delay model predicted into register `n{reg}`.
    pub fn predicted(&self, reg: usize) -> Option<u32> {
        let k = self.predicted.partition_point(|r| r.reg < reg);
        self.predicted
            .get(k)
            .filter(|r| r.reg == reg)
            .map(|r| r.logic_ps)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a net map is plain data")
    }

    /// Reads the net map at `path`.
    pub fn read(path: &Path) -> Result<NetMap, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        serde_json::from_str(&text).map_err(|e| e.to_string())
    }

    /// The run holding signal `nN`, and its layer.
    pub fn lookup(&self, n: usize) -> Option<(&NetRun, Option<&LayerInfo>)> {
        let k = self.nets.partition_point(|r| r.last < n);
        let r = self.nets.get(k).filter(|r| r.first <= n)?;
        Some((r, r.layer.and_then(|l| self.layers.get(l))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlist::op_inputs;
    use crate::pipeline::Family;
    use crate::{build_kernel, Options};
    use quantize::random::{random_model, RandomSpec};
    use rand::SeedableRng;

    /// Every signal of a pipelined kernel is in the map with its own layer
    /// and stage, and the stages mean what the map says: logic reads values
    /// of its own stage, a register of stage s holds a value of stage s - 1.
    #[test]
    fn every_signal_has_its_layer_and_a_stage_that_means_its_cycle() {
        let spec = RandomSpec {
            max_layers: 3,
            max_neurons: 6,
            tables: false,
            ..RandomSpec::default()
        };
        let model = random_model(&mut rand::rngs::SmallRng::seed_from_u64(7), &spec);
        let opts = Options {
            family: Family::Ecp5,
            clock_mhz: 300.0,
            ..Options::default()
        };
        let k = build_kernel(&model, &opts).unwrap();
        assert!(k.latency > 1, "a pipeline to check: {}", k.latency);
        let map = NetMap::new(&k, &model);
        let json: NetMap = serde_json::from_str(&map.to_json()).unwrap();
        assert_eq!(json, map);
        let mut layers = std::collections::BTreeSet::new();
        for (i, n) in k.net.nodes.iter().enumerate() {
            let (run, layer) = map.lookup(i).unwrap();
            assert_eq!((run.layer, run.stage), (n.layer, n.stage), "n{i}");
            assert_eq!(layer.map(|l| l.index), n.layer, "n{i}");
            layers.extend(n.layer);
            let Some(s) = n.stage else { continue };
            assert!(s <= k.latency, "n{i}: stage {s}");
            for a in op_inputs(&n.op) {
                let Some(sa) = k.net.nodes[a].stage else {
                    continue;
                };
                let want = if matches!(n.op, Op::Reg { .. }) {
                    s - 1
                } else {
                    s
                };
                assert_eq!(sa, want, "n{i} (stage {s}) reads n{a}: {:?}", n.op);
            }
        }
        assert!(map.lookup(k.net.nodes.len()).is_none());
        // The delay model's logic into every register behind logic, and
        // none for a register fed by a register or a port.
        for (i, n) in k.net.nodes.iter().enumerate() {
            let Op::Reg { a, .. } = n.op else { continue };
            let src = &k.net.nodes[a];
            let logic = src.stage.is_some()
                && !matches!(src.op, Op::Reg { .. } | Op::Input { .. } | Op::InValid);
            match map.predicted(i) {
                Some(ps) => assert!(logic && ps > 0, "n{i} <= n{a}: {ps} ps, {:?}", src.op),
                None => assert!(
                    !logic || src.predicted_ps == Some(0),
                    "n{i} <= n{a}: {:?}",
                    src.op
                ),
            }
        }
        assert!(!map.predicted.is_empty());
        assert_eq!(
            layers.into_iter().collect::<Vec<_>>(),
            (0..model.layers.len()).collect::<Vec<_>>(),
            "every layer has hardware"
        );
        // The output registers (a constant output has none, and no stage).
        for f in &k.net.outputs {
            let n = &k.net.nodes[f.node];
            let want = (!matches!(n.op, Op::Const(_))).then_some(k.latency);
            assert_eq!(n.stage, want, "n{}: {:?}", f.node, n.op);
        }
    }
}
