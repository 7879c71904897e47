//! Sliding-window operators against tract's float reference: grouped,
//! depthwise, dilated and 3-D convolutions, 3-D and dilated pooling, and
//! transposed convolutions (strides, pads, output padding, groups,
//! dilations), on models written here and on the public ConvTranspose test
//! models in `models/ops/`. Bit-exactness of the backends on the same
//! windows is the random-model property tests' job (`RandomSpec::conv`).

mod common;

use common::{model, node, scattered, with_int, with_ints};
use quantize::onnx::import_bytes;
use quantize::qmodel::Window;

/// One node over `x` with weights `W` (and bias `B` when `bias`), its
/// attributes set by `attrs`.
struct Case {
    name: &'static str,
    op: &'static str,
    x: &'static [i64],
    w: Option<&'static [i64]>,
    bias: Option<i64>,
    ints: &'static [(&'static str, &'static [i64])],
    group: i64,
}

const CASES: &[Case] = &[
    Case {
        name: "grouped conv 2-D",
        op: "Conv",
        x: &[1, 4, 5, 5],
        w: Some(&[6, 2, 3, 3]),
        bias: Some(6),
        ints: &[("pads", &[1, 1, 1, 1])],
        group: 2,
    },
    Case {
        name: "depthwise conv, stride 2",
        op: "Conv",
        x: &[1, 3, 6, 6],
        w: Some(&[3, 1, 3, 3]),
        bias: Some(3),
        ints: &[("strides", &[2, 2]), ("pads", &[1, 0, 1, 0])],
        group: 3,
    },
    Case {
        name: "depthwise with multiplier 2",
        op: "Conv",
        x: &[1, 2, 7],
        w: Some(&[4, 1, 3]),
        bias: None,
        ints: &[],
        group: 2,
    },
    Case {
        name: "dilated conv 1-D",
        op: "Conv",
        x: &[1, 2, 9],
        w: Some(&[3, 2, 3]),
        bias: Some(3),
        ints: &[("dilations", &[2]), ("pads", &[2, 1])],
        group: 1,
    },
    Case {
        name: "conv 3-D",
        op: "Conv",
        x: &[1, 2, 4, 4, 4],
        w: Some(&[3, 2, 2, 2, 2]),
        bias: Some(3),
        ints: &[("strides", &[1, 2, 1]), ("pads", &[0, 1, 0, 1, 0, 1])],
        group: 1,
    },
    Case {
        name: "max pool 3-D",
        op: "MaxPool",
        x: &[1, 2, 4, 4, 4],
        w: None,
        bias: None,
        ints: &[("kernel_shape", &[2, 2, 2]), ("strides", &[2, 2, 2])],
        group: 1,
    },
    Case {
        name: "average pool 3-D",
        op: "AveragePool",
        x: &[1, 2, 4, 5, 4],
        w: None,
        bias: None,
        ints: &[("kernel_shape", &[2, 3, 2]), ("pads", &[0, 1, 0, 0, 1, 0])],
        group: 1,
    },
    Case {
        name: "dilated max pool 2-D",
        op: "MaxPool",
        x: &[1, 2, 7, 7],
        w: None,
        bias: None,
        ints: &[("kernel_shape", &[2, 2]), ("dilations", &[2, 3])],
        group: 1,
    },
    Case {
        name: "max pool, ceil_mode (a last window over the end)",
        op: "MaxPool",
        x: &[1, 2, 7, 8],
        w: None,
        bias: None,
        ints: &[
            ("kernel_shape", &[3, 3]),
            ("strides", &[2, 3]),
            ("ceil_mode", &[1]),
        ],
        group: 1,
    },
    Case {
        name: "average pool, ceil_mode and pads (a last window in the padding is dropped)",
        op: "AveragePool",
        x: &[1, 1, 6, 4],
        w: None,
        bias: None,
        ints: &[
            ("kernel_shape", &[2, 2]),
            ("strides", &[2, 2]),
            ("pads", &[1, 0, 1, 1]),
            ("ceil_mode", &[1]),
        ],
        group: 1,
    },
    Case {
        name: "average pool counting the padding",
        op: "AveragePool",
        x: &[1, 2, 5, 5],
        w: None,
        bias: None,
        ints: &[
            ("kernel_shape", &[3, 3]),
            ("pads", &[1, 1, 1, 1]),
            ("count_include_pad", &[1]),
        ],
        group: 1,
    },
    Case {
        name: "transposed conv 2-D, stride 2, pads, output padding",
        op: "ConvTranspose",
        x: &[1, 2, 3, 3],
        w: Some(&[2, 3, 3, 3]),
        bias: Some(3),
        ints: &[
            ("strides", &[2, 2]),
            ("pads", &[1, 1, 1, 1]),
            ("output_padding", &[1, 1]),
        ],
        group: 1,
    },
    Case {
        name: "transposed conv 1-D, grouped, dilated, stride 3",
        op: "ConvTranspose",
        x: &[1, 4, 5],
        w: Some(&[4, 2, 3]),
        bias: Some(4),
        ints: &[("strides", &[3]), ("dilations", &[2])],
        group: 2,
    },
    Case {
        name: "transposed conv 2-D, unequal strides and kernel",
        op: "ConvTranspose",
        x: &[1, 3, 4, 3],
        w: Some(&[3, 2, 2, 3]),
        bias: None,
        ints: &[("strides", &[1, 2]), ("pads", &[0, 1, 1, 2])],
        group: 1,
    },
    Case {
        name: "transposed conv 3-D",
        op: "ConvTranspose",
        x: &[1, 2, 2, 3, 2],
        w: Some(&[2, 2, 2, 2, 2]),
        bias: Some(2),
        ints: &[("strides", &[2, 1, 2])],
        group: 1,
    },
];

fn case_model(c: &Case) -> Vec<u8> {
    let mut inputs = vec!["x"];
    let mut inits = Vec::new();
    if let Some(w) = c.w {
        inputs.push("W");
        inits.push(scattered("W", w, 1));
    }
    if let Some(b) = c.bias {
        inputs.push("B");
        inits.push(scattered("B", &[b], 2));
    }
    let mut n = node(c.op, c.name, &inputs, &["y"]);
    for (k, v) in c.ints {
        // `ceil_mode` and `count_include_pad` are one integer; the others are lists.
        n = match *k {
            "ceil_mode" | "count_include_pad" => with_int(n, k, v[0]),
            _ => with_ints(n, k, v),
        };
    }
    if c.group != 1 {
        n = with_int(n, "group", c.group);
    }
    model(vec![n], inits, c.x, "y", &[])
}

#[test]
fn windows_match_tract() {
    for c in CASES {
        common::matches_tract(c.name, &case_model(c), 20, 3);
    }
}

#[test]
fn public_conv_transpose_models_match_tract() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/ops");
    for name in [
        "ConvTranspose1d.onnx",
        "ConvTranspose2d.onnx",
        "ConvTransposeBias2d.onnx",
        "ConvTransposeBias2dBatched.onnx",
        "ConvTrans2dModel_B1.onnx",
    ] {
        common::matches_tract(name, &std::fs::read(dir.join(name)).unwrap(), 20, 5);
    }
}

/// A transposed convolution computed by its definition (every input
/// scatters `x * w` over the output), against the window the importer
/// builds for it: the importer's rewrite as a convolution over the dilated
/// input is checked without tract.
#[test]
fn transposed_window_equals_the_scatter_definition() {
    let (cin, n, k, s, pad, out_pad) = (1usize, 4usize, 3usize, 2usize, 1usize, 1usize);
    let w: Vec<f64> = (0..k).map(|i| [0.5, -1.0, 2.0][i]).collect();
    let x: Vec<f64> = (0..n).map(|i| i as f64 + 1.0).collect();
    let full = s * (n - 1) + out_pad + k;
    let mut want = vec![0.0; full];
    for (i, &xv) in x.iter().enumerate() {
        for (j, &wv) in w.iter().enumerate() {
            want[i * s + j] += xv * wv;
        }
    }
    let want = &want[pad..full - pad];
    let mut win = Window::plain(
        cin,
        vec![n],
        vec![k],
        vec![1],
        vec![k - 1 - pad],
        vec![k - 1 - pad + out_pad],
    );
    win.in_dilation = vec![s];
    assert_eq!(win.out_spatial(), vec![want.len()]);
    let got: Vec<f64> = (0..win.out_positions())
        .map(|p| win.conv_taps(0, p).map(|(j, i)| w[k - 1 - j] * x[i]).sum())
        .collect();
    assert_eq!(got, want);
}

#[test]
fn unsupported_windows_name_the_problem() {
    let cases = [
        (
            Case {
                name: "groups that do not divide",
                op: "Conv",
                x: &[1, 3, 5],
                w: Some(&[4, 1, 3]),
                bias: None,
                ints: &[],
                group: 2,
            },
            "group 2 does not divide the 3 input",
        ),
        (
            Case {
                name: "cropping pads",
                op: "ConvTranspose",
                x: &[1, 1, 4],
                w: Some(&[1, 1, 2]),
                bias: None,
                ints: &[("pads", &[2, 0])],
                group: 1,
            },
            "crop more than the kernel's span",
        ),
        (
            Case {
                name: "a dilated kernel past the input",
                op: "Conv",
                x: &[1, 2, 4],
                w: Some(&[1, 2, 3]),
                bias: None,
                ints: &[("dilations", &[3])],
                group: 1,
            },
            "larger than the padded input",
        ),
    ];
    for (c, want) in cases {
        let e = import_bytes(&case_model(&c), "t")
            .expect_err(want)
            .to_string();
        assert!(e.contains(want) && e.contains(c.op), "{want}: {e}");
    }
}
