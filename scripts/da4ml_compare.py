#!/usr/bin/env python3
"""Adders of bxflow's shift-add network against da4ml's CMVM solver, per
Dense layer of a model, on the same integer matrices (not a CI test).

The matrices and bxflow's counts (each layer built alone as a kernel,
shift-add, its requantizer included) come from the Rust example
`hdl/examples/dense_weights.rs`. da4ml computes the bare product, so
bxflow's count is printed twice: the whole layer (bias and rounding
constants are one more leaf of each output's adder tree), and its planner's
network for the bare matrix with its adder depth (levels from an input to
the deepest output), the like-for-like figures.

da4ml solves each matrix twice (`da4ml.cmvm.solve`): with its default
options, which do not bound the depth, and at its least depth
(`hard_dc=0`), where it is printed for the better of its default heuristic
and its delay-aware one (`method0='mc-pdc'`). Its count is the adders and
subtractors of the solution (opcodes 0 and 1), its depth the latest
operation's latency (one per adder), over both stages of its cascade.

Run from the repository root:

    python3 -m venv /tmp/da4ml-venv && /tmp/da4ml-venv/bin/pip install da4ml
    /tmp/da4ml-venv/bin/python scripts/da4ml_compare.py models/three_layer_keras.onnx
"""

import json
import subprocess
import sys

import numpy as np
from da4ml.cmvm import solve


def network(kernel, **options):
    """(adders, depth) of da4ml's solution for `kernel`."""
    pipeline = solve(kernel, **options)
    ops = [op for sol in pipeline.solutions for op in sol.ops]
    return sum(1 for op in ops if op.opcode in (0, 1)), int(max((op.latency for op in ops), default=0))


def main(model):
    out = subprocess.run(
        ['cargo', 'run', '-q', '--release', '-p', 'bxflow-hdl', '--example', 'dense_weights', '--', model],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    columns = ('bxflow', 'bare', 'da4ml', 'da4ml at least depth')
    total = [0] * len(columns)
    print(f'{"layer":<40} {"shape":>8} {columns[0]:>7} {columns[1]:>12} {columns[2]:>12} {columns[3]:>21}')
    for line in out.splitlines():
        layer = json.loads(line)
        w = np.array(layer['weights'], dtype=np.float32).reshape(layer['n_out'], layer['n_in'])
        # da4ml computes x @ kernel: one column per output.
        kernel = np.ascontiguousarray(w.T)
        default = network(kernel)
        least = min(network(kernel, hard_dc=0), network(kernel, hard_dc=0, method0='mc-pdc'))
        counts = (layer['adders'], layer['bare_adders'], default[0], least[0])
        for i, v in enumerate(counts):
            total[i] += v
        bare = f'{layer["bare_adders"]} ({layer["bare_depth"]})'
        print(
            f'{layer["layer"][:40]:<40} {layer["n_in"]:>3}x{layer["n_out"]:<4} {layer["adders"]:>7} {bare:>12}'
            f' {f"{default[0]} ({default[1]})":>12} {f"{least[0]} ({least[1]})":>21}'
        )
    print(f'{"total (adder depth in parentheses)":<49} {total[0]:>7} {total[1]:>12} {total[2]:>12} {total[3]:>21}')


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else 'models/three_layer_keras.onnx')
