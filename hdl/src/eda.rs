//! The external EDA tools, in one place: finding them on the PATH, Verilator
//! with one set of flags for every build, Icarus Verilog, and Yosys and
//! nextpnr as child processes that a caller may stop at a deadline.
//! Everything else in the workspace runs these tools through here.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why a tool could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum EdaError {
    #[error("{tool} is not installed (not found on PATH; apt-get install {tool})")]
    Missing { tool: String },
    #[error("cannot run {tool}: {source}")]
    Spawn {
        tool: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{tool} failed: {log}")]
    Failed { tool: String, log: String },
    #[error("{tool} was stopped after {seconds:.0} s, before it finished")]
    Stopped { tool: String, seconds: f64 },
}

/// Whether `tool` is an executable on the PATH (the OS search path, looked
/// up by the `which` crate rather than by hand).
pub fn tool_available(tool: &str) -> bool {
    which::which(tool).is_ok()
}

fn require(tool: &str) -> Result<(), EdaError> {
    if tool_available(tool) {
        Ok(())
    } else {
        Err(EdaError::Missing { tool: tool.into() })
    }
}

/// The last `n` characters of `s` (where a tool's error is).
fn tail(s: &str, n: usize) -> String {
    let skip = s.chars().count().saturating_sub(n);
    s.chars().skip(skip).collect()
}

/// Runs `cmd` to completion; its stdout and stderr together, or the tail of
/// them as the error when it fails. `tool` names it in errors.
pub fn run(cmd: &mut Command, tool: &str) -> Result<String, EdaError> {
    let out = cmd.output().map_err(|source| EdaError::Spawn {
        tool: tool.into(),
        source,
    })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(EdaError::Failed {
            tool: tool.into(),
            log: tail(&text, 4000),
        });
    }
    Ok(text)
}

/// How a Verilated model is driven.
#[derive(Clone, Copy, Debug)]
pub enum Driver<'a> {
    /// The top module is a Verilog testbench with its own clock, delays and
    /// `$finish` (`--binary --timing`).
    VerilogTestbench,
    /// This C++ source (in the build directory) has the `main` that clocks
    /// the model (`--cc --exe`).
    Cpp(&'a str),
}

/// Verilator's output directory inside a build directory.
const VERILATOR_MDIR: &str = "obj_dir";

/// The flags of every Verilator build. `-O3` for the Verilator passes (the
/// co-simulations run millions of cycles), `-O1` for the C++ compiler, which
/// dominates the build time of wide kernels; X values resolved fast (every
/// register has a power-up value); no assertions, no lint.
const VERILATOR_FLAGS: &[&str] = &[
    "-O3",
    "--x-assign",
    "fast",
    "--x-initial",
    "fast",
    "--noassert",
    "-Wno-fatal",
    "-Wno-lint",
    "-Wno-style",
    "-CFLAGS",
    "-O1",
];

/// Where [`verilate`] puts the executable `exe` built in `dir`.
pub fn verilated_exe(dir: &Path, exe: &str) -> PathBuf {
    dir.join(VERILATOR_MDIR).join(exe)
}

/// Builds the Verilog `sources` (files in `dir`) with top module `top` into
/// the executable `exe` ([`verilated_exe`]), driven as `driver` says.
pub fn verilate(
    dir: &Path,
    top: &str,
    sources: &[&str],
    driver: Driver,
    exe: &str,
) -> Result<PathBuf, EdaError> {
    require("verilator")?;
    let jobs = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .to_string();
    let mut cmd = Command::new("verilator");
    cmd.current_dir(dir);
    match driver {
        Driver::VerilogTestbench => cmd.args(["--binary", "--timing"]),
        Driver::Cpp(_) => cmd.args(["--cc", "--exe", "--build"]),
    };
    cmd.args(VERILATOR_FLAGS)
        .args([
            "-j",
            &jobs,
            "--top-module",
            top,
            "-Mdir",
            VERILATOR_MDIR,
            "-o",
            exe,
        ])
        .args(sources);
    if let Driver::Cpp(main) = driver {
        cmd.arg(main);
    }
    run(&mut cmd, "verilator")?;
    let path = verilated_exe(dir, exe);
    if !path.is_file() {
        return Err(EdaError::Failed {
            tool: "verilator".into(),
            log: format!("no executable {} after the build", path.display()),
        });
    }
    Ok(path)
}

/// Compiles the Verilog `sources` (files in `dir`) with Icarus Verilog
/// (top `top`) and runs the simulation there; returns its output.
pub fn icarus(dir: &Path, top: &str, sources: &[&str]) -> Result<String, EdaError> {
    require("iverilog")?;
    run(
        Command::new("iverilog")
            .current_dir(dir)
            .args(["-g2012", "-o", "tb.vvp", "-s", top])
            .args(sources),
        "iverilog",
    )?;
    run(
        Command::new("vvp").current_dir(dir).args(["-n", "tb.vvp"]),
        "vvp",
    )
}

/// A tool running in the background and logging to a file, which
/// [`Background::wait`] may stop at a deadline (Yosys, nextpnr). Dropping
/// it stops it.
pub struct Background {
    child: Child,
    tool: String,
    log: PathBuf,
    t0: Instant,
}

impl Background {
    /// Starts `cmd`, named `tool` in errors, which writes its log to `log`
    /// (its own output is dropped).
    pub fn start(cmd: &mut Command, tool: &str, log: &Path) -> Result<Background, EdaError> {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| EdaError::Spawn {
                tool: tool.into(),
                source,
            })?;
        Ok(Background {
            child,
            tool: tool.into(),
            log: log.to_path_buf(),
            t0: Instant::now(),
        })
    }

    /// Starts Yosys on `script` (`yosys -q -l LOG -p SCRIPT`).
    pub fn yosys(script: &str, log: &Path) -> Result<Background, EdaError> {
        require("yosys")?;
        Background::start(
            Command::new("yosys")
                .arg("-q")
                .arg("-l")
                .arg(log)
                .args(["-p", script]),
            "yosys",
            log,
        )
    }

    /// Seconds since the start.
    pub fn seconds(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    /// The last `bytes` of the log so far (empty before it exists).
    fn log_tail(&self, bytes: u64) -> String {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut f) = std::fs::File::open(&self.log) else {
            return String::new();
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(bytes)));
        let mut buf = Vec::new();
        let _ = f.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Waits until the tool exits, or at most `timeout` (then stops it),
    /// showing `watch` the end of its log about once a second.
    pub fn wait(
        &mut self,
        timeout: Option<Duration>,
        watch: &mut dyn FnMut(&str),
    ) -> Result<(), EdaError> {
        let end = timeout.map(|t| Instant::now() + t);
        let mut shown = Instant::now();
        loop {
            let failed = |log: String| EdaError::Failed {
                tool: self.tool.clone(),
                log,
            };
            match self.child.try_wait() {
                Ok(Some(st)) if st.success() => return Ok(()),
                Ok(Some(st)) => {
                    return Err(failed(format!(
                        "exit {st}; the end of {}:\n{}",
                        self.log.display(),
                        self.log_tail(3000)
                    )));
                }
                Ok(None) if end.is_some_and(|e| Instant::now() >= e) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(EdaError::Stopped {
                        tool: self.tool.clone(),
                        seconds: self.seconds(),
                    });
                }
                Ok(None) => {
                    if shown.elapsed() >= Duration::from_secs(1) {
                        watch(&self.log_tail(4096));
                        shown = Instant::now();
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(failed(e.to_string())),
            }
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
