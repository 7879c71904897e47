"""bxflow from Python: ONNX to fixed-point trigger networks.

The same numerical contract as the ``bxflow`` command line, without leaving
the notebook::

    import bxflow
    m = bxflow.quantize("jet_tagger.onnx", precision="fixed<16,6>", calib=X)
    y = m.predict(X)                 # the golden model: exact by definition
    y2 = m.engine().predict(X)       # the SIMD engine: the same bits, faster
    manifest = m.hdl("fw/")          # the FPGA kernel, as `bxflow hdl` writes it
    report = m.testbench(rate="40MHz", events=20000)

Inputs are numpy arrays ``[events, ...]`` (the shape of one event after the
first axis); a model of several inputs takes a dict ``{name: array}``.
Outputs are one array, or a dict by output name for several. Every error is
a :class:`bxflow.Error` with the command line's message.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any, Dict, Mapping, Optional, Union

import numpy as np

from . import _bxflow
from ._bxflow import Error

__all__ = ["Error", "Model", "Engine", "load", "quantize", "inspect"]

Inputs = Union[np.ndarray, Mapping[str, np.ndarray]]
PathLike = Union[str, "os.PathLike[str]"]


def _mhz(value: Union[float, int, str, None], what: str) -> Optional[float]:
    """A frequency in MHz: a number (MHz), or text as the command line reads
    it ('40MHz', '750kHz', '1GHz', a period '25ns')."""
    if value is None or isinstance(value, (int, float)):
        return None if value is None else float(value)
    try:
        return _bxflow.parse_frequency(str(value))
    except Error as e:
        raise Error(f"{what}: {e}") from None


def _ns(value: Union[float, int, str], what: str) -> float:
    """A time in ns: a number (ns), or text as the command line reads it ('1us', '500ns')."""
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return _bxflow.parse_time(str(value))
    except Error as e:
        raise Error(f"{what}: {e}") from None


class Model:
    """A quantized network: the golden model, and the way to its engine,
    FPGA kernel and testbench."""

    def __init__(self, inner: "_bxflow.Model"):
        self._m = inner
        self._contract = json.loads(inner.contract_json())

    # --- what it is ---------------------------------------------------
    @property
    def name(self) -> str:
        return self._m.name

    @property
    def inputs(self) -> list:
        """Each input: ``{"name", "tensor", "shape", "type"}`` (shape of one event)."""
        return self._contract["inputs"]

    @property
    def outputs(self) -> list:
        """Each output: ``{"name", "tensor", "shape", "type"}``."""
        return self._contract["outputs"]

    @property
    def layers(self) -> list:
        """Each layer's result, weight and accumulator types, MACs and reuse
        (``bxflow inspect M.bxq --json``)."""
        return self._contract["layers"]

    @property
    def report(self) -> Optional[Dict[str, Any]]:
        """The quantization report (types, observed ranges, overflows,
        accuracy against float) when the model was quantized here."""
        text = self._m.report_json()
        return None if text is None else json.loads(text)

    def inspect(self) -> Dict[str, Any]:
        """The numerical contract as Python data (``bxflow inspect --json``)."""
        return self._contract

    def save(self, path: PathLike) -> None:
        """Writes the model as a ``.bxq`` file."""
        self._m.save(os.fspath(path))

    def __repr__(self) -> str:
        ins = ", ".join(f"{p['name']} {p['shape']} {p['type']}" for p in self.inputs)
        return f"<bxflow.Model {self.name!r}: {len(self.layers)} layers; {ins}>"

    # --- evaluation ---------------------------------------------------
    def _flat(self, x: Inputs) -> np.ndarray:
        return _flatten(self.inputs, x)

    def _split(self, y: np.ndarray):
        return _unflatten(self.outputs, y)

    def predict(self, x: Inputs):
        """The golden model on float events: each value quantized with its
        input's type, the exact integer evaluation, outputs dequantized."""
        return self._split(self._m.predict(self._flat(x)))

    def engine(self, isa: Optional[str] = None) -> "Engine":
        """The SIMD CPU engine (bit-exact to :meth:`predict`); ``isa`` forces
        a kernel family such as ``"avx2"`` or ``"scalar"``."""
        return Engine(self, self._m.engine(isa))

    # --- firmware and testbench --------------------------------------
    def hdl(
        self,
        out_dir: PathLike,
        clock: Union[str, float] = "200MHz",
        strategy: str = "shift-add",
        reuse: Optional[int] = None,
        recurrent: str = "unrolled",
        levels: Optional[int] = None,
        vectors: int = 1000,
        module: Optional[str] = None,
        family: str = "xcup",
        clock_enable: bool = False,
        clock_uncertainty: float = 12.5,
        binary_adders: bool = False,
    ) -> Dict[str, Any]:
        """Writes the FPGA kernel (Verilog, testbench, test vectors,
        ``manifest.json``, ``INTEGRATION.md``) to ``out_dir``, as ``bxflow
        hdl`` does, and returns the manifest. ``module`` names the Verilog
        module (default: the model's name with a suffix per non-default
        option, e.g. ``_r4``); ``family`` (``"xcup"`` or ``"ecp5"``) picks
        the delay model that places the pipeline registers;
        ``clock_enable`` adds a clock enable port ``ce`` (every register
        holds on an edge where it is low), as ``--clock-enable``;
        ``clock_uncertainty`` is the percent of the period kept out of each
        stage's logic, as ``--clock-uncertainty`` (lower: fewer cycles, to be
        checked by place and route); ``binary_adders`` sums with two-input
        adders only, as ``--binary-adders`` (on UltraScale+ the default
        sums three terms per adder: fewer LUTs, a few cycles more)."""
        text = self._m.hdl(
            os.fspath(out_dir),
            clock_mhz=_mhz(clock, "clock"),
            strategy=strategy,
            reuse=reuse,
            recurrent=recurrent,
            levels=levels,
            vectors=vectors,
            module=module,
            family=family,
            clock_enable=clock_enable,
            clock_uncertainty=clock_uncertainty,
            binary_adders=binary_adders,
        )
        return json.loads(text)

    def testbench(
        self,
        target: str = "fpga",
        rate: Union[str, float, None] = "40MHz",
        events: int = 10000,
        arrivals: str = "fixed",
        clock: Union[str, float] = "200MHz",
        budget: Union[str, float] = "1us",
        budget_at: str = "max",
        sim: str = "auto",
        reuse: Optional[int] = None,
        recurrent: str = "unrolled",
        strategy: str = "shift-add",
        fifo: int = 16,
        isa: Optional[str] = None,
        workers: int = 0,
        batch: int = 64,
        seed: int = 1,
        sweep: bool = False,
        report_dir: Optional[PathLike] = None,
    ) -> Dict[str, Any]:
        """Runs the rate-driven testbench (``bxflow testbench``) and returns
        its report (``pass``, losses, latencies, bit-exactness). ``rate=None``
        on the CPU target streams as fast as the engine goes; ``budget_at``
        (``"max"``, ``"p99"``, ``"p99.9"``) is the CPU latency the budget
        bounds (the FPGA holds every event's); ``sweep=True`` on the CPU also
        searches the highest rate that holds the budget (``cpu.search``);
        ``report_dir`` also writes the JSON report and the plots there."""
        text = self._m.testbench(
            target=target,
            rate_mhz=_mhz(rate, "rate"),
            events=events,
            arrivals=arrivals,
            clock_mhz=_mhz(clock, "clock"),
            budget_ns=_ns(budget, "budget"),
            budget_at=budget_at,
            sim=sim,
            reuse=reuse,
            recurrent=recurrent,
            strategy=strategy,
            fifo=fifo,
            isa=isa,
            workers=workers,
            batch=batch,
            seed=seed,
            sweep=sweep,
            report_dir=None if report_dir is None else os.fspath(report_dir),
        )
        return json.loads(text)


class Engine:
    """The CPU engine compiled for one instruction set."""

    def __init__(self, model: Model, inner: "_bxflow.Engine"):
        self._model = model
        self._e = inner

    @property
    def isa(self) -> str:
        return self._e.isa

    def predict(self, x: Inputs):
        """The engine on every core; the first 256 events are checked
        against the golden model as it goes."""
        return self._model._split(self._e.predict(self._model._flat(x)))

    def __repr__(self) -> str:
        return f"<bxflow.Engine {self._model.name!r} on {self.isa}>"


def _flatten(ports: list, x: Inputs) -> np.ndarray:
    """Float events of every input, one after the other per event, as one
    C-contiguous float32 ``[n, input_len]`` array (no copy when ``x`` is one
    such array already)."""
    if isinstance(x, Mapping):
        missing = [p["name"] for p in ports if p["name"] not in x]
        extra = sorted(set(x) - {p["name"] for p in ports})
        if missing or extra:
            raise Error(
                "inputs by name: "
                + (f"missing {missing}" if missing else "")
                + ("; " if missing and extra else "")
                + (f"unknown {extra}" if extra else "")
                + f" (the model's inputs are {[p['name'] for p in ports]})"
            )
        parts = [_events(p, x[p["name"]]) for p in ports]
        counts = {a.shape[0] for a in parts}
        if len(counts) > 1:
            raise Error(f"inputs hold different numbers of events: {[a.shape[0] for a in parts]}")
        return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)
    if len(ports) != 1:
        raise Error(
            f"the model has {len(ports)} inputs ({[p['name'] for p in ports]}): give a dict of arrays by name"
        )
    return _events(ports[0], x)


def _events(port: dict, a: Any) -> np.ndarray:
    """One input's events as float32 ``[n, len]``: ``a`` is ``[n] + shape``
    or already flat ``[n, len]``."""
    arr = np.asarray(a)
    name, shape = port["name"], list(port["shape"])
    if arr.dtype.kind not in "fiub":
        raise Error(f"input '{name}': dtype {arr.dtype} is not a number type")
    size = int(np.prod(shape)) if shape else 1
    event = list(arr.shape[1:])
    if arr.ndim == 0 or not (event == shape or event == [size] or (event == [] and size == 1)):
        raise Error(f"input '{name}': array of shape {list(arr.shape)}, expected [events] + {shape}")
    flat = np.ascontiguousarray(arr.reshape(arr.shape[0], size), dtype=np.float32)
    nan = np.isnan(flat)
    if nan.any():
        event, index = np.argwhere(nan)[0]
        warnings.warn(
            f"input '{name}': {int(nan.sum())} NaN values (the first in event {event}, at flat"
            f" index {index}); fixed point reads NaN as 0, float carries it through",
            RuntimeWarning,
            stacklevel=4,
        )
    return flat


def _unflatten(ports: list, y: np.ndarray):
    """The flat ``[n, output_len]`` outputs as one array shaped by the output
    (``[n] + shape``), or a dict of them by name."""
    out = {}
    at = 0
    for p in ports:
        size = int(np.prod(p["shape"])) if p["shape"] else 1
        out[p["name"]] = y[:, at : at + size].reshape([y.shape[0]] + list(p["shape"]))
        at += size
    if len(out) == 1:
        return next(iter(out.values()))
    return out


def load(path: PathLike) -> Model:
    """A ``.bxq`` as saved, or an ``.onnx`` quantized with the default
    configuration (``fixed<16,6>``, RND, SAT)."""
    return Model(_bxflow.Model.load(os.fspath(path)))


def quantize(
    onnx: PathLike,
    precision: Optional[str] = None,
    config: Union[None, PathLike, Mapping[str, Any]] = None,
    auto: bool = False,
    calib: Optional[Inputs] = None,
    labels: Optional[np.ndarray] = None,
    events: Optional[int] = None,
    min_agreement: float = 0.995,
    max_error: float = 0.05,
    max_width: int = 24,
) -> Model:
    """Quantizes an ONNX model, as ``bxflow quantize`` does.

    ``precision``: one type for every layer (``"fixed<16,6>"``; without modes
    RND and SAT). ``config``: a TOML file's path, or the same as a dict
    (``{"model": {"precision": ...}, "layer": {"dense_1": {"result": ...}}}``).
    ``auto``: search the types on the calibration events within the
    accuracy budget (``min_agreement``, ``max_error``, ``max_width``).
    ``calib``: float events (an array, or a dict by input name); default
    ``events`` N(0,1) events. ``labels``: class labels for the report.
    The report is :attr:`Model.report`.
    """
    if config is not None and auto:
        raise Error("--auto chooses every type itself; drop --config, or drop --auto to apply the config")
    toml = None
    if isinstance(config, Mapping):
        toml = _toml(config)
    elif config is not None:
        path = os.fspath(config)
        try:
            with open(path, encoding="utf-8") as f:
                toml = f.read()
        except OSError as e:
            raise Error(f"reading {path}: {e.strerror}") from None
    onnx_path = os.fspath(onnx)
    flat = None
    if calib is not None:
        flat = _flatten(json.loads(_bxflow.onnx_inputs(onnx_path)), calib)
    lab = None if labels is None else np.ascontiguousarray(labels, dtype=np.int64).reshape(-1)
    return Model(
        _bxflow.Model.quantize(
            onnx_path,
            precision=precision,
            config=toml,
            auto=auto,
            calib=flat,
            events=events,
            labels=lab,
            min_agreement=min_agreement,
            max_error=max_error,
            max_width=max_width,
        )
    )


def inspect(path: PathLike) -> Dict[str, Any]:
    """The numerical contract of a ``.bxq`` (or of an ``.onnx`` at the
    default configuration): inputs, outputs and every layer's types."""
    return load(path).inspect()


def _toml(d: Mapping[str, Any], prefix: str = "") -> str:
    """A configuration dict as TOML text (tables of strings, numbers and booleans)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        return json.dumps(str(v))

    lines = []
    tables = []
    for k, v in d.items():
        if isinstance(v, Mapping):
            tables.append((k, v))
        else:
            lines.append(f"{json.dumps(str(k)) if prefix else k} = {value(v)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for k, v in tables:
        name = f"{prefix}.{json.dumps(str(k))}" if prefix else str(k)
        out += f"[{name}]\n" + _toml(v, name)
    return out
