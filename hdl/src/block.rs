//! The kernel as a rust-hdl 0.46 block: [`KernelBlock`] implements rust-hdl's
//! `Logic` and `Block` by hand around the netlist. Its `update()` runs the
//! same evaluation as the cycle simulator ([`SimState`]), so rust-hdl's
//! `Simulation` and our simulator cannot diverge; its `hdl()` is our Verilog
//! printer's module, wrapped (`Verilog::Wrapper`) into the rust-hdl top
//! module that `generate_verilog` prints. rust-hdl's own expression printer,
//! its `*` (16 x 16 bits only) and `signed_bit_cast` are never used: all
//! arithmetic is on `i128` and all Verilog text comes from
//! [`Netlist::verilog`].
//!
//! The bus widths are const generics: `IW`/`OW` may exceed the kernel's
//! widths (the extra input bits are ignored, the extra output bits are 0).

use std::sync::Arc;

use rust_hdl::core::check_error::{check_all, CheckError};
use rust_hdl::core::prelude::*;

use crate::kernel::Kernel;
use crate::netlist::{Netlist, SimState};

/// A kernel netlist as a rust-hdl block with the interface of the exported
/// module: `clock`, `reset`, `in_valid`, `in_ready`, `in_data`, `out_valid`, `out_data`.
pub struct KernelBlock<const IW: usize, const OW: usize> {
    pub clock: Signal<In, Clock>,
    pub reset: Signal<In, Bit>,
    pub in_valid: Signal<In, Bit>,
    pub in_ready: Signal<Out, Bit>,
    pub in_data: Signal<In, Bits<IW>>,
    pub out_valid: Signal<Out, Bit>,
    pub out_data: Signal<Out, Bits<OW>>,
    net: Arc<Netlist>,
    name: String,
    /// The kernel module's Verilog, which `hdl()` wraps.
    cores: String,
    state: SimState,
}

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("the kernel needs {need} {what} bits, the block has {have}")]
    Width {
        what: &'static str,
        need: u32,
        have: usize,
    },
    #[error("rust-hdl check failed: {0:?}")]
    Check(CheckError),
    #[error("rust-hdl simulation: {0}")]
    Sim(String),
}

impl<const IW: usize, const OW: usize> KernelBlock<IW, OW> {
    /// The block of module `name` (must differ from rust-hdl's top name `top`).
    pub fn new(net: Arc<Netlist>, name: &str) -> Result<Self, BlockError> {
        let n = Arc::clone(&net);
        Self::printing(net, name, |name| n.verilog(name))
    }

    /// The block of kernel `k`, printing the Verilog its export has (the
    /// family's primitives included; no clock enable, which the block's
    /// ports do not have).
    pub fn for_kernel(k: &Kernel) -> Result<Self, BlockError> {
        Self::printing(Arc::new(k.net.clone()), &k.name, |name| {
            k.verilog_as(name, false)
        })
    }

    /// The block of `net` as module `name`, whose Verilog `print` writes
    /// (once, for the module name the block takes).
    fn printing(
        net: Arc<Netlist>,
        name: &str,
        print: impl FnOnce(&str) -> String,
    ) -> Result<Self, BlockError> {
        if net.in_width as usize > IW {
            return Err(BlockError::Width {
                what: "input",
                need: net.in_width,
                have: IW,
            });
        }
        if net.out_width() as usize > OW {
            return Err(BlockError::Width {
                what: "output",
                need: net.out_width(),
                have: OW,
            });
        }
        let name = if name == "top" {
            "bx_top".to_string()
        } else {
            name.to_string()
        };
        let state = SimState::new(&net);
        let cores = print(&name);
        Ok(KernelBlock {
            clock: Default::default(),
            reset: Default::default(),
            in_valid: Default::default(),
            in_ready: Default::default(),
            in_data: Default::default(),
            out_valid: Default::default(),
            out_data: Default::default(),
            cores,
            net,
            name,
            state,
        })
    }

    fn eval(&mut self) {
        let data = self.in_data.val();
        let field = |lsb: u32, width: u32, signed: bool| -> i128 {
            let mut v: i128 = 0;
            for b in 0..width {
                if data.get_bit((lsb + b) as usize) {
                    v |= 1i128 << b;
                }
            }
            if signed && width < 128 && (v >> (width - 1)) & 1 == 1 {
                v -= 1i128 << width;
            }
            v
        };
        self.state.eval(
            &self.net,
            self.in_valid.val(),
            |_, n| match n.op {
                crate::netlist::Op::Input { lsb, width, signed } => field(lsb, width, signed),
                _ => 0,
            },
            false,
        );
    }

    /// rust-hdl's checks (connections, logic loops, writes to inputs), then
    /// rust-hdl's `generate_verilog`, which would panic on a failed check.
    pub fn verilog(mut self) -> Result<String, BlockError> {
        self.connect_all();
        check_all(&self).map_err(BlockError::Check)?;
        Ok(generate_verilog(&self))
    }
}

impl<const IW: usize, const OW: usize> Logic for KernelBlock<IW, OW> {
    fn update(&mut self) {
        if self.clock.pos_edge() {
            // The registers take what the logic computes from their state
            // and the inputs at the edge.
            self.eval();
            let reset = self.reset.val();
            self.state.clock(&self.net, reset);
        }
        self.eval();
        let (valid, outs) = self.state.outputs(&self.net);
        let mut bits: Bits<OW> = 0.into();
        let mut lsb = 0usize;
        for (f, v) in self.net.outputs.iter().zip(outs) {
            for b in 0..f.width as usize {
                bits = bits.replace_bit(lsb + b, (v >> b.min(127)) & 1 == 1);
            }
            lsb += f.width as usize;
        }
        self.in_ready.next = self.state.ready(&self.net);
        self.out_valid.next = valid;
        self.out_data.next = bits;
    }

    fn connect(&mut self) {
        self.in_ready.connect();
        self.out_valid.connect();
        self.out_data.connect();
    }

    fn hdl(&self) -> Verilog {
        let iw = self.net.in_width.max(1) as usize;
        let ow = self.net.out_width().max(1) as usize;
        let mut code = format!(
            "{} kernel (.clock(clock), .reset(reset), .in_valid(in_valid), .in_ready(in_ready), .in_data(in_data[{}:0]), .out_valid(out_valid), .out_data(out_data[{}:0]));\n",
            self.name,
            iw - 1,
            ow - 1
        );
        if OW > ow {
            code += &format!("assign out_data[{}:{}] = {}'b0;\n", OW - 1, ow, OW - ow);
        }
        Verilog::Wrapper(Wrapper {
            code,
            cores: self.cores.clone(),
        })
    }
}

impl<const IW: usize, const OW: usize> Block for KernelBlock<IW, OW> {
    fn connect_all(&mut self) {
        self.connect();
        self.clock.connect_all();
        self.reset.connect_all();
        self.in_valid.connect_all();
        self.in_ready.connect_all();
        self.in_data.connect_all();
        self.out_valid.connect_all();
        self.out_data.connect_all();
    }

    fn update_all(&mut self) {
        self.update();
        self.clock.update_all();
        self.reset.update_all();
        self.in_valid.update_all();
        self.in_ready.update_all();
        self.in_data.update_all();
        self.out_valid.update_all();
        self.out_data.update_all();
    }

    fn has_changed(&self) -> bool {
        self.clock.has_changed()
            || self.reset.has_changed()
            || self.in_valid.has_changed()
            || self.in_ready.has_changed()
            || self.in_data.has_changed()
            || self.out_valid.has_changed()
            || self.out_data.has_changed()
    }

    fn accept(&self, name: &str, probe: &mut dyn Probe) {
        probe.visit_start_scope(name, self);
        self.clock.accept("clock", probe);
        self.reset.accept("reset", probe);
        self.in_valid.accept("in_valid", probe);
        self.in_ready.accept("in_ready", probe);
        self.in_data.accept("in_data", probe);
        self.out_valid.accept("out_valid", probe);
        self.out_data.accept("out_data", probe);
        probe.visit_end_scope(name, self);
    }
}

/// The input fields of `k` packed into a rust-hdl bus.
pub fn pack<const W: usize>(k: &Kernel, event: &[i64]) -> Bits<W> {
    let mut b: Bits<W> = 0.into();
    for (f, &v) in k.inputs.iter().zip(event) {
        for i in 0..f.width as usize {
            b = b.replace_bit(f.lsb as usize + i, (v >> i.min(63)) & 1 == 1);
        }
    }
    b
}

/// The output fields of `k` read from a rust-hdl bus (sign-extended when signed).
pub fn unpack<const W: usize>(k: &Kernel, b: Bits<W>) -> Vec<i64> {
    k.outputs
        .iter()
        .map(|f| {
            let mut v: i64 = 0;
            for i in 0..f.width as usize {
                if b.get_bit(f.lsb as usize + i) {
                    v |= 1 << i;
                }
            }
            if f.signed && f.width < 64 && (v >> (f.width - 1)) & 1 == 1 {
                v -= 1 << f.width;
            }
            v
        })
        .collect()
}

/// Runs `k` as a [`KernelBlock`] in rust-hdl's own `Simulation` for
/// `cycles` cycles after one reset cycle. Each `(cycle, event)` of
/// `stimulus` (cycles increasing) is presented with `in_valid` on its cycle,
/// where the kernel must be ready. Returns `(cycle, outputs)` for every
/// cycle with `out_valid`, numbered as the netlist simulator numbers them.
pub fn run_rust_hdl(
    k: &Kernel,
    stimulus: &[(u64, Vec<i64>)],
    cycles: u64,
) -> Result<Vec<(u64, Vec<i64>)>, BlockError> {
    let (iw, ow) = (k.in_width() as usize, k.out_width() as usize);
    // rust-hdl's buses have compile-time widths: the smallest that fits.
    if iw <= 256 && ow <= 256 {
        run_sized::<256, 256>(k, stimulus, cycles)
    } else if iw <= 2048 && ow <= 512 {
        run_sized::<2048, 512>(k, stimulus, cycles)
    } else if iw <= 16384 && ow <= 2048 {
        run_sized::<16384, 2048>(k, stimulus, cycles)
    } else {
        Err(BlockError::Width {
            what: "bus",
            need: (iw.max(ow)) as u32,
            have: 16384,
        })
    }
}

fn run_sized<const IW: usize, const OW: usize>(
    k: &Kernel,
    stimulus: &[(u64, Vec<i64>)],
    cycles: u64,
) -> Result<Vec<(u64, Vec<i64>)>, BlockError> {
    use std::sync::Mutex;
    let block = KernelBlock::<IW, OW>::for_kernel(k)?;
    let stim: Vec<(u64, Bits<IW>)> = stimulus.iter().map(|(c, e)| (*c, pack(k, e))).collect();
    let seen: Arc<Mutex<Vec<(u64, Bits<OW>)>>> = Arc::default();
    let not_ready: Arc<Mutex<Option<u64>>> = Arc::default();
    let (out, nr) = (seen.clone(), not_ready.clone());
    let mut sim = Simulation::new();
    sim.add_clock(5, |x: &mut Box<KernelBlock<IW, OW>>| {
        x.clock.next = !x.clock.val()
    });
    sim.add_testbench(move |mut ep: Sim<KernelBlock<IW, OW>>| {
        let mut x = ep.init()?;
        x.reset.next = true;
        wait_clock_cycle!(ep, clock, x);
        x.reset.next = false;
        let mut next = 0;
        for t in 0..cycles {
            let offer = next < stim.len() && stim[next].0 == t;
            if offer && !x.in_ready.val() {
                *nr.lock().unwrap() = Some(t);
            }
            x.in_valid.next = offer;
            x.in_data.next = if offer { stim[next].1 } else { 0.into() };
            next += offer as usize;
            // The registered outputs after this edge are the next cycle's.
            wait_clock_cycle!(ep, clock, x);
            if x.out_valid.val() {
                out.lock().unwrap().push((t + 1, x.out_data.val()));
            }
        }
        ep.done(x)
    });
    sim.run(Box::new(block), 10 * (cycles + 4) + 10)
        .map_err(|e| BlockError::Sim(format!("{e:?}")))?;
    if let Some(t) = *not_ready.lock().unwrap() {
        return Err(BlockError::Sim(format!(
            "kernel not ready (in_ready low) for an event at cycle {t}"
        )));
    }
    let v = seen.lock().unwrap().clone();
    Ok(v.into_iter().map(|(c, b)| (c, unpack(k, b))).collect())
}
