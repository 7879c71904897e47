//! The testbench on the shipped jet tagger: 40 MHz passes on the FPGA
//! target, a too-large II loses events and says which II is needed, a
//! corrupted weight is caught with its event index, the JSON report parses,
//! and the CPU target accounts for every event.

use engine::Engine;
use hdl::{build_kernel, Options};
use quantize::qmodel::{QModel, QOp};
use std::path::PathBuf;
use std::sync::Arc;
use testbench::*;

/// The shared-machine test measures latency beside a busy thread of its
/// own: it runs alone (write lock), the other tests together (read locks).
static ALONE: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn together() -> std::sync::RwLockReadGuard<'static, ()> {
    ALONE
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn jets() -> QModel {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/three_layer_keras.onnx");
    quantize::load_model(&p, None).unwrap()
}

fn fpga_cfg(events: u64) -> FpgaConfig {
    FpgaConfig {
        events,
        sim: SimChoice::Rust,
        sweep_events: 300,
        work_dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tb"),
        ..FpgaConfig::default()
    }
}

#[test]
fn jet_tagger_at_40mhz_passes() {
    let _together = together();
    let m = jets();
    let k = build_kernel(&m, &Options::default()).unwrap();
    let pool = EventPool::generated(&m, 1000, 1000, 7).unwrap();
    let cfg = fpga_cfg(3000);
    let r = run_fpga(&m.name, &pool, &k, &cfg).unwrap();
    eprintln!("{}", r.table());
    assert!(r.pass, "{:?}", r.failures);
    assert_eq!(r.lost, 0);
    assert_eq!(r.mismatches, 0);
    assert_eq!(r.checked, 3000);
    assert_eq!(r.delivered, 3000);
    // Events every 5 cycles at II 1: no queueing, latency = the kernel's.
    let kk = r.kernel.as_ref().unwrap();
    assert_eq!(kk.max_ii_for_rate, 5);
    assert_eq!(kk.measured_latency, (k.latency as u64, k.latency as u64));
    let lc = r.latency_cycles.as_ref().unwrap();
    assert_eq!(lc.max, k.latency as f64);
    assert_eq!(r.interval_cycles.as_ref().unwrap().min, 5.0);
    assert!((r.offered_mhz - 40.0).abs() < 0.1, "{}", r.offered_mhz);
    assert!(!r.sweep.is_empty());

    // Poisson and bursts through the FIFO: every output still bit-exact.
    for a in [Arrivals::Poisson, Arrivals::Burst] {
        let c = FpgaConfig {
            arrivals: a,
            sweep: false,
            ..fpga_cfg(2000)
        };
        let r = run_fpga(&m.name, &pool, &k, &c).unwrap();
        assert_eq!(r.mismatches, 0, "{a}");
        assert_eq!(r.delivered + r.lost, 2000, "{a}");
        assert!(r.queue.as_ref().unwrap().max_depth >= 1);
    }
}

#[test]
fn verilator_matches_when_installed() {
    let _together = together();
    if !testbench::verilator::available() {
        // CI sets BXFLOW_REQUIRE_EDA=1: there a missing tool is a failure.
        assert!(
            std::env::var("BXFLOW_REQUIRE_EDA").as_deref() != Ok("1"),
            "verilator is not installed and BXFLOW_REQUIRE_EDA=1"
        );
        eprintln!("verilator not installed: skipped");
        return;
    }
    let m = jets();
    let k = build_kernel(&m, &Options::default()).unwrap();
    let pool = EventPool::generated(&m, 5000, 5000, 3).unwrap();
    let cfg = FpgaConfig {
        sim: SimChoice::Verilator,
        arrivals: Arrivals::Poisson,
        sweep: false,
        ..fpga_cfg(20_000)
    };
    let r = run_fpga(&m.name, &pool, &k, &cfg).unwrap();
    eprintln!("{}", r.table());
    assert_eq!(r.kernel.as_ref().unwrap().simulator, "verilator");
    assert_eq!(r.mismatches, 0);
    assert_eq!(r.delivered + r.lost, 20_000);
    // Same stream through the netlist simulator: same figures.
    let r2 = run_fpga(
        &m.name,
        &pool,
        &k,
        &FpgaConfig {
            sim: SimChoice::Rust,
            ..cfg
        },
    )
    .unwrap();
    assert_eq!(r.latency_cycles, r2.latency_cycles);
    assert_eq!(r.lost, r2.lost);
}

#[test]
fn reuse_too_large_for_40mhz_fails_with_loss_count() {
    let _together = together();
    let m = jets();
    let kernel = |r: u32| {
        let o = Options {
            reuse: Some(r),
            ..Options::default()
        };
        build_kernel(&m, &o).unwrap()
    };
    let k = kernel(8);
    assert_eq!(k.ii, 8, "reuse factor 8 shares each multiplier 8 times");
    let pool = EventPool::generated(&m, 500, 500, 7).unwrap();
    let cfg = fpga_cfg(2000);
    let r = run_fpga(&m.name, &pool, &k, &cfg).unwrap();
    eprintln!("{}", r.table());
    assert!(!r.pass);
    // Accepts at most one event per 8 cycles out of one per 5.
    assert!(r.lost > 0);
    assert_eq!(r.lost + r.accepted, 2000);
    assert!(
        r.lost >= 2000 - (2000 * 5 / 8) - cfg.fifo_depth as u64 - 1,
        "{}",
        r.lost
    );
    assert_eq!(r.mismatches, 0);
    let msg = r.failures.join("\n");
    assert!(
        msg.contains(&format!("{} of 2000 events lost", r.lost)),
        "{msg}"
    );
    assert!(msg.contains("II <= 5"), "{msg}");
    let kk = r.kernel.unwrap();
    assert!(!kk.ii_modelled, "the kernel's own II");
    assert_eq!((kk.kernel_ii, kk.driver_ii), (8, 8));
    assert_eq!(r.interval_cycles.unwrap().min, 8.0);
    // Reuse 5 exactly keeps up.
    let r = run_fpga(
        &m.name,
        &pool,
        &kernel(5),
        &FpgaConfig {
            sweep: false,
            ..fpga_cfg(2000)
        },
    )
    .unwrap();
    assert!(r.pass, "{:?}", r.failures);
}

#[test]
fn corrupted_weight_is_caught() {
    let _together = together();
    let m = jets();
    let mut bad = m.clone();
    let (li, wi) = bad
        .layers
        .iter_mut()
        .enumerate()
        .find_map(|(i, l)| match &mut l.op {
            QOp::Dense { weights, .. } => {
                // The largest weight of the first dense layer, one LSB off.
                let j = (0..weights.len())
                    .max_by_key(|&j| weights[j].abs())
                    .unwrap();
                weights[j] += if weights[j] > 0 { -1 } else { 1 };
                Some((i, j))
            }
            _ => None,
        })
        .unwrap();
    let k = build_kernel(&bad, &Options::default()).unwrap();
    let pool = EventPool::generated(&m, 500, 500, 11).unwrap(); // golden from the good model
    let r = run_fpga(
        &m.name,
        &pool,
        &k,
        &FpgaConfig {
            sweep: false,
            ..fpga_cfg(500)
        },
    )
    .unwrap();
    eprintln!("layer {li} weight {wi}\n{}", r.table());
    assert!(!r.pass);
    assert!(r.mismatches > 0);
    let first = &r.first_mismatches[0];
    assert_ne!(first.got, first.expected);
    assert_eq!(first.expected, pool.expected(first.event));
    assert!(
        r.failures
            .iter()
            .any(|f| f.contains(&format!("first at event {}", first.event))),
        "{:?}",
        r.failures
    );
}

#[test]
fn json_report_parses_and_holds_the_figures() {
    let _together = together();
    let m = jets();
    let k = build_kernel(&m, &Options::default()).unwrap();
    let pool = EventPool::generated(&m, 400, 400, 5).unwrap();
    let mut r = run_fpga(&m.name, &pool, &k, &fpga_cfg(1000)).unwrap();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tb-report");
    let json = write_report(&mut r, &dir).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["target"], "fpga");
    assert_eq!(v["events"], 1000);
    assert_eq!(v["pass"], true);
    assert_eq!(v["lost"], 0);
    assert_eq!(v["mismatches"], 0);
    assert_eq!(v["kernel"]["declared_latency"], k.latency);
    assert_eq!(
        v["latency_cycles"]["max"].as_f64().unwrap(),
        k.latency as f64
    );
    assert!((v["latency_ns"]["max"].as_f64().unwrap() - k.latency as f64 * 5.0).abs() < 1e-9);
    assert!(v["kernel"]["resources"]["lut_estimate"].as_u64().unwrap() > 0);
    assert!(v["sweep"].as_array().unwrap().len() >= 3);
    let back: Report = serde_json::from_value(v).unwrap();
    assert_eq!(back.latency_ns, r.latency_ns);
    for p in &r.plots {
        let s = std::fs::read_to_string(p).unwrap();
        assert!(s.len() > 200, "{p}");
    }
    assert!(
        r.plots.iter().filter(|p| p.ends_with(".svg")).count() == 3,
        "{:?}",
        r.plots
    );
}

#[test]
fn cpu_target_accounts_for_every_event() {
    let _together = together();
    let m = jets();
    let eng = Arc::new(Engine::new(&m).unwrap());
    let pool = EventPool::generated(&m, 4096, 4096, 9).unwrap();
    // As fast as possible: backpressure, nothing lost.
    let cfg = CpuConfig {
        rate_mhz: None,
        events: 100_000,
        sweep: false,
        budget_ns: 1e9,
        ..CpuConfig::default()
    };
    let r = run_cpu(&m.name, &pool, eng.clone(), &cfg).unwrap();
    eprintln!("{}", r.table());
    assert_eq!(r.delivered, 100_000);
    assert_eq!(r.lost, 0);
    assert_eq!(r.mismatches, 0);
    assert_eq!(r.checked, 100_000);
    assert!(r.pass, "{:?}", r.failures);
    // Paced above what two shared cores can do: drops, but every event is
    // delivered (and checked) or counted lost.
    let cfg = CpuConfig {
        rate_mhz: Some(400.0),
        events: 300_000,
        sweep: true,
        sweep_events: 50_000,
        ..CpuConfig::default()
    };
    let r = run_cpu(&m.name, &pool, eng, &cfg).unwrap();
    eprintln!("{}", r.table());
    assert_eq!(r.delivered + r.lost + r.failed, 300_000);
    assert_eq!(r.checked, r.delivered);
    assert_eq!(r.mismatches, 0);
    assert_eq!(r.latency_ns.count, r.delivered);
    let c = r.cpu.as_ref().unwrap();
    assert!(c.max_throughput_mhz.unwrap() > 0.0);
    assert!(!r.sweep.is_empty());
    if r.lost > 0 {
        assert!(!r.pass);
    }
}

/// The run that found a pipeline bug: paced at 40 MHz under the drop policy,
/// with a pool whose size is no multiple of the batch, so the producer's
/// slices split at every wrap. Outputs of batches sent after a dropped one
/// were labelled with the dropped batch's event numbers.
#[test]
fn cpu_target_at_40mhz_with_drops_keeps_every_output_on_its_event() {
    let _together = together();
    let m = jets();
    let eng = Arc::new(Engine::new(&m).unwrap());
    let pool = EventPool::generated(&m, 1000, 1000, 13).unwrap();
    let cfg = CpuConfig {
        rate_mhz: Some(40.0),
        events: 400_000,
        sweep: false,
        ..CpuConfig::default()
    };
    let r = run_cpu(&m.name, &pool, eng, &cfg).unwrap();
    assert_eq!(r.delivered + r.lost + r.failed, 400_000);
    assert_eq!(r.checked, r.delivered);
    assert_eq!(r.mismatches, 0, "{:?}", r.first_mismatches.first());
}

/// rust-hdl's own simulator, driving the kernel as a rust-hdl block, gives
/// the same run as the netlist simulator: latencies, intervals, losses and
/// bit-exact outputs, here with a reuse-2 kernel (II 2, `in_ready`).
#[test]
fn rust_hdl_simulator_agrees_with_netlist_simulator() {
    let _together = together();
    let m = jets();
    let k = build_kernel(
        &m,
        &Options {
            reuse: Some(2),
            ..Options::default()
        },
    )
    .unwrap();
    let pool = EventPool::generated(&m, 300, 300, 5).unwrap();
    let cfg = FpgaConfig {
        sweep: false,
        arrivals: Arrivals::Poisson,
        ..fpga_cfg(300)
    };
    let a = run_fpga(&m.name, &pool, &k, &cfg).unwrap();
    let b = run_fpga(
        &m.name,
        &pool,
        &k,
        &FpgaConfig {
            sim: SimChoice::RustHdl,
            ..cfg
        },
    )
    .unwrap();
    assert_eq!(b.kernel.as_ref().unwrap().simulator, "rust-hdl simulation");
    assert!(b.pass, "{:?}", b.failures);
    assert_eq!((b.delivered, b.mismatches, b.lost), (300, 0, 0));
    assert_eq!(a.latency_cycles, b.latency_cycles);
    assert_eq!(a.interval_cycles, b.interval_cycles);
}

/// A paced CPU run on a machine shared with other work: the jet tagger at
/// 100 kHz beside a CPU-bound thread of this process (one per core but
/// one, so that every core but one is taken). With polling threads this
/// lost a third of the events and reached millisecond latencies (the
/// scheduler's time slices); waiting that sleeps keeps up. Required: no
/// event lost or wrong. The queue holds 4096 batches (40 ms at this rate):
/// the host stalls this 2-vCPU virtual machine for milliseconds at times.
/// The latency is printed, not asserted: with the host quiet the p99 was
/// 35 to 65 us, while the host was busy it reached milliseconds (an open
/// question, see the README).
#[test]
fn paced_cpu_run_beside_a_busy_thread_loses_nothing() {
    let _alone = ALONE
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let m = jets();
    let eng = Arc::new(Engine::new(&m).unwrap());
    let pool = EventPool::generated(&m, 100_000, 4096, 21).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let hogs: Vec<_> = (0..cores.saturating_sub(1).max(1))
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            })
        })
        .collect();
    let cfg = CpuConfig {
        rate_mhz: Some(0.1),
        events: 100_000,
        budget_ns: 100_000.0,
        max_wait_ns: 20_000,
        spin_ns: 0,
        queue: 4096,
        sweep: false,
        ..CpuConfig::default()
    };
    let r = run_cpu(&m.name, &pool, eng.clone(), &cfg).unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for h in hogs {
        h.join().unwrap();
    }
    eprintln!("{}", r.table());
    assert_eq!(r.lost + r.failed, 0, "events lost beside a busy thread");
    assert_eq!((r.delivered, r.mismatches), (100_000, 0));
}

/// A kernel with reused recurrent cells (two loops, one per direction of a
/// bidirectional LSTM): the driver's model of when the kernel takes an
/// event agrees with its `in_ready` under Poisson and burst arrivals (the
/// simulator stops on any event offered while `in_ready` is low), bursts
/// closer than the II are taken, and every output is bit-exact.
#[test]
fn reused_recurrent_cells_take_bursts_bit_exact() {
    let _together = together();
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/ops/LSTMBidirectional.onnx");
    let m = quantize::load_model(&p, None).unwrap();
    let o = Options {
        recurrent: hdl::Recurrent::Reused,
        ..Options::default()
    };
    let k = build_kernel(&m, &o).unwrap();
    assert_eq!(k.cells.len(), 2);
    let pool = EventPool::generated(&m, 500, 500, 7).unwrap();
    for a in [Arrivals::Poisson, Arrivals::Burst] {
        let c = FpgaConfig {
            arrivals: a,
            rate_mhz: 100.0,
            sweep: false,
            ..fpga_cfg(2000)
        };
        let r = run_fpga(&m.name, &pool, &k, &c).unwrap();
        assert_eq!(r.mismatches, 0, "{a}");
        assert_eq!(r.delivered + r.lost, 2000, "{a}");
        assert!(
            r.interval_cycles.as_ref().unwrap().min < k.ii as f64,
            "{a}: events closer than the II are taken"
        );
    }
}

/// The rate search: with a budget any run holds, the highest passing rate
/// is found below the backpressure throughput, every passing rate passed
/// each of its runs, a failing one failed its last, and the bisection
/// brackets the answer; with a budget no run can hold (1 ns at p99), no
/// rate passes and the failure names the latency.
#[test]
fn rate_search_brackets_the_highest_rate_that_holds_the_budget() {
    let _together = together();
    let m = jets();
    let eng = Arc::new(Engine::new(&m).unwrap());
    let pool = EventPool::generated(&m, 4096, 4096, 3).unwrap();
    let cfg = CpuConfig {
        rate_mhz: Some(40.0),
        budget_ns: 1e9,
        budget_at: BudgetAt::P99,
        sweep_events: 20_000,
        search_repeats: 2,
        queue: 4096,
        ..CpuConfig::default()
    };
    let tp = 2.0;
    let s = testbench::cpu::search_rate(&pool, &eng, &cfg, tp).unwrap();
    eprintln!("{}", s.summary());
    assert!(!s.points.is_empty() && s.points.len() <= 7);
    for p in &s.points {
        assert!(p.offered_mhz > 0.0 && p.offered_mhz <= tp, "{p:?}");
        if p.pass {
            assert_eq!(p.lost.len(), 2, "{p:?}");
            assert!(p.lost.iter().all(|&l| l == 0), "{p:?}");
            assert!(p.latency_ns.iter().all(|&l| l <= cfg.budget_ns), "{p:?}");
        } else {
            assert!(p.lost.last().unwrap() > &0 || p.latency_ns.last().unwrap() > &cfg.budget_ns);
        }
    }
    let best = s.points.iter().filter(|p| p.pass).map(|p| p.offered_mhz);
    assert_eq!(s.highest_mhz, best.clone().reduce(f64::max));
    let h = s.highest_mhz.expect("a 1 s budget holds at some rate");
    if let Some(f) = s.lowest_failed_mhz {
        assert!(h < f, "{}", s.summary());
    }
    let per = s.per_core_mhz.unwrap();
    assert!((per * s.workers as f64 - h).abs() < 1e-9);
    assert_eq!(s.cores_for_rate, Some((40.0 / per).ceil() as u64));

    let tight = CpuConfig {
        budget_ns: 1.0,
        search_repeats: 1,
        sweep_events: 2_000,
        ..cfg
    };
    let s = testbench::cpu::search_rate(&pool, &eng, &tight, tp).unwrap();
    assert_eq!(s.highest_mhz, None, "{}", s.summary());
    assert!(s.points.iter().all(|p| !p.pass));
    let summary = s.summary();
    assert!(
        summary.starts_with("none with no loss, bit-exact, p99 latency <= 0.0 us")
            && summary.contains("MHz failed: p99 "),
        "{summary}"
    );
}

/// A CPU run judged at p99 names the quantile it failed, and the machine
/// probe reports fractions of the time it ran.
#[test]
fn a_budget_at_p99_is_judged_and_named() {
    let _together = together();
    let m = jets();
    let eng = Arc::new(Engine::new(&m).unwrap());
    let pool = EventPool::generated(&m, 1024, 1024, 4).unwrap();
    let cfg = CpuConfig {
        rate_mhz: Some(0.1),
        events: 2_000,
        budget_ns: 1.0,
        budget_at: BudgetAt::P99,
        sweep: false,
        ..CpuConfig::default()
    };
    let r = run_cpu(&m.name, &pool, eng, &cfg).unwrap();
    assert!(!r.pass);
    assert!(
        r.failures
            .iter()
            .any(|f| f.starts_with("p99 latency ") && f.ends_with("exceeds the budget of 1.0 ns")),
        "{:?}",
        r.failures
    );
    let st = r.cpu.unwrap().stalls.unwrap();
    assert!((0.45..5.0).contains(&st.seconds), "{st:?}");
    assert!((0.0..=1.0).contains(&st.stalled_fraction), "{st:?}");
    assert!(st.over_10us_per_s <= st.over_5us_per_s, "{st:?}");
}
