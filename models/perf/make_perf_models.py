"""Writes the two convolutional models the README's quantization timings use
(random weights, seed 0; no training, nothing shipped):

- res9m.onnx: a residual block on a 14x49x49 input (two 3x3 convolutions,
  a skip Add, a Dense to 10 outputs): 8.8 M MACs per event;
- conv1m.onnx: two convolutions on an 8x24x24 input and two Dense layers
  to a 5-class softmax: 1.03 M MACs per event.

Usage: python make_perf_models.py OUTDIR   (needs numpy and onnx)
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

out = sys.argv[1] if len(sys.argv) > 1 else "."
rng = np.random.default_rng(0)


def w(name, shape, s=0.1):
    return nh.from_array((rng.standard_normal(shape) * s).astype(np.float32), name)


def save(name, nodes, inits, x_shape, y):
    g = h.make_graph(
        nodes,
        name,
        [h.make_tensor_value_info("x", T.FLOAT, ["N", *x_shape])],
        [h.make_tensor_value_info(y, T.FLOAT, None)],
        inits,
    )
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 13)]), f"{out}/{name}.onnx")


save(
    "res9m",
    [
        h.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        h.make_node("Relu", ["c1"], ["r1"]),
        h.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        h.make_node("Add", ["c2", "x"], ["s"]),
        h.make_node("Relu", ["s"], ["r2"]),
        h.make_node("Flatten", ["r2"], ["f"]),
        h.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1),
    ],
    [w("w1", [14, 14, 3, 3]), w("b1", [14]), w("w2", [14, 14, 3, 3]), w("b2", [14]),
     w("w3", [10, 14 * 49 * 49], 0.01), w("b3", [10])],
    [14, 49, 49],
    "y",
)
save(
    "conv1m",
    [
        h.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        h.make_node("Relu", ["c1"], ["r1"]),
        h.make_node("Conv", ["r1", "w2", "b2"], ["c2"]),
        h.make_node("Relu", ["c2"], ["r2"]),
        h.make_node("Flatten", ["r2"], ["f"]),
        h.make_node("Gemm", ["f", "w3", "b3"], ["h"], transB=1),
        h.make_node("Relu", ["h"], ["hr"]),
        h.make_node("Gemm", ["hr", "w4", "b4"], ["y"], transB=1),
        h.make_node("Softmax", ["y"], ["p"], axis=1),
    ],
    [w("w1", [16, 8, 3, 3]), w("b1", [16]), w("w2", [8, 16, 1, 1]), w("b2", [8]),
     w("w3", [64, 8 * 24 * 24], 0.02), w("b3", [64]), w("w4", [5, 64]), w("b4", [5])],
    [8, 24, 24],
    "p",
)
