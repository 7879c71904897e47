//! Event files: round trip, zero-copy reads, truncation and mismatch errors.
use engine::events::{write_f32, write_i64, Dtype, EventError, EventFile};

#[test]
fn round_trip_and_errors() {
    let dir = std::env::temp_dir().join(format!("bxev-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("a.bxev");
    let data: Vec<f32> = (0..16 * 100).map(|i| i as f32 * 0.5).collect();
    write_f32(&p, &[16], &data).unwrap();
    let f = EventFile::open(&p).unwrap();
    assert_eq!(
        (f.count, f.shape.clone(), f.dtype),
        (100, vec![16], Dtype::F32)
    );
    assert_eq!(f.f32s().unwrap(), &data[..]);
    f.check(&p, &[16], Dtype::F32).unwrap();
    assert!(matches!(
        f.check(&p, &[17], Dtype::F32),
        Err(EventError::Shape { .. })
    ));
    // Truncated: cut the last record in half.
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 30]).unwrap();
    let e = EventFile::open(&p).err().unwrap();
    assert!(
        matches!(e, EventError::Truncated { needed, .. } if needed == 64 + 6400),
        "{e}"
    );
    assert!(e.to_string().contains("6464"), "{e}");
    std::fs::write(&p, b"NOTANEVENTFILE....").unwrap();
    assert!(matches!(EventFile::open(&p), Err(EventError::Magic { .. })));
    let q = dir.join("b.bxev");
    write_i64(&q, &[2, 3], &[1, 2, 3, 4, 5, 6]).unwrap();
    let g = EventFile::open(&q).unwrap();
    assert_eq!(g.i64s().unwrap(), &[1, 2, 3, 4, 5, 6]);
    assert!(g.f32s().is_none());
    let _ = std::fs::remove_dir_all(&dir);
}
