//! Instruction sets the kernels are compiled for, chosen at run time.

use std::fmt;

/// A kernel family. [`Isa::detect`] picks the best one the CPU has; tests
/// force each in turn with [`crate::Engine::with_isa`].
///
/// With the `clap` feature it is a `clap::ValueEnum` (the names of
/// [`Isa::name`]), for command-line flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Isa {
    /// Portable Rust, no `target_feature`.
    #[cfg_attr(feature = "clap", value(name = "scalar"))]
    Scalar,
    /// AVX2: `vpmaddwd` on 256-bit vectors.
    #[cfg_attr(feature = "clap", value(name = "avx2"))]
    Avx2,
    /// AVX-512 F/BW: `vpmaddwd` on 512-bit vectors.
    #[cfg_attr(feature = "clap", value(name = "avx512"))]
    Avx512,
    /// AVX-512 VNNI: `vpdpbusd` (u8 x i8) and `vpdpwssd` (i16 x i16).
    #[cfg_attr(feature = "clap", value(name = "avx512vnni"))]
    Avx512Vnni,
}

impl Isa {
    pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Vnni];

    /// Whether this CPU can run the kernel family.
    pub fn available(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            // BMI2 too: the AVX2 builds of the plan and the chains enable it
            // (`sarx`, `shlx` for the scalar steps), and some virtual
            // machines hide it while exposing AVX2.
            Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("bmi2"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => Isa::Avx512.available() && is_x86_feature_detected!("avx512vnni"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The best family this CPU has.
    pub fn detect() -> Isa {
        Isa::ALL
            .iter()
            .rev()
            .copied()
            .find(|i| i.available())
            .unwrap_or(Isa::Scalar)
    }

    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Avx512Vnni => "avx512vnni",
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Isa {
    type Err = String;
    fn from_str(s: &str) -> Result<Isa, String> {
        let l = s.to_ascii_lowercase().replace(['-', '_'], "");
        Isa::ALL
            .iter()
            .copied()
            .find(|i| i.name() == l)
            .ok_or_else(|| {
                format!("unknown ISA '{s}': expected scalar, avx2, avx512 or avx512vnni")
            })
    }
}
