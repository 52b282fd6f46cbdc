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
# The web app in Debian's Chromium against the binary just built (tests/browser/run.sh: sign-in,
# upload, search, ask with citations, summaries, access walls, CSRF, CSP, axe-core, screenshots).
VELLUM_BIN="$CARGO_TARGET_DIR/release/vellum" bash "$repo_root/tests/browser/run.sh"
echo "test: browser tests done after $(( $(date +%s) - start )) s"
# The OpenAI-compatible client against a real engine (llama-cpp-python's server). The first
# run on a machine builds llama-cpp-python from source (about 10 minutes on 2 cores); the venv
# is cached in ~/.cache/vellum/llama-cpp-venv, so later runs take seconds.
bash "$repo_root/deploy/remote-engine-test.sh"
echo "test: everything took $(( $(date +%s) - start )) s"
