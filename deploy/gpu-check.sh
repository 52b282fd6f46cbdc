#!/usr/bin/env bash
# Runs the GPU checks of the generation path on a machine with an NVIDIA GPU, using binaries
# that deploy/build-cuda.sh built elsewhere (the GPU machine needs no Rust toolchain):
#   - services/models/tests/gpu.rs: every tiny architecture gives the same logits on the GPU as
#     on the CPU, and the real SmolLM2 follows llama.cpp's greedy continuations on the GPU;
#   - gen_bench with DEVICE=cuda: prompt and generation tokens/s on the GPU, then on the CPU.
#
# usage: deploy/gpu-check.sh DIR OUT
#   DIR holds `gpu` (the test binary), `gen_bench` (either may be .xz), `SmolLM2-135M-Instruct.Q4_1.gguf` (or its
#   parts `model.part*`), `smollm2-greedy.json` and `corpus.jsonl` (SciFact lines for the
#   benchmark prompt). Logs go to OUT.
set -uo pipefail
dir=$1
out=${2:-.}
mkdir -p "$out"

nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv | tee "$out/gpu.txt"
nproc | sed 's/^/cpu cores: /' | tee -a "$out/gpu.txt"

# CUDA 13 user-space libraries (cuBLAS, cuRAND, NVRTC): NVIDIA's wheels, e.g. PyTorch's.
for candidate in $(python3 - <<'EOF' 2>/dev/null
import os, nvidia
for root in nvidia.__path__:
    for sub in ("cu13/lib", "cublas/lib", "curand/lib", "cuda_nvrtc/lib", "cuda_runtime/lib"):
        path = os.path.join(root, sub)
        if os.path.isdir(path):
            print(path)
EOF
); do
  LD_LIBRARY_PATH=$candidate${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
done
export LD_LIBRARY_PATH
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH" | tee -a "$out/gpu.txt"

models=$(mktemp -d)
mkdir -p "$models/SmolLM2-135M-Instruct" "$models/shared/reference" "$models/shared/corpora/beir-scifact"
model=$models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -f "$dir/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
  cp "$dir/SmolLM2-135M-Instruct.Q4_1.gguf" "$model"
else
  cat "$dir"/model.part* >"$model"
fi
sha256sum "$model" | tee -a "$out/gpu.txt"
cp "$dir/smollm2-greedy.json" "$models/shared/reference/"
cp "$dir/corpus.jsonl" "$models/shared/corpora/beir-scifact/"
export VELLUM_MODELS_DIR=$models VELLUM_SHARED_DIR=$models/shared

# Binaries may travel xz-compressed (60 MB each, 8 MB compressed); Python's lzma needs no xz tool.
for packed in "$dir"/*.xz; do
  [ -e "$packed" ] || continue
  python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
    "$packed" "${packed%.xz}"
done
chmod +x "$dir/gpu" "$dir/gen_bench"
ldd "$dir/gpu" | grep -E 'cuda|cublas|curand|nvrtc|not found' | tee -a "$out/gpu.txt"

status=0
echo "== tests/gpu.rs on the GPU"
"$dir/gpu" --nocapture --test-threads 1 2>&1 | tee "$out/gpu-tests.log" || status=1
echo "== gen_bench: GPU, then the CPU decoder"
DEVICE=cuda RUNS=${RUNS:-3} "$dir/gen_bench" 2>&1 | tee "$out/gen-bench.log" || status=1
exit $status
