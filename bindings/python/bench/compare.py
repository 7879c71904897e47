"""Python-side evaluation speed on the hls4ml jet tagger at fixed<16,6>.

Compares, on the same N(0,1) events (1,000,000 by default):
  * bxflow's ``m.predict`` (the golden model, exact),
  * bxflow's ``m.engine().predict`` (the SIMD engine, the same bits),
  * hls4ml's ``predict`` after ``compile()`` on the same ONNX at the same
    default precision (``io_parallel``, Vivado backend's C++ emulation),
  * ONNX Runtime's float ``run`` on the whole batch.
Each figure is the median of ``--runs`` runs (hls4ml: one run of at most
``--hls4ml-events`` events, it is slow), in events per second of wall time
including the Python call. A peer that is not installed is skipped with a
message. Not a test: it prints a table.

    pip install ./bindings/python onnx onnxruntime hls4ml
    python bindings/python/bench/compare.py [--events N] [--runs K]
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import bxflow

ROOT = Path(__file__).resolve().parents[3]
MODEL = ROOT / "models" / "three_layer_keras.onnx"


def rate(f, x, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        f(x)
        times.append(time.perf_counter() - t)
    return len(x) / statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--hls4ml-events", type=int, default=100_000)
    a = ap.parse_args()
    x = np.random.default_rng(1).standard_normal((a.events, 16)).astype(np.float32)
    rows = []

    m = bxflow.quantize(MODEL, precision="fixed<16,6>", events=2000)
    rows.append(("bxflow m.predict (golden)", rate(m.predict, x, a.runs)))
    e = m.engine()
    rows.append((f"bxflow m.engine().predict ({e.isa})", rate(e.predict, x, a.runs)))
    if e.isa != "avx2":
        try:
            e2 = m.engine(isa="avx2")
            rows.append(("bxflow m.engine(isa='avx2').predict", rate(e2.predict, x, a.runs)))
        except bxflow.Error as err:
            print(f"AVX2 engine: {err}")

    try:
        import onnx
        import onnxruntime as ort

        # The file fixes the batch at 1: make it symbolic to run the whole batch.
        g = onnx.load(str(MODEL))
        for v in list(g.graph.input) + list(g.graph.output):
            v.type.tensor_type.shape.dim[0].dim_param = "N"
        del g.graph.value_info[:]
        s = ort.InferenceSession(g.SerializeToString(), providers=["CPUExecutionProvider"])
        name = s.get_inputs()[0].name
        rows.append(("ONNX Runtime float run (whole batch)", rate(lambda v: s.run(None, {name: v}), x, a.runs)))
    except ImportError:
        print("onnxruntime or onnx not installed: skipped")

    try:
        import hls4ml
        import onnx

        model = onnx.load(str(MODEL))
        cfg = hls4ml.utils.config_from_onnx_model(model, granularity="model", default_precision="fixed<16,6>")
        with tempfile.TemporaryDirectory() as d:
            hm = hls4ml.converters.convert_from_onnx_model(
                model, output_dir=os.path.join(d, "prj"), hls_config=cfg, io_type="io_parallel", backend="Vivado"
            )
            t = time.perf_counter()
            hm.compile()
            print(f"hls4ml compile(): {time.perf_counter() - t:.1f} s")
            xh = np.ascontiguousarray(x[: a.hls4ml_events], dtype=np.float32)
            rows.append((f"hls4ml {hls4ml.__version__} predict after compile() ({len(xh)} events)", rate(hm.predict, xh, 1)))
    except ImportError:
        print("hls4ml or onnx not installed: skipped")

    print(f"jet tagger ({MODEL.name}), fixed<16,6>, {a.events} events, median of {a.runs} runs")
    for what, r in rows:
        print(f"  {what:<62} {r / 1e6:10.3f} M events/s")


if __name__ == "__main__":
    main()
