#!/usr/bin/env bash
# Load test behind docs/benchmarks.md ("HTTPS service under load"): ingests 20 CUAD contracts
# and 20 PACER court e-mails, starts `vellum serve` on a loopback port, then runs
# `examples/load` (search clients + ask clients in closed loops for SECONDS), sampling the
# server's memory every 10 s. Prints the machine, the summary JSON and the server's RSS curve.
#
# usage: deploy/load-test.sh [SECONDS] [SEARCH_CLIENTS] [ASK_CLIENTS]   (default 600 45 5)
#
# LOAD_DATA_DIR=DIR serves an existing data folder instead (it is used in place, not copied),
# e.g. the 100,000-chunk store that the vellum-store `replicate` example builds
# (docs/benchmarks.md, "The appliance"). The time from starting `vellum serve` to its
# `listening on` line is printed as the cold start.
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
# The checkout's commit names the binaries only when they were built from it.
if [[ -n "${VELLUM_BIN:-}" || -n "${LOAD_BIN:-}" ]]; then
  echo "binaries $vellum, $load (prebuilt: not necessarily this checkout), $(date -u +%Y-%m-%dT%H:%MZ)"
else
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%Y-%m-%dT%H:%MZ)"
fi

data=${LOAD_DATA_DIR:-$work/data}
if [[ -z "${LOAD_DATA_DIR:-}" ]]; then
  mkdir -p "$work/in/contracts" "$work/in/notices"
  # (mapfile, not `find | head`: head closing the pipe would fail the script under pipefail)
  mapfile -t contracts < <(find "$shared/corpora/legal-cuad-contracts/pdf" -iname '*.pdf' | sort)
  mapfile -t notices < <(find "$shared/corpora/email-court-notices-pacer/nef" -name '*.eml' | sort)
  cp "${contracts[@]:0:20}" "$work/in/contracts/"
  cp "${notices[@]:0:20}" "$work/in/notices/"
  "$vellum" --data-dir "$work/data" ingest "$work/in/contracts" --collection contracts >/dev/null
  "$vellum" --data-dir "$work/data" ingest "$work/in/notices" --collection notices >/dev/null
fi
"$vellum" --data-dir "$data" documents --json | python3 -c \
  "import json,sys; d=json.load(sys.stdin); print(len(d), 'documents,', sum(x['num_chunks'] for x in d), 'chunks')"

export VELLUM_ADMIN_PASSWORD="load test admin password"
# Starts the server; prints how long it took to its `listening on` line, prefixed by $1.
start_server() {
  local start_ns
  start_ns=$(date +%s%N)
  "$vellum" --data-dir "$data" serve --listen 127.0.0.1:0 --policies policies/default \
    > "$work/serve.out" 2> "$work/serve.err" &
  server_pid=$!
  for _ in $(seq 1 1200); do
    grep -q '^listening on' "$work/serve.out" 2>/dev/null && break
    sleep 0.1
  done
  address=$(sed -n 's/^listening on https:\/\///p' "$work/serve.out")
  [[ -n "$address" ]] || { cat "$work/serve.err"; echo "the server did not start" >&2; exit 1; }
  echo "$1: $(( ($(date +%s%N) - start_ns) / 1000000 )) ms to the listening line"
}
start_server "first start (admin, TLS and audit keys created unless LOAD_DATA_DIR had them)"
# The figure that matters after a reboot: a restart with the page cache dropped (root only).
kill "$server_pid"; wait "$server_pid" || true
# Each ask client is its own account: the server allows one account 2 answers at once.
existing_users=$("$vellum" --data-dir "$data" user list)
for id in $(seq 0 $((ask_clients - 1))); do
  grep -qw "asker-$id" <<< "$existing_users" && continue
  "$vellum" --data-dir "$data" user add "asker-$id" --role admin --password-stdin \
    <<< "$VELLUM_ADMIN_PASSWORD" > /dev/null
done
sync
if echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then
  start_server "cold start (page cache dropped)"
else
  start_server "restart (page cache NOT dropped: not root)"
fi
port=${address##*:}
echo "server pid $server_pid on port $port; RSS at start: $(grep VmRSS /proc/$server_pid/status)"

"$load" --url "https://localhost:$port" --cacert "$data/tls/cert.pem" \
  --user admin --password-env VELLUM_ADMIN_PASSWORD --ask-user-prefix asker- --seconds "$seconds" \
  --search-clients "$search_clients" --ask-clients "$ask_clients" --pid "$server_pid"
echo "server peak RSS: $(grep VmHWM /proc/$server_pid/status)"
echo "server log lines at WARN or above: $(grep -cE ' (WARN|ERROR) ' "$work/serve.err" || true)"
