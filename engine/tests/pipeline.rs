//! Streaming pipeline: ordering, accounting under both overload policies,
//! errors from workers, shutdown drain.

use engine::pipeline::{pipeline, Overload, PipelineConfig, PipelineError};
use engine::Engine;
use quantize::golden::evaluate;
use quantize::qmodel::QModel;
use quantize::random::{random_input, random_model, RandomSpec};
use rand::{rngs::SmallRng, SeedableRng};
use std::sync::Arc;
use std::time::{Duration, Instant};

const POOL: usize = 1024;

fn setup(seed: u64) -> (Arc<Engine>, QModel, Vec<i64>, Vec<Vec<i64>>) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let spec = RandomSpec {
        max_bits: 8,
        max_neurons: 8,
        max_layers: 2,
        ..Default::default()
    };
    let model = random_model(&mut rng, &spec);
    let inputs: Vec<Vec<i64>> = (0..POOL).map(|_| random_input(&mut rng, &model)).collect();
    let want = inputs
        .iter()
        .map(|x| evaluate(&model, x).unwrap())
        .collect();
    (
        Arc::new(Engine::new(&model).unwrap()),
        model,
        inputs.concat(),
        want,
    )
}

/// Pushes `total` events (event `s` is pool input `s % POOL`) and checks every
/// delivered output; returns (delivered, stats).
fn run(total: u64, overload: Overload, slow: bool) -> (u64, engine::pipeline::Stats) {
    let (eng, _m, pool, want) = setup(11);
    let il = eng.input_len();
    let cfg = PipelineConfig {
        workers: 2,
        batch: 256,
        queue: 16,
        overload,
        ..Default::default()
    };
    let (mut prod, mut cons) = pipeline(eng.clone(), &cfg).unwrap();
    let consumer = std::thread::spawn(move || {
        let mut last: Option<u64> = None;
        let mut delivered = 0u64;
        let mut since_sleep = 0u64;
        while let Some((seq, out)) = cons.next().unwrap() {
            assert!(
                last.is_none_or(|l| seq > l),
                "out of order: {seq} after {last:?}"
            );
            if overload == Overload::Block {
                assert_eq!(seq, last.map_or(0, |l| l + 1), "gap under Block");
            }
            assert_eq!(out, &want[(seq % POOL as u64) as usize][..], "event {seq}");
            last = Some(seq);
            delivered += 1;
            since_sleep += 1;
            if slow && since_sleep >= 20_000 {
                since_sleep = 0;
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
        (delivered, cons.stats())
    });
    // Push in chunks that keep event s = pool[s % POOL].
    let mut pushed = 0u64;
    while pushed < total {
        let k = (POOL as u64).min(total - pushed) as usize;
        prod.push_raw(&pool[..k * il]).unwrap();
        pushed += k as u64;
    }
    prod.close().unwrap();
    let (delivered, stats) = consumer.join().unwrap();
    assert_eq!(stats.pushed, total);
    assert_eq!(stats.in_flight, 0);
    assert_eq!(stats.failed, 0);
    assert_eq!(stats.delivered, delivered);
    assert_eq!(
        stats.processed, delivered,
        "processed events are all delivered"
    );
    assert_eq!(stats.delivered + stats.dropped, stats.pushed, "{stats:?}");
    assert_eq!(stats.latency.count, delivered);
    eprintln!("{overload:?} slow={slow}: {stats:?}");
    (delivered, stats)
}

#[test]
fn ten_million_drop_slow_consumer_accounts_for_every_event() {
    let (_, s) = run(10_000_000, Overload::Drop, true);
    assert!(s.dropped > 0, "a slow consumer should force drops: {s:?}");
}

#[test]
fn ten_million_block_loses_none() {
    let (d, s) = run(10_000_000, Overload::Block, true);
    assert_eq!(d, 10_000_000);
    assert_eq!(s.dropped, 0);
}

#[test]
fn inference_errors_fail_only_their_batch() {
    let (eng, model, pool, want) = setup(12);
    let il = eng.input_len();
    // Pushed before consuming on one thread: full batches only (no maximum
    // wait, whose partial batches could overrun the queues).
    let cfg = PipelineConfig {
        workers: 2,
        batch: 16,
        queue: 4,
        max_wait: None,
        ..Default::default()
    };
    let (mut prod, mut cons) = pipeline(eng, &cfg).unwrap();
    let bad: Vec<i64> = model.input_types().map(|t| t.max_raw() + 1).collect();
    prod.push_raw(&pool[..64 * il]).unwrap(); // 0..64
    prod.push_raw(&bad).unwrap(); // 64, batch 64..80 fails
    prod.push_raw(&pool[65 * il..100 * il]).unwrap();
    prod.close().unwrap();
    let (mut ok, mut errs) = (0u64, 0u64);
    loop {
        match cons.next() {
            Ok(Some((seq, out))) => {
                assert_eq!(out, &want[seq as usize][..]);
                ok += 1;
            }
            Ok(None) => break,
            Err(PipelineError::Batch { first, count, .. }) => {
                assert_eq!((first, count), (64, 16));
                errs += count;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let s = cons.stats();
    assert_eq!((ok, errs), (84, 16));
    assert_eq!(
        (s.delivered, s.failed, s.pushed, s.in_flight),
        (84, 16, 100, 0)
    );
}

#[test]
fn float_push_and_partial_batch_drain() {
    let (eng, model, _, _) = setup(13);
    let cfg = PipelineConfig {
        workers: 1,
        batch: 1000,
        ..Default::default()
    };
    let (mut prod, mut cons) = pipeline(eng.clone(), &cfg).unwrap();
    let x: Vec<f32> = (0..eng.input_len())
        .map(|i| i as f32 * 0.37 - 1.0)
        .collect();
    for _ in 0..7 {
        prod.push(&x).unwrap();
    }
    prod.close().unwrap(); // 7 events in a partial batch are drained
    let want = evaluate(&model, &quantize::golden::quantize_input(&model, &x)).unwrap();
    let mut n = 0;
    while let Some((seq, out)) = cons.next().unwrap() {
        assert_eq!(seq, n);
        assert_eq!(out, &want[..]);
        n += 1;
    }
    assert_eq!(n, 7);
}

#[test]
fn bulk_f32_and_wide_raw_inputs() {
    // f32 features quantized by the workers; raw i64 of a >16-bit input type
    // (kept as i64 in the batches); both bit-exact and in order.
    for (seed, bits) in [(21u64, 8u32), (22, 24)] {
        let mut rng = SmallRng::seed_from_u64(seed);
        let spec = RandomSpec {
            max_bits: bits,
            max_neurons: 8,
            max_layers: 2,
            ..Default::default()
        };
        let model = random_model(&mut rng, &spec);
        let eng = Arc::new(Engine::new(&model).unwrap());
        let il = eng.input_len();
        let n = 1000usize;
        let feats: Vec<f32> = (0..n * il)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.07)
            .collect();
        let raws: Vec<Vec<i64>> = (0..n).map(|_| random_input(&mut rng, &model)).collect();
        let cfg = PipelineConfig {
            workers: 2,
            batch: 64,
            // Pushed before consuming on one thread: room for everything.
            queue: 64,
            ..Default::default()
        };
        let (mut prod, mut cons) = pipeline(eng.clone(), &cfg).unwrap();
        prod.push_f32(&feats).unwrap();
        prod.push_raw(&raws.concat()).unwrap();
        prod.push_f32(&feats[..3 * il]).unwrap();
        prod.close().unwrap();
        let mut k = 0usize;
        while let Some((seq, out)) = cons.next().unwrap() {
            assert_eq!(seq, k as u64);
            let x = if k < n {
                quantize::golden::quantize_input(&model, &feats[k * il..(k + 1) * il])
            } else if k < 2 * n {
                raws[k - n].clone()
            } else {
                let j = k - 2 * n;
                quantize::golden::quantize_input(&model, &feats[j * il..(j + 1) * il])
            };
            assert_eq!(out, &evaluate(&model, &x).unwrap()[..], "event {k}");
            k += 1;
        }
        assert_eq!(k, 2 * n + 3);
        let s = cons.stats();
        assert_eq!((s.delivered, s.failed, s.in_flight), (k as u64, 0, 0));
    }
}

/// Events lost before the pipeline (`drop_events`) take sequence numbers and
/// count as dropped: the delivered events skip them, in order, and
/// pushed = delivered + dropped.
#[test]
fn events_dropped_at_the_source_are_accounted() {
    let (eng, _m, pool, want) = setup(17);
    let il = eng.input_len();
    let cfg = PipelineConfig {
        workers: 1,
        batch: 8,
        queue: 16,
        overload: Overload::Drop,
        ..Default::default()
    };
    let (mut prod, mut cons) = pipeline(eng.clone(), &cfg).unwrap();
    // Events 0..5 enter, 5..25 are lost at the source, 25..40 enter.
    prod.push_raw(&pool[..5 * il]).unwrap();
    prod.drop_events(20).unwrap();
    prod.push_raw(&pool[25 * il..40 * il]).unwrap();
    let st = prod.close().unwrap();
    assert_eq!((st.pushed, st.dropped), (40, 20));
    let mut seqs = vec![];
    while let Some((seq, out)) = cons.next().unwrap() {
        assert_eq!(out, &want[seq as usize][..], "event {seq}");
        seqs.push(seq);
    }
    let expect: Vec<u64> = (0..5).chain(25..40).collect();
    assert_eq!(seqs, expect);
    let st = cons.stats();
    assert_eq!(st.delivered + st.dropped + st.failed, st.pushed);
}

/// The jet tagger at 16 and 8 bits (one fused chain with a softmax tail,
/// whose narrowed batches the workers pack straight into lanes), the 8-bit
/// run with a worker that keeps polling: every streamed event equals the
/// golden model.
#[test]
fn jet_tagger_streams_bit_exact() {
    let p =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/three_layer_keras.onnx");
    let g = quantize::onnx::import_path(&p).unwrap();
    for (prec, poll) in [("fixed<16,6>", false), ("fixed<8,3>", true)] {
        let cfg = quantize::config::Config::uniform(prec.parse().unwrap());
        let model = quantize::quantizer::quantize_graph(&g, &cfg).unwrap();
        let mut rng = SmallRng::seed_from_u64(9);
        let inputs: Vec<Vec<i64>> = (0..3001).map(|_| random_input(&mut rng, &model)).collect();
        let eng = Arc::new(Engine::new(&model).unwrap());
        let cfg = PipelineConfig {
            workers: if poll { 1 } else { 2 },
            batch: 100,
            queue: 8,
            overload: Overload::Block,
            spin: if poll {
                engine::pipeline::MAX_WAIT
            } else {
                Duration::ZERO
            },
            ..Default::default()
        };
        let (mut prod, mut cons) = pipeline(eng, &cfg).unwrap();
        let want: Vec<Vec<i64>> = inputs
            .iter()
            .map(|x| evaluate(&model, x).unwrap())
            .collect();
        let n = want.len();
        let consumer = std::thread::spawn(move || {
            let mut seen = 0;
            while let Some((seq, out)) = cons.next().unwrap() {
                assert_eq!(out, &want[seq as usize][..], "{prec} event {seq}");
                seen += 1;
            }
            seen
        });
        prod.push_raw(&inputs.concat()).unwrap();
        prod.close().unwrap();
        assert_eq!(consumer.join().unwrap(), n, "{prec}");
    }
}

/// Settings over their limits are refused before anything is allocated or
/// started, with a message naming the setting, its value and the limit (a
/// batch of 2^34 events used to abort the host process on allocation).
#[test]
fn settings_over_their_limits_are_refused() {
    let (eng, _m, _pool, _want) = setup(5);
    let codes = eng.input_len() + eng.output_len();
    let refused = |cfg: PipelineConfig| match pipeline(eng.clone(), &cfg) {
        Err(e @ PipelineError::Limit { .. }) => e.to_string(),
        Err(e) => panic!("expected a limit error, got {e}"),
        Ok(_) => panic!("accepted {cfg:?}"),
    };
    let msg = refused(PipelineConfig {
        batch: 1 << 34,
        ..Default::default()
    });
    assert!(
        msg.contains("batch (events) is 17179869184, over the limit of 65536"),
        "{msg}"
    );
    let msg = refused(PipelineConfig {
        batch: usize::MAX,
        ..Default::default()
    });
    assert!(msg.contains(&usize::MAX.to_string()), "{msg}");
    let msg = refused(PipelineConfig {
        workers: usize::MAX,
        ..Default::default()
    });
    assert!(
        msg.contains("workers is") && msg.contains("limit of 1024"),
        "{msg}"
    );
    let msg = refused(PipelineConfig {
        queue: 1 << 20,
        ..Default::default()
    });
    assert!(msg.contains("queue (batches) is 1048576"), "{msg}");
    let msg = refused(PipelineConfig {
        max_wait: Some(Duration::from_secs(3600)),
        ..Default::default()
    });
    assert!(
        msg.contains("max wait (us) is 3600000000, over the limit of 10000000"),
        "{msg}"
    );
    let msg = refused(PipelineConfig {
        spin: Duration::MAX,
        ..Default::default()
    });
    assert!(msg.contains("spin (us) is"), "{msg}");
    // The byte limit binds before the event limit for wide events.
    let batch = engine::pipeline::MAX_BATCH_BYTES / (8 * codes) + 1;
    if batch <= engine::pipeline::MAX_BATCH {
        let msg = refused(PipelineConfig {
            batch,
            ..Default::default()
        });
        assert!(msg.contains("batch size in bytes"), "{msg}");
    }
    // At the limits themselves the pipeline starts.
    let ok = PipelineConfig {
        workers: 2,
        batch: engine::pipeline::MAX_BATCH_BYTES / (8 * codes).max(1),
        ..Default::default()
    };
    let ok = PipelineConfig {
        batch: ok.batch.min(engine::pipeline::MAX_BATCH),
        ..ok
    };
    assert!(pipeline(eng.clone(), &ok).is_ok(), "{ok:?} was refused");
}

/// Under `Overload::Drop` every push says what became of its events: the
/// events a push reports accepted are exactly the ones delivered, the ones
/// it reports dropped never come out, and `Stats` agrees.
#[test]
fn drops_are_reported_to_the_pusher() {
    let (eng, _m, pool, want) = setup(31);
    let il = eng.input_len();
    let cfg = PipelineConfig {
        workers: 1,
        batch: 4,
        queue: 2,
        overload: Overload::Drop,
        max_wait: None,
        ..Default::default()
    };
    let (mut prod, mut cons) = pipeline(eng.clone(), &cfg).unwrap();
    // Nobody consumes yet: the output queue (2 batches), the worker's hands
    // (1), the input queue (2) and the producer's full batch (1) hold at
    // most 6 batches; then pushes must report drops.
    let mut accepted = vec![];
    let mut dropped = 0u64;
    for s in 0..200u64 {
        let p = prod.push_raw(&pool[..il]).unwrap();
        assert_eq!(p.first, s);
        assert_eq!(p.accepted + p.dropped, 1, "{p:?}");
        if p.accepted == 1 {
            accepted.push(s);
        }
        dropped += p.dropped;
    }
    assert!(dropped >= 200 - 6 * 4, "only {dropped} of 200 dropped");
    // A drop reported by the single-event push too (the worker may still
    // free a slot or two: the pipeline is full again within a few pushes).
    let x: Vec<i64> = pool[..il].to_vec();
    let mut total = 200u64;
    loop {
        let p = prod.push(&x).unwrap();
        assert_eq!((p.first, p.accepted + p.dropped), (total, 1), "{p:?}");
        total += 1;
        if p.accepted == 1 {
            accepted.push(p.first);
        } else {
            dropped += 1;
            break;
        }
        assert!(total < 250, "the single-event push never reported a drop");
    }
    // The results are taken on another thread: the close sends the held
    // batch, which waits for room.
    let consumer = std::thread::spawn(move || {
        let mut seen = vec![];
        while let Some((seq, out)) = cons.next().unwrap() {
            assert_eq!(out, &want[0][..], "event {seq}");
            seen.push(seq);
        }
        (seen, cons.stats())
    });
    prod.close().unwrap();
    let (seen, st) = consumer.join().unwrap();
    assert_eq!((st.pushed, st.dropped), (total, dropped));
    assert_eq!(seen, accepted, "delivered = accepted, in order");
}

/// A partial batch leaves after `max_wait` even when no more events come:
/// at a low rate with a batch of 64, every event's latency stays within
/// the maximum wait plus the OS's lateness (30 ms allowed: a virtual
/// machine's host stalls it for milliseconds at times), far below the
/// 95 ms the first event waits without it (for the 19 events after it, 5 ms
/// apart, and then the close).
#[test]
fn max_wait_bounds_latency_at_a_low_rate() {
    let (eng, _m, pool, want) = setup(32);
    let il = eng.input_len();
    let max_wait = Duration::from_millis(2);
    let cfg = PipelineConfig {
        workers: 1,
        batch: 64,
        queue: 8,
        max_wait: Some(max_wait),
        ..Default::default()
    };
    let (mut prod, mut cons) = pipeline(eng.clone(), &cfg).unwrap();
    let n = 20u64;
    let t0 = Instant::now();
    let consumer = std::thread::spawn(move || {
        let mut lat = vec![];
        while let Some((seq, out)) = cons.next().unwrap() {
            assert_eq!(out, &want[seq as usize][..]);
            lat.push((seq, t0.elapsed()));
        }
        lat
    });
    let mut pushed_at = vec![];
    for s in 0..n {
        pushed_at.push(t0.elapsed());
        let p = prod
            .push_raw(&pool[s as usize * il..(s as usize + 1) * il])
            .unwrap();
        assert_eq!(p.accepted, 1);
        std::thread::sleep(Duration::from_millis(5));
    }
    // Every event was delivered before the close (which would flush it),
    // given the same time as the latency bound allows.
    std::thread::sleep(max_wait + Duration::from_millis(30));
    let before_close = t0.elapsed();
    prod.close().unwrap();
    let lat = consumer.join().unwrap();
    assert_eq!(lat.len(), n as usize);
    let slack = Duration::from_millis(30);
    for (seq, at) in lat {
        let l = at - pushed_at[seq as usize];
        assert!(
            l <= max_wait + slack,
            "event {seq} waited {l:?}, over the maximum wait {max_wait:?} + {slack:?}"
        );
        assert!(at <= before_close, "event {seq} came out only at the close");
    }
}

/// `push_timeout` under `Overload::Block` gives up after its timeout when
/// the pipeline has no room, and the event it refused takes no sequence
/// number; once room is made the same event goes in.
#[test]
fn push_timeout_gives_up_and_takes_nothing() {
    let (eng, _m, pool, want) = setup(33);
    let il = eng.input_len();
    let cfg = PipelineConfig {
        workers: 1,
        batch: 1,
        queue: 1,
        ..Default::default()
    };
    let (mut prod, mut cons) = pipeline(eng.clone(), &cfg).unwrap();
    let ev: Vec<i64> = pool[..il].to_vec();
    let timeout = Duration::from_millis(20);
    let mut taken = 0u64;
    let refused = loop {
        match prod.push_timeout(&ev, timeout) {
            Ok(p) => {
                assert_eq!((p.first, p.accepted), (taken, 1));
                taken += 1;
                assert!(taken < 100, "never ran out of room");
            }
            Err(e) => break e,
        }
    };
    assert!(matches!(refused, PipelineError::Timeout), "{refused}");
    assert!(
        refused.to_string().contains("within the timeout"),
        "{refused}"
    );
    assert_eq!(prod.stats().pushed, taken, "a refused event is not counted");
    // Make room: the consumer takes one event; the same event then goes in.
    let (seq, out) = cons.next().unwrap().unwrap();
    assert_eq!((seq, out), (0, &want[0][..]));
    let t = Instant::now();
    let p = loop {
        match prod.push_timeout(&ev, timeout) {
            Ok(p) => break p,
            Err(PipelineError::Timeout) => {
                assert!(t.elapsed() < Duration::from_secs(5), "no room after a pop");
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(p.first, taken);
    // The rest is taken on another thread: the close waits for room too.
    let consumer = std::thread::spawn(move || {
        let mut n = 1;
        while let Some((seq, _)) = cons.next().unwrap() {
            assert_eq!(seq, n);
            n += 1;
        }
        n
    });
    prod.close().unwrap();
    assert_eq!(consumer.join().unwrap(), taken + 1);
}
