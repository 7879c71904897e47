//! The C API: `include/bxflow.h` declares every `extern "C"` function of
//! `src/capi.rs` with the same arity, and `c/example.c` / `c/example.cpp`
//! compile against the header, link the staticlib and run.

use std::path::{Path, PathBuf};
use std::process::Command;

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
    let rs = std::fs::read_to_string(root().join("src/capi.rs")).unwrap();
    let h = std::fs::read_to_string(root().join("include/bxflow.h")).unwrap();
    let r = functions(&rs, true);
    let c = functions(&h, false);
    assert!(r.len() >= 14, "{r:?}");
    assert_eq!(r, c, "header and capi.rs disagree");
}

fn staticlib() -> PathBuf {
    // Tests run from target/<profile>/deps, next to the lib's artifacts.
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let a = deps.join("libengine.a");
    assert!(
        a.exists(),
        "{} missing: build with crate-type staticlib",
        a.display()
    );
    a
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
    let model = root().join("../models/three_layer_keras.onnx");
    let run = Command::new(&out).arg(&model).output().unwrap();
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

#[test]
fn cpp_example_runs() {
    build_and_run("c++", "example.cpp", "cpp");
}
