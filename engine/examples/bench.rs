//! Same as `bxflow bench`: `cargo run --release -p bxflow-engine --example bench -- MODEL.{bxq,onnx} [--onnx M.onnx] [--json] [--isa I] [--runs N] [--stream N] [--workers N] [--no-tract]`.
fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let val = |k: &str| a.iter().position(|x| x == k).map(|i| a[i + 1].clone());
    let mut o = engine::bench::BenchOptions::default();
    if let Some(v) = val("--runs") {
        o.runs = v.parse().unwrap();
    }
    if let Some(v) = val("--stream") {
        o.stream_events = v.parse().unwrap();
    }
    if let Some(v) = val("--events") {
        o.events = v.parse().unwrap();
    }
    if let Some(v) = val("--workers") {
        o.workers = v.parse().unwrap();
    }
    if let Some(v) = val("--batch") {
        o.batch = v.parse().unwrap();
    }
    o.no_tract = a.iter().any(|x| x == "--no-tract");
    o.pin = !a.iter().any(|x| x == "--no-pin");
    let isa = val("--isa").map(|s| s.parse().unwrap());
    let onnx = val("--onnx").map(std::path::PathBuf::from);
    let out = engine::bench::run_cli(
        std::path::Path::new(&a[0]),
        onnx.as_deref(),
        a.iter().any(|x| x == "--json"),
        isa,
        &o,
    )
    .unwrap();
    println!("{out}");
}
