#!/usr/bin/env bash
# Property-based API tests of a real `vellum serve` with Schemathesis (PyPI), driven by the
# OpenAPI 3.1 description the server serves at /v1/openapi.json. Builds nothing: it needs a
# built `vellum` (cargo build --release). See docs/api-testing.md.
#
#   deploy/schemathesis.sh            # exit code: Schemathesis's (0 = no failure found)
#
# Settings (environment):
#   VELLUM_BIN            the binary [${CARGO_TARGET_DIR:-/root/.cache/vellum/target}/release/vellum]
#   VELLUM_MODELS_DIR     models folder [models]
#   VELLUM_SHARED_DIR     shared folder with corpora/ [../shared]
#   OUT                   where logs and reports go [/tmp/schemathesis]
#   SCHEMATHESIS_VENV     the venv [/root/.cache/vellum/venv-schemathesis]
#   SCHEMATHESIS_VERSION  the version installed into it [4.32.5]; empty: the newest
#   ST_SEED               Hypothesis seed [20261127]
#   ST_MAX_EXAMPLES       examples per operation, fast operations [50]
#   ST_SLOW_MAX_EXAMPLES  examples per operation, POST /v1/ask and /v1/summarize [5]
#   ST_SLOW_PHASES        phases for those two [fuzzing] (coverage would run the model at
#                         every boundary, e.g. max_tokens=1024: far too slow on 2 cores)
#   ST_SLOW_MAX_RESPONSE_TIME  seconds an ask/summarize may take [120] (the fast run keeps
#                         Schemathesis's default of 10 s)
#   ST_WORKERS            Schemathesis workers [2]
#   ST_NO_GENERATION=1    start the server with --no-generation (ask/summarize answer 503)
#   ST_SKIP_SLOW=1        skip the ask/summarize run
#   KEEP_DATA=1           keep the temporary data folder (its path is printed)
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

venv=${SCHEMATHESIS_VENV:-/root/.cache/vellum/venv-schemathesis}
st_version=${SCHEMATHESIS_VERSION-4.32.5}
vellum=${VELLUM_BIN:-${CARGO_TARGET_DIR:-/root/.cache/vellum/target}/release/vellum}
models=${VELLUM_MODELS_DIR:-models}
shared=${VELLUM_SHARED_DIR:-../shared}
out=${OUT:-/tmp/schemathesis}
seed=${ST_SEED:-20261127}
max_examples=${ST_MAX_EXAMPLES:-50}
slow_max_examples=${ST_SLOW_MAX_EXAMPLES:-5}
slow_phases=${ST_SLOW_PHASES:-fuzzing}
slow_max_response_time=${ST_SLOW_MAX_RESPONSE_TIME:-120}
st_workers=${ST_WORKERS:-2}

log() { printf '[schemathesis.sh] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

# Absolute paths: Schemathesis runs in $out, the server in the repository root.
abs() { (cd "$1" && pwd); }
mkdir -p "$out"
out=$(abs "$out")
[[ -d $models ]] || die "no models folder $models (deploy/fetch-models.sh; or set VELLUM_MODELS_DIR)"
models=$(abs "$models")
[[ -d $shared/corpora ]] || die "no $shared/corpora (set VELLUM_SHARED_DIR)"
shared=$(abs "$shared")
[[ -x $vellum ]] || die "no vellum binary at $vellum: cargo build --release first (or set VELLUM_BIN)"

# 1. Schemathesis in its own venv, installed once and reused.
if [[ ! -x $venv/bin/python ]]; then
  log "creating the venv $venv"
  python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install -y python3-venv)"
fi
installed=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null || true)
if [[ -z $installed || (-n $st_version && $installed != "$st_version") ]]; then
  log "installing schemathesis${st_version:+==$st_version} into $venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet "schemathesis${st_version:+==$st_version}"
  installed=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))')
fi
log "schemathesis $installed, vellum $("$vellum" --version)"

# 2. A throwaway data folder with a few real documents in one collection.
data=$(mktemp -d "${TMPDIR:-/tmp}/vellum-schemathesis.XXXXXX")
server_pid=
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [[ ${KEEP_DATA:-} == 1 ]]; then log "kept the data folder $data"; else rm -rf "$data"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Settings that would change what the server does must come from this script alone.
unset VELLUM_CONFIG VELLUM_TLS_CERT VELLUM_TLS_KEY VELLUM_TLS_CLIENT_CA VELLUM_LISTEN \
  VELLUM_POLICIES VELLUM_WORKERS VELLUM_DATA_DIR VELLUM_NO_GENERATION

# The two smallest court PDFs (fast to summarize) and the first two PACER notices.
mapfile -t pdfs < <(find "$shared/corpora/legal-court-documents-freelaw/recap_documents" \
  -maxdepth 1 -name '*.pdf' -printf '%s %p\n' | sort -n | head -2 | cut -d' ' -f2-)
mapfile -t emails < <(find "$shared/corpora/email-court-notices-pacer/nef" \
  -maxdepth 1 -name '*.eml' | sort | head -2)
(( ${#pdfs[@]} == 2 && ${#emails[@]} == 2 )) || die "corpus files not found under $shared/corpora"
log "ingesting ${pdfs[*]##*/} ${emails[*]##*/} into $data (collection matter-1234)"
"$vellum" --data-dir "$data" --models-dir "$models" ingest "${pdfs[@]}" "${emails[@]}" \
  --collection matter-1234 >"$out/ingest.log" 2>&1 || { cat "$out/ingest.log" >&2; die "ingest failed"; }

# 3. The server, on a free port; its stdout says where it listens.
password=$(openssl rand -hex 24)
serve_args=(--data-dir "$data" --models-dir "$models" serve --listen 127.0.0.1:0
  --policies policies/default --workers 2)
[[ ${ST_NO_GENERATION:-} == 1 ]] && serve_args+=(--no-generation)
VELLUM_ADMIN_PASSWORD=$password "$vellum" "${serve_args[@]}" \
  >"$out/server.stdout" 2>"$out/server.log" &
server_pid=$!
port=
for _ in $(seq 600); do   # up to 5 minutes: models load slowly on a busy 2-core machine
  address=$(sed -n 's|^listening on https://||p' "$out/server.stdout" | head -1)
  if [[ -n $address ]]; then port=${address##*:}; break; fi
  kill -0 "$server_pid" 2>/dev/null || { cat "$out/server.log" >&2; die "the server exited"; }
  sleep 0.5
done
[[ -n $port ]] || die "the server did not say where it listens within 5 minutes"
base=https://localhost:$port
ca=$data/tls/cert.pem
[[ -f $ca ]] || die "no self-signed certificate at $ca"
log "server pid $server_pid listening on $base"

# 4. A session token for admin.
login=$(curl -sS --fail-with-body --cacert "$ca" -X POST "$base/v1/login" \
  -H 'Content-Type: application/json' \
  --data "{\"user\":\"admin\",\"password\":\"$password\"}") || die "login failed: $login"
token=$("$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["token"])' <<<"$login")
curl -sS --fail --cacert "$ca" -o "$out/openapi.json" "$base/v1/openapi.json" \
  || die "GET /v1/openapi.json failed"

# A real document for POST /v1/summarize (random ids only reach its 404), the smallest one so
# the model runs briefly; and 422 (a file kept but not indexable, e.g. a PNG) counts as a
# legitimate answer to a schema-valid upload.
summarize_id=$("$vellum" --data-dir "$data" --models-dir "$models" --json documents \
  | "$venv/bin/python" -c 'import json,sys; print(min(json.load(sys.stdin), key=lambda d: (d["num_chunks"], d["id"]))["id"])')
cat >"$out/schemathesis.toml" <<EOF
[[operations]]
include-name = "POST /v1/summarize"
parameters = { "body.document_id" = "$summarize_id" }

[[operations]]
include-name = "POST /v1/documents"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
EOF

# 5. Schemathesis. Operations that would end the session, lock admin out or delete the
#    documents the other operations work on are excluded (docs/api-testing.md says why).
excluded=(
  "POST /v1/logout"
  "PUT /v1/users/{name}/disabled"
  "PUT /v1/users/{name}/password"
  "DELETE /v1/keys/{id}"
  "DELETE /v1/documents/{id}"
)
slow=("POST /v1/ask" "POST /v1/summarize")
common=(
  --config-file "$out/schemathesis.toml"
  run "$base/v1/openapi.json" --url "$base"
  --header "Authorization: Bearer $token"
  --tls-verify "$ca"
  --checks all
  --seed "$seed"
  --workers "$st_workers"
  --generation-database none
  --request-timeout 300
  --continue-on-failure    # every failure of an operation, not just its first
  --no-color
  --output-sanitize false  # exact curl reproductions; the token dies with this throwaway server
)
run_st() {  # NAME ARGS...: one Schemathesis run; output and reports under $out/NAME*
  local name=$1; shift
  log "run $name: schemathesis $*"
  local rc=0
  (cd "$out" && "$venv/bin/schemathesis" "${common[@]}" "$@" \
    --report junit,json,har --report-junit-path "$out/$name.junit.xml" \
    --report-json-path "$out/$name.report.json" --report-har-path "$out/$name.har") \
    >"$out/$name.log" 2>&1 || rc=$?
  tail -n 40 "$out/$name.log" >&2
  log "run $name: exit $rc (full output: $out/$name.log)"
  return "$rc"
}

exclude_fast=()
for operation in "${excluded[@]}" "${slow[@]}"; do exclude_fast+=(--exclude-name "$operation"); done
include_slow=()
for operation in "${slow[@]}"; do include_slow+=(--include-name "$operation"); done

status=0
run_st fast --max-examples "$max_examples" "${exclude_fast[@]}" || status=$?
if [[ ${ST_SKIP_SLOW:-} != 1 ]]; then
  slow_status=0
  run_st slow --max-examples "$slow_max_examples" --phases "$slow_phases" "${include_slow[@]}" \
    --max-response-time "$slow_max_response_time" \
    || slow_status=$?
  (( status != 0 )) || status=$slow_status
fi
log "done: exit $status; logs and reports in $out"
exit "$status"
