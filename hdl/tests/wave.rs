//! The VCD waveform: read back with the `vcd` parser, it shows the
//! handshake of a folded kernel (one event per II cycles) and, on each
//! `out_valid` cycle, the golden outputs of the events in order.

use hdl::{build_kernel, Options};
use quantize::golden::evaluate;
use quantize::qmodel::QOp;
use quantize::random::{random_input, random_model, RandomSpec};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use vcd::{Command, Value};

fn int(v: &[Value]) -> i64 {
    let mut x: i64 = if v.first() == Some(&Value::V1) { -1 } else { 0 };
    for b in v {
        x = (x << 1) | (*b == Value::V1) as i64;
    }
    x
}

#[test]
fn waveform_shows_handshake_and_golden_outputs() {
    let mut rng = SmallRng::seed_from_u64(9);
    let spec = RandomSpec {
        skips: false,
        ..RandomSpec::default()
    };
    let mut model = random_model(&mut rng, &spec);
    for l in &mut model.layers {
        if matches!(l.op, QOp::Dense { .. }) {
            l.reuse = 3;
        }
    }
    let k = build_kernel(&model, &Options::default()).unwrap();
    assert_eq!(k.ii, 3);
    let events: Vec<Vec<i64>> = (0..5).map(|_| random_input(&mut rng, &model)).collect();
    let mut buf = Vec::new();
    let cycles = hdl::wave::write_vcd(&k, &events, &mut buf).unwrap();
    assert!(cycles >= 1 + 4 * 3 + k.latency as u64, "{cycles} cycles");

    let mut p = vcd::Parser::new(&buf[..]);
    let h = p.parse_header().unwrap();
    let id = |n: &str| {
        h.find_var(&[k.name.as_str(), n])
            .unwrap_or_else(|| panic!("{n}"))
            .code
    };
    let (clock, in_valid, out_valid) = (id("clock"), id("in_valid"), id("out_valid"));
    let outs: Vec<_> = (0..k.outputs.len())
        .map(|j| id(&format!("out_{j}")))
        .collect();
    let mut cur_out = vec![0i64; outs.len()];
    let (mut iv, mut ov) = (false, false);
    let (mut cycle, mut accepted, mut got) = (0u64, vec![], vec![]);
    // Values are written at each rising edge; they are complete when the
    // clock falls.
    for c in p {
        match c.unwrap() {
            Command::ChangeScalar(i, v) if i == clock && v == Value::V0 => {
                if iv {
                    accepted.push(cycle);
                }
                if ov {
                    got.push(cur_out.clone());
                }
                cycle += 1;
            }
            Command::ChangeScalar(i, v) if i == in_valid => iv = v == Value::V1,
            Command::ChangeScalar(i, v) if i == out_valid => ov = v == Value::V1,
            Command::ChangeVector(i, v) => {
                if let Some(j) = outs.iter().position(|&o| o == i) {
                    cur_out[j] = int(&v);
                }
            }
            _ => {}
        }
    }
    assert_eq!(accepted.len(), events.len());
    assert!(
        accepted.windows(2).all(|w| w[1] - w[0] == 3),
        "{accepted:?}"
    );
    let want: Vec<Vec<i64>> = events
        .iter()
        .map(|e| evaluate(&model, e).unwrap())
        .collect();
    let got: Vec<Vec<i64>> = got
        .iter()
        .map(|o| {
            o.iter()
                .zip(&k.outputs)
                .map(|(&v, f)| {
                    if f.signed {
                        v
                    } else {
                        v & ((1i64 << f.width) - 1)
                    }
                })
                .collect()
        })
        .collect();
    assert_eq!(got, want);
}
