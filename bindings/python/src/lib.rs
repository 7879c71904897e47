//! `bxflow._bxflow`: the Rust side of the Python package. It exposes the
//! library crates as they are (the golden model, the CPU engine, the FPGA
//! export, the testbench) over flat arrays: the Python side (`bxflow/`)
//! turns dicts of named inputs into the flat event layout and back, parses
//! units, and turns the JSON documents returned here into Python data, so
//! that this file stays a thin layer with no second copy of any rule.
//!
//! Every error is a `bxflow.Error` whose message is the command line's
//! ([`quantize::describe`] of the same error), and long work releases the
//! GIL.

use std::path::PathBuf;
use std::sync::Arc;

use numpy::{IntoPyArray, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use quantize::auto::{auto_precision, AutoOptions, Budget};
use quantize::calibrate::{default_event_count, default_events, fixed_outputs};
use quantize::config::Config;
use quantize::qmodel::QModel;
use quantize::work::Work;

create_exception!(
    bxflow,
    Error,
    PyException,
    "Any error of bxflow: bad input, a model it cannot import or build, a failed check. The message is the command line's."
);

/// The error as the command line prints it (without its `error: ` prefix).
fn err(e: impl Into<anyhow::Error>) -> PyErr {
    Error::new_err(quantize::describe(e.into().as_ref()))
}

/// `x` as one contiguous slice (the Python side passes C-contiguous float32).
fn slice<'a>(x: &'a PyReadonlyArray2<'_, f32>) -> PyResult<&'a [f32]> {
    x.as_slice()
        .map_err(|_| Error::new_err("inputs must be a C-contiguous float32 array"))
}

/// `flat` (`n` events of `len` values) as an `[n, len]` array.
fn array2(py: Python<'_>, flat: Vec<f64>, len: usize) -> PyResult<Bound<'_, PyArray2<f64>>> {
    let n = flat.len() / len.max(1);
    flat.into_pyarray(py).reshape([n, len])
}

/// Work on every core, no progress bars (a notebook has none).
fn work() -> Work<'static> {
    Work::default()
}

/// A quantized model: the numerical contract every backend follows.
#[pyclass(module = "bxflow._bxflow", frozen)]
struct Model {
    q: Arc<QModel>,
    /// The quantization report as JSON, when this model was quantized here.
    report: Option<String>,
}

#[pymethods]
impl Model {
    /// A `.bxq` as it is, or an `.onnx` quantized with the default configuration.
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<Model> {
        // As `bxflow eval` reads it, so the errors read alike.
        let q = if path.extension().is_some_and(|e| e == "bxq") {
            quantize::bxq::load(&path).map_err(err)?
        } else {
            quantize::load_model(&path, None).map_err(err)?
        };
        Ok(Model {
            q: Arc::new(q),
            report: None,
        })
    }

    /// Quantizes an ONNX model (see `bxflow.quantize`). `calib`: flat
    /// float32 events `[n, input_len]`, or `None` for `events` generated
    /// ones; `config`: TOML text.
    #[staticmethod]
    #[pyo3(signature = (onnx, precision=None, config=None, auto=false, calib=None, events=None, labels=None, min_agreement=0.995, max_error=0.05, max_width=24))]
    #[allow(clippy::too_many_arguments)]
    fn quantize(
        py: Python<'_>,
        onnx: PathBuf,
        precision: Option<String>,
        config: Option<String>,
        auto: bool,
        calib: Option<PyReadonlyArray2<'_, f32>>,
        events: Option<usize>,
        labels: Option<PyReadonlyArray1<'_, i64>>,
        min_agreement: f64,
        max_error: f64,
        max_width: u32,
    ) -> PyResult<Model> {
        let g = quantize::onnx::import_path(&onnx).map_err(|e| {
            err(anyhow::Error::new(e).context(format!("importing {}", onnx.display())))
        })?;
        let x: Vec<f32> = match &calib {
            Some(c) => slice(c)?.to_vec(),
            None => default_events(
                &g,
                events.unwrap_or_else(|| default_event_count(g.macs(), auto)),
                1,
            ),
        };
        let labels: Option<Vec<usize>> =
            labels.map(|l| l.as_array().iter().map(|&v| v.max(0) as usize).collect());
        let cfg = match (config, precision) {
            (Some(text), _) => Config::from_toml(&text, "config").map_err(err)?,
            (None, Some(p)) => Config::uniform(
                quantize::fixed::FixedType::parse_precision(&p)
                    .map_err(|e| err(anyhow::Error::new(e).context(format!("precision '{p}'"))))?,
            ),
            (None, None) => Config::default(),
        };
        py.allow_threads(|| -> anyhow::Result<Model> {
            // Reports and `auto`'s checks on the engine, as the command line
            // runs them; the golden model where the engine cannot compile.
            let threads = work().threads;
            let on_engine =
                |q: &QModel, x: &[f32]| engine::Engine::outputs_of(q, None, x, threads, 32).ok();
            let w = Work {
                fixed: Some(&on_engine),
                ..work()
            };
            let q = if auto {
                let opts = AutoOptions {
                    budget: Budget {
                        min_agreement,
                        max_rel_error: max_error,
                    },
                    max_width,
                    ..AutoOptions::default()
                };
                auto_precision(&g, &x, &opts, &w)?.model
            } else {
                quantize::quantizer::quantize_graph(&g, &cfg)?
            };
            let rep = quantize::report::build(&g, &q, &x, labels.as_deref(), &w)?;
            Ok(Model {
                q: Arc::new(q),
                report: Some(serde_json::to_string(&rep)?),
            })
        })
        .map_err(err)
    }

    /// The model's name.
    #[getter]
    fn name(&self) -> String {
        self.q.name.clone()
    }

    /// The numerical contract (`bxflow inspect M.bxq --json`) as JSON.
    fn contract_json(&self) -> String {
        quantize::report::contract(&self.q).to_string()
    }

    /// The quantization report as JSON, if this model was quantized here.
    fn report_json(&self) -> Option<String> {
        self.report.clone()
    }

    fn save(&self, path: PathBuf) -> PyResult<()> {
        quantize::bxq::save(&self.q, &path).map_err(err)
    }

    /// The golden model's dequantized outputs of `x` (`[n, input_len]`).
    fn predict<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f32>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let xs = check_len(slice(&x)?, self.q.input_len())?;
        let q = &self.q;
        let out = py.allow_threads(|| fixed_outputs(q, xs, &work()).concat());
        array2(py, out, self.q.output_len())
    }

    /// The CPU engine for this model; `isa`: force a kernel family.
    #[pyo3(signature = (isa=None))]
    fn engine(&self, isa: Option<String>) -> PyResult<Engine> {
        let options = engine::EngineOptions {
            isa: parse_isa(isa)?,
            ..engine::EngineOptions::default()
        };
        let e = engine::Engine::with_options(&self.q, &options).map_err(err)?;
        Ok(Engine { e: Arc::new(e) })
    }

    /// Writes the FPGA kernel's export to `out_dir` (`bxflow hdl`) and
    /// returns its manifest as JSON.
    #[pyo3(signature = (out_dir, clock_mhz=200.0, strategy="shift-add", reuse=None, recurrent="unrolled", levels=None, vectors=1000, module=None, family="xcup", clock_enable=false, clock_uncertainty=hdl::pipeline::DEFAULT_UNCERTAINTY_PCT, binary_adders=false))]
    #[allow(clippy::too_many_arguments)]
    fn hdl(
        &self,
        py: Python<'_>,
        out_dir: PathBuf,
        clock_mhz: f64,
        strategy: &str,
        reuse: Option<u32>,
        recurrent: &str,
        levels: Option<u32>,
        vectors: usize,
        module: Option<String>,
        family: &str,
        clock_enable: bool,
        clock_uncertainty: f64,
        binary_adders: bool,
    ) -> PyResult<String> {
        use clap::ValueEnum;
        let opts = hdl::Options {
            module,
            family: hdl::Family::from_str(family, true).map_err(Error::new_err)?,
            clock_enable,
            clock_uncertainty,
            binary_adders,
            ..hdl_options(clock_mhz, strategy, reuse, recurrent, levels)?
        };
        let q = &self.q;
        py.allow_threads(|| -> anyhow::Result<String> {
            let k = hdl::build_kernel(q, &opts)?;
            let events = hdl::export::random_events(q, vectors, 1);
            hdl::export::write_export(&out_dir, &k, q, &events)?;
            Ok(hdl::manifest::Manifest::read(&out_dir)?.to_json())
        })
        .map_err(err)
    }

    /// Runs the testbench (`bxflow testbench`) and returns its report as JSON.
    #[pyo3(signature = (target="fpga", rate_mhz=Some(40.0), events=10_000, arrivals="fixed", clock_mhz=200.0, budget_ns=1000.0, budget_at="max", sim="auto", reuse=None, recurrent="unrolled", strategy="shift-add", fifo=16, isa=None, workers=0, batch=64, seed=1, sweep=false, report_dir=None))]
    #[allow(clippy::too_many_arguments)]
    fn testbench(
        &self,
        py: Python<'_>,
        target: &str,
        rate_mhz: Option<f64>,
        events: u64,
        arrivals: &str,
        clock_mhz: f64,
        budget_ns: f64,
        budget_at: &str,
        sim: &str,
        reuse: Option<u32>,
        recurrent: &str,
        strategy: &str,
        fifo: usize,
        isa: Option<String>,
        workers: usize,
        batch: usize,
        seed: u64,
        sweep: bool,
        report_dir: Option<PathBuf>,
    ) -> PyResult<String> {
        use clap::ValueEnum;
        let arrivals = testbench::Arrivals::from_str(arrivals, true).map_err(Error::new_err)?;
        let budget_at = testbench::BudgetAt::from_str(budget_at, true)
            .map_err(|e| Error::new_err(format!("budget_at: {e}")))?;
        let q = Arc::clone(&self.q);
        let pool = testbench::EventPool::generated(&q, events, 4096, seed).map_err(err)?;
        let name = q.name.clone();
        let mut report = match target {
            "fpga" => {
                let rate_mhz = rate_mhz.ok_or_else(|| {
                    Error::new_err("rate None streams as fast as the target goes, which only the CPU target does; give the FPGA target a rate such as 40 (MHz)")
                })?;
                let opts = hdl_options(clock_mhz, strategy, reuse, recurrent, None)?;
                let cfg = testbench::FpgaConfig {
                    clock_mhz,
                    rate_mhz,
                    events,
                    budget_ns,
                    arrivals,
                    fifo_depth: fifo.max(1),
                    seed,
                    sim: testbench::SimChoice::from_str(sim, true).map_err(Error::new_err)?,
                    sweep,
                    work_dir: std::env::temp_dir().join("bxflow-verilator"),
                    ..testbench::FpgaConfig::default()
                };
                py.allow_threads(|| -> anyhow::Result<testbench::Report> {
                    let k = hdl::build_kernel(&q, &opts)?;
                    Ok(testbench::run_fpga(&name, &pool, &k, &cfg)?)
                })
                .map_err(err)?
            }
            "cpu" => {
                let e = engine::Engine::with_options(
                    &q,
                    &engine::EngineOptions {
                        isa: parse_isa(isa)?,
                        ..engine::EngineOptions::default()
                    },
                )
                .map_err(err)?;
                let cfg = testbench::CpuConfig {
                    rate_mhz,
                    events,
                    arrivals,
                    budget_ns,
                    budget_at,
                    workers,
                    batch: batch.max(1),
                    seed,
                    sweep,
                    ..testbench::CpuConfig::default()
                };
                py.allow_threads(|| testbench::run_cpu(&name, &pool, Arc::new(e), &cfg))
                    .map_err(err)?
            }
            other => {
                return Err(Error::new_err(format!(
                    "target '{other}': expected fpga or cpu"
                )))
            }
        };
        if let Some(d) = report_dir {
            testbench::write_report(&mut report, &d).map_err(err)?;
        }
        Ok(report.to_json())
    }
}

/// The FPGA kernel's options from the Python arguments.
fn hdl_options(
    clock_mhz: f64,
    strategy: &str,
    reuse: Option<u32>,
    recurrent: &str,
    levels: Option<u32>,
) -> PyResult<hdl::Options> {
    use clap::ValueEnum;
    Ok(hdl::Options {
        strategy: strategy.parse::<hdl::Strategy>().map_err(Error::new_err)?,
        clock_mhz,
        levels,
        reuse,
        recurrent: hdl::Recurrent::from_str(recurrent, true).map_err(Error::new_err)?,
        ..hdl::Options::default()
    })
}

/// A forced instruction set by name (`avx2`, `scalar`, ...).
fn parse_isa(isa: Option<String>) -> PyResult<Option<engine::Isa>> {
    isa.map(|s| s.parse::<engine::Isa>().map_err(Error::new_err))
        .transpose()
}

/// `x` if it holds whole events of `len` values.
fn check_len(x: &[f32], len: usize) -> PyResult<&[f32]> {
    if len == 0 || !x.len().is_multiple_of(len) {
        return Err(err(engine::EngineError::InputLength {
            got: x.len() % len.max(1),
            expected: len,
        }));
    }
    Ok(x)
}

/// The CPU engine compiled for one instruction set.
#[pyclass(module = "bxflow._bxflow", frozen)]
struct Engine {
    e: Arc<engine::Engine>,
}

#[pymethods]
impl Engine {
    /// The kernel family it runs (`avx512vnni`, `avx2`, `scalar`, ...).
    #[getter]
    fn isa(&self) -> String {
        self.e.isa().name().to_string()
    }

    /// Dequantized outputs of `x` (`[n, input_len]`) on every core; the
    /// first 256 events are checked against the golden model.
    fn predict<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f32>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let xs = check_len(slice(&x)?, self.e.input_len())?;
        let e = &self.e;
        let threads = work().threads;
        let out = py
            .allow_threads(|| e.outputs_checked(xs, threads, 256))
            .map_err(err)?;
        array2(py, out, self.e.output_len())
    }
}

/// A frequency in MHz from text such as `40MHz`, `750 kHz` or a period
/// `25ns`: the command line's one parser (`testbench::units`).
#[pyfunction]
fn parse_frequency(text: &str) -> PyResult<f64> {
    testbench::units::parse_frequency(text)
        .map(|m| m.0)
        .map_err(Error::new_err)
}

/// A time in ns from text such as `1us` or `500ns` (`testbench::units`).
#[pyfunction]
fn parse_time(text: &str) -> PyResult<f64> {
    testbench::units::parse_time(text)
        .map(|t| t.0)
        .map_err(Error::new_err)
}

/// The inputs of an ONNX model as imported (name and event shape), as JSON.
#[pyfunction]
fn onnx_inputs(path: PathBuf) -> PyResult<String> {
    let g = quantize::onnx::import_path(&path)
        .map_err(|e| err(anyhow::Error::new(e).context(format!("importing {}", path.display()))))?;
    let ports: Vec<serde_json::Value> = (g.input_shapes().into_iter())
        .map(|(name, shape)| serde_json::json!({ "name": name, "shape": shape }))
        .collect();
    Ok(serde_json::Value::from(ports).to_string())
}

#[pymodule]
fn _bxflow(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(onnx_inputs, m)?)?;
    m.add_function(wrap_pyfunction!(parse_frequency, m)?)?;
    m.add_function(wrap_pyfunction!(parse_time, m)?)?;
    m.add("Error", m.py().get_type::<Error>())?;
    m.add_class::<Model>()?;
    m.add_class::<Engine>()?;
    Ok(())
}
