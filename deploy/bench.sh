#!/usr/bin/env bash
# Every benchmark that docs/benchmarks.md cites, in the order of that page. Prints the figures;
# the machine is described by `lscpu` at the top. Any failure stops the run with its error
# (nothing is hidden): a benchmark that cannot run is a failed benchmark.
#
# usage: deploy/bench.sh [SECTION...]   (default: all; VELLUM_SHARED_DIR, default ../shared)
#
# Sections and their cost on the 2-core machine:
#   ci           warm `.ci/run` on a fresh clone (~3-5 min; with VELLUM_BENCH_CI_TARGET set to
#                an empty folder it is the cold run instead, ~40 min)
#   beir         vellum eval --beir on the whole SciFact corpus (~8 min)
#   beir-floor   the CI test on a 500-document SciFact slice (~1 min)
#   cuad         ingest of the 80 CUAD contract PDFs, then the embedder alone on its chunks
#                (~7 min; ends `ingest ratio R`; VELLUM_EMBEDDER=native-int8 runs both in int8)
#   hostile      the hostile batch with the hash embedder (~30 s)
#   hostile-real the hostile batch with the real embedder (deploy/hostile-batch.sh, ~37 min)
#   crash        the kill -9 harness (~70 s)
#   embed        examples/embed_bench 32 1 int8_32 int8_1 onnx32 onnx4 onnx1 stock32 (~6 min; ends
#                `embed ratio R`, then the ratio of each precision)
#   criterion    cargo bench: extract_chunk, embedder, fusion, audit append (~5 min)
#   generation   deploy/llama-bench.sh: llama.cpp's llama-bench, then gen_bench (~10 min the
#                first time, building llama.cpp)
#   ttft         time to the first token of `vellum ask` over docs/ (~1 min)
#   summary      vellum summarize (contract brief, then with --prose) on the longest CUAD
#                contract (~1 min; reuses the cuad section's data folder when it ran)
#   remote       deploy/remote-engine-test.sh (~10 min the first time, building llama-cpp-python)
#   load         deploy/load-test.sh 600 45 5 (~12 min)
#   audit-cost   examples/audit_cost 400 2 (~2 min)
#   load-model   load time and peak RSS of the shipped GGUF and of a synthetic 2.7 GB one that
#                deploy/synthetic-gguf.py writes, without and with a panel cache file (~4 min;
#                needs 6 GB of disk in TMPDIR)
# Not here: "Generation on a GPU" needs a machine with an NVIDIA GPU (deploy/build-cuda.sh
# here, deploy/gpu-check.sh there); the worker start-up figures of "Cost of isolation" have no
# script (see services/cli/src/commands.rs).
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
all_sections=(ci beir beir-floor cuad hostile hostile-real crash embed criterion generation ttft
  summary remote load audit-cost load-model)
sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=("${all_sections[@]}")
for section in "${sections[@]}"; do
  [[ " ${all_sections[*]} " == *" $section "* ]] || {
    echo "bench: unknown section $section (known: ${all_sections[*]})" >&2
    exit 2
  }
done

source "$repo_root/deploy/setup.sh"
cd "$repo_root"
export VELLUM_SHARED_DIR=${VELLUM_SHARED_DIR:-$repo_root/../shared}
shared=$VELLUM_SHARED_DIR
cargo build --release --locked --workspace --all-targets
vellum="$CARGO_TARGET_DIR/release/vellum"
examples="$CARGO_TARGET_DIR/release/examples"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== machine"
lscpu | grep -E 'Model name|^CPU\(s\)|Flags' | sed 's/Flags:.*\(avx2\).*/Flags: ... avx2 .../'
echo "commit $(git rev-parse --short HEAD), $(date -u +%Y-%m-%dT%H:%MZ)"

bench_load_model() {
  echo "== loading a GGUF: seconds and peak RSS (the shipped model, then a synthetic 2.7 GB one)"
  local venv="$HOME/.cache/vellum/gguf-venv"
  [ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install --quiet gguf numpy; }
  local shipped="$VELLUM_MODELS_DIR/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
  "$venv/bin/python" deploy/synthetic-gguf.py "$shipped" "$work/synthetic.gguf"
  for model in "$shipped" "$work/synthetic.gguf"; do
    /usr/bin/time -f "peak RSS %M KB, wall %e s" "$examples/load_bench" "$model" 4
    # With a panel cache folder: the first load writes the file, the second maps it.
    for run in write map; do
      PANEL_CACHE="$work/panels" /usr/bin/time -f "peak RSS %M KB, wall %e s ($run)" \
        "$examples/load_bench" "$model" 4
    done
  done
  rm -rf "$work/panels"
  rm -f "$work/synthetic.gguf"
}

bench_ci() {
  echo "== CI: .ci/run on a fresh clone"
  local target=${VELLUM_BENCH_CI_TARGET:-$CARGO_TARGET_DIR}
  git clone --quiet "$repo_root" "$work/clone"
  (cd "$work/clone" && CARGO_TARGET_DIR=$target CI=true \
    /usr/bin/time -f "ci wall %e s, user %U s, sys %S s" bash .ci/run)
}

bench_beir() {
  echo "== retrieval quality and query latency: BEIR SciFact (test split)"
  /usr/bin/time -f "eval wall %e s, peak RSS %M KB" \
    "$vellum" eval --beir "$shared/corpora/beir-scifact"
}

bench_beir_floor() {
  echo "== retrieval quality in CI: the SciFact slice"
  cargo test --release --locked --workspace --test beir_floor -- --nocapture
}

bench_cuad() {
  echo "== ingest: CUAD contract PDFs"
  /usr/bin/time -f "ingest wall %e s, peak RSS %M KB" \
    "$vellum" --data-dir "$work/cuad" ingest "$shared/corpora/legal-cuad-contracts/pdf" --json \
    > "$work/cuad.json"
  python3 - "$work/cuad.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"files {s['num_files']}, indexed {s['num_indexed']}, quarantined {len(s['quarantined'])}, "
      f"pages {s['num_pages']}, chunks {s['num_chunks']}, {s['seconds']:.1f} s: "
      f"{s['num_pages']/s['seconds']:.2f} pages/s, {s['num_chunks']/s['seconds']:.2f} chunks/s")
PY
  # The peer of ingest is the embedder alone on the same chunks (issue 20: ingest should reach
  # 0.9x of it): the chunks as the catalog holds them, 512 per call (ingest passes a batch of
  # 32 files at once; the embedder packs 2,048 tokens per forward pass either way).
  python3 - "$work/cuad/catalog.sqlite" > "$work/cuad-chunks.jsonl" <<'PY'
import json, sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
for (text,) in db.execute("SELECT c.text FROM chunks c JOIN documents d ON d.id = c.document_id "
                          "WHERE d.state = 'ready' ORDER BY d.source_path, c.ordinal"):
    print(json.dumps(text))
PY
  # The same precision as the ingest (`VELLUM_EMBEDDER=native-int8` runs both in int8).
  local run=512
  [ "${VELLUM_EMBEDDER:-native}" = native-int8 ] && run=int8_512
  PASSAGES_FILE="$work/cuad-chunks.jsonl" "$examples/embed_bench" "$run" | tee "$work/cuad-embed.txt"
  python3 - "$work/cuad.json" "$work/cuad-embed.txt" <<'PY'
import json, re, sys
s = json.load(open(sys.argv[1]))
embed_seconds = float(re.search(r"\(([\d.]+) s\)", open(sys.argv[2]).read()).group(1))
print(f"embedder alone: {s['num_pages']/embed_seconds:.2f} pages/s ({embed_seconds:.1f} s)")
print(f"ingest ratio {embed_seconds / s['seconds']:.2f}")
PY
}

bench_hostile() {
  echo "== hostile files: every corpus file in one batch (hash embedder)"
  cargo test --release --locked --workspace --test hostile_batch -- --nocapture
}

bench_hostile_real() {
  echo "== hostile files: every corpus file in one batch (real embedder)"
  bash deploy/hostile-batch.sh
}

bench_crash() {
  echo "== crash safety: kill -9 harness"
  cargo test --release --locked --workspace --test crash -- --nocapture
}

bench_embed() {
  echo "== embedder throughput (1,000 SciFact abstracts; f32 and int8 at batch 32 and 1, ONNX"
  echo "   Runtime through fastembed at 32, 4 and 1, candle's stock BERT)"
  "$examples/embed_bench" 32 1 int8_32 int8_1 onnx32 onnx4 onnx1 stock32
}

bench_criterion() {
  echo "== micro-benchmarks (criterion)"
  cargo bench --locked --workspace --bench extract_chunk --bench embedder --bench fusion
  cargo bench --locked --workspace --bench append
}

bench_generation() {
  echo "== generation: llama.cpp's llama-bench, then gen_bench"
  bash deploy/llama-bench.sh
}

bench_ttft() {
  echo "== time to first token: vellum ask over docs/ (two runs)"
  "$vellum" --data-dir "$work/docs" ingest docs/ > /dev/null
  local run
  for run in 1 2; do
    "$vellum" --data-dir "$work/docs" --json ask "How does Vellum fuse BM25 and vector results?" \
      --max-tokens 96 > "$work/ask-$run.json"
    python3 - "$work/ask-$run.json" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))
g = {k: v for k, v in (a["generation"] or {}).items() if k != "text"}
print(json.dumps({"generation": g, "sources": len(a["sources"])}))
PY
  done
}

bench_summary() {
  echo "== contract brief: the longest CUAD contract"
  local data=$work/cuad
  if [ ! -d "$data" ]; then
    data=$work/summary
    mkdir -p "$work/summary-in"
    cp "$shared/corpora/legal-cuad-contracts/pdf/"GRANTIERRAENERGYINC*TRANSPORTATION*.PDF \
      "$work/summary-in/"
    "$vellum" --data-dir "$data" ingest "$work/summary-in" > /dev/null
  fi
  /usr/bin/time -f "summarize (facts) wall %e s, peak RSS %M KB" \
    "$vellum" --data-dir "$data" --json summarize GRANTIERRAENERGYINC > "$work/summary.json"
  /usr/bin/time -f "summarize --prose wall %e s, peak RSS %M KB" \
    "$vellum" --data-dir "$data" --json summarize GRANTIERRAENERGYINC --prose \
    > "$work/summary-prose.json"
  python3 - "$work/summary.json" "$work/summary-prose.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
p = json.load(open(sys.argv[2])).get("prose") or {}
found = sum(item["status"] == "found" for item in s["items"])
print(json.dumps({"document": s["document"]["title"], "pages": s["document"]["num_pages"],
                  "chunks": s["num_chunks"], "kind": s["kind"], "items": len(s["items"]),
                  "found": found, "prose kept": p.get("text", ""),
                  "prose dropped": len(p.get("dropped_sentences", []))}))
PY
}

bench_remote() {
  echo "== remote engine: llama-cpp-python's server"
  /usr/bin/time -f "remote-engine-test wall %e s" bash deploy/remote-engine-test.sh
}

bench_load() {
  echo "== HTTPS service under load"
  VELLUM_BIN=$vellum LOAD_BIN=$examples/load bash deploy/load-test.sh 600 45 5
}

bench_audit_cost() {
  echo "== cost of auditing"
  "$examples/audit_cost" 400 2
}

for section in "${sections[@]}"; do
  "bench_${section//-/_}"
done
echo "bench: done (${sections[*]})"
