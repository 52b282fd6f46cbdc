//! Which SIMD kernel runs: one runtime check shared by the embedder's int8 layers
//! (`embed/int8.rs`) and the decoder's quantized products (`generate/qmatmul.rs`), whose
//! kernels use the same instructions. Every kernel of either gives the scalar one's bits.

/// The instructions a kernel multiplies with; the fastest that the CPU has runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// Plain Rust: the reference the others are tested against.
    Scalar,
    /// AVX2 and FMA (`vpmaddubsw`/`vpmaddwd`), 256-bit vectors.
    Avx2,
    /// AVX-VNNI: 256-bit `vpdpbusd` (Intel since Alder Lake / Sapphire Rapids; not AMD Zen 2/3).
    Vnni,
    /// AVX-512 VNNI: `vpdpbusd` on 512-bit vectors, a whole panel of 16 per instruction.
    Avx512Vnni,
}

impl Kernel {
    /// Every kernel, fastest first.
    pub const ALL: [Kernel; 4] = [
        Kernel::Avx512Vnni,
        Kernel::Vnni,
        Kernel::Avx2,
        Kernel::Scalar,
    ];

    /// The fastest kernel this CPU runs.
    pub fn detect() -> Kernel {
        Kernel::ALL
            .into_iter()
            .find(|kernel| kernel.runs_here())
            .unwrap_or(Kernel::Scalar)
    }

    /// Whether this CPU has what `self` uses.
    pub fn runs_here(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            // F16C too: the kernels widen f16 factors (every AVX2 CPU has it).
            let avx2 = is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c");
            match self {
                Kernel::Scalar => true,
                Kernel::Avx2 => avx2,
                Kernel::Vnni => avx2 && is_x86_feature_detected!("avxvnni"),
                Kernel::Avx512Vnni => {
                    avx2 && is_x86_feature_detected!("avx512f")
                        && is_x86_feature_detected!("avx512bw")
                        && is_x86_feature_detected!("avx512vnni")
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Kernel::Scalar
        }
    }

    /// What runs, for logs and the benchmarks.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Avx2 => "AVX2",
            Kernel::Vnni => "AVX-VNNI",
            Kernel::Avx512Vnni => "AVX-512 VNNI",
        }
    }
}
