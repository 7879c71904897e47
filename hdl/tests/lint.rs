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
        (
            "../models/two_layer_keras.onnx",
            Options {
                clock_enable: true,
                ..Options::default()
            },
        ),
        // MULT18X18D instances and their simulation model.
        (
            "../models/two_layer_keras.onnx",
            Options {
                clock_enable: true,
                family: hdl::Family::Ecp5,
                strategy: hdl::Strategy::Dsp,
                reuse: Some(4),
                ..Options::default()
            },
        ),
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
    assert_eq!(
        name(dsp.clone()).unwrap(),
        "three_layer_keras_r4_dsp_250mhz"
    );
    for (u, suffix) in [(0.0, "_u0"), (7.5, "_u7p5")] {
        let o = Options {
            clock_uncertainty: u,
            ..dsp.clone()
        };
        assert_eq!(
            name(o).unwrap(),
            format!("three_layer_keras_r4_dsp_250mhz{suffix}")
        );
    }
    // Binary adders change the hardware on UltraScale+ only.
    let bin = |family| Options {
        binary_adders: true,
        family,
        ..Options::default()
    };
    assert_eq!(
        name(bin(hdl::Family::Xcup)).unwrap(),
        "three_layer_keras_bin"
    );
    assert_eq!(
        name(bin(hdl::Family::Ecp5)).unwrap(),
        "three_layer_keras_ecp5"
    );
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

/// The Vivado files beside the export: the XDC constrains port `clock` to
/// the kernel's target period, and the batch script, run under `tclsh` with
/// Vivado's commands stubbed (each records its call; the timing path's
/// slack is given), reads the export's files, runs synthesis, placement
/// and routing out of context for the part asked for, writes both reports,
/// and exits 0 on met timing and 1 on negative slack with a message.
#[test]
fn vivado_files_constrain_the_clock_and_check_timing() {
    let m = model("../models/three_layer_keras.onnx");
    let opts = Options {
        clock_mhz: 250.0,
        ..Options::default()
    };
    let k = build_kernel(&m, &opts).unwrap();
    let dir = tmp_dir("vivado");
    write_export(&dir, &k, &m, &events(&m, 2, 1)).unwrap();
    let man = hdl::manifest::Manifest::read(&dir).unwrap();
    let xdc = std::fs::read_to_string(dir.join(&man.files.xdc)).unwrap();
    assert!(
        xdc.contains("create_clock -period 4.000 -name clock [get_ports clock]"),
        "{xdc}"
    );
    let note = std::fs::read_to_string(dir.join("INTEGRATION.md")).unwrap();
    assert!(note.contains(&man.files.vivado_tcl) && note.contains(&man.files.xdc));
    if !have("tclsh") {
        return;
    }
    let stubs = r#"
set calls {}
foreach cmd {read_verilog read_xdc synth_design opt_design place_design route_design report_timing_summary report_utilization} {
    proc $cmd {args} "lappend ::calls \"$cmd \$args\""
}
proc get_timing_paths {args} { return path }
proc get_property {name obj} { return $::slack }
rename exit real_exit
proc exit {code} { puts "CALLS [join $::calls |]"; real_exit $code }
set slack [lindex $argv 0]
set argv [lrange $argv 1 end]
set argc [llength $argv]
source [lindex $argv end]
"#;
    std::fs::write(dir.join("stubs.tcl"), stubs).unwrap();
    let script = dir.join(&man.files.vivado_tcl);
    let run = |slack: &str| {
        std::process::Command::new("tclsh")
            .current_dir(&dir)
            .args(["stubs.tcl", slack, "xcvu9p-flga2104-2-e"])
            .arg(&script)
            .output()
            .unwrap()
    };
    let ok = run("0.123");
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let name = &man.module;
    for want in [
        format!("read_verilog {name}.v"),
        format!("read_xdc -mode out_of_context {name}.xdc"),
        format!("synth_design -top {name} -part xcvu9p-flga2104-2-e -mode out_of_context"),
        "route_design".to_string(),
        format!("report_timing_summary -file {name}_timing.rpt"),
        format!("report_utilization -file {name}_utilization.rpt"),
        "bxflow: TIMING MET".to_string(),
        "worst setup slack 0.123 ns at 250 MHz on xcvu9p-flga2104-2-e".to_string(),
    ] {
        assert!(out.contains(&want), "missing '{want}' in\n{out}");
    }
    let bad = run("-0.050");
    let out = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{out}");
    assert!(out.contains("bxflow: TIMING FAILED"), "{out}");
    std::fs::remove_dir_all(&dir).ok();
}
