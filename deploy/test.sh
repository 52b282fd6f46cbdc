#!/usr/bin/env bash
# Sets up (system packages, models) and runs every test. `.ci/run` calls exactly this.
# One cargo profile (release) serves the build and the tests, so dependencies compile once.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo_root/deploy/setup.sh"
cd "$repo_root"

export VELLUM_SHARED_DIR=${VELLUM_SHARED_DIR:-$repo_root/../shared}
start=$(date +%s)
# The remote-engine test's real server, llama-cpp-python, builds from source where its venv does
# not exist yet (several minutes of both cores; seconds otherwise). Started now at the lowest
# priority, it runs on what the tests below leave idle (a cold cargo build keeps both cores
# busy: docs/benchmarks.md, "CI") instead of after everything; the remote-engine test waits for
# it. Its own process group (set -m), in this session, so `nice` holds against the build and the
# tests (autogroups are per session) and an early exit stops the whole build.
llama_log=$(mktemp)
set -m
nice -n 19 bash -c "source '$repo_root/deploy/llama-cpp-venv.sh'" </dev/null >"$llama_log" 2>&1 &
llama_build=$!
set +m
trap 'kill -- -$llama_build 2>/dev/null || true; rm -f "$llama_log"' EXIT
cargo fmt --all -- --check
cargo build --release --locked --workspace --all-targets
echo "test: build took $(( $(date +%s) - start )) s"
cargo test --release --locked --workspace --no-fail-fast
echo "test: build and tests took $(( $(date +%s) - start )) s"
# The OpenAI-compatible API (/openai/v1) with the real `openai` Python client against the real
# binary over TLS (tests/openai/). Its pinned packages live in a venv cached in
# ~/.cache/vellum/openai-venv (VELLUM_OPENAI_VENV), made again when requirements.txt changes.
openai_venv=${VELLUM_OPENAI_VENV:-$HOME/.cache/vellum/openai-venv}
if ! cmp -s tests/openai/requirements.txt "$openai_venv/requirements.txt"; then
  if ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >/dev/null
  fi
  rm -rf "$openai_venv"
  mkdir -p "$(dirname "$openai_venv")"
  python3 -m venv "$openai_venv"
  "$openai_venv/bin/pip" install --quiet --no-deps -r tests/openai/requirements.txt
  cp tests/openai/requirements.txt "$openai_venv/requirements.txt"
fi
"$openai_venv/bin/python" tests/openai/test_openai.py "$CARGO_TARGET_DIR/release/vellum"
# The web app in Debian's Chromium against the binary just built (tests/browser/run.sh: sign-in,
# upload, search, ask with citations, summaries, access walls, CSRF, CSP, axe-core, screenshots).
VELLUM_BIN="$CARGO_TARGET_DIR/release/vellum" bash "$repo_root/tests/browser/run.sh"
echo "test: browser tests done after $(( $(date +%s) - start )) s"
# The OpenAI-compatible client against a real engine (llama-cpp-python's server). The first
# run on a machine builds llama-cpp-python from source (started in the background above); the
# venv is cached in ~/.cache/vellum/llama-cpp-venv, so later runs take seconds.
if ! wait "$llama_build"; then
  cat "$llama_log" >&2
  echo "test: building llama-cpp-python failed (its log is above)" >&2
  exit 1
fi
cat "$llama_log"
echo "test: llama-cpp-python ready after $(( $(date +%s) - start )) s"
bash "$repo_root/deploy/remote-engine-test.sh"

# ---- Offline bundle and systemd unit (issue 19: deploy/bundle.sh, deploy/unit-check.sh) ----
# The hardened unit: `systemd-analyze verify` clean and exposure <= 2.0. Then a bundle made from
# the binaries built above (VELLUM_BUNDLE_NO_BUILD: a plain `cargo build` after --all-targets
# would recompile the store's dependents without the test features), signed with a throwaway
# key, verified by its own binary, and refused once one byte of a policy changes. About 20 s.
bash "$repo_root/deploy/unit-check.sh"
bundle_test="$CARGO_TARGET_DIR/bundle-test"
rm -rf "$bundle_test" && mkdir -p "$bundle_test"
"$CARGO_TARGET_DIR/release/vellum" bundle keygen --out "$bundle_test/throwaway" >/dev/null
VELLUM_BUNDLE_NO_BUILD=1 VELLUM_BUNDLE_SECRET_KEY="$bundle_test/throwaway.key" \
  bash "$repo_root/deploy/bundle.sh" "$bundle_test/out"
bundle_dir=$(echo "$bundle_test"/out/vellum-*)
"$bundle_dir/bin/vellum" bundle verify "$bundle_dir" --public-key "$bundle_test/throwaway.pub"
printf '\n// tampered\n' >> "$bundle_dir/policies/default/admins.cedar"
if "$bundle_dir/bin/vellum" bundle verify "$bundle_dir" --public-key "$bundle_test/throwaway.pub" \
  2> "$bundle_test/tampered.err"; then
  echo "test: a tampered bundle verified" >&2
  exit 1
fi
grep -q "policies/default/admins.cedar: changed" "$bundle_test/tampered.err" || {
  cat "$bundle_test/tampered.err" >&2
  echo "test: the tampered bundle's error does not name the changed file" >&2
  exit 1
}
cat "$bundle_test/tampered.err"
# The air-gap proof (deploy/airgap-test.sh, docs/airgap.md) on the bundle's own .deb: installed
# in a network namespace with only loopback, then the appliance's whole flow (first start, users,
# uploads with OCR, search, ask, summarize, audit verify, backup, restore and check) under
# strace; fails on any address off this machine. The package is purged at the end.
if [ "$(id -u)" -eq 0 ]; then
  bash "$repo_root/deploy/airgap-test.sh" --deb "$(echo "$bundle_dir"/deb/vellum_*.deb)"
else
  echo "test: SKIPPED the air-gap test: it needs root (a network namespace, dpkg -i); run it as root" >&2
fi
rm -rf "$bundle_test"
echo "test: bundle and unit checks done after $(( $(date +%s) - start )) s"
echo "test: everything took $(( $(date +%s) - start )) s"
