//! The exported Verilog passes `verilator --lint-only -Wall` without a
//! single warning, so a lint-gated firmware CI takes it as it is: every
//! operand is sized to the wire it feeds (no WIDTH warnings), the bits that
//! rounding and overflow drop are marked as unused by design, and the
//! per-port wrapper that shares the kernel's file says so. Kernels of every
//! builder: II 1, a reuse factor, a convolution, several inputs and
//! outputs, an unrolled and a reused recurrent cell. The VHDL package of
//! component declarations beside it analyzes under GHDL and declares the
//! manifest's ports.

#[path = "../../quantize/tests/common/mod.rs"]
mod common;
#[path = "common/mod.rs"]
mod hdl_common;

use hdl::export::write_export;
use hdl::{build_kernel, Options, Recurrent};
use hdl_common::{events, have, model_at, tmp_dir};
use quantize::qmodel::QModel;

fn model(path: &str) -> QModel {
    model_at(path, "fixed<12,5,RND,SAT>")
}

#[test]
fn exported_verilog_is_lint_clean_under_verilator_wall() {
    if !have("verilator") {
        return;
    }
    let reuse = |r| Options {
        reuse: Some(r),
        ..Options::default()
    };
    let reused = Options {
        recurrent: Recurrent::Reused,
        ..Options::default()
    };
    let cases = [
        ("../models/three_layer_keras.onnx", Options::default()),
        ("../models/three_layer_keras.onnx", reuse(4)),
        ("../models/conv1d_small_keras.onnx", Options::default()),
        ("../models/graphs/two_tower.onnx", Options::default()),
        ("../models/ops/GRUDefaults.onnx", Options::default()),
        ("../models/ops/LSTMDefaults.onnx", reused),
    ];
    for (i, (path, opts)) in cases.iter().enumerate() {
        let m = model(path);
        let k = build_kernel(&m, opts).unwrap();
        let dir = tmp_dir(&format!("lint{i}"));
        write_export(&dir, &k, &m, &events(&m, 4, 1)).unwrap();
        let file = format!("{}.v", k.name);
        let out = std::process::Command::new("verilator")
            .current_dir(&dir)
            .args(["--lint-only", "-Wall", &file])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !text.contains("%Warning") && !text.contains("%Error"),
            "{path} ({}): {}",
            k.name,
            text.lines().take(12).collect::<Vec<_>>().join("\n")
        );
        vhdl_declares_the_manifest_ports(&dir);
        std::fs::remove_dir_all(&dir).ok();
    }
}

/// The export's VHDL package analyzes (VHDL-2008) and declares every port
/// of the manifest with its width, for both components.
fn vhdl_declares_the_manifest_ports(dir: &std::path::Path) {
    let m = hdl::manifest::Manifest::read(dir).unwrap();
    let text = std::fs::read_to_string(dir.join(&m.files.vhdl_components)).unwrap();
    let declared = |port: &str, bits: u32| {
        let ty = if bits == 1 && !port.ends_with("_data") {
            "std_logic;".to_string()
        } else {
            format!("std_logic_vector({} downto 0)", bits - 1)
        };
        text.lines()
            .any(|l| l.trim_start().starts_with(&format!("{port} ")) && l.contains(&ty))
    };
    for p in &m.ports {
        assert!(
            declared(&p.name, p.width),
            "{} {}:\n{text}",
            p.name,
            p.width
        );
    }
    for b in m.inputs.iter().chain(&m.outputs) {
        assert!(declared(&b.port, b.bits), "{}:\n{text}", b.port);
    }
    if have("ghdl") {
        let out = std::process::Command::new("ghdl")
            .current_dir(dir)
            .args(["-a", "--std=08", &m.files.vhdl_components])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ghdl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Two builds of one model get different module names by default, so both
/// can live in one design; `--module` names it, and a name Verilog refuses
/// is an error that says why.
#[test]
fn module_names_follow_the_options() {
    let m = model("../models/three_layer_keras.onnx");
    let name = |o: Options| build_kernel(&m, &o).map(|k| k.name);
    assert_eq!(name(Options::default()).unwrap(), "three_layer_keras");
    let r4 = Options {
        reuse: Some(4),
        ..Options::default()
    };
    assert_eq!(name(r4.clone()).unwrap(), "three_layer_keras_r4");
    let dsp = Options {
        strategy: hdl::Strategy::Dsp,
        clock_mhz: 250.0,
        ..r4
    };
    assert_eq!(name(dsp).unwrap(), "three_layer_keras_r4_dsp_250mhz");
    let named = |s: &str| Options {
        module: Some(s.to_string()),
        ..Options::default()
    };
    assert_eq!(name(named("tagger_v2")).unwrap(), "tagger_v2");
    for bad in ["2tagger", "tag-ger", "module", ""] {
        let e = name(named(bad)).unwrap_err().to_string();
        assert!(
            e.contains(&format!("module name '{bad}' is not a Verilog identifier")),
            "{e}"
        );
    }
}
