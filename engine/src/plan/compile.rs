//! Compiling a model into a [`Plan`]: the arena layout, then one kernel per
//! layer. `op_kernel` is the one match over ops; each op family has its own
//! small function, so adding an op touches one arm and one function.

use super::error::{LayerProblem, PlanError};
use super::fusion::fuse;
use super::mac::{compile_mac, conv_gather, MacSpec};
use super::types::{Kernel, Mac, MacPath, Plan, Sizes, Step, PAD};
use crate::dense::{xpack_len, Operand};
use crate::isa::Isa;
use crate::rq::Rq;
use crate::scalar::softmax_fast;
use quantize::accum::MacLayout;
use quantize::fixed::FixedType;
use quantize::qmodel::{step_sets, PoolKind, QLayer, QModel, QOp, Table, Window, ROUTE_ZERO};

impl Plan {
    /// Compiles `model` for `isa`. `fuse_chains` folds runs of Dense and
    /// elementwise layers into fused chains (off only to compare against
    /// the unfused plan: both are bit-exact).
    pub fn compile(model: &QModel, isa: Isa, fuse_chains: bool) -> Result<Plan, PlanError> {
        quantize::validate::ports(model).map_err(PlanError::Ports)?;
        let nt = model.tensors();
        let mut offs = Vec::with_capacity(nt);
        let mut lens = Vec::with_capacity(nt);
        let mut arena = 0usize;
        for t in 0..nt {
            offs.push(arena);
            let n = model.tensor_len(t);
            lens.push(n);
            arena += n.div_ceil(8) * 8;
        }
        let mut sizes = Sizes {
            arena,
            ..Sizes::default()
        };
        let mut steps = Vec::with_capacity(model.layers.len());
        for (li, layer) in model.layers.iter().enumerate() {
            if let Some(&tensor) = layer.inputs.iter().find(|&&t| t >= model.layer_tensor(li)) {
                return Err(PlanError::InputOrder {
                    layer: li,
                    name: layer.name.clone(),
                    tensor,
                });
            }
            let cx = LayerCx::new(model, li, &lens, isa)?;
            steps.push(Step {
                inputs: layer.inputs.clone(),
                out: model.layer_tensor(li),
                kernel: op_kernel(&cx, &mut sizes)?,
            });
        }
        let mut descs: Vec<String> = steps.iter().map(|s| describe_kernel(isa, s)).collect();
        let operands = steps.iter().map(step_operand).collect();
        let steps = if fuse_chains {
            fuse(model, steps, &mut sizes, &mut descs)
        } else {
            steps
        };
        let range = |t: usize| offs[t]..offs[t] + lens[t];
        static PLANS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        sizes.id = PLANS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut plan = Plan {
            isa,
            steps,
            inputs: (0..model.inputs.len()).map(range).collect(),
            outputs: model.outputs.iter().map(|o| range(o.tensor)).collect(),
            offs,
            lens,
            sizes,
            descs,
            operands,
            direct: false,
        };
        plan.direct = plan.whole_chain();
        Ok(plan)
    }
}

/// What every op's compile function needs to know about its layer.
struct LayerCx<'a> {
    model: &'a QModel,
    li: usize,
    layer: &'a QLayer,
    lens: &'a [usize],
    isa: Isa,
    /// Type and length of the first input.
    in_ty: FixedType,
    in_len: usize,
    out_ty: FixedType,
    out_len: usize,
}

impl<'a> LayerCx<'a> {
    /// Layer `li`, whose first input must exist (every op reads one).
    fn new(model: &'a QModel, li: usize, lens: &'a [usize], isa: Isa) -> Result<Self, PlanError> {
        let layer = &model.layers[li];
        let t0 = *layer
            .inputs
            .first()
            .ok_or_else(|| missing_input(li, layer, 0))?;
        Ok(LayerCx {
            model,
            li,
            layer,
            lens,
            isa,
            in_ty: model.ty(t0),
            in_len: lens[t0],
            out_ty: layer.ty,
            out_len: lens[model.layer_tensor(li)],
        })
    }

    fn fail(&self, problem: LayerProblem) -> PlanError {
        PlanError::Layer {
            layer: self.li,
            name: self.layer.name.clone(),
            problem,
        }
    }

    /// The tensor of input `k`.
    fn input(&self, k: usize) -> Result<usize, PlanError> {
        self.layer
            .inputs
            .get(k)
            .copied()
            .ok_or_else(|| missing_input(self.li, self.layer, k))
    }

    fn mac_spec<'m>(
        &self,
        weights: &'m [i64],
        w_ty: FixedType,
        bias: &'m [i64],
        b_ty: FixedType,
        acc_ty: FixedType,
    ) -> MacSpec<'m> {
        MacSpec {
            x_ty: self.in_ty,
            weights,
            w_ty,
            bias,
            b_ty,
            acc_ty,
            out_ty: self.out_ty,
        }
    }
}

fn missing_input(li: usize, layer: &QLayer, input: usize) -> PlanError {
    PlanError::MissingInput {
        layer: li,
        name: layer.name.clone(),
        op: layer.op.kind(),
        input,
    }
}

/// The kernel of one layer: one arm per op, one function per op family.
fn op_kernel(cx: &LayerCx, sizes: &mut Sizes) -> Result<Kernel, PlanError> {
    let (in_ty, out_ty) = (cx.in_ty, cx.out_ty);
    Ok(match &cx.layer.op {
        QOp::Dense {
            n_in,
            n_out,
            weights,
            w_ty,
            bias,
            b_ty,
            acc_ty,
        } => {
            let spec = cx.mac_spec(weights, *w_ty, bias, *b_ty, *acc_ty);
            dense(cx, sizes, *n_in, *n_out, &spec)?
        }
        QOp::Conv {
            window,
            out_channels,
            weights,
            w_ty,
            bias,
            b_ty,
            acc_ty,
        } => {
            let spec = cx.mac_spec(weights, *w_ty, bias, *b_ty, *acc_ty);
            conv(cx, sizes, window, *out_channels, &spec)?
        }
        QOp::Scale {
            scale,
            s_ty,
            shift,
            b_ty,
            acc_ty,
        } => affine(cx, scale, *s_ty, shift, *b_ty, *acc_ty)?,
        QOp::Relu => Kernel::Relu(Rq::from_type(in_ty, out_ty)),
        QOp::Clip { lo, hi } => Kernel::Clip(*lo, *hi, Rq::from_type(in_ty, out_ty)),
        QOp::ThresholdedRelu { theta } => Kernel::Thresh(*theta, Rq::from_type(in_ty, out_ty)),
        QOp::Requant => Kernel::Requant(Rq::from_type(in_ty, out_ty)),
        QOp::LeakyRelu { alpha, a_ty } => leaky(vec![*alpha; cx.out_len], *a_ty, in_ty, out_ty),
        QOp::PRelu { alpha, a_ty } => {
            if alpha.len() != cx.out_len {
                return Err(cx.fail(LayerProblem::PreluSlopes));
            }
            leaky(alpha.clone(), *a_ty, in_ty, out_ty)
        }
        QOp::Table { table, .. } => {
            if table.values.is_empty() {
                return Err(cx.fail(LayerProblem::EmptyTable));
            }
            Kernel::Table(table.clone())
        }
        QOp::Step { thresholds, values } => {
            let sets = step_sets(thresholds, values);
            if sets == 0
                || !thresholds.len().is_multiple_of(sets)
                || !cx.out_len.is_multiple_of(sets)
            {
                return Err(cx.fail(LayerProblem::StepValues));
            }
            Kernel::Step {
                th: thresholds.clone(),
                vals: values.clone(),
                k: thresholds.len() / sets,
            }
        }
        QOp::Softmax {
            n,
            exp_ty,
            exp_table,
            inv_ty,
            inv_table,
        } => softmax(cx, sizes, *n, (*exp_ty, exp_table), (*inv_ty, inv_table))?,
        QOp::Argmax { n } => {
            if *n == 0 {
                return Err(cx.fail(LayerProblem::ArgmaxZero));
            }
            Kernel::Argmax {
                n: *n,
                one: out_ty.quantize_raw(1, 0),
            }
        }
        QOp::Pool {
            kind,
            window,
            recip,
            recip_ty,
        } => pool(cx, *kind, window, recip, *recip_ty)?,
        QOp::Add | QOp::Sub | QOp::Mul | QOp::Max | QOp::Min => {
            let tb = cx.model.ty(cx.input(1)?);
            let op = cx.layer.op.binary().expect("a binary op");
            let (fa, fb) = (in_ty.frac_bits(), tb.frac_bits());
            // Every op here is monotone or bilinear: its exact results lie
            // between those at the corners of the operands' ranges.
            let corners: Vec<i128> = [in_ty.min_raw(), in_ty.max_raw()]
                .iter()
                .flat_map(|&a| [tb.min_raw(), tb.max_raw()].map(|b| op.exact(a, fa, b, fb)))
                .collect();
            let (lo, hi) = (corners.iter().min(), corners.iter().max());
            Kernel::Binary {
                op,
                fa,
                fb,
                rq: Rq::new(
                    op.frac(fa, fb),
                    out_ty,
                    *lo.expect("four corners"),
                    *hi.expect("four corners"),
                ),
            }
        }
        QOp::Route { src } => route(cx, src)?,
    })
}

fn dense(
    cx: &LayerCx,
    sizes: &mut Sizes,
    n_in: usize,
    n_out: usize,
    spec: &MacSpec,
) -> Result<Kernel, PlanError> {
    if spec.weights.len() != n_in * n_out
        || spec.bias.len() != n_out
        || cx.in_len != n_in
        || cx.out_len != n_out
    {
        return Err(cx.fail(LayerProblem::Sizes("Dense")));
    }
    sizes.dot = sizes.dot.max(n_out.div_ceil(16) * 16);
    sizes.xpack = sizes.xpack.max(xpack_len(n_in));
    sizes.acc = sizes.acc.max(n_out);
    let mac = compile_mac(cx.isa, spec, n_in, n_out, 1, Vec::new());
    Ok(Kernel::Mac(Box::new(mac)))
}

/// Conv: one MAC kernel per channel group, each over its group's gather and
/// writing its own block of output channels (the output is channel-major).
fn conv(
    cx: &LayerCx,
    sizes: &mut Sizes,
    window: &Window,
    out_channels: usize,
    spec: &MacSpec,
) -> Result<Kernel, PlanError> {
    let groups = window.groups;
    let n_in = window.group_channels() * window.kernel_size();
    let positions = window.out_positions();
    if groups == 0
        || !out_channels.is_multiple_of(groups)
        || spec.weights.len() != n_in * out_channels
        || spec.bias.len() != out_channels
        || cx.in_len != window.in_channels * window.in_positions()
        || cx.out_len != out_channels * positions
    {
        return Err(cx.fail(LayerProblem::Sizes("Conv")));
    }
    let ocg = out_channels / groups;
    sizes.dot = sizes.dot.max(ocg.div_ceil(16) * 16);
    sizes.xpack = sizes.xpack.max(xpack_len(n_in));
    sizes.col = sizes.col.max(n_in);
    sizes.acc = sizes.acc.max(ocg);
    let macs = (0..groups)
        .map(|g| {
            let group = MacSpec {
                weights: &spec.weights[g * ocg * n_in..(g + 1) * ocg * n_in],
                bias: &spec.bias[g * ocg..(g + 1) * ocg],
                ..*spec
            };
            compile_mac(cx.isa, &group, n_in, ocg, positions, conv_gather(window, g))
        })
        .collect();
    Ok(Kernel::Conv(macs))
}

/// Scale: a one-term MAC per element (`x * scale + shift`).
fn affine(
    cx: &LayerCx,
    scale: &[i64],
    s_ty: FixedType,
    shift: &[i64],
    b_ty: FixedType,
    acc_ty: FixedType,
) -> Result<Kernel, PlanError> {
    let n = cx.out_len;
    if scale.len() != n || shift.len() != n || cx.in_len != n {
        return Err(cx.fail(LayerProblem::Sizes("Scale")));
    }
    let layout = MacLayout::new(cx.in_ty, s_ty, b_ty, acc_ty);
    Ok(Kernel::Scale {
        scale: scale.to_vec(),
        shift_al: shift.iter().map(|&b| layout.bias(b)).collect(),
        layout,
        acc_ty,
        out_ty: cx.out_ty,
    })
}

/// LeakyRelu and PRelu: the negative side's exact product `x * alpha`,
/// requantized on i64 when its range allows.
fn leaky(alpha: Vec<i64>, a_ty: FixedType, in_ty: FixedType, out_ty: FixedType) -> Kernel {
    let pf = in_ty.frac_bits() + a_ty.frac_bits();
    let (amin, amax) = alpha.iter().fold((0i128, 0i128), |(a, b), &v| {
        (a.min(v as i128), b.max(v as i128))
    });
    let xlo = in_ty.min_raw().min(0) as i128;
    let cands = [xlo * amin, xlo * amax, 0];
    let (plo, phi) = (*cands.iter().min().unwrap(), *cands.iter().max().unwrap());
    let lim = 1i128 << 62;
    let neg_wide = plo < -lim || phi > lim;
    let neg = if neg_wide {
        Rq::Slow {
            ty: out_ty,
            from: pf,
        }
    } else {
        Rq::new(pf, out_ty, plo, phi)
    };
    Kernel::Leaky {
        alpha,
        pos: Rq::from_type(in_ty, out_ty),
        neg,
        neg_wide,
    }
}

fn softmax(
    cx: &LayerCx,
    sizes: &mut Sizes,
    n: usize,
    (exp_ty, exp_table): (FixedType, &Table),
    (inv_ty, inv_table): (FixedType, &Table),
) -> Result<Kernel, PlanError> {
    if n == 0 || exp_table.values.is_empty() || inv_table.values.is_empty() {
        return Err(cx.fail(LayerProblem::Softmax));
    }
    sizes.acc = sizes.acc.max(n);
    let pf = exp_ty.frac_bits() + inv_ty.frac_bits();
    Ok(Kernel::Softmax {
        n,
        exp_table: exp_table.clone(),
        inv_table: inv_table.clone(),
        pf,
        out_ty: cx.out_ty,
        fast: softmax_fast(cx.in_ty, n, exp_table, inv_table, pf, cx.out_ty),
    })
}

fn pool(
    cx: &LayerCx,
    kind: PoolKind,
    window: &Window,
    recip: &[i64],
    recip_ty: FixedType,
) -> Result<Kernel, PlanError> {
    let ksz = window.kernel_size();
    let outp = window.out_positions();
    let mut taps = Vec::with_capacity(outp * ksz);
    for p in 0..outp {
        for k in 0..ksz {
            taps.push(window.tap(p, k).map(|q| q as u32).unwrap_or(PAD));
        }
    }
    if kind == PoolKind::Average && recip.len() <= ksz {
        return Err(cx.fail(LayerProblem::PoolReciprocals));
    }
    Ok(Kernel::Pool {
        max: kind == PoolKind::Max,
        channels: window.in_channels,
        in_pos: window.in_positions(),
        ksz,
        taps,
        recip: recip.to_vec(),
        frac: match kind {
            PoolKind::Max => cx.in_ty.frac_bits(),
            PoolKind::Average => cx.in_ty.frac_bits() + recip_ty.frac_bits(),
        },
        out_ty: cx.out_ty,
    })
}

fn route(cx: &LayerCx, src: &[(u16, u32)]) -> Result<Kernel, PlanError> {
    let same = cx.layer.inputs.iter().all(|&t| cx.model.ty(t) == cx.out_ty);
    let rq = (!same).then(|| {
        cx.layer
            .inputs
            .iter()
            .map(|&t| Rq::from_type(cx.model.ty(t), cx.out_ty))
            .collect()
    });
    for &(k, j) in src.iter().filter(|s| s.0 != ROUTE_ZERO) {
        let t = cx.input(k as usize)?;
        if j as usize >= cx.lens[t] {
            return Err(cx.fail(LayerProblem::RoutePastTensor(t)));
        }
    }
    Ok(Kernel::Route {
        src: src.to_vec(),
        rq,
    })
}

/// A step's kernel as reports show it (before fusion).
fn describe_kernel(isa: Isa, s: &Step) -> String {
    match &s.kernel {
        Kernel::Mac(m) => describe_mac(isa, m),
        Kernel::Conv(groups) => groups
            .first()
            .map_or("empty".into(), |m| describe_mac(isa, m)),
        _ => "scalar".into(),
    }
}

/// The operands of a step's SIMD dot product, if it has one.
fn step_operand(s: &Step) -> Option<Operand> {
    let m = match &s.kernel {
        Kernel::Mac(m) => m,
        Kernel::Conv(groups) => groups.first()?,
        _ => return None,
    };
    match &m.path {
        MacPath::Fast { k, .. } => Some(k.operand),
        MacPath::General { .. } => None,
    }
}

/// A MAC kernel's path as reports show it.
fn describe_mac(isa: Isa, m: &Mac) -> String {
    match &m.path {
        MacPath::Fast { k, .. } => format!(
            "{} {}",
            isa,
            match k.operand {
                Operand::I32 => "i32",
                Operand::I16 => "i16xi16",
                Operand::U8 => "u8xi8",
            }
        ),
        MacPath::General { .. } => "general i128".into(),
    }
}
