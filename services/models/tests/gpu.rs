//! Generation on an NVIDIA GPU (`--features cuda`). Without the feature: asking for the GPU is
//! a clear error. With it (run on a machine with a GPU, see docs/architecture.md, "GPU build"):
//! every architecture computes on the GPU what it computes on the CPU, and the real SmolLM2
//! follows llama.cpp's greedy continuations there too.

mod common;

use vellum_models::GenerationDevice;

#[test]
fn device_names_parse() {
    assert_eq!("cpu".parse(), Ok(GenerationDevice::Cpu));
    assert_eq!("cuda".parse(), Ok(GenerationDevice::Cuda(0)));
    assert_eq!("CUDA:1".parse(), Ok(GenerationDevice::Cuda(1)));
    assert_eq!(GenerationDevice::Cuda(2).to_string(), "cuda:2");
    let err = "metal"
        .parse::<GenerationDevice>()
        .err()
        .unwrap_or_default();
    assert!(err.contains("expected cpu, cuda or cuda:N"), "{err}");
}

#[cfg(not(feature = "cuda"))]
#[test]
fn asking_for_the_gpu_without_cuda_support_says_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|err| panic!("tempdir: {err}"));
    let path = dir.path().join("tiny.gguf");
    common::write_tiny_model(&path, common::TinyArch::Llama);
    use vellum_models::GgufGenerator;
    let err = GgufGenerator::load_on(&path, GenerationDevice::Cuda(0))
        .err()
        .map(|err| err.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("built without CUDA support") && err.contains("--features cuda"),
        "{err}"
    );
    // The CPU is unaffected.
    GgufGenerator::load_on(&path, GenerationDevice::Cpu).unwrap_or_else(|err| panic!("cpu: {err}"));
}

#[cfg(feature = "cuda")]
mod on_the_gpu {
    use super::common::smollm2::{check_against_reference, smollm2_path};
    use super::common::{worst_logit_difference, write_tiny_model_f32, TinyArch};
    use vellum_models::{ChatMessage, GenerationDevice, Generator, GgufGenerator};

    const GPU: GenerationDevice = GenerationDevice::Cuda(0);

    /// With F32 weights both devices multiply in f32 (the CPU with gemm, the GPU with cuBLAS),
    /// so the architecture code (rope, norms, attention, expert routing) is compared without
    /// the quantized kernels' differences: the CPU rounds activations to 8 bits for quantized
    /// weights, the GPU multiplies prompts in f32, which on random weights moved logits by up
    /// to 16 % of the largest (measured on an H200). Summation order still differs, hence a
    /// tolerance. The quantized kernels are checked on the real model below.
    #[test]
    fn every_architecture_computes_on_the_gpu_what_it_computes_on_the_cpu() {
        let dir = tempfile::tempdir().unwrap_or_else(|err| panic!("tempdir: {err}"));
        for arch in TinyArch::ALL {
            let path = dir.path().join(format!("tiny-{arch:?}.gguf"));
            write_tiny_model_f32(&path, arch);
            let gpu =
                GgufGenerator::load_on(&path, GPU).unwrap_or_else(|err| panic!("{arch:?}: {err}"));
            let cpu = GgufGenerator::load_with(&path, false, false)
                .unwrap_or_else(|err| panic!("{arch:?}: {err}"));
            assert_eq!(gpu.identity().device, "cuda:0");
            let prompt = cpu
                .render_chat(&[ChatMessage::user("hello hello hello")])
                .unwrap_or_else(|err| panic!("{arch:?}: {err}"));
            let expected = cpu
                .next_token_logits(&prompt)
                .unwrap_or_else(|err| panic!("{arch:?}: {err}"));
            let actual = gpu
                .next_token_logits(&prompt)
                .unwrap_or_else(|err| panic!("{arch:?}: {err}"));
            let (worst, scale) = worst_logit_difference(&actual, &expected);
            println!("{arch:?}: worst logit difference {worst:.5} (largest logit {scale:.3})");
            assert!(
                scale > 0.0 && worst <= 1e-3 * scale,
                "{arch:?}: logits differ by {worst} (largest logit {scale})"
            );
        }
    }

    #[test]
    fn smollm2_on_the_gpu_follows_llama_cpp() {
        let generator = GgufGenerator::load_on(&smollm2_path(), GPU)
            .unwrap_or_else(|err| panic!("load: {err}"));
        assert!(!generator.identity().requantized_to_q8_0);
        check_against_reference(&generator);
    }
}
