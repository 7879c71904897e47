#!/usr/bin/env python3
"""Adders of bxflow's shift-add network against da4ml's CMVM solver, per
Dense layer of a model, on the same integer matrices (not a CI test).

The matrices and bxflow's counts (each layer built alone as a kernel,
shift-add, its requantizer included) come from the Rust example
`hdl/examples/dense_weights.rs`; da4ml solves each matrix with its default
options (`da4ml.cmvm.solve`), and its count is the adders and subtractors of
the solution (opcodes 0 and 1). da4ml computes the bare product, so
bxflow's count is printed twice: the whole layer (bias and rounding
constants are one more leaf of each output's adder tree), and its planner's
network for the bare matrix, the like-for-like figure.

Run from the repository root:

    python3 -m venv /tmp/da4ml-venv && /tmp/da4ml-venv/bin/pip install da4ml
    /tmp/da4ml-venv/bin/python scripts/da4ml_compare.py models/three_layer_keras.onnx
"""

import json
import subprocess
import sys

import numpy as np
from da4ml.cmvm import solve


def adders(pipeline):
    return sum(1 for sol in pipeline.solutions for op in sol.ops if op.opcode in (0, 1))


def main(model):
    out = subprocess.run(
        ['cargo', 'run', '-q', '--release', '-p', 'bxflow-hdl', '--example', 'dense_weights', '--', model],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    total = [0, 0, 0]
    print(f'{"layer":<48} {"shape":>8} {"bxflow":>7} {"bare":>7} {"da4ml":>7}')
    for line in out.splitlines():
        layer = json.loads(line)
        w = np.array(layer['weights'], dtype=np.float32).reshape(layer['n_out'], layer['n_in'])
        # da4ml computes x @ kernel: one column per output.
        ours, theirs = layer['adders'], adders(solve(np.ascontiguousarray(w.T)))
        bare = layer['bare_adders']
        for i, v in enumerate((ours, bare, theirs)):
            total[i] += v
        print(f'{layer["layer"][:48]:<48} {layer["n_in"]:>3}x{layer["n_out"]:<4} {ours:>7} {bare:>7} {theirs:>7}')
    print(f'{"total":<48} {"":>8} {total[0]:>7} {total[1]:>7} {total[2]:>7}')


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else 'models/three_layer_keras.onnx')
