#!/usr/bin/env python3
"""Reference fixed-point emulation of the dense jet models (not bxflow).

An independent numpy emulation, to know what to expect of bxflow's fixed
point on the real test split before its CLI exists. It reads the ONNX weights
of jet_tagger.onnx / jet_autoencoder.onnx (Gemm + Relu chains) and evaluates
them with every tensor (input, weights, biases, each layer's output) rounded
to nearest and saturated to a signed fixed-point type <W, I> (W total bits,
I integer bits incl. sign). Accumulation is exact (wide accumulator); the
final Softmax is taken in float on the quantized logits (it does not change
the arg-max). Two schemes:

  uniform <W,I>: one type for everything: <16,6>, <10,4>, <8,3>, <6,2>;
  auto W:        per tensor, I = smallest integer bits that hold the largest
                 magnitude seen on calib_features.npy (weights: their own max).

Writes fixed_point_emulation.json. Usage: python fixed_point_emulation.py
"""
import json
import math
import os

import numpy as np
import onnx
from onnx import numpy_helper

import evaluate

HERE = os.path.dirname(os.path.abspath(__file__))
UNIFORM = [(16, 6), (10, 4), (8, 3), (6, 2)]
AUTO_WIDTHS = [16, 10, 8, 6]


def q(x, w, i):
    step = 2.0 ** (i - w)
    lo, hi = -(2.0 ** (i - 1)), 2.0 ** (i - 1) - step
    return np.clip(np.round(x / step) * step, lo, hi)


def int_bits(maxabs):
    return max(1, int(math.floor(math.log2(maxabs))) + 2) if maxabs > 0 else 1


def load_dense(path):
    m = onnx.load(path)
    init = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    layers = []
    for n in m.graph.node:
        if n.op_type == "Gemm":
            layers.append((init[n.input[1]].astype(np.float64), init[n.input[2]].astype(np.float64)))
    return layers


def forward(layers, x, types):
    """types: list of (W, I) for input, then per layer (weight, bias, output)."""
    it = iter(types)
    h = q(x, *next(it))
    for k, (w, b) in enumerate(layers):
        tw, tb, to = next(it), next(it), next(it)
        h = h @ q(w, *tw) + q(b, *tb)
        if k < len(layers) - 1:
            h = np.maximum(h, 0)
        h = q(h, *to)
    return h


def auto_types(layers, calib, width):
    types = [(width, int_bits(np.abs(calib).max()))]
    h = calib.astype(np.float64)
    for k, (w, b) in enumerate(layers):
        h = h @ w + b
        if k < len(layers) - 1:
            h = np.maximum(h, 0)
        types += [(width, int_bits(np.abs(w).max())), (width, int_bits(np.abs(b).max())),
                  (width, int_bits(np.abs(h).max()))]
    return types


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def main():
    x = np.load(os.path.join(HERE, "test_features.npy")).astype(np.float64)
    y = np.load(os.path.join(HERE, "test_labels.npy"))
    calib = np.load(os.path.join(HERE, "calib_features.npy")).astype(np.float64)
    out = {}
    for name, kind in (("tagger", "tagger"), ("autoencoder", "autoencoder")):
        layers = load_dense(os.path.join(HERE, f"jet_{name}.onnx"))
        ref = np.load(os.path.join(HERE, f"test_pred_{name}_float.npy"))
        key = "accuracy" if kind == "tagger" else "auc_all"
        res = {"float": evaluate.score(kind, ref, y, x)[key]}
        configs = [(f"<{w},{i}>", [(w, i)] * (1 + 3 * len(layers))) for w, i in UNIFORM]
        configs += [(f"auto{w}", auto_types(layers, calib, w)) for w in AUTO_WIDTHS]
        for label, types in configs:
            h = forward(layers, x, types)
            pred = softmax(h) if kind == "tagger" else h
            m = evaluate.score(kind, pred, y, x)
            res[label] = m[key]
            if kind == "tagger":
                res[label + "_argmax_agreement"] = float((pred.argmax(1) == ref.argmax(1)).mean())
            print(f"{name:12s} {label:8s} {key} {m[key]:.4f} (float {res['float']:.4f})", flush=True)
        out[name] = res
    with open(os.path.join(HERE, "fixed_point_emulation.json"), "w") as fh:
        json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
