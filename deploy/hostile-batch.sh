#!/usr/bin/env bash
# Every file of shared/corpora plus the generated hostile files in one ingest batch, with the
# real embedding model (36.5 minutes measured on 2 cores; CI runs the same test with a hash
# embedder). Asserts and prints the outcome of every file class (docs/benchmarks.md has the
# table) and the peak memory. As root, the test re-runs itself under setpriv without
# CAP_DAC_OVERRIDE so that the mode-000 file is really unreadable.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo_root/deploy/setup.sh"
cd "$repo_root"
export VELLUM_SHARED_DIR=${VELLUM_SHARED_DIR:-$repo_root/../shared}
cargo build --release --locked --workspace --all-targets
VELLUM_HOSTILE_REAL_EMBEDDER=1 /usr/bin/time -f "wall %e s, peak RSS of the test process %M KB" \
  cargo test --release --locked --workspace --test hostile_batch -- --nocapture
