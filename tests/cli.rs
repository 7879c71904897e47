//! The `bxflow` command line end to end: inspect, quantize, eval, and the
//! errors a user sees for bad input.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bxflow(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bxflow"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `bxflow eval MODEL --input INPUT --output OUTPUT`.
fn eval(model: &Path, input: &Path, output: &Path) -> (bool, String, String) {
    bxflow(&[
        "eval",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ])
}

fn model(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(name)
        .display()
        .to_string()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bxflow-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn inspect_lists_layers_with_onnx_names() {
    let (ok, out, _) = bxflow(&["inspect", &model("three_layer_keras.onnx")]);
    assert!(ok);
    assert!(
        out.contains("Softmax") && out.contains("Relu2") && out.contains("4389 parameters"),
        "{out}"
    );
}

/// inspect says how it reads each input (the event axis rule) and lists an
/// unrolled recurrent node's step layers under their configurable names.
#[test]
fn inspect_prints_the_event_axis_reading_and_recurrent_steps() {
    let (ok, out, err) = bxflow(&["inspect", &model("ops/RNNDefaults.onnx")]);
    assert!(ok, "{err}");
    assert!(
        out.contains("input  'X' [3, 1, 3] (tensor 0; the whole static tensor is one event)")
            && out.contains("RNN_0.f2.h"),
        "{out}"
    );
    let (ok, out, err) = bxflow(&["inspect", &model("ops/RNNBatchwise.onnx")]);
    assert!(ok, "{err}");
    assert!(
        out.contains("input  'X' [1, 2] (tensor 0; the first ONNX axis is the event axis)"),
        "{out}"
    );
}

/// `models/NAME` quantized at the default precision on 1,000 generated
/// events, written to the temporary file `out`.
fn quantized(name: &str, out: &str) -> PathBuf {
    let bxq = tmp(out);
    let (ok, _, err) = bxflow(&[
        "quantize",
        &model(name),
        "-o",
        bxq.to_str().unwrap(),
        "--events",
        "1000",
    ]);
    assert!(ok, "{err}");
    bxq
}

/// inspect says which layers quantize by thresholds, and how many: the
/// BatchNormalization + Quant pairs of a Brevitas model, one set per channel.
#[test]
fn inspect_shows_threshold_quantizers() {
    let bxq = quantized("TFC_2W2A.onnx", "tfc.bxq");
    let (ok, out, err) = bxflow(&["inspect", bxq.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        out.contains("BatchNormalization_21+Quant_25")
            && out.contains("2 thresholds per element, 64 sets")
            && out.contains("2 thresholds per element, 1 set "),
        "{out}"
    );
    let (ok, out, err) = bxflow(&["inspect", bxq.to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    let bn = &j["layers"][2];
    assert_eq!(
        (&bn["thresholds"]["per_element"], &bn["thresholds"]["sets"]),
        (&serde_json::json!(2), &serde_json::json!(64)),
        "{bn}"
    );
    assert!(j["layers"][1]["thresholds"].is_null());
}

#[test]
fn quantize_then_eval_matches_the_report_and_checks_shapes() {
    let bxq = tmp("tagger.bxq");
    let rep = tmp("report.json");
    let (ok, out, err) = bxflow(&[
        "quantize",
        &model("three_layer_keras.onnx"),
        "-o",
        bxq.to_str().unwrap(),
        "--report",
        rep.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("fixed<16,6,RND,SAT>") && out.contains("argmax agreement"),
        "{out}"
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&rep).unwrap()).unwrap();
    assert!(r["accuracy"]["argmax_agreement"].as_f64().unwrap() >= 0.99);
    assert_eq!(r["layers"].as_array().unwrap().len(), 8);

    // inspect reads the .bxq back: types, accumulators and MACs per layer.
    let (ok, out, err) = bxflow(&["inspect", bxq.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        out.contains("ap_fixed<16,6,AP_RND,AP_SAT> / ap_fixed<")
            && out.contains("8 layers, 4256 MACs per event"),
        "{out}"
    );
    let (ok, out, err) = bxflow(&["inspect", bxq.to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["macs"], 4256);
    let first = &j["layers"][0];
    assert_eq!(
        (first["op"].as_str(), first["macs"].as_u64()),
        (Some("Dense"), Some(1024))
    );
    assert!(
        first["accumulator"]
            .as_str()
            .unwrap()
            .starts_with("ap_fixed<"),
        "{first}"
    );
    assert_eq!(j["layers"][7]["op"], "Softmax");

    // Events: 3 x 16 features.
    let x = tmp("x.npy");
    let feats: Vec<f32> = (0..48).map(|i| (i as f32 - 24.0) / 10.0).collect();
    quantize::npy::write_f32(&x, &[3, 16], &feats).unwrap();
    let y = tmp("y.npy");
    let (ok, _, err) = eval(&bxq, &x, &y);
    assert!(ok, "{err}");
    let out = quantize::npy::read_events(&y).unwrap();
    assert_eq!(out.shape, vec![3, 5]);
    // Softmax outputs are probabilities.
    for e in 0..3 {
        let s: f32 = out.event(e).iter().sum();
        assert!((s - 1.0).abs() < 0.01, "event {e} sums to {s}");
    }

    let bad = tmp("bad.npy");
    quantize::npy::write_f32(&bad, &[2, 10], &[0.0; 20]).unwrap();
    let (ok, _, err) = eval(&bxq, &bad, &y);
    assert!(!ok);
    assert!(
        err.contains("events have shape [10] but the model takes [16]"),
        "{err}"
    );

    // NaN features are evaluated (as 0 in fixed point) and counted.
    let mut feats = feats;
    feats[21] = f32::NAN;
    feats[40] = f32::NAN;
    quantize::npy::write_f32(&x, &[3, 16], &feats).unwrap();
    let (ok, _, err) = eval(&bxq, &x, &y);
    assert!(ok, "{err}");
    assert!(
        err.contains("2 NaN feature values (the first in event 1, at flat index 5)"),
        "{err}"
    );
}

#[test]
fn bad_precision_and_missing_files_are_named() {
    let (ok, _, err) = bxflow(&[
        "quantize",
        &model("two_layer_keras.onnx"),
        "-o",
        "/dev/null",
        "--precision",
        "fixed<16,6,FOO>",
    ]);
    assert!(!ok);
    assert!(
        err.contains("--precision 'fixed<16,6,FOO>'") && err.contains("FOO"),
        "{err}"
    );
    let (ok, _, err) = bxflow(&["inspect", "/nonexistent/model.onnx"]);
    assert!(!ok);
    assert!(err.contains("/nonexistent/model.onnx"), "{err}");
    // A truncated model: the reason once, not once per link of its chain.
    let cut = tmp("cut.bxq");
    let two = quantized("two_layer_keras.onnx", "cut_full.bxq");
    std::fs::write(&cut, &std::fs::read(&two).unwrap()[..200]).unwrap();
    let (ok, _, err) = bxflow(&["hdl", cut.to_str().unwrap(), "-o", "/dev/null"]);
    assert!(!ok);
    assert_eq!(err.matches("is truncated").count(), 1, "{err}");
    let junk = tmp("junk.bxq");
    std::fs::write(&junk, b"not a model").unwrap();
    let (ok, _, err) = bxflow(&[
        "eval",
        junk.to_str().unwrap(),
        "--input",
        "x.npy",
        "--output",
        "y.npy",
    ]);
    assert!(!ok);
    assert!(
        err.contains("x.npy") || err.contains("not a .bxq model"),
        "{err}"
    );
}

/// `bxflow hdl --reuse 4`: the export's manifest says II 4, lists the
/// `in_ready` port and each layer's reuse factor, and the integration note
/// explains the handshake.
#[test]
fn hdl_reuse_export_and_its_errors() {
    let dir = tmp("hdl_reuse");
    let (ok, out, err) = bxflow(&[
        "hdl",
        &model("three_layer_keras.onnx"),
        "-o",
        dir.to_str().unwrap(),
        "--reuse",
        "4",
        "--vectors",
        "10",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("II 4"), "{out}");
    // The default strategy is shift-add, yet folded layers multiply: said.
    assert!(
        out.contains("strategy shift-add (4 layers folded by reuse, multiplying in DSPs)"),
        "{out}"
    );
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["ii"], 4);
    assert!(m["ports"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "in_ready" && p["dir"] == "out"));
    let reuse: Vec<u64> = m["reuse"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["reuse"].as_u64().unwrap())
        .collect();
    // Dense layers share their multipliers; ReLU and Softmax have none to share.
    assert_eq!(reuse, vec![4, 1, 4, 1, 4, 1, 4, 1]);
    let note = std::fs::read_to_string(dir.join("INTEGRATION.md")).unwrap();
    assert!(note.contains("holds `in_ready` low for 3 cycles"), "{note}");

    // Options no kernel can honour are refused, each with its reason.
    let m = model("two_layer_keras.onnx");
    for (args, says) in [
        (
            &["--reuse", "0"][..],
            "reuse factor 0: each multiplier serves",
        ),
        (
            &["--clock", "2GHz"][..],
            "clock 2000 MHz leaves 238 ps of logic per pipeline stage on xcup",
        ),
        (
            &["--clock", "800MHz", "--family", "ecp5"][..],
            "less than one 16-bit adder (500 ps), the least a stage holds: give at most 729 MHz",
        ),
        (
            &["--clock-uncertainty", "100"][..],
            "clock uncertainty 100 %: give the share of the period kept out of each stage's logic, from 0 to below 100 (default 12.5)",
        ),
        (
            &["--clock-uncertainty", "five"][..],
            "'five' is not a percentage: give a number such as 12.5 or 5%",
        ),
        (
            &["--clock", "600MHz", "--family", "ecp5", "--clock-uncertainty", "30%"][..],
            "(the period less 30 % clock uncertainty and 700 ps of register overhead), less than one 16-bit adder (500 ps), the least a stage holds: give at most 583 MHz",
        ),
        (
            &["--layers", "2:1"][..],
            "layers 2..=1: the first layer comes after the last (give FIRST <= LAST: 1:2)",
        ),
    ] {
        let out = tmp("hdl_refused");
        let mut a = vec!["hdl", &m, "-o", out.to_str().unwrap()];
        a.extend_from_slice(args);
        let (ok, _, err) = bxflow(&a);
        assert!(!ok, "{args:?} was built");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// `bxflow hdl --recurrent reused`: the manifest lists the loop (steps,
/// period) and the interval; the integration note explains `in_ready`;
/// a model of one time step is refused with the reason.
#[test]
fn hdl_reused_recurrent_cell_export() {
    let dir = tmp("hdl_cell");
    let lstm = model("ops/LSTMDefaults.onnx");
    let (ok, out, err) = bxflow(&[
        "hdl",
        &lstm,
        "-o",
        dir.to_str().unwrap(),
        "--recurrent",
        "reused",
        "--vectors",
        "10",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("II 2"), "{out}");
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["ii"], 2);
    let cell = &m["cells"][0];
    assert_eq!(cell["steps"], 2);
    assert_eq!(cell["layers_per_step"], 16);
    let period = cell["period_cycles"].as_u64().unwrap();
    assert_eq!(cell["cycles_in_loop"].as_u64(), Some(2 * period));
    let note = std::fs::read_to_string(dir.join("INTEGRATION.md")).unwrap();
    assert!(
        note.contains("recurrent cells are reused across time steps"),
        "{note}"
    );
    let (ok, _, err) = bxflow(&[
        "hdl",
        &model("ops/GRUDefaults.onnx"),
        "-o",
        dir.to_str().unwrap(),
        "--recurrent",
        "reused",
    ]);
    assert!(
        !ok && err.contains("has no recurrent cell to reuse"),
        "{err}"
    );
}

/// `--precision` means the same to every command: `bxflow hdl` on the ONNX
/// builds the very kernel that `bxflow hdl` builds from the `.bxq` that
/// `bxflow quantize` wrote with that precision (no modes: RND and SAT).
#[test]
fn hdl_and_quantize_read_precision_alike() {
    let bxq = tmp("alike.bxq");
    let onnx = model("three_layer_keras.onnx");
    let (ok, _, err) = bxflow(&[
        "quantize",
        &onnx,
        "-o",
        bxq.to_str().unwrap(),
        "--precision",
        "fixed<8,3>",
    ]);
    assert!(ok, "{err}");
    let verilog = |args: &[&str], dir: &str| {
        let d = tmp(dir);
        let mut a = vec!["hdl"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", d.to_str().unwrap()]);
        let (ok, _, err) = bxflow(&a);
        assert!(ok, "{err}");
        std::fs::read_to_string(d.join("three_layer_keras.v")).unwrap()
    };
    let from_bxq = verilog(&[bxq.to_str().unwrap()], "alike_bxq");
    let from_onnx = verilog(&[&onnx, "--precision", "fixed<8,3>"], "alike_onnx");
    assert!(
        from_bxq == from_onnx,
        "the two paths built different kernels"
    );
    let wrap = verilog(&[&onnx, "--precision", "fixed<8,3,TRN,WRAP>"], "alike_wrap");
    assert!(wrap != from_onnx, "TRN/WRAP should build another kernel");
}

/// `--labels` must give one class per calibration event: fewer (or more)
/// labels than events is named with both counts, not a panic.
#[test]
fn mismatched_labels_are_named() {
    let x = tmp("calib20.npy");
    quantize::npy::write_f32(&x, &[20, 16], &[0.25; 320]).unwrap();
    let y = tmp("labels7.npy");
    quantize::npy::write_f32(&y, &[7], &[1.0; 7]).unwrap();
    let out = tmp("labels.bxq");
    let (ok, _, err) = bxflow(&[
        "quantize",
        &model("three_layer_keras.onnx"),
        "-o",
        out.to_str().unwrap(),
        "--calib",
        x.to_str().unwrap(),
        "--labels",
        y.to_str().unwrap(),
    ]);
    assert!(!ok, "mismatched labels were accepted");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("7 labels") && err.contains("20 events"),
        "the message should name both counts: {err}"
    );
}

/// `testbench --target cpu --isa` runs the engine with the kernel family
/// asked for (the scalar one exists everywhere) and says so in the report.
#[test]
fn cpu_testbench_runs_the_isa_asked_for() {
    let (ok, out, err) = bxflow(&[
        "testbench",
        &model("three_layer_keras.onnx"),
        "--target",
        "cpu",
        "--isa",
        "scalar",
        "--rate",
        "100kHz",
        "--events",
        "2000",
        "--budget",
        "1s",
        "--no-sweep",
    ]);
    // Pass or fail (a loaded machine may drop an event), the run is made
    // with the scalar kernels.
    assert!(ok || err.contains("testbench failed"), "{err}");
    assert!(out.contains("engine                   scalar"), "{out}");
}

#[path = "../quantize/tests/common/mod.rs"]
mod graphs;

/// A model of two inputs and three outputs: `eval` and `quantize` read an
/// `.npz` named by the inputs, `eval` writes one named by the outputs, and
/// an `.npy` for it is an error that says what to give instead.
#[test]
fn several_inputs_and_outputs_go_through_npz() {
    use quantize::npy;
    let onnx = tmp("two_tower.onnx");
    std::fs::write(&onnx, graphs::two_tower()).unwrap();
    let n = 20;
    let jets: Vec<f64> = (0..n * 6).map(|i| (i as f64 * 0.37).sin()).collect();
    let muons: Vec<f64> = (0..n * 3).map(|i| (i as f64 * 0.91).cos()).collect();
    // One event after the other, as the flat input the writer takes.
    let flat: Vec<f64> = (0..n)
        .flat_map(|e| {
            jets[e * 6..e * 6 + 6]
                .iter()
                .chain(&muons[e * 3..e * 3 + 3])
                .copied()
        })
        .collect::<Vec<_>>();
    let input = tmp("two_tower_in.npz");
    npy::write_outputs(&input, &[("jets", &[6]), ("muons", &[3])], n, &flat).unwrap();
    let (ok, out, err) = bxflow(&["inspect", onnx.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("input  'muons' [3] (tensor 1"), "{out}");
    assert!(out.contains("output 'feats' [8]"), "{out}");

    let output = tmp("two_tower_out.npz");
    let (ok, _, err) = eval(&onnx, &input, &output);
    assert!(ok, "{err}");
    assert!(
        err.contains("'score' [20, 2], 'feats' [20, 8], 'h2' [20, 4]"),
        "{err}"
    );
    let got = npy::read_npz(&output).unwrap();
    let names: Vec<&str> = got.iter().map(|(n, ..)| n.as_str()).collect();
    assert_eq!(names, ["score", "feats", "h2"]);
    let g = quantize::onnx::import_path(&onnx).unwrap();
    let want = g.evaluate(&flat[..9]);
    assert_eq!(
        got[0].1.data[..2],
        want[..2].iter().map(|&v| v as f32).collect::<Vec<_>>()[..]
    );
    assert_eq!(
        got[2].1.data[..4],
        want[10..14].iter().map(|&v| v as f32).collect::<Vec<_>>()[..]
    );

    let bxq = tmp("two_tower.bxq");
    let (ok, _, err) = bxflow(&[
        "quantize",
        onnx.to_str().unwrap(),
        "-o",
        bxq.to_str().unwrap(),
        "--calib",
        input.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let (ok, _, err) = eval(&bxq, &input, &output);
    assert!(ok, "{err}");

    let npy_in = tmp("two_tower_in.npy");
    npy::write_f64(&npy_in, n, 9, &flat).unwrap();
    let (ok, _, err) = eval(&onnx, &npy_in, &output);
    assert!(!ok);
    assert!(
        err.contains("the model has 2 inputs ('jets', 'muons'): give an .npz"),
        "{err}"
    );
}

/// Output piped into a reader that stops early (`| head`) ends the command
/// quietly, as with any Unix tool, instead of a panic on the broken pipe.
#[cfg(unix)]
#[test]
fn a_closed_pipe_ends_quietly() {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_bxflow"))
        .args(["inspect", "--json", &model("TFC_2W2A.onnx")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 10];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap(); // then closed
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        status.success() || status.signal() == Some(libc::SIGPIPE),
        "{status:?}"
    );
}

/// eval runs a .bxq on the CPU engine by default (its best ISA, or one
/// forced with --isa) and on the golden model with --golden: the files are
/// the same, byte for byte (the jet tagger, and TFC_2W2A's thresholds).
#[test]
fn eval_on_the_engine_equals_the_golden_model() {
    for (name, features) in [("jets/jet_tagger.onnx", 16), ("TFC_2W2A.onnx", 784)] {
        let bxq = quantized(name, &format!("eval_{features}.bxq"));
        let n = 1000;
        let x: Vec<f32> = (0..n * features)
            .map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 1.5)
            .collect();
        let input = tmp(&format!("eval_{features}_x.npy"));
        quantize::npy::write_f32(&input, &[n, features], &x).unwrap();
        let mut files = Vec::new();
        for (k, flags) in [&[][..], &["--isa", "scalar"], &["--golden"]]
            .iter()
            .enumerate()
        {
            let out = tmp(&format!("eval_{features}_{k}.npy"));
            let mut args = vec![
                "eval",
                bxq.to_str().unwrap(),
                "--input",
                input.to_str().unwrap(),
                "--output",
                out.to_str().unwrap(),
            ];
            args.extend_from_slice(flags);
            let (ok, _, err) = bxflow(&args);
            assert!(ok, "{err}");
            files.push(std::fs::read(&out).unwrap());
        }
        assert!(
            files[0] == files[2] && files[1] == files[2],
            "{name}: engine (best ISA, scalar) and golden differ"
        );
    }
}

/// `bxflow bench MODEL --json --runs 1 --events 2000 ARGS`: the report and its text.
fn bench_json(model: &str, args: &[&str]) -> (serde_json::Value, String) {
    let mut a = vec!["bench", model, "--json", "--runs", "1", "--events", "2000"];
    a.extend_from_slice(args);
    let (ok, out, err) = bxflow(&a);
    assert!(ok, "{err}");
    (serde_json::from_str(&out).unwrap(), out)
}

/// `bench` reports the machine's peak for the engine's ISA and the batch
/// rate's fraction of it: at 8 bits with AVX2 forced, the Dense layers run
/// on u8 lanes and the u8 peak is measured too; at 16 bits it is not. It
/// reports the core's clock and the single-event p50 in its cycles.
#[test]
fn bench_reports_the_peak_of_the_kernels_it_runs() {
    if !engine::Isa::Avx2.available() {
        eprintln!("AVX2 not available: bench's AVX2 peak is NOT tested here");
        return;
    }
    for (prec, u8s) in [("fixed<8,3>", true), ("fixed<16,6>", false)] {
        let q = tmp(&format!("bench_{}.bxq", prec.len()));
        let (ok, _, err) = bxflow(&[
            "quantize",
            &model("three_layer_keras.onnx"),
            "--precision",
            prec,
            "-o",
            q.to_str().unwrap(),
        ]);
        assert!(ok, "{err}");
        let (r, out) = bench_json(
            q.to_str().unwrap(),
            &["--isa", "avx2", "--stream-events", "0"],
        );
        let kernels = r["kernels"].to_string();
        assert_eq!(kernels.contains("avx2 u8xi8"), u8s, "{prec}: {kernels}");
        let i16 = r["peak_macs_per_s"].as_f64().unwrap();
        let f = r["peak_fraction_batch"].as_f64().unwrap();
        assert!(i16 > 0.0 && f > 0.0 && f.is_finite(), "{prec}: {out}");
        assert_eq!(r["peak_u8_macs_per_s"].as_f64().is_some(), u8s, "{out}");
        // The p50 in cycles is the p50 in ns at the clock measured beside it.
        let hz = r["clock_hz"].as_f64().unwrap();
        let ns = r["engine"]["single_p50_ns"].as_f64().unwrap();
        let cycles = r["single_p50_cycles"].as_f64().unwrap();
        assert!((0.8e9..6.5e9).contains(&hz), "{out}");
        assert!((cycles - ns * hz / 1e9).abs() < 1e-6 * cycles, "{out}");
    }
}

/// `bench` streams with 1, 2, 4, ... workers up to the CPUs and reports
/// the rate per worker.
#[test]
fn bench_reports_streaming_by_workers() {
    let (r, out) = bench_json(
        &model("three_layer_keras.onnx"),
        &["--stream-events", "20000"],
    );
    let pts = r["engine"]["stream_scaling"].as_array().unwrap().clone();
    let cpus = r["cpus"].as_u64().unwrap();
    let workers: Vec<u64> = pts.iter().map(|p| p["workers"].as_u64().unwrap()).collect();
    assert_eq!(workers.first(), Some(&1), "{out}");
    assert_eq!(workers.last(), Some(&cpus), "{out}");
    for p in &pts {
        let (e, w) = (
            p["events_per_s"].as_f64().unwrap(),
            p["workers"].as_f64().unwrap(),
        );
        assert!(e > 0.0 && (p["per_worker"].as_f64().unwrap() - e / w).abs() < 1e-6 * e);
    }
}

/// `--family ecp5` builds with the ECP5 delay model (more stages than
/// UltraScale+ at the same clock), names the module and the manifest after
/// it, and the note says how to check it and names the net map; `synth
/// --place-route` refuses an UltraScale+ export and names the Vivado script
/// instead.
#[test]
fn hdl_family_ecp5_and_place_route_refusal() {
    let (xd, ed) = (tmp("family_xcup"), tmp("family_ecp5"));
    let m = model("two_layer_keras.onnx");
    let build = |dir: &Path, family: &str| {
        let (ok, out, err) = bxflow(&[
            "hdl",
            &m,
            "-o",
            dir.to_str().unwrap(),
            "--clock",
            "100MHz",
            "--family",
            family,
            "--vectors",
            "4",
        ]);
        assert!(ok, "{out}{err}");
        // The summary names the stage budget and what set it.
        assert!(
            out.contains(&format!(
                "ps of logic/stage ({family} delay model, 12.5 % clock uncertainty)"
            )),
            "{out}"
        );
        let text = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()
    };
    let (x, e) = (build(&xd, "xcup"), build(&ed, "ecp5"));
    assert_eq!(x["family"], "xcup");
    assert_eq!(e["family"], "ecp5");
    assert_eq!(e["module"], "two_layer_keras_ecp5_100mhz");
    assert!(
        e["latency_cycles"].as_u64() > x["latency_cycles"].as_u64(),
        "ECP5 is slower per level: {} vs {} cycles",
        e["latency_cycles"],
        x["latency_cycles"]
    );
    let note = std::fs::read_to_string(ed.join("INTEGRATION.md")).unwrap();
    assert!(note.contains("ECP5 (speed grade 6) delay model"), "{note}");
    assert!(note.contains("bxflow synth DIR --place-route"), "{note}");
    assert!(note.contains("two_layer_keras_ecp5_100mhz_axis"), "{note}");
    // The net map that traces a timing report's cells to layers.
    let nets = e["files"]["net_map"].as_str().unwrap();
    assert!(note.contains(nets), "{note}");
    let text = std::fs::read_to_string(ed.join(nets)).unwrap();
    let map: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(map["layers"][0]["op"], "Dense", "{map}");
    assert!(map["nets"].as_array().is_some_and(|a| a.len() > 1), "{map}");
    let (ok, _, err) = bxflow(&["synth", xd.to_str().unwrap(), "--place-route"]);
    assert!(!ok);
    assert!(
        err.contains("place and route runs for ECP5 only")
            && err.contains("two_layer_keras_100mhz_vivado.tcl"),
        "{err}"
    );
}
