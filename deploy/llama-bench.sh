#!/usr/bin/env bash
# The peer for generation speed: llama.cpp's llama-bench on the default SmolLM2 GGUF, 2 threads,
# prompt processing of 512 tokens and generation of 128, next to Vellum's own gen_bench in the
# same run. llama.cpp's source comes from PyPI (the llama-cpp-python sdist vendors it, pinned
# below by SHA-256); it is built once into ~/.cache/vellum/llama.cpp-<version>.
#
# usage: deploy/llama-bench.sh
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo_root/deploy/setup.sh"
cd "$repo_root"

version=0.3.36
sha256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
cache=$HOME/.cache/vellum
src=$cache/llama_cpp_python-$version
# Portable flags: never GGML_NATIVE (machines of this kind differ and a wrong guess dies on the
# first matmul); AVX2/FMA always; AVX-512, and its VNNI (`vpdpbusd`, which Vellum's own kernels
# use where the CPU has it: the peer gets the same instructions), only where this CPU has them;
# AVX-VNNI (the VEX form) and AMX never. One build folder per set of flags.
avx512=OFF vnni512=OFF
grep -qw avx512f /proc/cpuinfo && avx512=ON
[ $avx512 = ON ] && grep -qw avx512_vnni /proc/cpuinfo && grep -qw avx512vl /proc/cpuinfo && vnni512=ON
build=$src/vendor/llama.cpp/build-avx512-$avx512-vnni-$vnni512
bench=$build/bin/llama-bench
if [ ! -x "$bench" ]; then
  command -v cmake >/dev/null 2>&1 || {
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get install -y -qq cmake >/dev/null
  }
  mkdir -p "$cache"
  tarball=$cache/llama_cpp_python-$version.tar.gz
  if [ ! -f "$tarball" ]; then
    venv=$(mktemp -d)
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet scikit-build-core
    "$venv/bin/pip" download --quiet --no-deps --no-binary :all: --no-build-isolation \
      -d "$cache" "llama-cpp-python==$version"
    rm -rf "$venv"
  fi
  echo "$sha256  $tarball" | sha256sum -c --quiet
  tar -xzf "$tarball" -C "$cache"
  cmake -S "$src/vendor/llama.cpp" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
    -DGGML_AVX512=$avx512 -DGGML_AVX512_VNNI=$vnni512 -DGGML_AVX_VNNI=OFF \
    -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF \
    -DGGML_AMX_BF16=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=OFF >/dev/null
  cmake --build "$build" --target llama-bench -j "$(nproc)" >/dev/null
fi

types=${1:-Q4_1 Q4_K_M Q8_0}
shipped="$VELLUM_MODELS_DIR/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
shared=${VELLUM_SHARED_DIR:-$repo_root/../shared}
source "$repo_root/deploy/llama-cpp-venv.sh"
cargo build --release --locked --workspace --all-targets
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "== $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown); llama.cpp AVX-512 $avx512, AVX-512 VNNI $vnni512"
rows=()
for type in $types; do
  if [ "$type" = Q4_1 ]; then
    model=$shipped
  else
    model=$cache/quantized/SmolLM2-135M-Instruct.$type.gguf
    if [ ! -f "$model" ]; then
      mkdir -p "$cache/quantized"
      "$venv/bin/python" deploy/peer/llama_cpp_tool.py quantize "$shipped" "$model.part" "$type" \
        > "$work/quantize.log" 2>&1 || { cat "$work/quantize.log"; exit 1; }
      mv "$model.part" "$model"
    fi
  fi
  echo "== $type: $(basename "$model")"
  "$bench" -m "$model" -t 2 -p 512 -n 128 -r 3 -o json > "$work/llama.json"
  # llama-bench's tg128 starts from an empty cache: Vellum's peer figure is generation after a
  # one-sentence prompt (~40 cached tokens), run right after it.
  SHORT_PROMPT=1 ONLY_VELLUM=1 RUNS=3 "$CARGO_TARGET_DIR/release/examples/gen_bench" "$model" \
    | tee "$work/vellum-short.txt"
  ONLY_VELLUM=1 RUNS=3 "$CARGO_TARGET_DIR/release/examples/gen_bench" "$model" | tee "$work/vellum.txt"
  # The long prompt's generation against llama.cpp's after as many cached tokens:
  depth=$(sed -n 's/.*run 0: prompt \([0-9]*\) tokens.*/\1/p' "$work/vellum.txt")
  "$bench" -m "$model" -t 2 -p 0 -n 128 -d "${depth:-480}" -r 3 -o json > "$work/llama-depth.json"
  "$venv/bin/python" deploy/peer/llama_cpp_tool.py greedy "$model" \
    "$shared/reference/smollm2-greedy.json" "$work/reference.json" 2> /dev/null
  "$CARGO_TARGET_DIR/release/examples/logit_check" "$model" "$work/reference.json" \
    > "$work/gaps.txt" || true
  cat "$work/gaps.txt"
  gap=$(sed -n 's/^worst logit gap \([0-9.]*\).*/\1/p' "$work/gaps.txt")
  rows+=("$(python3 deploy/peer/ratios.py row "$type" "$work/llama.json" "$work/llama-depth.json" \
    "$work/vellum.txt" "$work/vellum-short.txt" "${gap:-failed}")")
done
python3 deploy/peer/ratios.py report "${rows[@]}"
