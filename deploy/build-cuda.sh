#!/usr/bin/env bash
# Builds Vellum with generation on NVIDIA GPUs (candle's CUDA backend, `--features cuda`) on a
# machine without a GPU, a CUDA toolkit or an NVIDIA driver: nvcc, the CUDA headers and the
# libraries to link against come from NVIDIA's PyPI wheels (CUDA 13.0, pinned by SHA-256),
# unpacked into ~/.cache/vellum/cuda-13.0. The binaries then run where an NVIDIA driver that
# supports CUDA 13 (580 or newer) and the CUDA 13 runtime libraries (cuBLAS, cuRAND, NVRTC; a
# PyTorch cu13x install has them) are present.
#
# The default build (deploy/test.sh, .ci/run) does not use this: it needs no GPU.
#
# usage: deploy/build-cuda.sh [COMPUTE_CAP] [cargo build arguments...]
#   COMPUTE_CAP: the GPU's compute capability without the dot (default 90: H100/H200;
#   80: A100, 89: L4/L40/RTX 40xx, 86: RTX 30xx/A10). Without further arguments it builds the
#   `vellum` binary; e.g. `deploy/build-cuda.sh 90 -p vellum-models --example gen_bench`.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
compute_cap=${1:-90}
shift || true

toolkit=${VELLUM_CUDA_TOOLKIT:-$HOME/.cache/vellum/cuda-13.0}
cuda_home=$toolkit/nvidia/cu13
wheels=(
  "nvidia-cuda-nvcc==13.0.88 56fe502eb77625a12f25172caa3cdddb4e4c8ba2c8c17dba44b164761b380f03"
  "nvidia-cuda-crt==13.0.88 2c8043c7c9e02492716426e9919fc78d2c5b3b2a7a768a88e952676b08aa55a4"
  "nvidia-cuda-cccl==13.0.85 e0da7ad981f3a8aff08241b5bfc1af868742a63e2762f53a5171c492ef242649"
  "nvidia-nvvm==13.0.88 c5f41ffeb6466944a026dfa5317d7d85355c119bbec279205d22f1869d1054e0"
  "nvidia-cuda-runtime==13.0.96 7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548"
  "nvidia-cuda-nvrtc==13.0.88 ad9b6d2ead2435f11cbb6868809d2adeeee302e9bb94bcf0539c7a40d80e8575"
  "nvidia-cublas==13.0.2.14 0cf238ffdbe46c00cb9aa98e7bca745c223a5ca5a53e686ac8b3e5a08fe80d6c"
  "nvidia-curand==10.4.5.25 22bb226a857e5888fe6b54ae465fc4371296bcff13a35f79e19691bcf454f529"
)

if [ ! -x "$cuda_home/bin/nvcc" ] || [ ! -e "$cuda_home/lib/stubs/libcuda.so" ]; then
  echo "build-cuda: fetching the CUDA 13.0 toolkit wheels from PyPI into $toolkit"
  download=$(mktemp -d)
  trap 'rm -rf "$download"' EXIT
  for entry in "${wheels[@]}"; do
    read -r requirement sha256 <<<"$entry"
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
      --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 --platform manylinux_2_12_x86_64 \
      --platform manylinux2010_x86_64 -d "$download" "$requirement"
    name=${requirement%%==*}
    file=$(ls "$download"/"${name//-/_}"-*.whl)
    echo "$sha256  $file" | sha256sum --check --quiet || {
      echo "build-cuda: $file does not have the pinned SHA-256; refusing to use it" >&2
      exit 1
    }
  done
  mkdir -p "$toolkit"
  for file in "$download"/*.whl; do
    python3 -m zipfile -e "$file" "$toolkit"
  done
  chmod +x "$cuda_home"/bin/* "$cuda_home"/nvvm/bin/* 2>/dev/null || true
  # The wheels ship versioned sonames only; the linker looks for the plain names.
  (cd "$cuda_home/lib" && for lib in cublas cublasLt nvrtc cudart; do ln -sf "lib$lib.so.13" "lib$lib.so"; done \
    && ln -sf libcurand.so.10 libcurand.so)
  # libcuda.so belongs to the driver, which a build machine need not have. Like the stub in
  # NVIDIA's toolkit, ours only lets the linker resolve the driver API; at run time the
  # driver's libcuda.so.1 is loaded instead.
  mkdir -p "$cuda_home/lib/stubs"
  cudarc_sys=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/src/driver/sys/mod.rs 2>/dev/null | tail -1 || true)
  if [ -z "$cudarc_sys" ]; then
    (cd "$repo_root" && cargo fetch --quiet)
    cudarc_sys=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/src/driver/sys/mod.rs | tail -1)
  fi
  grep -oP '^\s+fn \Kcu\w+(?=\()' "$cudarc_sys" | sort -u | sed 's/.*/void &(void) {}/' >"$toolkit/libcuda-stub.c"
  cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$cuda_home/lib/stubs/libcuda.so" "$toolkit/libcuda-stub.c"
fi

export CUDA_HOME=$cuda_home CUDA_PATH=$cuda_home CUDA_COMPUTE_CAP=$compute_cap
export PATH=$cuda_home/bin:$PATH
export LIBRARY_PATH=$cuda_home/lib:$cuda_home/lib/stubs${LIBRARY_PATH:+:$LIBRARY_PATH}
cd "$repo_root"
if [ $# -eq 0 ]; then
  set -- -p vellum --bin vellum
fi
echo "build-cuda: cargo build --release --features cuda $* (compute capability $compute_cap)"
# -p selects one package, whose `cuda` feature turns on candle's.
cargo build --release --features cuda "$@"
