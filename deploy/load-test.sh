#!/usr/bin/env bash
# Load test behind docs/benchmarks.md ("HTTPS service under load"): ingests 20 CUAD contracts
# and 20 PACER court e-mails, starts `vellum serve` on a loopback port, then runs
# `examples/load` (search clients + ask clients in closed loops for SECONDS), sampling the
# server's memory every 10 s. Prints the machine, the summary JSON and the server's RSS curve.
#
# usage: deploy/load-test.sh [SECONDS] [SEARCH_CLIENTS] [ASK_CLIENTS]   (default 600 45 5)
set -euo pipefail

seconds=${1:-600}
search_clients=${2:-45}
ask_clients=${3:-5}
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared=${VELLUM_SHARED_DIR:-$repo_root/../shared}
source "$repo_root/deploy/setup.sh"
cd "$repo_root"
# VELLUM_BIN / LOAD_BIN: run prebuilt binaries (e.g. copies, so a build can go on meanwhile).
if [[ -z "${VELLUM_BIN:-}" ]]; then
  cargo build --release --locked --workspace --all-targets
fi
vellum=${VELLUM_BIN:-$CARGO_TARGET_DIR/release/vellum}
load=${LOAD_BIN:-$CARGO_TARGET_DIR/release/examples/load}
work=$(mktemp -d)
server_pid=
cleanup() {
  if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== machine"
lscpu | grep -E 'Model name|^CPU\(s\)'
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%Y-%m-%dT%H:%MZ)"

mkdir -p "$work/in/contracts" "$work/in/notices"
# (mapfile, not `find | head`: head closing the pipe would fail the script under pipefail)
mapfile -t contracts < <(find "$shared/corpora/legal-cuad-contracts/pdf" -iname '*.pdf' | sort)
mapfile -t notices < <(find "$shared/corpora/email-court-notices-pacer/nef" -name '*.eml' | sort)
cp "${contracts[@]:0:20}" "$work/in/contracts/"
cp "${notices[@]:0:20}" "$work/in/notices/"
"$vellum" --data-dir "$work/data" ingest "$work/in/contracts" --collection contracts >/dev/null
"$vellum" --data-dir "$work/data" ingest "$work/in/notices" --collection notices >/dev/null
"$vellum" --data-dir "$work/data" documents --json | python3 -c \
  "import json,sys; d=json.load(sys.stdin); print(len(d), 'documents,', sum(x['num_chunks'] for x in d), 'chunks')"

export VELLUM_ADMIN_PASSWORD="load test admin password"
"$vellum" --data-dir "$work/data" serve --listen 127.0.0.1:0 --policies policies/default \
  > "$work/serve.out" 2> "$work/serve.err" &
server_pid=$!
for _ in $(seq 1 240); do
  grep -q '^listening on' "$work/serve.out" 2>/dev/null && break
  sleep 0.5
done
address=$(sed -n 's/^listening on https:\/\///p' "$work/serve.out")
[[ -n "$address" ]] || { cat "$work/serve.err"; echo "the server did not start" >&2; exit 1; }
port=${address##*:}
echo "server pid $server_pid on port $port; RSS at start: $(grep VmRSS /proc/$server_pid/status)"

"$load" --url "https://localhost:$port" --cacert "$work/data/tls/cert.pem" \
  --user admin --password-env VELLUM_ADMIN_PASSWORD --seconds "$seconds" \
  --search-clients "$search_clients" --ask-clients "$ask_clients" --pid "$server_pid"
echo "server log lines at WARN or above: $(grep -cE ' (WARN|ERROR) ' "$work/serve.err" || true)"
