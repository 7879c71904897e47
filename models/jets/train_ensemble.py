#!/usr/bin/env python3
"""Deep ensemble of jet taggers in one ONNX graph (issue 12).

Trains five `jet_tagger`-architecture MLPs (16 -> 64 -> 32 -> 32 -> 5, ReLU,
softmax; train.py's initialization, loss and Adam) that differ only in their
seed, and writes `jet_ensemble.onnx`: the five members side by side on the one
input, then

    mean = Mean(p_1..p_5)                                   [N,5]
    std  = Sqrt(Relu(Mean(p_1^2..p_5^2) - mean^2))          [N,5]
    probs_and_std = Concat([mean, std], axis=1)             [N,10]

(one graph input `input` [N,16], one output; the Relu keeps rounding from
taking a square root of a negative number).

Training data: the committed training split is not in git (data/, ~33 min of
Pythia to regenerate), so the members train on a fresh, independent sample
from generate.py with another seed (--data, one or more directories of
raw_*.npz), preprocessed with the committed standardization.json (the same
transform as the test split). The committed test split is only scored.

Scoring (float with onnxruntime, and any fixed-point output with --fixed):
accuracy of the mean, the members' accuracies, per-class AUC, and the
calibration of the spread: jets binned by the std of their predicted class,
error rate per bin (a useful spread rises with the error rate). Results go to
trigger_metrics.json under "deep_ensemble".

Usage (from models/jets; requirements.txt environment):
  python generate.py --n-per-class 3000 --seed 12 --out /tmp/ens/data
  python train_ensemble.py --data /tmp/ens/data
  python train_ensemble.py --fixed 'fixed<16,6>=/tmp/e.npy'
"""
import argparse
import glob
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
METRICS = os.path.join(HERE, "trigger_metrics.json")
CLASSES = ["q", "g", "W", "Z", "t"]
N_BINS = 5


def load_training(dirs):
    std = json.load(open(os.path.join(HERE, "standardization.json")))
    X, y = [], []
    for d in dirs:
        for f in sorted(glob.glob(os.path.join(d, "raw_*.npz"))):
            z = np.load(f)
            names = [str(n) for n in z["feature_names"]]
            x = z["features"].astype(np.float64)
            for name in std["log_features"]:
                i = names.index(name)
                x[:, i] = np.log(np.maximum(x[:, i], 1e-3))
            X.append(x)
            y.append(z["label"])
    X = np.concatenate(X)
    y = np.concatenate(y).astype(np.int64)
    Xs = ((X - np.array(std["mean"])) / np.array(std["std"])).astype(np.float32)
    perm = np.random.default_rng(0).permutation(len(y))
    return Xs[perm], y[perm]


def export_ensemble(members, path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits, probs = [], [], []
    for m, params in enumerate(members):
        x = "input"
        for i, (w, b) in enumerate(params):
            inits += [numpy_helper.from_array(np.asarray(w, np.float32), f"m{m}_W{i}"),
                      numpy_helper.from_array(np.asarray(b, np.float32), f"m{m}_B{i}")]
            nodes.append(helper.make_node("Gemm", [x, f"m{m}_W{i}", f"m{m}_B{i}"],
                                          [f"m{m}_gemm{i}"], name=f"m{m}_dense{i}"))
            x = f"m{m}_gemm{i}"
            if i < len(params) - 1:
                nodes.append(helper.make_node("Relu", [x], [f"m{m}_relu{i}"], name=f"m{m}_relu{i}"))
                x = f"m{m}_relu{i}"
        nodes.append(helper.make_node("Softmax", [x], [f"p{m}"], axis=1, name=f"m{m}_softmax"))
        nodes.append(helper.make_node("Mul", [f"p{m}", f"p{m}"], [f"p{m}_sq"], name=f"m{m}_sq"))
        probs.append(f"p{m}")
    nodes += [
        helper.make_node("Mean", probs, ["mean"], name="mean"),
        helper.make_node("Mean", [p + "_sq" for p in probs], ["mean_sq"], name="mean_sq"),
        helper.make_node("Mul", ["mean", "mean"], ["sq_mean"], name="sq_mean"),
        helper.make_node("Sub", ["mean_sq", "sq_mean"], ["var"], name="var"),
        helper.make_node("Relu", ["var"], ["var_pos"], name="var_pos"),
        helper.make_node("Sqrt", ["var_pos"], ["std"], name="std"),
        helper.make_node("Concat", ["mean", "std"], ["probs_and_std"], axis=1, name="concat"),
    ]
    g = helper.make_graph(
        nodes, "jet_ensemble",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("probs_and_std", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="bxflow models/jets train_ensemble.py")
    model.ir_version = 8
    model.doc_string = (
        f"deep ensemble of {len(members)} jet taggers 16-64-32-32-5 (different seeds); input: 16 "
        "standardized features; output: [mean probabilities q,g,W,Z,t, their std across members]")
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)


def ensemble_metrics(out, labels, members=None):
    from evaluate import roc

    mean, std = out[:, :5], out[:, 5:]
    pred = mean.argmax(axis=1)
    err = pred != labels
    spread = std[np.arange(len(labels)), pred]  # std of the predicted class
    edges = np.quantile(spread, np.linspace(0, 1, N_BINS + 1))
    bins = np.clip(np.searchsorted(edges, spread, side="right") - 1, 0, N_BINS - 1)
    m = {"accuracy": float((~err).mean()),
         "auc": {c: roc(mean[labels != k, k], mean[labels == k, k])[2] for k, c in enumerate(CLASSES)},
         # equal-population bins; empty where many jets share one spread value
         "spread_bins": [{"std_from": float(edges[b]), "std_to": float(edges[b + 1]),
                          "jets": int((bins == b).sum()),
                          "mean_std": float(spread[bins == b].mean()) if (bins == b).any() else None,
                          "error_rate": float(err[bins == b].mean()) if (bins == b).any() else None}
                         for b in range(N_BINS)],
         "mean_std_correct": float(spread[~err].mean()),
         "mean_std_wrong": float(spread[err].mean()),
         # AUC of the spread as a predictor of a wrong arg-max
         "spread_error_auc": roc(spread[~err], spread[err])[2]}
    if members is not None:
        m["member_accuracy"] = [float((p.argmax(axis=1) == labels).mean()) for p in members]
    return m


def ort_run(path, x):
    import onnxruntime as ort

    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return s.run(None, {"input": x})[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="+", help="directories of generate.py's raw_*.npz (training only)")
    ap.add_argument("--seeds", default="1,2,3,4,5")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--fixed", action="append", default=[], metavar="NAME=PATH",
                    help="score a fixed-point [N,10] output of jet_ensemble beside float")
    args = ap.parse_args()
    Xte = np.load(os.path.join(HERE, "test_features.npy"))
    yte = np.load(os.path.join(HERE, "test_labels.npy")).astype(np.int64)
    path = os.path.join(HERE, "jet_ensemble.onnx")
    res = json.load(open(METRICS)) if os.path.exists(METRICS) else {}

    if not args.fixed:
        import jax
        import jax.numpy as jnp
        import train

        Xtr, ytr = load_training(args.data)
        print(f"{len(ytr)} training jets, classes {np.bincount(ytr).tolist()}", flush=True)
        members, training, member_probs = [], [], []
        for s in (int(v) for v in args.seeds.split(",")):
            p = train.dense_init(jax.random.PRNGKey(s), [16, 64, 32, 32, 5])
            p, info = train.adam_train(
                lambda p, x, y: train.xent(train.mlp_logits(p, x), y) + 1e-5 * train.l2(p),
                p, (jnp.asarray(Xtr), jnp.asarray(ytr)), args.epochs, 1e-3, s, name=f"member seed {s}")
            info["seed"] = s
            members.append(p)
            training.append(info)
            member_probs.append(np.asarray(jax.nn.softmax(train.mlp_logits(p, jnp.asarray(Xte)))))
        export_ensemble(members, path)
        out = ort_run(path, Xte).astype(np.float64)
        P = np.stack(member_probs).astype(np.float64)
        ref = np.concatenate([P.mean(0), np.sqrt(np.maximum((P ** 2).mean(0) - P.mean(0) ** 2, 0))], axis=1)
        diff = float(np.abs(out - ref).max())
        print(f"ONNX vs JAX max |diff| {diff:.2e}", flush=True)
        assert diff < 1e-3, diff
        res["deep_ensemble"] = {
            "model": "jet_ensemble.onnx",
            "training": {"data": "fresh generate.py sample (seed 12), standardized with "
                                 "standardization.json; independent of the test split",
                         "n_jets": int(len(ytr)), "epochs_max": args.epochs, "members": training},
            "spread": "std across members of the predicted class's probability; "
                      f"{N_BINS} equal-population bins",
            "float": ensemble_metrics(out, yte, member_probs)}
    else:
        ref = ort_run(path, Xte).astype(np.float64)
        fixed = res["deep_ensemble"].setdefault("fixed", {})
        for spec in args.fixed:
            name, p = spec.split("=", 1)
            out = np.load(p).astype(np.float64).reshape(len(yte), 10)
            m = ensemble_metrics(out, yte)
            m["argmax_agreement_with_float"] = float((out[:, :5].argmax(1) == ref[:, :5].argmax(1)).mean())
            m["mean_max_abs_diff"] = float(np.abs(out[:, :5] - ref[:, :5]).max())
            m["std_max_abs_diff"] = float(np.abs(out[:, 5:] - ref[:, 5:]).max())
            m["std_mean_abs_diff"] = float(np.abs(out[:, 5:] - ref[:, 5:]).mean())
            fixed[name] = m
    with open(METRICS, "w") as fh:
        json.dump(res, fh, indent=1)
    for name, m in [("float", res["deep_ensemble"]["float"])] + list(res["deep_ensemble"].get("fixed", {}).items()):
        bins = ", ".join(f"{b['mean_std']:.3f}:{b['error_rate']:.3f}" for b in m["spread_bins"] if b["jets"])
        print(f"{name}: accuracy {m['accuracy']:.4f}, spread-error AUC {m['spread_error_auc']:.3f}, "
              f"std correct/wrong {m['mean_std_correct']:.4f}/{m['mean_std_wrong']:.4f}, "
              f"bins (std:error) {bins}"
              + (f", members {[round(a, 4) for a in m['member_accuracy']]}" if "member_accuracy" in m else "")
              + (f", max |std - float| {m['std_max_abs_diff']:.4f}" if "std_max_abs_diff" in m else ""))


if __name__ == "__main__":
    main()
