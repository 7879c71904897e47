"""Reference outputs from qonnx's own executor for the three QONNX models.

Run from the repository root:

    python3 -m venv /tmp/qvenv
    /tmp/qvenv/bin/pip install qonnx onnxruntime numpy
    /tmp/qvenv/bin/python models/qonnx/make_refs.py

It writes models/qonnx/refs.npz. The Rust tests regenerate the very same
inputs from the splitmix64 stream below, so only outputs are stored, never
inputs. The events are run one at a time through `execute_onnx` (the models
have a fixed batch dimension of 1), which is what qonnx itself considers the
reference semantics of a QONNX graph; nothing is rewritten or batched, so no
transformation of ours can hide a disagreement.
"""

import argparse
import importlib.metadata
import json
import multiprocessing
import os
import sys
import time
import warnings

import numpy as np

M64 = (1 << 64) - 1
HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.dirname(HERE)

# Seeds of the two input streams; the Rust tests use the same constants.
MNIST_SEED = (0x7FC0 * 1_000_000_007) & M64
JET_SEED = (0x7E75 * 1_000_000_007) & M64


def splitmix64(x):
    """The specification: plain Python ints, wrapped to 64 bits by masking."""
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def splitmix64_np(x):
    """Vectorized copy of `splitmix64`; numpy uint64 arithmetic wraps mod
    2^64, which is exactly the masking above (checked in `check_generator`)."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def stream(seed, count):
    """splitmix64(seed + k) for k = 0..count-1, wrapping like the spec."""
    with np.errstate(over="ignore"):
        x = np.uint64(seed) + np.arange(count, dtype=np.uint64)
    return splitmix64_np(x)


def check_generator():
    for seed in (MNIST_SEED, JET_SEED):
        fast = stream(seed, 1000)
        slow = [splitmix64((seed + k) & M64) for k in range(1000)]
        assert [int(v) for v in fast] == slow, "numpy splitmix64 disagrees"


def mnist_pixels(n):
    """[n, 784] pixels 0..255. Even events are dense noise; odd events keep
    a pixel with probability 48/256 only, so they look more like MNIST digits
    (mostly black) and exercise a different part of the quantizer."""
    v = stream(MNIST_SEED, n * 784).reshape(n, 784)
    pix = (v >> np.uint64(56)).astype(np.int64)
    keep = (v & np.uint64(0xFF)) < np.uint64(48)
    odd = (np.arange(n) % 2 == 1)[:, None]
    return np.where(odd & ~keep, 0, pix)


def mnist_inputs(n):
    # float32 division on both sides (Rust: `p as f32 / 255.0f32`); going
    # through float64 first could round differently at the last bit.
    x = mnist_pixels(n).astype(np.float32) / np.float32(255.0)
    return x.reshape(n, 1, 1, 28, 28)


def jet_inputs(n):
    v = stream(JET_SEED, n * 16).reshape(n, 16)
    code = (v >> np.uint64(55)).astype(np.int64) - 256  # -256..255
    # Dividing by 64 is exact in float32: features lie on a 2^-6 grid.
    x = code.astype(np.float32) / np.float32(64.0)
    return x.reshape(n, 1, 16)


# --- execution -------------------------------------------------------------

_worker_model = None


def _load(path):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    with warnings.catch_warnings():
        # The Brevitas exports use the old "finn" domain; qonnx converts it
        # and warns each time, which is expected here.
        warnings.simplefilter("ignore")
        return ModelWrapper(path).transform(InferShapes())


def _init_worker(path):
    global _worker_model
    _worker_model = _load(path)


def _run_chunk(args):
    from qonnx.core.onnx_exec import execute_onnx

    xs, names = args
    model = _worker_model
    iname = model.graph.input[0].name
    out = {name: [] for name in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for x in xs:
            ctx = execute_onnx(model, {iname: x}, return_full_exec_context=True)
            for name in names:
                out[name].append(np.array(ctx[name], copy=True))
    return {name: np.stack(v) for name, v in out.items()}


def run_model(path, xs, names, workers):
    """Per-event execution, spread over processes only to save wall time;
    chunks are contiguous and returned in order, so event i stays row i."""
    chunks = np.array_split(xs, max(1, workers * 8))
    jobs = [(c, names) for c in chunks if len(c)]
    with multiprocessing.Pool(workers, _init_worker, (path,)) as pool:
        parts = pool.map(_run_chunk, jobs)
    # Drop the fixed batch dimension of 1 so the event axis comes first.
    return {
        name: np.concatenate([p[name] for p in parts]).reshape(len(xs), -1)
        for name in names
    }


# --- exactness checks ------------------------------------------------------


def whole(a, scale, dtype, what):
    """a * scale as integers, asserting that nothing is lost: these tensors
    are meant to be exact fixed-point values, so a fractional part would be
    a finding, not something to round away."""
    s = a.astype(np.float64) * scale
    assert np.all(s == np.round(s)), f"{what}: not whole numbers at scale {scale}"
    info = np.iinfo(dtype)
    assert s.min() >= info.min and s.max() <= info.max, f"{what}: out of {dtype} range"
    return s.astype(dtype)


def finest_grid(a, max_log2=40):
    """Smallest power-of-two multiplier that makes every value whole."""
    s = a.astype(np.float64)
    for k in range(max_log2 + 1):
        t = s * (1 << k)
        if np.all(t == np.round(t)):
            return 1 << k
    raise AssertionError("values are not on any power-of-two grid up to 2^%d" % max_log2)


def report(tag, logits, out):
    n = len(out)
    am = np.argmax(out, axis=1)
    counts = np.bincount(am, minlength=out.shape[1])
    srt = np.sort(logits, axis=1)
    ties = int(np.sum(srt[:, -1] == srt[:, -2]))
    agree = int(np.sum(np.argmax(logits, axis=1) == am))
    print(f"{tag}: N={n}, argmax(out) per class {counts.tolist()}, "
          f"events with a tied top logit {ties}, argmax(logits)==argmax(out) {agree}/{n}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=10000, help="events per model")
    ap.add_argument("-j", type=int, default=os.cpu_count() or 1, help="worker processes")
    ap.add_argument("-o", default=os.path.join(HERE, "refs.npz"))
    args = ap.parse_args()
    n = args.n

    check_generator()
    t0 = time.time()
    refs = {}

    x = mnist_inputs(n)
    for tag, fname, logits, out, h3 in (
        ("tfc2", "TFC_2W2A.onnx", "82", "90", "75"),
        ("tfc1", "TFC_1W2A.onnx", "74", "82", "69"),
    ):
        t = time.time()
        r = run_model(os.path.join(MODELS, fname), x, [logits, out, h3], args.j)
        # Integer activations times +-1 / {-1,0,1} weights: the last MatMul
        # is an exact integer sum of at most 64 terms.
        refs[f"{tag}_logits"] = whole(r[logits], 1, np.int16, f"{tag} '{logits}'")
        refs[f"{tag}_out"] = r[out].astype(np.float32)
        refs[f"{tag}_h3"] = whole(r[h3], 1, np.int8, f"{tag} '{h3}'")
        report(tag, refs[f"{tag}_logits"], refs[f"{tag}_out"])
        print(f"  {fname}: {time.time() - t:.1f} s")

    t = time.time()
    r = run_model(os.path.join(MODELS, "qkeras_jettagging.onnx"), jet_inputs(n),
                  ["Add_3_out0", "global_out", "Quant_8_out0"], args.j)
    logits = r["Add_3_out0"].astype(np.float32)
    # Nominal grid: 6-bit weights on 2^-5 times activations on 2^-6.
    scale = 2048
    finest = finest_grid(logits)
    if finest > scale:
        print(f"jet logits are NOT on the 2^-11 grid; finest grid is 1/{finest}")
        scale = finest
    refs["jet_logits"] = logits
    refs["jet_logits_codes"] = whole(logits, scale, np.int32, "jet 'Add_3_out0'")
    refs["jet_logits_scale"] = np.array(scale, dtype=np.int64)
    refs["jet_out"] = r["global_out"].astype(np.float32)
    refs["jet_h1"] = whole(r["Quant_8_out0"], 64, np.int16, "jet 'Quant_8_out0'")
    report("jet", refs["jet_logits"], refs["jet_out"])
    print(f"  qkeras_jettagging.onnx: {time.time() - t:.1f} s (finest logit grid 1/{finest})")

    # Numbers only in the .npz (bxflow's reader takes numeric arrays); the
    # versions that made them go beside it.
    np.savez_compressed(args.o, **refs)
    versions = {
        "qonnx": importlib.metadata.version("qonnx"),
        "onnxruntime": importlib.metadata.version("onnxruntime"),
        "numpy": np.__version__,
        "python": sys.version.split()[0],
    }
    with open(os.path.splitext(args.o)[0] + "_versions.json", "w") as f:
        json.dump(versions, f, indent=1)
    for k, v in refs.items():
        print(f"  {k}: {v.dtype} {list(v.shape)}")
    print(f"wrote {args.o}: {os.path.getsize(args.o)} bytes, total {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
