#!/usr/bin/env bash
# Re-fetches the web app's vendored third-party files (pdf.js, from the npm package pdfjs-dist)
# and checks them against the pinned SHA-256 sums: the npm tarball first, then each copied file.
# Nothing in the build runs this: the files are committed under services/server/web/vendor/ and
# embedded in the binary. Run it to check the committed copies (default) or, after changing the
# pins below and in VENDORED.md, to replace them (--update).
#
# usage: deploy/vendor-web.sh [--update]
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
vendor="$repo_root/services/server/web/vendor/pdfjs"

version=6.5.438
tarball_url="https://registry.npmjs.org/pdfjs-dist/-/pdfjs-dist-$version.tgz"
tarball_sha256=7461aefcd27c4ef0dd76f9ca5760f09466eb6b3f934432670c12132e7b3d6faa
declare -A file_sha256=(
  [pdf.min.mjs]=3a88402882cfa3e7e72c2c9b5149f52f0f88baf1c5b62aa11a41abdbc2072440
  [pdf.worker.min.mjs]=1e64c8240e54735ec5913b37acd5134747799cb8c6bb3777c70adbc01232d2aa
)

update=false
[ "${1:-}" = "--update" ] && update=true

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl -fsSL --retry 3 -o "$work/pdfjs.tgz" "$tarball_url"
echo "$tarball_sha256  $work/pdfjs.tgz" | sha256sum -c --quiet - || {
  echo "vendor-web: $tarball_url does not have the pinned SHA-256" >&2
  exit 1
}
tar -xzf "$work/pdfjs.tgz" -C "$work"

status=0
for name in "${!file_sha256[@]}"; do
  fetched="$work/package/build/$name"
  echo "${file_sha256[$name]}  $fetched" | sha256sum -c --quiet - || {
    echo "vendor-web: build/$name in pdfjs-dist $version does not have the pinned SHA-256" >&2
    exit 1
  }
  if $update; then
    cp "$fetched" "$vendor/$name"
  elif ! cmp -s "$fetched" "$vendor/$name"; then
    echo "vendor-web: $vendor/$name differs from pdfjs-dist $version's build/$name" >&2
    status=1
  fi
done
if $update; then
  cp "$work/package/LICENSE" "$vendor/LICENSE"
else
  cmp -s "$work/package/LICENSE" "$vendor/LICENSE" || {
    echo "vendor-web: $vendor/LICENSE differs from the package's" >&2
    status=1
  }
fi
[ $status -eq 0 ] && echo "vendor-web: pdf.js $version: the vendored files match the npm package"
exit $status
