//! The AVX2 8-bit path (`vpmaddubsw`, u8 x i8 pairs summed in saturating
//! i16): taken only where no pair of adjacent products can saturate, and
//! then exact. Checked at the saturation bound, on worst-case inputs, and
//! by proptest over weights, spans and inputs, AVX2 forced.

use engine::dense::{xpack_len, Operand, PackedDense};
use engine::Isa;
use proptest::prelude::*;

/// The kernel's dot products, AVX2 forced, against exact i64 sums.
fn check(weights: &[i64], n_in: usize, n_out: usize, lo: i64, x: &[i64]) {
    let hi = lo + 255;
    let k = PackedDense::new(weights, n_in, n_out, Isa::Avx2, lo, hi).unwrap();
    let mut xp = vec![0u16; xpack_len(n_in)];
    let mut dot = vec![0i32; k.dot_len()];
    k.run(x, &mut xp, &mut dot);
    for o in 0..n_out {
        let want: i64 = (0..n_in).map(|i| weights[o * n_in + i] * x[i]).sum();
        assert_eq!(dot[o] as i64, want, "output {o} ({:?}), x {x:?}", k.operand);
    }
}

/// Pairs summing to 64 + 64 at span 255 (255 * 128 = 32,640) take the
/// 8-bit path; one step more (255 * 129 = 32,895) does not, on either
/// sign. Both are exact on the inputs that maximise every pair.
#[test]
fn the_saturation_bound_decides_the_path() {
    if !Isa::Avx2.available() {
        eprintln!("AVX2 not available: the 8-bit AVX2 path is NOT tested here");
        return;
    }
    let n_in = 6;
    // Inputs -128..=127 shifted by 128 into u8: the largest products
    // come from x = 127 (positive weights) or x = -128 (negative ones).
    let cases: [(&[i64], Operand); 6] = [
        (&[64, 64, 127, 1, 0, 64], Operand::U8),
        (&[-64, -64, -128, 0, -1, -127], Operand::U8),
        (&[64, 65, 0, 0, 0, 0], Operand::I16),
        (&[0, 0, 127, 2, 0, 0], Operand::I16),
        (&[0, 0, 0, 0, -128, -1], Operand::I16),
        (&[-65, -64, 0, 0, 0, 0], Operand::I16),
    ];
    for (w, want) in cases {
        let k = PackedDense::new(w, n_in, 1, Isa::Avx2, -128, 127).unwrap();
        assert_eq!(k.operand, want, "weights {w:?}");
        for x in [
            [127i64; 6],
            [-128; 6],
            [127, -128, 127, -128, 127, -128],
            [0; 6],
        ] {
            check(w, n_in, 1, -128, &x);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    /// Rows of weights up to the bound (and a few beyond it), inputs of any
    /// offset drawn at the extremes or anywhere: AVX2 forced, the dot
    /// products are exact, and the 8-bit path is taken whenever every pair fits.
    #[test]
    fn avx2_u8_dot_products_are_exact(
        n_in in 1usize..70,
        n_out in 1usize..40,
        lo in -300i64..100,
        bound in 1i64..=128,
        seed in any::<u64>(),
    ) {
        prop_assume!(Isa::Avx2.available());
        let mut r = seed;
        let mut next = |m: u64| {
            r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (r >> 33) % m
        };
        let w: Vec<i64> = (0..n_in * n_out)
            .map(|_| next(2 * bound as u64 + 1) as i64 - bound)
            .map(|v| v.clamp(-128, 127))
            .collect();
        let x: Vec<i64> = (0..n_in)
            .map(|_| match next(3) {
                0 => lo,
                1 => lo + 255,
                _ => lo + next(256) as i64,
            })
            .collect();
        check(&w, n_in, n_out, lo, &x);
        let fits = w.chunks(n_in).all(|row| row.chunks(2).all(|p| {
            let pos: i64 = p.iter().map(|&v| v.max(0)).sum();
            let neg: i64 = p.iter().map(|&v| v.min(0)).sum();
            255 * pos <= 32767 && 255 * neg >= -32768
        }));
        let k = PackedDense::new(&w, n_in, n_out, Isa::Avx2, lo, lo + 255).unwrap();
        prop_assert_eq!(k.operand == Operand::U8, fits);
    }
}
