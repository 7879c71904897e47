//! Criterion benches of the engine on the jet tagger (`models/three_layer_keras.onnx`
//! quantized at `fixed<16,6>` and `fixed<8,3,RND,SAT>`): one event, and a
//! batch of 4096 events on one core, with the CPU's best kernel family and
//! with AVX2 forced (named in each bench's id). The default run is short (about 1 s
//! per bench); pass criterion's own flags for longer runs, e.g.
//! `cargo bench -p bxflow-engine --bench infer -- --measurement-time 10`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engine::{Engine, Isa};
use quantize::golden::quantize_input;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

fn model(precision: &str) -> quantize::qmodel::QModel {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/three_layer_keras.onnx");
    let g = quantize::onnx::import_path(&p).expect("jet tagger ONNX");
    let cfg = quantize::config::Config::uniform(precision.parse().expect("precision"));
    quantize::quantizer::quantize_graph(&g, &cfg).expect("quantize")
}

/// `n` events of N(0,1) features, quantized with the model's input type.
fn events(m: &quantize::qmodel::QModel, n: usize) -> Vec<i64> {
    let il = m.input_len();
    quantize::calibrate::gaussian_events(n, il, 1)
        .chunks(il)
        .flat_map(|x| quantize_input(m, x))
        .collect()
}

fn bench(c: &mut Criterion) {
    const N: usize = 4096;
    // The best family here, and AVX2 forced (the ISA of most farm nodes).
    let mut isas = vec![Isa::detect()];
    if Isa::Avx2.available() && Isa::detect() != Isa::Avx2 {
        isas.push(Isa::Avx2);
    }
    let runs = [("16bit", "fixed<16,6>"), ("8bit", "fixed<8,3,RND,SAT>")];
    for ((name, prec), &isa) in runs.iter().flat_map(|r| isas.iter().map(move |i| (r, i))) {
        let m = model(prec);
        let eng = Engine::with_isa(&m, isa).unwrap();
        let (il, ol) = (eng.input_len(), eng.output_len());
        let raw = events(&m, N);
        let mut s = eng.scratch();
        let mut g = c.benchmark_group(format!("jet_tagger_{name}"));
        g.warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1))
            .sample_size(20);
        let mut out = vec![0i64; ol];
        let mut i = 0;
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new("single", eng.isa()), |b| {
            b.iter(|| {
                i = (i + 1) % N;
                eng.infer_with(&mut s, black_box(&raw[i * il..(i + 1) * il]), &mut out)
                    .unwrap();
                black_box(&out);
            })
        });
        let mut outs = vec![0i64; N * ol];
        g.throughput(Throughput::Elements(N as u64));
        g.bench_function(BenchmarkId::new("batch4096", eng.isa()), |b| {
            b.iter(|| {
                eng.infer_batch_with(&mut s, black_box(&raw), &mut outs)
                    .unwrap();
                black_box(&outs);
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
