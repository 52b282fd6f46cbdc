#!/usr/bin/env bash
# Sets up (system packages, models) and runs every test. `.ci/run` calls exactly this.
# One cargo profile (release) serves the build and the tests, so dependencies compile once.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo_root/deploy/setup.sh"
cd "$repo_root"

export VELLUM_SHARED_DIR=${VELLUM_SHARED_DIR:-$repo_root/../shared}
start=$(date +%s)
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
# run on a machine builds llama-cpp-python from source (about 10 minutes on 2 cores); the venv
# is cached in ~/.cache/vellum/llama-cpp-venv, so later runs take seconds.
bash "$repo_root/deploy/remote-engine-test.sh"
# The air-gap proof (deploy/airgap-test.sh, docs/airgap.md): the appliance's whole flow (first
# start, users, uploads with OCR, search, ask, summarize, audit verify, backup and restore) in a
# network namespace with only loopback, under strace; fails on any address off this machine.
VELLUM_BIN="$CARGO_TARGET_DIR/release/vellum" bash "$repo_root/deploy/airgap-test.sh" "$CARGO_TARGET_DIR/release/vellum"
echo "test: air-gap test done after $(( $(date +%s) - start )) s"
echo "test: everything took $(( $(date +%s) - start )) s"
