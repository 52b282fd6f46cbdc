#!/usr/bin/env bash
# Vellum's main job, from a fresh clone: set up, build the release binary, ingest a folder and
# answer a question about it with citations.
#
# usage: deploy/quickstart.sh [FOLDER] [QUESTION]
#   FOLDER    what to ingest (default: this repository's docs/)
#   QUESTION  what to ask  (default: a question about Vellum's own architecture)
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
folder=${1:-$repo_root/docs}
question=${2:-How does Vellum keep the catalog, Tantivy and LanceDB consistent when a document is committed?}
source "$repo_root/deploy/setup.sh"

echo "quickstart: building the release binary (the first build takes a while: LanceDB, candle)"
# The binaries only: the test build's extras (crash points, audit test hooks) are left out. Same
# workspace selection as deploy/test.sh, so both share one set of compiled dependencies (only
# the workspace's own crates differ).
cargo build --release --locked --workspace --bins --manifest-path "$repo_root/Cargo.toml"
vellum="$CARGO_TARGET_DIR/release/vellum"
export VELLUM_DATA_DIR=${VELLUM_DATA_DIR:-$repo_root/vellum-data}

"$vellum" ingest "$folder"
echo
echo "quickstart: asking: $question"
"$vellum" ask "$question"

cat <<TXT

Next, try (the binary is $vellum; data in $VELLUM_DATA_DIR, models in $VELLUM_MODELS_DIR):
  export VELLUM_DATA_DIR=$VELLUM_DATA_DIR VELLUM_MODELS_DIR=$VELLUM_MODELS_DIR
  $vellum search "your words here"                 # hybrid BM25 + vector search
  $vellum ask "your question here"                 # answer with [n] citations to file and page
  $vellum documents                                # what is indexed
  $vellum summarize FILE-NAME                      # contract brief / patient-record summary: facts quoted with pages
  $vellum ask "…" --document FILE-NAME             # about one document only
  $vellum ingest /path/to/folder --collection cases
  $vellum eval --beir ../shared/corpora/beir-scifact   # retrieval quality
TXT
