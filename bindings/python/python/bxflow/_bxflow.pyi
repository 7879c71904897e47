"""Type stubs of the Rust extension (`bindings/python/src/lib.rs`). Users
call the wrappers in `bxflow/__init__.py`; these are their building blocks."""

from typing import Optional

import numpy as np
import numpy.typing as npt

class Error(Exception):
    """Any error of bxflow; the message is the command line's."""

def onnx_inputs(path: str) -> str: ...
def parse_frequency(text: str) -> float: ...
def parse_time(text: str) -> float: ...

class Model:
    @staticmethod
    def load(path: str) -> "Model": ...
    @staticmethod
    def quantize(
        onnx: str,
        precision: Optional[str] = None,
        config: Optional[str] = None,
        auto: bool = False,
        calib: Optional[npt.NDArray[np.float32]] = None,
        events: Optional[int] = None,
        labels: Optional[npt.NDArray[np.int64]] = None,
        min_agreement: float = 0.995,
        max_error: float = 0.05,
        max_width: int = 24,
    ) -> "Model": ...
    @property
    def name(self) -> str: ...
    def contract_json(self) -> str: ...
    def report_json(self) -> Optional[str]: ...
    def save(self, path: str) -> None: ...
    def predict(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]: ...
    def engine(self, isa: Optional[str] = None) -> "Engine": ...
    def hdl(
        self,
        out_dir: str,
        clock_mhz: float = 200.0,
        strategy: str = "shift-add",
        reuse: Optional[int] = None,
        recurrent: str = "unrolled",
        levels: Optional[int] = None,
        vectors: int = 1000,
        module: Optional[str] = None,
        family: str = "xcup",
        clock_enable: bool = False,
    ) -> str: ...
    def testbench(
        self,
        target: str = "fpga",
        rate_mhz: Optional[float] = 40.0,
        events: int = 10000,
        arrivals: str = "fixed",
        clock_mhz: float = 200.0,
        budget_ns: float = 1000.0,
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
        report_dir: Optional[str] = None,
    ) -> str: ...

class Engine:
    @property
    def isa(self) -> str: ...
    def predict(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]: ...
