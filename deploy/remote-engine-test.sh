#!/usr/bin/env bash
# Tests Vellum's OpenAI-compatible client against a real engine: llama-cpp-python's server
# (from PyPI, built here from source: no wheel of it exists for this machine) serving the
# default SmolLM2 GGUF on loopback. deploy/test.sh (so CI) runs it after the other tests.
# Building llama.cpp takes about 10 minutes on 2 cores the first time; the venv is cached in
# ~/.cache/vellum/llama-cpp-venv (VELLUM_LLAMA_CPP_VENV), next to the cargo target folder, so
# later runs on the same machine start in seconds. A venv without a working llama_cpp of this
# version (another version, or a build that was interrupted) is built again.
#
# usage: deploy/remote-engine-test.sh
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo_root/deploy/setup.sh"
cd "$repo_root"

source "$repo_root/deploy/llama-cpp-venv.sh"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
model="$VELLUM_MODELS_DIR/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
log=$(mktemp)
# --n_batch 1: on this machine kind (AMD Zen 3, AVX2, no AVX-512) llama-cpp-python 0.3.36's
# batched prompt evaluation of this Q4_1 model returns wrong logits: a fresh server answered
# "What is the capital of France?" with French gibberish, and a second identical request (whose
# prompt then came from its cache) with "The capital of France is Paris.". One token per batch
# gives the right answer every time. See docs/benchmarks.md, "Generation".
"$venv/bin/python" -m llama_cpp.server --model "$model" --model_alias smollm2 \
  --host 127.0.0.1 --port "$port" --n_threads 2 --n_ctx 2048 --n_batch 1 >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$port/v1/models" >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { cat "$log" >&2; echo "remote-engine-test: the server died" >&2; exit 1; }
  sleep 1
done
echo "remote-engine-test: llama-cpp-python $("$venv/bin/python" -c 'import llama_cpp; print(llama_cpp.__version__)') serving on 127.0.0.1:$port"

export VELLUM_REMOTE_ENGINE_URL="http://127.0.0.1:$port/v1" VELLUM_REMOTE_ENGINE_MODEL=smollm2
# Plain http:// is accepted only to loopback and only when allowed explicitly: the test sets
# that in its configuration, the binary below gets --remote-allow-http.
# --workspace keeps the feature set of the normal build (no second compile of the dependencies).
cargo test --release --locked --workspace --test remote -- --include-ignored

# And the binary end to end: ask through the remote engine (deploy/test.sh has built it;
# this is a no-op then).
cargo build --release --locked --workspace --all-targets
vellum="$CARGO_TARGET_DIR/release/vellum"
data=$(mktemp -d)
"$vellum" --data-dir "$data" ingest docs/*.md >/dev/null
"$vellum" --data-dir "$data" --remote-url "$VELLUM_REMOTE_ENGINE_URL" --remote-allow-http --remote-model smollm2 \
  ask "How does Vellum fuse BM25 and vector results?" --max-tokens 64
rm -rf "$data"
