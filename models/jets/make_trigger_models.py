#!/usr/bin/env python3
"""Trigger models built from the committed jet models (issue 12).

Anomaly-detection trigger: reads `jet_autoencoder.onnx` and writes
`jet_anomaly_trigger.onnx`, the autoencoder followed by

    score = ReduceMean((reconstruction - input)^2, axes=[1], keepdims=1)   [N,1]
    bit   = Cast(Greater(score, threshold), float)                          [N,1]
    score_and_trigger = Concat([score, bit], axis=1)                        [N,2]

(one graph input `input` [N,16], one graph output `score_and_trigger`).
Background is QCD (q and g, labels 0 and 1), signal W, Z and t. The threshold
is chosen from the float score on the test split so that a stated fraction of
the q+g test jets pass (`--bkg-acceptance`, default 1 %): it lies halfway
between the two QCD scores around that quantile.

The float metrics (onnxruntime on the written graph) go to
`trigger_metrics.json`. Fixed-point outputs of the same graph (e.g. from
`bxflow eval`) are scored beside them with `--fixed NAME=PATH.npy`
(repeatable): AUC and signal efficiency at the float threshold as the
trigger bit of the fixed-point model fires, plus the agreement of the bit
with float.

Usage (from models/jets, numpy + onnx + onnxruntime):
  python make_trigger_models.py                        # writes the ONNX and the float metrics
  python make_trigger_models.py --fixed 'fixed<16,6>=/tmp/a.npy'   # adds fixed-point rows
"""
import argparse
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper

from evaluate import roc

HERE = os.path.dirname(os.path.abspath(__file__))
CLASSES = ["q", "g", "W", "Z", "t"]
METRICS = os.path.join(HERE, "trigger_metrics.json")


def ort_run(path, x):
    import onnxruntime as ort

    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0]


def make_anomaly_trigger(ae_path, out_path, threshold):
    m = onnx.load(ae_path)
    g = m.graph
    assert len(g.input) == 1 and len(g.output) == 1, "one input and one output expected"
    x = g.input[0].name
    rec = g.output[0].name
    del g.output[:]
    thr = helper.make_tensor("threshold", TensorProto.FLOAT, [], [float(threshold)])
    g.initializer.append(thr)
    g.node.extend([
        helper.make_node("Sub", [rec, x], ["diff"], name="diff"),
        helper.make_node("Mul", ["diff", "diff"], ["sq"], name="sq"),
        helper.make_node("ReduceMean", ["sq"], ["score"], name="score", axes=[1], keepdims=1),
        helper.make_node("Greater", ["score", "threshold"], ["pass"], name="pass"),
        helper.make_node("Cast", ["pass"], ["bit"], name="bit", to=TensorProto.FLOAT),
        helper.make_node("Concat", ["score", "bit"], ["score_and_trigger"], name="concat", axis=1),
    ])
    g.output.append(helper.make_tensor_value_info("score_and_trigger", TensorProto.FLOAT, ["N", 2]))
    g.name = "jet_anomaly_trigger"
    m.doc_string = (
        "jet_autoencoder + anomaly score (mean squared reconstruction error over the 16 "
        f"standardized features) and a trigger bit score > {threshold:.6g}; output "
        "[score, bit]. Written by make_trigger_models.py.")
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, out_path)


def trigger_metrics(score, bit, labels, threshold=None):
    """AUC (signal W/Z/t vs QCD) of the score, and the trigger bit's rates."""
    qcd = labels <= 1
    out = {"auc_all": roc(score[qcd], score[~qcd])[2],
           "auc": {CLASSES[c]: roc(score[qcd], score[labels == c])[2] for c in (2, 3, 4)},
           "bkg_acceptance": float(bit[qcd].mean()),
           "sig_efficiency": float(bit[~qcd].mean()),
           "sig_efficiency_per_class": {CLASSES[c]: float(bit[labels == c].mean()) for c in (2, 3, 4)}}
    if threshold is not None:
        out["threshold"] = float(threshold)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bkg-acceptance", type=float, default=0.01,
                    help="fraction of q+g test jets that pass (default 0.01)")
    ap.add_argument("--fixed", action="append", default=[], metavar="NAME=PATH",
                    help="score a fixed-point [N,2] output of jet_anomaly_trigger beside float")
    args = ap.parse_args()

    X = np.load(os.path.join(HERE, "test_features.npy"))
    y = np.load(os.path.join(HERE, "test_labels.npy")).astype(np.int64)
    qcd = y <= 1
    trig = os.path.join(HERE, "jet_anomaly_trigger.onnx")

    if not args.fixed:
        ae = os.path.join(HERE, "jet_autoencoder.onnx")
        rec = ort_run(ae, X).astype(np.float64)
        score = np.mean((rec - X) ** 2, axis=1)
        s = np.sort(score[qcd])[::-1]
        k = int(round(args.bkg_acceptance * len(s)))  # jets that pass
        thr = float(np.float32(0.5 * (s[k - 1] + s[k])))
        make_anomaly_trigger(ae, trig, thr)
        out = ort_run(trig, X).astype(np.float64)
        assert out.shape == (len(X), 2), out.shape
        assert np.abs(out[:, 0] - score).max() < 1e-4, "graph score differs from numpy"
        m = trigger_metrics(out[:, 0], out[:, 1], y, thr)
        res = {"anomaly_trigger": {
            "model": "jet_anomaly_trigger.onnx",
            "background": "q+g (labels 0,1), 8,000 test jets",
            "signal": "W+Z+t (labels 2,3,4), 12,000 test jets",
            "target_bkg_acceptance": args.bkg_acceptance,
            "float": m}}
        with open(METRICS, "w") as fh:
            json.dump(res, fh, indent=1)
        print(f"threshold {thr:.6g}: float AUC {m['auc_all']:.4f}, bkg acceptance "
              f"{m['bkg_acceptance']:.4%}, signal efficiency {m['sig_efficiency']:.4%}")
        return

    with open(METRICS) as fh:
        res = json.load(fh)
    ref = ort_run(trig, X).astype(np.float64)
    thr = res["anomaly_trigger"]["float"]["threshold"]
    fixed = res["anomaly_trigger"].setdefault("fixed", {})
    for spec in args.fixed:
        name, path = spec.split("=", 1)
        p = np.load(path).astype(np.float64).reshape(len(X), 2)
        m = trigger_metrics(p[:, 0], p[:, 1], y)
        m["bit_agreement_with_float"] = float((p[:, 1] == ref[:, 1]).mean())
        m["bit_matches_own_score"] = bool(((p[:, 0] > thr) == (p[:, 1] > 0.5)).all())
        m["score_max_abs_diff"] = float(np.abs(p[:, 0] - ref[:, 0]).max())
        m["score_max_abs_diff_qcd"] = float(np.abs(p[qcd, 0] - ref[qcd, 0]).max())
        fixed[name] = m
        print(f"{name}: AUC {m['auc_all']:.4f}, bkg acceptance {m['bkg_acceptance']:.4%}, "
              f"signal efficiency {m['sig_efficiency']:.4%}, bit agreement "
              f"{m['bit_agreement_with_float']:.4%}, max |score - float| {m['score_max_abs_diff']:.4g} "
              f"(QCD {m['score_max_abs_diff_qcd']:.4g})")
    with open(METRICS, "w") as fh:
        json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
