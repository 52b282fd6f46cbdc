#!/usr/bin/env bash
# The peer for generation speed: llama.cpp's llama-bench on the default SmolLM2 GGUF, 2 threads,
# prompt processing of 512 tokens and generation of 128, next to Vellum's own gen_bench in the
# same run. llama.cpp's source comes from PyPI (the llama-cpp-python sdist vendors it, pinned
# by SHA-256); deploy/peer/llama-bench-build.sh builds it once per set of CPU flags.
#
# usage: deploy/llama-bench.sh
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo_root/deploy/setup.sh"
cd "$repo_root"

source "$repo_root/deploy/peer/llama-bench-build.sh"

types=${1:-Q4_1 Q4_K_M Q8_0}
shipped="$VELLUM_MODELS_DIR/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
shared=${VELLUM_SHARED_DIR:-$repo_root/../shared}
source "$repo_root/deploy/llama-cpp-venv.sh"
cargo build --release --locked --workspace --all-targets
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "== $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown); $llama_cpp_flags"
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
