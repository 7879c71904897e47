#!/usr/bin/env python3
"""Train a small GRU jet tagger on constituent sequences and export it (issue 14).

What: a recurrent tagger over the pT-ordered constituents of a jet, in the
form Keras/tf2onnx exports a GRU, so that bxflow has a real recurrent model
(ONNX `GRU`) to compile:

  input [N, 32, 3]  (test_constituents.npy layout: pT/pT_jet, deta/0.8, dphi/0.8
                     of the leading 32 particles, pT-ordered, zero-padded)
  -> Slice(starts=[0], ends=[T], axes=[1])      leading T constituents (no Slice if T = 32)
  -> Transpose(perm=[1, 0, 2])                  time-major [T, N, 3]
  -> GRU(hidden_size=16, direction="reverse", linear_before_reset=1, layout=0)
                                                output Y_h [1, N, 16] (Y unused)
  -> Squeeze(axes=[0])                          [N, 16]
  -> Gemm(transB=1)                             [N, 5]
  -> Softmax(axis=-1)                           output `probs` [N, 5], q, g, W, Z, t

The JAX cell is exactly the ONNX GRU with linear_before_reset = 1 (the
PyTorch / cuDNN / Keras reset_after=True form; default activations sigmoid
and tanh; gate order z, r, h in W [1,3H,3], R [1,3H,H], B [1,6H] = Wb, Rb):

  z   = sigmoid(x W_z^T + Wb_z + h R_z^T + Rb_z)
  r   = sigmoid(x W_r^T + Wb_r + h R_r^T + Rb_r)
  n   = tanh(x W_h^T + Wb_h + r * (h R_h^T + Rb_h))
  h'  = (1 - z) * n + z * h,             h_0 = 0

Direction "reverse": the cell reads the constituents from the T-th (softest)
to the first (hardest), like the reverse LSTMs of CMS's DeepJet, so the zero
padding is read first, before any real particle (forward, the state would run
on over the padding after the particles), and the final state Y_h has just
seen the leading particles, which carry most of the information.

Why: the committed training split is not in git, so, as train_ensemble.py
does, training uses a fresh independent generate.py sample (seed 12, never the
test split's seeds), whose constituents are already in the test split's
preprocessing (generate.py writes them so; train.py only casts to float32).
Training reuses train.py's Adam (adam_train: cosine decay, the parameters
with the lowest validation loss kept, early stop after 40 epochs without
improvement, 10 % validation split by seed),
cross entropy and L2; the graph is written with the onnx helper API (opset
14, IR 8), checked against the JAX forward pass with onnxruntime and with
onnx's reference evaluator on the test split, and scored with evaluate.py
into float_metrics.json ("gru") and test_pred_gru_float.npy. The test split
is used only for these final checks and scores, never for training or the
choice of T: `--val-only` trains and prints the validation accuracy without
reading the test split or writing anything.

Usage (from models/jets; requirements.txt environment; the same sample as
train_ensemble.py's, generated in two processes, ~17 min):
  python generate.py --n-per-class 3000 --seed 12 --out /tmp/ens/data1 --classes g,t &
  python generate.py --n-per-class 3000 --seed 12 --out /tmp/ens/data2 --classes q,W,Z
  # choice of T on the validation split only (repeated for T = 32, 20, 16, seeds 14-18)
  python train_gru.py --data /tmp/ens/data1 /tmp/ens/data2 --steps 32 --seed 14 --val-only
  # the committed model (defaults: T = 16, seed 14, lr 1e-2, batch 256, <= 200 epochs)
  python train_gru.py --data /tmp/ens/data1 /tmp/ens/data2 --steps 16

Timing (2-core Xeon shared with Rust builds, `nice`, one XLA thread as in
train.py): the committed model trains in 28 s (early stop at epoch 104) and
the whole script runs in 33 s; a --val-only run takes 24-59 s.
"""
import argparse
import glob
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

# train.py sets the single-thread CPU XLA flags before it imports jax
from train import adam_train, f32, l2, xent  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import evaluate  # noqa: E402
from train_ensemble import ort_run  # noqa: E402

OPSET = 14
HIDDEN = 16
N_CONST = 32
METRICS = os.path.join(HERE, "float_metrics.json")


# --------------------------------------------------------------------------- data
def load_constituents(dirs):
    """Constituents [N, 32, 3] float32 and labels of generate.py's raw_*.npz,
    shuffled with a fixed seed (the same order as train_ensemble.load_training)."""
    C, y = [], []
    for d in dirs:
        for f in sorted(glob.glob(os.path.join(d, "raw_*.npz"))):
            z = np.load(f)
            C.append(z["constituents"].astype(np.float32))
            y.append(z["label"])
    C = np.concatenate(C)
    y = np.concatenate(y).astype(np.int64)
    assert C.shape[1:] == (N_CONST, 3), C.shape
    perm = np.random.default_rng(0).permutation(len(y))
    return C[perm], y[perm]


# --------------------------------------------------------------------------- model
def gru_init(key, n_in=3, h=HIDDEN, n_out=5):
    """Keras-like: Glorot-uniform input kernel, orthogonal recurrent kernel
    (per gate), zero biases. Shapes as in ONNX with the direction axis dropped."""
    k = jax.random.split(key, 5)
    lim_w = np.sqrt(6.0 / (n_in + h))
    orth = jax.nn.initializers.orthogonal()
    lim_d = np.sqrt(6.0 / (h + n_out))
    return {
        "W": jax.random.uniform(k[0], (3 * h, n_in), minval=-lim_w, maxval=lim_w),  # z, r, h
        "R": jnp.concatenate([orth(k[1], (h, h)), orth(k[2], (h, h)), orth(k[3], (h, h))]),
        "B": jnp.zeros(6 * h),                                                     # Wb, Rb
        "Dw": jax.random.uniform(k[4], (n_out, h), minval=-lim_d, maxval=lim_d),  # Gemm transB=1
        "Db": jnp.zeros(n_out),
    }


def gru_final_state(p, x):
    """ONNX GRU, linear_before_reset=1, direction reverse; x [N, T, 3] -> Y_h [N, H]."""
    h = p["R"].shape[1]
    wb, rb = p["B"][:3 * h], p["B"][3 * h:]
    xs = jnp.transpose(x, (1, 0, 2))[::-1]           # time-major, last step first
    xw = jnp.einsum("tni,gi->tng", xs, p["W"]) + wb  # input part of all gates

    def cell(ht, xw_t):
        hr = ht @ p["R"].T + rb
        z = jax.nn.sigmoid(xw_t[:, :h] + hr[:, :h])
        r = jax.nn.sigmoid(xw_t[:, h:2 * h] + hr[:, h:2 * h])
        n = jnp.tanh(xw_t[:, 2 * h:] + r * hr[:, 2 * h:])
        ht = (1.0 - z) * n + z * ht
        return ht, None

    h0 = jnp.zeros((x.shape[0], h), x.dtype)
    return jax.lax.scan(cell, h0, xw)[0]


def gru_logits(p, x):
    return gru_final_state(p, x) @ p["Dw"].T + p["Db"]


def n_params(p):
    return int(sum(np.size(v) for v in p.values()))


# --------------------------------------------------------------------------- ONNX
def export_gru(p, steps, path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    h = int(p["R"].shape[1])
    inits = [
        numpy_helper.from_array(f32(p["W"])[None], "gru_W"),   # [1, 3H, 3]
        numpy_helper.from_array(f32(p["R"])[None], "gru_R"),   # [1, 3H, H]
        numpy_helper.from_array(f32(p["B"])[None], "gru_B"),   # [1, 6H]
        numpy_helper.from_array(np.array([0], np.int64), "squeeze_axes"),
        numpy_helper.from_array(f32(p["Dw"]), "dense_W"),      # [5, H], transB=1
        numpy_helper.from_array(f32(p["Db"]), "dense_B"),
    ]
    nodes = []
    x = "input"
    if steps < N_CONST:
        inits += [numpy_helper.from_array(np.array([0], np.int64), "slice_starts"),
                  numpy_helper.from_array(np.array([steps], np.int64), "slice_ends"),
                  numpy_helper.from_array(np.array([1], np.int64), "slice_axes")]
        nodes.append(helper.make_node("Slice", [x, "slice_starts", "slice_ends", "slice_axes"],
                                      ["leading"], name="leading_constituents"))
        x = "leading"
    nodes += [
        helper.make_node("Transpose", [x], ["time_major"], perm=[1, 0, 2], name="to_time_major"),
        helper.make_node("GRU", ["time_major", "gru_W", "gru_R", "gru_B"], ["", "gru_Y_h"],
                         name="gru", hidden_size=h, direction="reverse", linear_before_reset=1),
        helper.make_node("Squeeze", ["gru_Y_h", "squeeze_axes"], ["hidden"], name="squeeze"),
        helper.make_node("Gemm", ["hidden", "dense_W", "dense_B"], ["logits"], transB=1,
                         name="dense"),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1, name="softmax"),
    ]
    g = helper.make_graph(
        nodes, "jet_gru",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", N_CONST, 3])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 5])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="bxflow models/jets train_gru.py")
    model.ir_version = 8
    model.doc_string = (
        f"bxflow jet GRU tagger: leading {steps} of 32 constituents (pT/pT_jet, deta/0.8, "
        f"dphi/0.8), GRU hidden {h}, direction reverse (softest to hardest), "
        "linear_before_reset=1, final state -> dense -> softmax; output: probabilities q,g,W,Z,t")
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return model


# --------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="+", required=True,
                    help="directories of generate.py's raw_*.npz (training only)")
    ap.add_argument("--steps", type=int, default=16, help="leading constituents read (<= 32)")
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--l2", type=float, default=1e-5)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--patience", type=int, default=40)
    ap.add_argument("--val-only", action="store_true",
                    help="train and print the validation accuracy; no test split, no files")
    args = ap.parse_args()
    assert 1 <= args.steps <= N_CONST

    C, y = load_constituents(args.data)
    C = C[:, :args.steps]
    print(f"{len(y)} training jets, classes {np.bincount(y).tolist()}, T = {args.steps}", flush=True)
    p = gru_init(jax.random.PRNGKey(args.seed))
    lam = args.l2
    t0 = time.time()
    p, info = adam_train(lambda p, c, y: xent(gru_logits(p, c), y) + lam * l2(p),
                         p, (jnp.asarray(C), jnp.asarray(y)), args.epochs, args.lr, args.seed,
                         batch=args.batch, patience=args.patience, name=f"gru T={args.steps}")
    # the validation jets exactly as adam_train drew them (first call of its rng)
    n_val = int(len(y) * 0.1)
    val = np.random.default_rng(args.seed).permutation(len(y))[:n_val]
    val_acc = float((np.asarray(gru_logits(p, jnp.asarray(C[val]))).argmax(1) == y[val]).mean())
    info.update(steps=args.steps, hidden=HIDDEN, parameters=n_params(p), seed=args.seed,
                l2=lam, epochs_max=args.epochs, patience=args.patience, val_accuracy=val_acc,
                direction="reverse", linear_before_reset=1, n_jets=int(len(y)),
                data="fresh generate.py sample (seed 12), independent of the test split")
    print(f"T = {args.steps}: validation accuracy {val_acc:.4f}, best val loss "
          f"{info['best_val_loss']:.4f}, epochs {info['epochs_run']}, {n_params(p)} parameters, "
          f"{time.time() - t0:.0f} s", flush=True)
    if args.val_only:
        return 0

    Cte = np.load(os.path.join(HERE, "test_constituents.npy"))
    yte = np.load(os.path.join(HERE, "test_labels.npy")).astype(np.int64)
    path = os.path.join(HERE, "jet_gru.onnx")
    export_gru(p, args.steps, path)
    ref = np.asarray(jax.nn.softmax(gru_logits(p, jnp.asarray(Cte[:, :args.steps]))))
    onx = ort_run(path, Cte)
    diff = float(np.abs(onx.astype(np.float64) - ref).max())
    from onnx.reference import ReferenceEvaluator
    rev = ReferenceEvaluator(path).run(None, {"input": Cte})[0]
    diff_ref = float(np.abs(rev.astype(np.float64) - ref).max())
    print(f"ONNX (onnxruntime) vs JAX max |diff| {diff:.2e}; "
          f"onnx reference evaluator vs JAX {diff_ref:.2e}", flush=True)
    assert diff < 1e-4 and diff_ref < 1e-4, (diff, diff_ref)
    info["onnx_vs_jax_max_abs_diff"] = {"onnxruntime": diff, "onnx_reference": diff_ref}

    np.save(os.path.join(HERE, "test_pred_gru_float.npy"), onx.astype(np.float32))
    m = evaluate.score("tagger", onx, yte)
    m["training"] = info
    metrics = json.load(open(METRICS))
    metrics["gru"] = m
    with open(METRICS, "w") as fh:
        json.dump(metrics, fh, indent=1)
    print("gru", json.dumps({k: v for k, v in m.items() if k != "training"}), flush=True)
    for name in ("tagger", "conv1d", "gru"):
        print(f"  {name}: accuracy {metrics[name]['accuracy']:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
