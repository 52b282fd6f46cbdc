#!/usr/bin/env bash
# Builds the seed corpus of one fuzz target from shared/corpora and runs it for SECONDS.
#
#   fuzz/run.sh TARGET [SECONDS]      TARGET: pdf docx html email text detect chunk msg ccda (or "seed")
#
# Environment (all optional):
#   VELLUM_SHARED_DIR   folder holding corpora/ (default: ../shared next to the checkout)
#   SANITIZER           address (default) or none (if ASan does not link)
#   CARGO_TARGET_DIR    default /root/.cache/vellum/fuzz-target
#   FUZZ_NICE           niceness of build and fuzzer (default 10)
#   FUZZ_ARGS           extra libFuzzer flags
#
# The fuzzer runs one process at a time (-jobs=1 -workers=1: libFuzzer writes its log to
# fuzz/fuzz-0.log, which this script prints). After a finding (crash, timeout, oom) libFuzzer
# stops; this script starts it again with the corpus it has grown, until SECONDS have passed,
# so one finding does not end the run. Findings land in fuzz/artifacts/TARGET/.
set -euo pipefail

target=${1:?usage: fuzz/run.sh TARGET [SECONDS]}
seconds=${2:-240}
fuzz_dir=$(cd "$(dirname "$0")" && pwd)
repo_dir=$(dirname "$fuzz_dir")
shared=${VELLUM_SHARED_DIR:-$repo_dir/../shared}
corpora=$shared/corpora
sanitizer=${SANITIZER:-address}
nice_level=${FUZZ_NICE:-10}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/.cache/vellum/fuzz-target}
# cargo-fuzz passes nightly-only flags (-Zsanitizer, sancov passes) to a stable rustc.
export RUSTC_BOOTSTRAP=1

max_seed_bytes=$((200 * 1024))

# copy_seeds DEST LIMIT FILE...: copies up to LIMIT files under 200 KB, named by content hash.
copy_seeds() {
    local dest=$1 limit=$2 count=0
    shift 2
    mkdir -p "$dest"
    for file in "$@"; do
        [ -f "$file" ] || continue
        [ "$(stat -c %s "$file")" -lt "$max_seed_bytes" ] || continue
        [ "$(stat -c %s "$file")" -gt 0 ] || continue
        cp "$file" "$dest/seed-$(sha1sum "$file" | cut -c1-16)"
        count=$((count + 1))
        [ "$count" -lt "$limit" ] || break
    done
}

# Seeds for one target, in fuzz/corpus/TARGET (kept between runs; never committed).
seed() {
    local t=$1 dest=$fuzz_dir/corpus/$1
    shopt -s nullglob globstar
    case "$t" in
        pdf)
            copy_seeds "$dest" 200 "$corpora"/pdf-pdfjs-subset/**/*.pdf \
                "$corpora"/pdf-pdfminer-samples/**/*.pdf ;;
        docx)
            copy_seeds "$dest" 200 "$corpora"/docx-python-docx/**/*.docx \
                "$corpora"/docx-apache-poi-subset/**/*.docx ;;
        html)
            copy_seeds "$dest" 200 "$corpora"/html-readability-pages/*/source.html ;;
        email)
            copy_seeds "$dest" 200 "$corpora"/email-mail-parser-fixtures/**/*.eml \
                "$corpora"/email-court-notices-pacer/**/*.eml ;;
        text | chunk)
            copy_seeds "$dest" 8 "$corpora"/legal-cuad-contracts/txt/*.txt
            copy_seeds "$dest" 4 "$corpora"/*/LICENSE*.txt "$corpora"/*/README*
            mkdir -p "$dest"
            printf 'First page. It has two sentences.\x0cSecond page.\n\nNew paragraph, Inc. v. Corp. 2.1. Term\x0c\x0c  \x0cLast page \xe2\x80\x9cquoted.\xe2\x80\x9d Next' \
                > "$dest/seed-form-feeds"
            printf '\xff\xfeH\x00i\x00 \x00\x0c\x00t\x00w\x00o\x00' > "$dest/seed-utf16le"
            ;;
        msg)
            # No real .msg in shared/corpora: OLE2 files (legacy Office, encrypted OOXML) give
            # the fuzzer the compound-file structure to mutate.
            copy_seeds "$dest" 40 "$corpora"/docx-apache-poi-subset/**/*.doc \
                "$corpora"/docx-apache-poi-subset/bug53475-password-is-pass.docx \
                "$corpora"/office-format-corpus-misc/**/*.doc "$corpora"/office-format-corpus-misc/**/*.ppt ;;
        ccda)
            copy_seeds "$dest" 60 "$corpora"/medical-ccda-smart-samples/**/*.xml ;;
        detect)
            copy_seeds "$dest" 12 "$corpora"/pdf-pdfjs-subset/*.pdf
            copy_seeds "$dest" 12 "$corpora"/docx-python-docx/**/*.docx
            copy_seeds "$dest" 12 "$corpora"/html-readability-pages/*/source.html
            copy_seeds "$dest" 12 "$corpora"/email-mail-parser-fixtures/**/*.eml
            copy_seeds "$dest" 4 "$corpora"/legal-cuad-contracts/txt/*.txt ;;
        *)
            echo "unknown target: $t" >&2
            exit 2 ;;
    esac
    echo "seed corpus $dest: $(find "$dest" -type f | wc -l) files"
}

if [ "$target" = seed ]; then
    for t in pdf docx html email text detect chunk msg ccda; do seed "$t"; done
    exit 0
fi
seed "$target"

cd "$fuzz_dir"
nice -n "$nice_level" cargo fuzz build --release -s "$sanitizer" "$target"

deadline=$(($(date +%s) + seconds))
round=0
while :; do
    remaining=$((deadline - $(date +%s)))
    [ "$remaining" -gt 5 ] || break
    round=$((round + 1))
    echo "=== $target round $round: ${remaining}s left"
    status=0
    # shellcheck disable=SC2086
    nice -n "$nice_level" cargo fuzz run --release -s "$sanitizer" "$target" "corpus/$target" -- \
        -max_total_time="$remaining" -rss_limit_mb=2048 -timeout=10 -max_len=262144 \
        -jobs=1 -workers=1 -print_final_stats=1 ${FUZZ_ARGS:-} || status=$?
    cat fuzz-0.log 2>/dev/null | grep -v '^#[0-9].*\(NEW\|REDUCE\|pulse\)' | tail -n 60 || true
    mv -f fuzz-0.log "fuzz-$target-round$round.log" 2>/dev/null || true
    # libFuzzer exits 0 when time is up, non-zero on a finding.
    [ "$status" -ne 0 ] || break
    # A finding that is itself in the corpus (a seed that hangs, say) would stop every
    # later round while loading: move such inputs out of the corpus.
    for artifact in artifacts/"$target"/*; do
        [ -f "$artifact" ] || continue
        sum=$(sha1sum < "$artifact" | cut -d' ' -f1)
        for input in corpus/"$target"/*; do
            if [ "$(sha1sum < "$input" | cut -d' ' -f1)" = "$sum" ]; then
                echo "removing $input from the corpus (same as $artifact)"
                mkdir -p "artifacts/$target-removed-from-corpus"
                mv "$input" "artifacts/$target-removed-from-corpus/"
            fi
        done
    done
done
echo "corpus/$target: $(find "corpus/$target" -type f | wc -l) entries"
ls -l "artifacts/$target" 2>/dev/null || echo "no artifacts for $target"
