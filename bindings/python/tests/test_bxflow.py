"""The Python package against the command line: the same bits from
`predict` and `engine().predict` as `bxflow eval` on every model in
`models/`, the same manifest as `bxflow hdl`, the same testbench figures
as `bxflow testbench`, and bad input raising `bxflow.Error` with the
command line's message (never a crash of the interpreter).

`BXFLOW_CLI` names the `bxflow` executable (default: the release build of
this repository)."""

import glob
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import bxflow

ROOT = Path(__file__).resolve().parents[3]
CLI = os.environ.get("BXFLOW_CLI", str(ROOT / "target" / "release" / "bxflow"))
MODELS = sorted(
    glob.glob(str(ROOT / "models" / "*.onnx"))
    + glob.glob(str(ROOT / "models" / "jets" / "*.onnx"))
    + glob.glob(str(ROOT / "models" / "ops" / "*.onnx"))
    + glob.glob(str(ROOT / "models" / "graphs" / "*.onnx"))
)


def cli(*args, ok=True):
    r = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


def cli_error(*args):
    """The command line's error message, without its `error: ` prefix."""
    r = cli(*args, ok=False)
    assert r.returncode != 0
    line = [l for l in r.stderr.splitlines() if l.startswith("error: ")][-1]
    return line[len("error: ") :]


def events(model, n, seed):
    """N(0,1) float events: one array, or a dict by input name."""
    rng = np.random.default_rng(seed)
    xs = {p["name"]: rng.standard_normal([n] + list(p["shape"])).astype(np.float32) for p in model.inputs}
    return xs if len(xs) > 1 else next(iter(xs.values()))


def save_inputs(model, x, path):
    if isinstance(x, dict):
        np.savez(path.with_suffix(".npz"), **x)
        return path.with_suffix(".npz")
    np.save(path.with_suffix(".npy"), x)
    return path.with_suffix(".npy")


def load_outputs(model, path):
    if len(model.outputs) > 1:
        with np.load(path.with_suffix(".npz")) as z:
            return {k: z[k] for k in z.files}
    return np.load(path.with_suffix(".npy"))


def same_bits(a, b):
    if isinstance(a, dict):
        assert set(a) == set(b)
        return all(same_bits(a[k], b[k]) for k in a)
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    return np.array_equal(a.view(np.uint64), b.astype(np.float64).view(np.uint64))


@pytest.mark.parametrize("onnx", MODELS, ids=lambda p: os.path.relpath(p, ROOT / "models"))
def test_predict_and_engine_are_bxflow_eval_bit_for_bit(onnx, tmp_path):
    bxq = tmp_path / "m.bxq"
    cli("quantize", onnx, "-o", bxq, "--events", 300)
    m = bxflow.load(bxq)
    x = events(m, 700, 3)
    inp = save_inputs(m, x, tmp_path / "x")
    out = tmp_path / ("y.npz" if len(m.outputs) > 1 else "y.npy")
    cli("eval", bxq, "--input", inp, "--output", out)
    want = load_outputs(m, out)
    assert same_bits(m.predict(x), want)
    assert same_bits(m.engine().predict(x), want)
    assert same_bits(m.engine(isa="scalar").predict(x), want)


def test_quantize_gives_the_cli_model_and_report(tmp_path):
    onnx = ROOT / "models" / "jets" / "jet_tagger.onnx"
    calib = np.load(ROOT / "models" / "jets" / "calib_features.npy")
    m = bxflow.quantize(onnx, precision="fixed<10,4>", calib=calib)
    assert all(l["type"] == "ap_fixed<10,4,AP_RND,AP_SAT>" for l in m.layers if l["op"] == "Dense")
    cli_bxq = tmp_path / "cli.bxq"
    rep = tmp_path / "r.json"
    cli("quantize", onnx, "-o", cli_bxq, "--precision", "fixed<10,4>", "--calib",
        ROOT / "models" / "jets" / "calib_features.npy", "--report", rep)
    assert m.inspect() == bxflow.inspect(cli_bxq)
    ours, theirs = m.report, json.loads(rep.read_text())
    assert ours["accuracy"] == theirs["accuracy"]
    assert ours["layers"] == theirs["layers"]
    m.save(tmp_path / "py.bxq")
    assert bxflow.inspect(tmp_path / "py.bxq") == m.inspect()
    # A configuration as a dict is the same as its TOML file.
    cfg = {"model": {"precision": "fixed<12,5,RND,SAT>"}, "layer": {"dense0": {"result": "fixed<8,3,RND,SAT>"}}}
    by_dict = bxflow.quantize(onnx, config=cfg, events=500)
    first = [l for l in by_dict.layers if l["op"] == "Dense"]
    assert first[0]["type"] == "ap_fixed<8,3,AP_RND,AP_SAT>", first[0]
    assert first[1]["type"] == "ap_fixed<12,5,AP_RND,AP_SAT>"


def test_auto_precision_and_labels():
    jets = ROOT / "models" / "jets"
    m = bxflow.quantize(
        jets / "jet_tagger.onnx",
        auto=True,
        calib=np.load(jets / "calib_features.npy")[:800],
        labels=np.load(jets / "test_labels.npy")[:800],
    )
    assert m.report["accuracy"]["argmax_agreement"] >= 0.995
    assert m.report["label_accuracy_fixed"] is not None


def test_several_inputs_and_outputs_by_name(tmp_path):
    m = bxflow.load(ROOT / "models" / "graphs" / "two_tower.onnx")
    assert [p["name"] for p in m.inputs] == ["jets", "muons"]
    x = events(m, 50, 1)
    y = m.predict(x)
    assert set(y) == {"score", "feats", "h2"}
    assert y["score"].shape == (50, 2) and y["feats"].shape == (50, 8)
    assert same_bits(m.engine().predict(x), y)
    # The order of the dict does not matter; names do.
    assert same_bits(m.predict({"muons": x["muons"], "jets": x["jets"]}), y)
    with pytest.raises(bxflow.Error, match=r"missing \['muons'\]"):
        m.predict({"jets": x["jets"]})
    with pytest.raises(bxflow.Error, match="give a dict of arrays by name"):
        m.predict(x["jets"])
    with pytest.raises(bxflow.Error, match="different numbers of events"):
        m.predict({"jets": x["jets"], "muons": x["muons"][:10]})


def test_bad_input_raises_the_cli_message(tmp_path):
    with pytest.raises(bxflow.Error) as e:
        bxflow.load(tmp_path / "missing.bxq")
    assert str(e.value) == cli_error("eval", tmp_path / "missing.bxq", "--input", "x.npy", "--output", "y.npy")

    good = tmp_path / "m.bxq"
    cli("quantize", ROOT / "models" / "two_layer_keras.onnx", "-o", good, "--events", 200)
    data = good.read_bytes()
    cut = tmp_path / "cut.bxq"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(bxflow.Error) as e:
        bxflow.load(cut)
    assert str(e.value) == cli_error("eval", cut, "--input", "x.npy", "--output", "y.npy")

    with pytest.raises(bxflow.Error) as e:
        bxflow.load(tmp_path / "missing.onnx")
    assert "missing.onnx" in str(e.value)

    m = bxflow.load(good)
    n_in = m.inputs[0]["shape"]
    with pytest.raises(bxflow.Error, match=r"expected \[events\] \+ "):
        m.predict(np.zeros((4, n_in[0] + 1), np.float32))
    with pytest.raises(bxflow.Error, match="is not a number type"):
        m.predict(np.array([["a"] * n_in[0]]))
    with pytest.raises(bxflow.Error, match="not available on this CPU|unknown"):
        m.engine(isa="no-such-isa")
    with pytest.raises(bxflow.Error, match="expected fpga or cpu"):
        m.testbench(target="gpu")
    with pytest.raises(bxflow.Error, match="unknown strategy"):
        m.hdl(tmp_path / "k", strategy="magic")
    # Frequencies and times are read by the command line's own parser.
    assert bxflow._bxflow.parse_frequency("25ns") == pytest.approx(40.0)
    assert bxflow._bxflow.parse_frequency("750 kHz") == pytest.approx(0.75)
    assert bxflow._bxflow.parse_time("1us") == pytest.approx(1000.0)
    with pytest.raises(bxflow.Error) as e:
        m.testbench(rate="fast")
    assert str(e.value) == "rate: " + cli_error("testbench", good, "--rate", "fast").split("'--rate <RATE>': ")[-1]
    # A float64 array, or a non-contiguous one, is converted, not refused.
    x = np.random.default_rng(0).standard_normal((20, n_in[0] * 2))[:, ::2]
    assert same_bits(m.predict(x), m.predict(np.ascontiguousarray(x, np.float32)))
    # NaN features are evaluated as 0 in fixed point, with a warning.
    x = np.ascontiguousarray(x, np.float32)
    x[3, 1] = np.nan
    with pytest.warns(RuntimeWarning, match=r"1 NaN values \(the first in event 3, at flat index 1\)"):
        y = m.predict(x)
    x[3, 1] = 0.0
    assert same_bits(y, m.predict(x))
    # Options no kernel can honour: the library's reason.
    with pytest.raises(bxflow.Error, match="reuse factor 0"):
        m.hdl(tmp_path / "k0", reuse=0)


def test_hdl_returns_the_manifest_the_cli_writes(tmp_path):
    bxq = tmp_path / "m.bxq"
    cli("quantize", ROOT / "models" / "three_layer_keras.onnx", "-o", bxq, "--events", 300)
    m = bxflow.load(bxq)
    ours = m.hdl(tmp_path / "py", reuse=4, vectors=20)
    cli("hdl", bxq, "-o", tmp_path / "cli", "--reuse", 4, "--vectors", 20)
    theirs = json.loads((tmp_path / "cli" / "manifest.json").read_text())
    assert ours == theirs
    assert ours["ii"] == 4
    assert json.loads((tmp_path / "py" / "manifest.json").read_text()) == ours
    assert (tmp_path / "py" / "INTEGRATION.md").exists()
    # The family and the clock enable, as the command line's flags.
    ours = m.hdl(tmp_path / "py_ce", family="ecp5", clock_enable=True, vectors=20)
    cli("hdl", bxq, "-o", tmp_path / "cli_ce", "--family", "ecp5", "--clock-enable", "--vectors", 20)
    assert ours == json.loads((tmp_path / "cli_ce" / "manifest.json").read_text())
    assert ours["family"] == "ecp5"
    assert any(p["name"] == "ce" for p in ours["ports"]), ours["ports"]
    # The clock uncertainty: less of the period kept, fewer cycles.
    tight = m.hdl(tmp_path / "py_u0", family="ecp5", clock="100MHz", clock_uncertainty=0, vectors=20)
    cli("hdl", bxq, "-o", tmp_path / "cli_u0", "--family", "ecp5", "--clock", "100MHz", "--clock-uncertainty", "0%", "--vectors", 20)
    assert tight == json.loads((tmp_path / "cli_u0" / "manifest.json").read_text())
    assert tight["clock_uncertainty_pct"] == 0 and ours["clock_uncertainty_pct"] == 12.5
    loose = m.hdl(tmp_path / "py_u", family="ecp5", clock="100MHz", vectors=20)
    assert tight["latency_cycles"] < loose["latency_cycles"], (tight["latency_cycles"], loose["latency_cycles"])
    with pytest.raises(bxflow.Error, match=r"clock uncertainty -1 %: give the share of the period"):
        m.hdl(tmp_path / "py_bad", clock_uncertainty=-1, vectors=20)
    # Two-input adders only, as --binary-adders: its own module name.
    bin_ = m.hdl(tmp_path / "py_bin", binary_adders=True, vectors=20)
    cli("hdl", bxq, "-o", tmp_path / "cli_bin", "--binary-adders", "--vectors", 20)
    assert bin_ == json.loads((tmp_path / "cli_bin" / "manifest.json").read_text())
    assert bin_["module"].endswith("_bin") and not bin_["ternary_adders"], bin_["module"]
    assert json.loads((tmp_path / "cli" / "manifest.json").read_text())["ternary_adders"]


def test_testbench_returns_the_cli_report(tmp_path):
    bxq = tmp_path / "m.bxq"
    cli("quantize", ROOT / "models" / "three_layer_keras.onnx", "-o", bxq, "--events", 300)
    m = bxflow.load(bxq)
    ours = m.testbench(events=1500, sim="rust", rate="40MHz")
    theirs = json.loads(cli("testbench", bxq, "--events", 1500, "--sim", "rust", "--no-sweep", "--json").stdout)
    for k in ["pass", "events", "accepted", "lost", "mismatches", "latency_cycles", "interval_cycles"]:
        assert ours[k] == theirs[k], k
    # The same kernel, simulated in its own time.
    for r in (ours, theirs):
        r["kernel"].pop("sim_seconds")
    assert ours["kernel"] == theirs["kernel"]
    assert ours["pass"] and ours["mismatches"] == 0
    cpu = m.testbench(target="cpu", rate=None, events=20000)
    assert cpu["lost"] == 0 and cpu["mismatches"] == 0 and cpu["delivered"] == 20000


def test_cpu_testbench_budget_at_a_quantile(tmp_path):
    m = bxflow.load(ROOT / "models" / "three_layer_keras.onnx")
    r = m.testbench(target="cpu", rate="100kHz", events=2000, budget="1ns", budget_at="p99")
    assert r["budget_at"] == "p99" and not r["pass"]
    assert any(f.startswith("p99 latency ") for f in r["failures"]), r["failures"]
    with pytest.raises(bxflow.Error, match="budget_at"):
        m.testbench(target="cpu", rate="100kHz", events=100, budget_at="p50")
