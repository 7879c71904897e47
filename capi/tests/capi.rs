//! The C API: `include/bxflow.h` declares every `extern "C"` function of
//! `src/lib.rs` with the same arity and every code with the same value; the
//! library is installed with `install.sh` (built on its own, with the
//! engine's default features only: a workspace build unifies features and
//! would link tract into it) and must stay small; C and C++ programs built
//! against the installed layout with `pkg-config`, statically and
//! dynamically, run the examples, the ABI contract (`c/abi.c`) and every
//! entry point against the golden model on every shipped model (`c/golden.c`).

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

/// The library installed as a DAQ program's build would install it
/// (`capi/install.sh PREFIX`: whole-program LTO, `include/`, `lib/`,
/// `lib/pkgconfig/`), built in its own target directory
/// (`<target>/capi-lib`, so the outer `cargo test` keeps its lock), once per
/// test run. Returns PREFIX.
fn installed() -> &'static Path {
    static PREFIX: OnceLock<PathBuf> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let target = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(t) => workspace().join(t),
            None => workspace().join("target"),
        }
        .join("capi-lib");
        let prefix = target.join("prefix");
        let _ = std::fs::remove_dir_all(&prefix);
        let st = Command::new("sh")
            .arg(root().join("install.sh"))
            .arg(&prefix)
            .env("CARGO_TARGET_DIR", &target)
            .env("CARGO", env!("CARGO"))
            .status()
            .expect("cannot run capi/install.sh");
        assert!(st.success(), "capi/install.sh failed");
        prefix
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
    let a = installed().join("lib/libbxflow.a");
    let a = a.as_path();
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

#[derive(Clone, Copy, Debug)]
enum Link {
    Static,
    Dynamic,
}

/// Compiles `c/<src>` against the installed layout with the flags
/// `pkg-config` gives (`bxflow-static` or `bxflow`), and runs it with `args`.
fn build_and_run(compiler: &str, src: &str, link: Link, args: &[&Path]) -> String {
    let prefix = installed();
    let pc = match link {
        Link::Static => "bxflow-static",
        Link::Dynamic => "bxflow",
    };
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", pc])
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .output()
        .expect("cannot run pkg-config");
    assert!(flags.status.success(), "pkg-config {pc} failed");
    let flags = String::from_utf8(flags.stdout).unwrap();
    let out = std::env::temp_dir().join(format!("bxflow-{src}-{link:?}-{}", std::process::id()));
    let mut cc = Command::new(compiler);
    cc.arg(root().join("c").join(src))
        .args(flags.split_whitespace());
    if let Link::Dynamic = link {
        cc.arg(format!("-Wl,-rpath,{}", prefix.join("lib").display()));
    }
    let st = cc
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(st.success(), "{compiler} failed on {src} ({link:?})");
    // No executable stack, whichever way the library was linked.
    let ph = Command::new("readelf")
        .arg("-lW")
        .arg(&out)
        .output()
        .unwrap();
    let ph = String::from_utf8_lossy(&ph.stdout);
    let stack = ph.lines().find(|l| l.contains("GNU_STACK")).unwrap_or("");
    assert!(
        !stack.contains("RWE"),
        "{src} ({link:?}) has an executable stack: {stack}"
    );
    // Under `timeout`: a program that hangs (a deadlock) fails the test
    // instead of stalling the whole run.
    let run = Command::new("timeout")
        .arg("120")
        .arg(&out)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).to_string();
    eprintln!("{src} ({link:?}): {stdout}");
    assert!(
        run.status.success(),
        "{src} ({link:?}): {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let _ = std::fs::remove_file(Path::new(&out));
    stdout
}

#[test]
fn c_example_runs() {
    for link in [Link::Static, Link::Dynamic] {
        build_and_run("cc", "example.c", link, &[model_bxq()]);
    }
}

/// Every entry point's documented behaviour, from C (`c/abi.c`).
#[test]
fn c_abi_contract_holds() {
    for link in [Link::Static, Link::Dynamic] {
        build_and_run("cc", "abi.c", link, &[model_bxq()]);
    }
}

/// The RAII wrapper `bxflow.hpp`, from C++.
#[test]
fn cpp_example_runs() {
    for link in [Link::Static, Link::Dynamic] {
        build_and_run("c++", "example.cpp", link, &[model_bxq()]);
    }
}

/// Writes `<dir>/<name>.bxq` of `model` and `<dir>/<name>.cases`: `n`
/// random events as raw codes and as floats, with the golden model's
/// outputs (the format `c/golden.c` reads).
fn golden_cases(
    model: &quantize::qmodel::QModel,
    dir: &Path,
    name: &str,
    n: usize,
) -> [PathBuf; 2] {
    use rand::{rngs::SmallRng, Rng, SeedableRng};
    let engine = engine::Engine::new(model).unwrap();
    let (il, ol) = (engine.input_len(), engine.output_len());
    let mut rng = SmallRng::seed_from_u64(7);
    let mut bytes: Vec<u8> = Vec::new();
    for v in [n, il, ol] {
        bytes.extend((v as u64).to_le_bytes());
    }
    let raw_in: Vec<Vec<i64>> = (0..n)
        .map(|_| quantize::random::random_input(&mut rng, model))
        .collect();
    let f_in: Vec<Vec<f32>> = (0..n)
        .map(|_| (0..il).map(|_| rng.gen_range(-4.0f32..4.0)).collect())
        .collect();
    let golden = |x: &[i64]| quantize::golden::evaluate(model, x).unwrap();
    for x in &raw_in {
        bytes.extend(x.iter().flat_map(|v| v.to_le_bytes()));
    }
    for x in &raw_in {
        bytes.extend(golden(x).iter().flat_map(|v| v.to_le_bytes()));
    }
    for x in &f_in {
        bytes.extend(x.iter().flat_map(|v| v.to_le_bytes()));
    }
    for x in &f_in {
        let y = golden(&quantize::golden::quantize_input(model, x));
        bytes.extend(
            y.iter()
                .enumerate()
                .flat_map(|(i, &r)| (engine.output_value(i, r) as f32).to_le_bytes()),
        );
    }
    let bxq = dir.join(format!("{name}.bxq"));
    let cases = dir.join(format!("{name}.cases"));
    quantize::bxq::save(model, &bxq).unwrap();
    std::fs::write(&cases, bytes).unwrap();
    [bxq, cases]
}

/// Every shipped (peer) model, through every inference entry point of the
/// installed library, from C and from C++, static and shared, raw and
/// float: bit-exact with the golden model.
#[test]
fn c_api_matches_golden_on_peer_models() {
    let dir = std::env::temp_dir().join(format!("bxflow-capi-golden-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut models: Vec<PathBuf> = ["models", "models/jets"]
        .iter()
        .flat_map(|d| std::fs::read_dir(workspace().join(d)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "onnx"))
        .collect();
    models.sort();
    let mut checked = 0;
    for p in &models {
        let m = quantize::load_model(p, None).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let name = p.file_stem().unwrap().to_string_lossy();
        let [bxq, cases] = golden_cases(&m, &dir, &name, 200);
        for (compiler, link) in [
            ("cc", Link::Static),
            ("cc", Link::Dynamic),
            ("c++", Link::Static),
            ("c++", Link::Dynamic),
        ] {
            let out = build_and_run(compiler, "golden.c", link, &[&bxq, &cases]);
            assert!(out.contains("golden OK"), "{out}");
        }
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} models");
    // Random models of two inputs and two outputs, each of its own type:
    // the flat event, every input after the other, through every entry point.
    use rand::SeedableRng;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(12);
    let mut multi = 0;
    while multi < 3 {
        let m = quantize::random::random_model(&mut rng, &quantize::random::RandomSpec::default());
        if m.inputs.len() < 2 || m.outputs.len() < 2 {
            continue;
        }
        let [bxq, cases] = golden_cases(&m, &dir, &format!("multi{multi}"), 50);
        let out = build_and_run("cc", "golden.c", Link::Static, &[&bxq, &cases]);
        assert!(out.contains("golden OK"), "{out}");
        multi += 1;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The installed libraries: the shared one has a SONAME with the ABI
/// version, and the static one defines no global symbol but the API (the
/// Rust runtime's would clash in a large link).
#[test]
fn installed_libraries_export_only_the_api() {
    let prefix = installed();
    let h = std::fs::read_to_string(root().join("include/bxflow.h")).unwrap();
    let abi = h
        .lines()
        .find_map(|l| l.strip_prefix("#define BXFLOW_ABI_VERSION "))
        .unwrap()
        .trim();
    let so = prefix.join(format!("lib/libbxflow.so.{abi}"));
    let d = Command::new("readelf").arg("-d").arg(&so).output().unwrap();
    let d = String::from_utf8_lossy(&d.stdout);
    assert!(
        d.contains(&format!("Library soname: [libbxflow.so.{abi}]")),
        "{}: no SONAME libbxflow.so.{abi}:\n{d}",
        so.display()
    );
    for (lib, nm_args) in [
        (prefix.join("lib/libbxflow.a"), vec!["-g", "--defined-only"]),
        (so, vec!["-D", "--defined-only"]),
    ] {
        let nm = Command::new("nm")
            .args(&nm_args)
            .arg(&lib)
            .output()
            .unwrap();
        assert!(nm.status.success(), "nm {}", lib.display());
        let text = String::from_utf8_lossy(&nm.stdout);
        let globals: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split_whitespace().nth(2))
            .collect();
        let foreign: Vec<&&str> = globals
            .iter()
            .filter(|s| !s.starts_with("bxflow_"))
            .collect();
        assert!(
            foreign.is_empty(),
            "{} defines {} global symbols besides the API, e.g. {:?}",
            lib.display(),
            foreign.len(),
            &foreign[..foreign.len().min(5)]
        );
        assert!(
            globals.len() >= 25,
            "{}: {} API symbols",
            lib.display(),
            globals.len()
        );
    }
}
