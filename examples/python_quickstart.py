"""bxflow from Python on the shipped jet tagger, training nothing.

Loads the jet tagger and the committed Pythia 8 test split, quantizes with
auto precision, prints accuracy and per-class ROC AUC fixed point beside
float, plots the ROC curves when matplotlib is installed, writes the FPGA
kernel and runs the 40 MHz testbench.

    pip install ./bindings/python
    python examples/python_quickstart.py [OUT_DIR]
"""

import sys
from pathlib import Path

import numpy as np

import bxflow

ROOT = Path(__file__).resolve().parents[1]
JETS = ROOT / "models" / "jets"
CLASSES = ["q", "g", "W", "Z", "t"]


def auc(score, positive):
    """Area under the ROC curve of `score` for the boolean `positive` (rank statistic)."""
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    n_pos = positive.sum()
    n_neg = len(positive) - n_pos
    return (ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def main(out):
    out.mkdir(parents=True, exist_ok=True)
    x = np.load(JETS / "test_features.npy")
    y = np.load(JETS / "test_labels.npy")
    calib = np.load(JETS / "calib_features.npy")

    m = bxflow.quantize(JETS / "jet_tagger.onnx", auto=True, calib=calib)
    print(m)
    for layer in m.layers:
        print(f"  {layer['name']:<12} {layer['op']:<8} {layer['type']}")

    fixed = m.engine().predict(x)  # bit-exact to m.predict(x), on every core
    float_ = np.load(JETS / "test_pred_tagger_float.npy")
    print(f"accuracy: fixed {np.mean(fixed.argmax(1) == y):.4f}, float {np.mean(float_.argmax(1) == y):.4f}")
    for c, name in enumerate(CLASSES):
        pos = y == c
        print(f"  AUC {name}: fixed {auc(fixed[:, c], pos):.4f}, float {auc(float_[:, c], pos):.4f}")

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        for c, name in enumerate(CLASSES):
            for scores, style in ((float_, "--"), (fixed, "-")):
                pos = (y == c)[np.argsort(scores[:, c])[::-1]]
                ax.plot(np.cumsum(~pos) / (~pos).sum(), np.cumsum(pos) / pos.sum(), style, label=f"{name} {'fixed' if style == '-' else 'float'}")
        ax.set_xlabel("background efficiency")
        ax.set_ylabel("signal efficiency")
        ax.set_xscale("log")
        ax.legend(fontsize=6)
        fig.savefig(out / "roc.png", dpi=120)
        print(f"ROC curves: {out / 'roc.png'}")
    except ImportError:
        print("matplotlib not installed: no ROC plot")

    manifest = m.hdl(out / "firmware")
    print(f"FPGA kernel: {out / 'firmware'}: latency {manifest['latency_cycles']} cycles, II {manifest['ii']}")
    report = m.testbench(rate="40MHz", events=20000, report_dir=out / "testbench")
    print(
        f"testbench at 40 MHz: {'PASS' if report['pass'] else 'FAIL'}, "
        f"{report['mismatches']} mismatches, {report['lost']} lost"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("bxflow-python-demo"))
