//! The C API: `include/bxflow.h` declares every `extern "C"` function of
//! `src/lib.rs` with the same arity, and `c/example.c` / `c/example.cpp`
//! compile against the header, link the staticlib and run on a `.bxq`.
//! The staticlib is built here on its own, with the engine's default
//! features only (a workspace build unifies features and would link tract
//! into it), and must stay small.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn arity(params: &str) -> usize {
    let p = params.trim();
    if p.is_empty() || p == "void" {
        0
    } else {
        p.split(',').filter(|a| !a.trim().is_empty()).count()
    }
}

/// `name -> arity` of every function declared by `pattern` (text before `(`).
fn functions(text: &str, rust: bool) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let flat = text.replace('\n', " ");
    let key = if rust { "extern \"C\" fn " } else { "bxflow_" };
    let mut rest = flat.as_str();
    while let Some(i) = rest.find(key) {
        let after = &rest[i + key.len()..];
        let name_end = after.find('(').unwrap_or(0);
        let name = after[..name_end].trim();
        let ok = !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_');
        if ok {
            let close = after.find(')').unwrap();
            let params = &after[name_end + 1..close];
            let full = if rust {
                name.to_string()
            } else {
                format!("bxflow_{name}")
            };
            out.push((full, arity(params)));
            rest = &after[close..];
        } else {
            rest = &after[1.min(after.len())..];
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn header_matches_rust_exports() {
    let rs = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let h = std::fs::read_to_string(root().join("include/bxflow.h")).unwrap();
    let r = functions(&rs, true);
    let c = functions(&h, false);
    assert!(r.len() >= 14, "{r:?}");
    assert_eq!(r, c, "header and src/lib.rs disagree");
    // Every code and the ABI version: the same value on both sides.
    let define = |name: &str| -> i64 {
        let line = h
            .lines()
            .find(|l| l.starts_with(&format!("#define {name} ")))
            .unwrap_or_else(|| panic!("{name} is not defined in the header"));
        let v = line[9 + name.len()..].split("/*").next().unwrap().trim();
        let v = v.trim_start_matches('(').trim_end_matches(')');
        v.parse()
            .unwrap_or_else(|_| panic!("cannot read {name} = {v} from the header"))
    };
    let mut consts = 0;
    for l in rs.lines() {
        let Some(rest) = l.strip_prefix("pub const ") else {
            continue;
        };
        let (name, value) = rest.split_once(": c_int = ").expect("a c_int constant");
        let value: i64 = value.trim_end_matches(';').parse().unwrap();
        assert_eq!(define(name), value, "{name}");
        consts += 1;
    }
    assert!(consts >= 14, "{consts} constants");
    // The pipeline's limits as the engine enforces them.
    use engine::pipeline::*;
    assert_eq!(define("BXFLOW_MAX_WORKERS"), MAX_WORKERS as i64);
    assert_eq!(define("BXFLOW_MAX_BATCH"), MAX_BATCH as i64);
    assert_eq!(define("BXFLOW_MAX_QUEUE"), MAX_QUEUE as i64);
    assert_eq!(define("BXFLOW_MAX_WAIT_US"), MAX_WAIT.as_micros() as i64);
    assert!(h.contains(&format!(
        "#define BXFLOW_MAX_BATCH_BYTES ({}u << 20)",
        MAX_BATCH_BYTES >> 20
    )));
}

fn workspace() -> PathBuf {
    root().join("..")
}

/// `libbxflow.a` as a DAQ program builds it (`cargo build --profile capi -p
/// bxflow-capi`, whole-program LTO), in its own target directory
/// (`<target>/capi-lib`, so the outer `cargo test` keeps its lock), once per
/// test run.
fn staticlib() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let target = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(t) => workspace().join(t),
            None => workspace().join("target"),
        }
        .join("capi-lib");
        let st = Command::new(env!("CARGO"))
            .args(["build", "--profile", "capi", "-p", "bxflow-capi", "--lib"])
            .arg("--target-dir")
            .arg(&target)
            .current_dir(workspace())
            .status()
            .expect("cannot run cargo");
        assert!(st.success(), "cargo build of the C library failed");
        let a = target.join("capi/libbxflow.a");
        assert!(a.exists(), "{} missing after the build", a.display());
        a
    })
}

/// The jet tagger as a `.bxq`, written once into a temporary directory.
fn model_bxq() -> &'static Path {
    static BXQ: OnceLock<PathBuf> = OnceLock::new();
    BXQ.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("bxflow-capi-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let onnx = workspace().join("models/three_layer_keras.onnx");
        let bxq = dir.join("three_layer_keras.bxq");
        let m = quantize::load_model(&onnx, None).unwrap();
        quantize::bxq::save(&m, &bxq).unwrap();
        bxq
    })
}

/// The C library carries no ONNX importer (no tract among the engine's
/// normal dependencies) and stays under 10 MiB: with tract it was about
/// 100 MiB, and without LTO any Rust staticlib carries the whole standard
/// library (about 30 MiB).
#[test]
fn staticlib_is_small_and_has_no_tract() {
    const BUDGET: u64 = 10 * 1024 * 1024;
    let a = staticlib();
    let size = std::fs::metadata(a).unwrap().len();
    eprintln!("{}: {size} bytes", a.display());
    assert!(
        size < BUDGET,
        "{} is {size} bytes ({:.1} MiB), over the {} MiB budget",
        a.display(),
        size as f64 / (1024.0 * 1024.0),
        BUDGET >> 20
    );
    let tree = Command::new(env!("CARGO"))
        .args(["tree", "-p", "bxflow-engine", "-e", "normal"])
        .current_dir(workspace())
        .output()
        .expect("cannot run cargo tree");
    assert!(tree.status.success(), "cargo tree failed");
    let tree = String::from_utf8_lossy(&tree.stdout);
    assert!(
        !tree.contains("tract"),
        "the engine depends on tract:\n{tree}"
    );
}

fn build_and_run(compiler: &str, src: &str, exe: &str) {
    let out = std::env::temp_dir().join(format!("bxflow-{exe}-{}", std::process::id()));
    let st = Command::new(compiler)
        .arg(root().join("c").join(src))
        .arg("-I")
        .arg(root().join("include"))
        .arg(staticlib())
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(st.success(), "{compiler} failed on {src}");
    let run = Command::new(&out).arg(model_bxq()).output().unwrap();
    eprintln!("{}", String::from_utf8_lossy(&run.stdout));
    assert!(
        run.status.success(),
        "{src}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let _ = std::fs::remove_file(Path::new(&out));
}

#[test]
fn c_example_runs() {
    build_and_run("cc", "example.c", "c");
}

/// Every entry point's documented behaviour, from C (`c/abi.c`).
#[test]
fn c_abi_contract_holds() {
    build_and_run("cc", "abi.c", "abi");
}

#[test]
fn cpp_example_runs() {
    build_and_run("c++", "example.cpp", "cpp");
}
