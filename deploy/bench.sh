#!/usr/bin/env bash
# Benchmarks behind docs/benchmarks.md. Prints the figures; the machine is described by
# `lscpu` and `nproc` at the top of the output.
#
# usage: deploy/bench.sh [SHARED_DIR]   (default: ../shared beside the repository)
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared=${1:-${VELLUM_SHARED_DIR:-$repo_root/../shared}}
source "$repo_root/deploy/setup.sh"
cd "$repo_root"
cargo build --release --locked --workspace --all-targets
vellum="$CARGO_TARGET_DIR/release/vellum"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== machine"
lscpu | grep -E 'Model name|^CPU\(s\)|Flags' | sed 's/Flags:.*\(avx2\).*/Flags: ... avx2 .../'
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%Y-%m-%dT%H:%MZ)"

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

echo "== retrieval quality and query latency: BEIR SciFact (test split)"
"$vellum" eval --beir "$shared/corpora/beir-scifact"

echo "== embedder throughput"
"$CARGO_TARGET_DIR/release/examples/embed_bench" "$shared/corpora/beir-scifact/corpus.jsonl" || true

echo "== generation throughput"
"$CARGO_TARGET_DIR/release/examples/gen_bench" || true
