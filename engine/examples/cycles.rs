//! Steady-state loop for `perf stat` (cycles and instructions per event are
//! far less noisy than wall time on a shared machine):
//! `perf stat -e cycles:u,instructions:u target/release/examples/cycles M.bxq single|batch N [ISA]`.
//! `lat` times each single call on the fenced time-stamp counter instead
//! (for machines whose virtual CPUs expose no performance counters).

use engine::Engine;
use quantize::golden::quantize_input;
use std::hint::black_box;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let m = quantize::bxq::load(std::path::Path::new(&a[1])).unwrap();
    let mode = a.get(2).map_or("single", |s| s.as_str());
    let n: usize = a.get(3).map_or(10_000_000, |s| s.parse().unwrap());
    let eng = match a.get(4) {
        Some(isa) => Engine::with_isa(&m, isa.parse().unwrap()).unwrap(),
        None => Engine::new(&m).unwrap(),
    };
    let (il, ol) = (eng.input_len(), eng.output_len());
    const P: usize = 4096;
    let mut s = 0x9E3779B97F4A7C15u64;
    let feats: Vec<f32> = (0..P * il)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0) as f32
        })
        .collect();
    let raw: Vec<i64> = feats
        .chunks(il)
        .flat_map(|x| quantize_input(&m, x))
        .collect();
    let mut sc = eng.scratch();
    let t = std::time::Instant::now();
    let mut acc = 0i64;
    if mode == "batch" {
        let mut out = vec![0i64; P * ol];
        for _ in 0..n / P {
            eng.infer_batch_with(&mut sc, &raw, &mut out).unwrap();
            acc += out[ol];
        }
    } else if mode == "lat" {
        // Each call between fenced time-stamp reads, as `bxflow bench`
        // times one event: the p50 in ticks, and that of an empty pair.
        let mut out = vec![0i64; ol];
        let mut d = Vec::with_capacity(n);
        for i in 0..n {
            let j = i % P;
            let t0 = engine::peak::ticks();
            eng.infer_with(&mut sc, black_box(&raw[j * il..(j + 1) * il]), &mut out)
                .unwrap();
            d.push(engine::peak::ticks() - t0);
            acc += out[0];
        }
        let mut e = Vec::with_capacity(n);
        for _ in 0..n {
            let t0 = engine::peak::ticks();
            e.push(engine::peak::ticks() - t0);
        }
        d.sort_unstable();
        e.sort_unstable();
        eprintln!("p50 {} ticks (empty {})", d[n / 2], e[n / 2]);
    } else {
        let mut out = vec![0i64; ol];
        for i in 0..n {
            let j = i % P;
            eng.infer_with(&mut sc, black_box(&raw[j * il..(j + 1) * il]), &mut out)
                .unwrap();
            acc += out[0];
        }
    }
    let dt = t.elapsed().as_secs_f64();
    eprintln!(
        "{mode} {} events: {:.1} ns/event wall ({:.2} M ev/s) [{acc}]",
        n,
        dt * 1e9 / n as f64,
        n as f64 / dt / 1e6
    );
}
