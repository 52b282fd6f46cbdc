#!/usr/bin/env bash
# Browser tests of the web app against the real `vellum` binary, in Debian's Chromium driven by
# playwright-core (no browser download). Builds nothing: it takes the binary from $VELLUM_BIN
# (default $CARGO_TARGET_DIR/release/vellum), starts a fresh `vellum serve` on a loopback port
# with TLS and the law-firm policies in a temporary data folder, adds the accounts, runs
# tests.mjs, stops the server and exits non-zero on any failure.
#
# Environment: VELLUM_BIN, VELLUM_MODELS_DIR (default: the checkout's models/),
# VELLUM_SHARED_DIR (corpora; default ../shared next to the checkout), VELLUM_WEB_DIR (serve the
# assets from this folder instead of the ones embedded in the binary: for front-end work),
# CHROMIUM (default /usr/bin/chromium), SCREENSHOTS (default docs/screenshots; "none" skips).
#
# usage: tests/browser/run.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$here/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/vellum/target}
vellum=${VELLUM_BIN:-$CARGO_TARGET_DIR/release/vellum}
export VELLUM_MODELS_DIR=${VELLUM_MODELS_DIR:-$repo_root/models}
export VELLUM_SHARED_DIR=${VELLUM_SHARED_DIR:-$repo_root/../shared}
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
export SCREENSHOTS=${SCREENSHOTS:-$repo_root/docs/screenshots}

fail() { echo "browser-tests: $*" >&2; exit 1; }
[ -x "$vellum" ] || fail "no vellum binary at $vellum (build it, or set VELLUM_BIN)"
[ -x "$CHROMIUM" ] || fail "no Chromium at $CHROMIUM (apt-get install chromium; deploy/setup.sh does)"
command -v node >/dev/null || fail "node is missing (apt-get install nodejs npm)"
[ -d "$VELLUM_SHARED_DIR/corpora/legal-cuad-contracts/pdf" ] \
  || fail "no CUAD corpus under $VELLUM_SHARED_DIR/corpora (set VELLUM_SHARED_DIR)"

# The test packages, from the committed lock (npm ci installs exactly it; no browser download:
# playwright-core has no install script).
if ! cmp -s "$here/package-lock.json" "$here/node_modules/.vellum-installed-lock" 2>/dev/null; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$here/package-lock.json" "$here/node_modules/.vellum-installed-lock"
fi

# The passage matching without a browser first (seconds).
node "$here/text.test.mjs"

work=$(mktemp -d)
servers=()
cleanup() {
  for pid in "${servers[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
data="$work/data"
mkdir -m 700 "$data"

admin_password="admin password for browser tests"
export ALICE_PASSWORD="alice's long password 1"
export BOB_PASSWORD="bob's long password 12"
export CAROL_PASSWORD="carol's long password 1"
v() { "$vellum" --data-dir "$data" --models-dir "$VELLUM_MODELS_DIR" "$@"; }
# Accounts before the server starts (a running server holds the audit log). Alice works on two
# matters, Bob on one only: he must see nothing of acme-matter anywhere. Carol changes her
# password in the tests.
v user add admin --role admin --password-stdin <<<"$admin_password" >/dev/null
v user add alice --role attorney --group acme-matter --group shared-matter --password-stdin <<<"$ALICE_PASSWORD" >/dev/null
v user add bob --role attorney --group shared-matter --password-stdin <<<"$BOB_PASSWORD" >/dev/null
v user add carol --role paralegal --group shared-matter --password-stdin <<<"$CAROL_PASSWORD" >/dev/null
export ADMIN_PASSWORD="$admin_password"

[ -n "${VELLUM_WEB_DIR:-}" ] && echo "browser-tests: assets from $VELLUM_WEB_DIR (VELLUM_WEB_DIR)"
# start_server NAME DATA POLICY-SET [global flags...]: starts `vellum serve` and sets $address.
start_server() {
  local name=$1 dir=$2 policies=$3
  shift 3
  : >"$work/$name.out"
  : >"$work/$name.err"
  VELLUM_ADMIN_PASSWORD="$admin_password" "$vellum" --data-dir "$dir" --models-dir "$VELLUM_MODELS_DIR" "$@" \
    serve --listen 127.0.0.1:0 --workers 2 --policies "$repo_root/policies/$policies" \
    >"$work/$name.out" 2>"$work/$name.err" &
  servers+=($!)
  address=""
  for _ in $(seq 1 240); do
    address=$(sed -n 's/^listening on https:\/\///p' "$work/$name.out" 2>/dev/null | head -1 || true)
    [ -n "$address" ] && break
    kill -0 "${servers[-1]}" 2>/dev/null || { cat "$work/$name.err" >&2; fail "vellum serve ($name) died"; }
    sleep 0.5
  done
  [ -n "$address" ] || { cat "$work/$name.err" >&2; fail "vellum serve ($name) did not start within 120 s"; }
}

start_server serve "$data" law-firm
echo "browser-tests: vellum serve on https://$address ($("$vellum" --version 2>/dev/null || echo vellum)), generating with the default model"
export BASE_URL="https://$address"

# A second server, under the hospital policies (break-glass), whose generation comes from a
# scripted OpenAI-compatible engine on loopback (scripted-engine.mjs): its answers carry [n]
# citations, an invalid one and an uncited sentence, which the default 135M model rarely
# writes, so that clicking a citation in the answer text is tested every time. Alice is a
# cardiology clinician there, Dana an oncology one (emergency access to cardiology only).
node "$here/scripted-engine.mjs" >"$work/engine.out" 2>&1 &
servers+=($!)
engine_port=""
for _ in $(seq 1 40); do
  engine_port=$(sed -n 's/^scripted engine on //p' "$work/engine.out" 2>/dev/null || true)
  [ -n "$engine_port" ] && break
  sleep 0.25
done
[ -n "$engine_port" ] || fail "the scripted engine did not start"
data2="$work/data-scripted"
mkdir -m 700 "$data2"
export DANA_PASSWORD="dana's long password 12"
"$vellum" --data-dir "$data2" --models-dir "$VELLUM_MODELS_DIR" user add admin --role admin \
  --password-stdin <<<"$admin_password" >/dev/null
"$vellum" --data-dir "$data2" --models-dir "$VELLUM_MODELS_DIR" user add alice --role clinician \
  --group dept-cardiology --password-stdin <<<"$ALICE_PASSWORD" >/dev/null
"$vellum" --data-dir "$data2" --models-dir "$VELLUM_MODELS_DIR" user add dana --role clinician \
  --group dept-oncology --password-stdin <<<"$DANA_PASSWORD" >/dev/null
start_server scripted "$data2" hospital --remote-url "http://127.0.0.1:$engine_port/v1" --remote-allow-http --remote-model scripted
echo "browser-tests: vellum serve on https://$address (hospital policies) generating with the scripted engine on 127.0.0.1:$engine_port"
export SCRIPTED_BASE_URL="https://$address"

status=0
node "$here/tests.mjs" || status=$?
if [ $status -ne 0 ]; then
  echo "browser-tests: FAILED; the server's log follows" >&2
  tail -n 40 "$work/serve.err" "$work/scripted.err" >&2
fi
exit $status
