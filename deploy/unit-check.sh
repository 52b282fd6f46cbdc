#!/usr/bin/env bash
# Checks deploy/vellum.service (or UNIT) with systemd's own tools:
#   1. `systemd-analyze verify`: must print nothing. It warns about unknown keys or system call
#      groups but still exits 0, so any output fails this check. It also insists that the
#      ExecStart binary exists, so the unit is verified inside a scratch root holding the unit,
#      systemd's own units (for the targets it refers to) and /usr/bin/vellum (VELLUM_BIN when
#      given, else an empty stand-in: verify only checks that the path is executable).
#   2. `systemd-analyze security --offline=true`: the exposure figure, which must be at most 2.0.
#
# usage: deploy/unit-check.sh [UNIT]
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
unit=${1:-$repo_root/deploy/vellum.service}
max_exposure=2.0

command -v systemd-analyze >/dev/null 2>&1 || {
  echo "unit-check: systemd-analyze not found (Debian package: systemd)" >&2
  exit 1
}
systemd_units=/lib/systemd/system
[ -d "$systemd_units" ] || systemd_units=/usr/lib/systemd/system

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/bin" "$root/etc/systemd/system" "$root/lib/systemd"
cp -a "$systemd_units" "$root/lib/systemd/system"
cp "$unit" "$root/etc/systemd/system/vellum.service"
if [ -n "${VELLUM_BIN:-}" ]; then
  cp "$VELLUM_BIN" "$root/usr/bin/vellum"
else
  printf '#!/bin/sh\nexit 0\n' > "$root/usr/bin/vellum"
fi
chmod 755 "$root/usr/bin/vellum"

verify_output=$(systemd-analyze verify --root="$root" vellum.service 2>&1) || {
  echo "$verify_output" >&2
  echo "unit-check: systemd-analyze verify failed" >&2
  exit 1
}
if [ -n "$verify_output" ]; then
  echo "$verify_output" >&2
  echo "unit-check: systemd-analyze verify printed warnings (above); fix them" >&2
  exit 1
fi
echo "unit-check: systemd-analyze verify: clean"

# --threshold is in tenths (20 = exposure 2.0): the command fails above it.
security_output=$(systemd-analyze security --offline=true --threshold=20 "$unit" 2>&1) && security_rc=0 || security_rc=$?
exposure_line=$(grep "Overall exposure level" <<<"$security_output" || true)
if [ -z "$exposure_line" ]; then
  echo "$security_output" >&2
  echo "unit-check: no exposure figure from systemd-analyze security" >&2
  exit 1
fi
echo "unit-check: $exposure_line"
exposure=$(sed -E 's/.*: ([0-9]+\.[0-9]+).*/\1/' <<<"$exposure_line")
if [ "$security_rc" -ne 0 ] || ! awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }'; then
  grep "✗" <<<"$security_output" >&2 || true
  echo "unit-check: exposure $exposure is above $max_exposure (the settings marked ✗ above)" >&2
  exit 1
fi
echo "unit-check: exposure $exposure <= $max_exposure: OK"
