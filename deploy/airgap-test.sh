#!/usr/bin/env bash
# The proof that Vellum is air-gapped (issue 19): the whole flow of an appliance in a network
# namespace that has only loopback, every Vellum process under strace, and a check of every
# address it connected or sent to. See docs/airgap.md.
#
# usage: deploy/airgap-test.sh [--deb PATH] [--self-test] [VELLUM_BIN]
#
#   --deb PATH   install this .deb inside the namespace (dpkg -i, traced too) and test its
#                /usr/bin/vellum with the models in /usr/share/vellum/models; purged at the end
#   --self-test  only prove that the harness can fail: a connect to 192.0.2.1:9 and a lookup of
#                the host name, under the same strace in the same namespace, must be flagged
#                (every full run does this first)
#   VELLUM_BIN   the binary to test without --deb [default: $CARGO_TARGET_DIR/release/vellum,
#                else ~/.cache/vellum/target/release/vellum]
#
# Environment:
#   REQUIRE_EGRESS_LINE=0  only warn when the server's log has no line starting with "egress:"
#                          (default 1: a missing line fails the test)
#   VELLUM_MODELS_DIR      models for a binary (not --deb) [default: <repo>/models]
#   AIRGAP_POLICIES        --policies DIR for `vellum serve` [default: none, so the binary's
#                          built-in default set, as on a fresh appliance]
#   VELLUM_SHARED_DIR      where corpora/ is [default: <repo>/../shared]
#   AIRGAP_HOSTNAME        the host name inside the test (its own UTS namespace) [default:
#                          vellum-airgap-test, which /etc/hosts does not name, so any lookup of
#                          the machine's own name goes to DNS and fails the test]; "keep": the
#                          machine's own name (found in /etc/hosts on most machines, so such a
#                          lookup stays in files and passes)
#   AIRGAP_KEEP=1          keep the temporary folder (logs, data folder) for a look afterwards
#
# Needs root (unshare --net), util-linux, iproute2, strace, python3; tesseract-ocr and
# poppler-utils for the OCR upload (deploy/setup.sh installs them). Exit status 0 only when
# every step passed and no traced call went to an address off this machine.
set -uo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
helpers="$repo_root/deploy/airgap"
self="$repo_root/deploy/airgap-test.sh"

usage() { sed -n '2,/^set -uo/p' "$self" | sed '$d; s/^# \{0,1\}//'; }

deb="" self_test_only=0 in_netns=0 vellum_arg=""
args=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --deb) [ $# -ge 2 ] || { usage >&2; exit 2; }; deb=$(realpath "$2"); shift 2 ;;
    --self-test) self_test_only=1; shift ;;
    --in-netns) in_netns=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "airgap-test: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) [ -z "$vellum_arg" ] || { usage >&2; exit 2; }; vellum_arg=$(realpath "$1"); shift ;;
  esac
done

# ---------------------------------------------------------------------------------------------
# Outside: check what is needed, then run this script again in a new network namespace.
if [ "$in_netns" -eq 0 ]; then
  [ "$(id -u)" -eq 0 ] || { echo "airgap-test: run as root (unshare --net, dpkg)" >&2; exit 2; }
  missing=()
  for tool in unshare ip strace python3; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  [ ${#missing[@]} -eq 0 ] || { echo "airgap-test: missing: ${missing[*]}" >&2; exit 2; }
  [ -z "$deb" ] || [ -f "$deb" ] || { echo "airgap-test: no such .deb: $deb" >&2; exit 2; }
  outer=$(readlink /proc/self/ns/net)
  export AIRGAP_OUTER_NETNS="$outer"
  # Only loopback exists in the new network namespace; nothing of this machine's network is
  # reachable. The UTS namespace lets the test give the machine a name that no file resolves.
  exec unshare --net --uts -- bash "$self" --in-netns "${args[@]}"
fi

# ---------------------------------------------------------------------------------------------
# Inside the namespace.
REQUIRE_EGRESS_LINE=${REQUIRE_EGRESS_LINE:-1}
AIRGAP_KEEP=${AIRGAP_KEEP:-0}
python=$(command -v /usr/bin/python3 || command -v python3)
corpora="${VELLUM_SHARED_DIR:-$repo_root/../shared}/corpora"
pdf_doc="$corpora/legal-cuad-contracts/pdf/ACCELERATEDTECHNOLOGIESHOLDINGCORP_04_24_2003-EX-10.13-JOINT VENTURE AGREEMENT.PDF"
txt_doc="$corpora/legal-cuad-contracts/txt/KNOWLABS,INC_08_15_2005-EX-10-INTELLECTUAL PROPERTY AGREEMENT.txt"
scan_doc="$corpora/legal-court-documents-freelaw/image-pdf-2.pdf"   # image only: needs OCR

tmp=$(mktemp -d /tmp/vellum-airgap.XXXXXX)
chmod 700 "$tmp"
mkdir -p -m 700 "$tmp/home" "$tmp/work" "$tmp/tmp" "$tmp/strace" "$tmp/state" "$tmp/logs"
data="$tmp/data"                # created by vellum serve on its first start
state="$tmp/state"              # the client's: passwords, tokens, document ids

# Socket calls that name or use a destination; io_uring_setup (a ring's operations are no system
# calls: the check fails closed on one); and the process calls that say which program made
# them (and show that every child was followed). --seccomp-bpf stops only at these.
strace_opts=(-f -qq --seccomp-bpf -yy -s 0 -e signal=none
  -e trace=connect,sendto,sendmsg,sendmmsg,io_uring_setup,execve,execveat,clone,clone3,fork,vfork)
vellum_logs=()                  # NAME=LOG of every traced Vellum (and dpkg) run
server_pid="" strace_pid="" deb_package="" deb_installed=0
step_no=0 failed_step="" run_started=$EPOCHREALTIME
summary=()
warnings=()

say() { printf '     %s\n' "$*"; }   # inside a step
out() { printf '%s\n' "$*"; }       # headers, summary
indent() { sed -u 's/^/     /'; }
seconds_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    out "cleanup: stopping the server (pid $server_pid)"
    kill -TERM "$server_pid" 2>/dev/null
    for _ in $(seq 1 30); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$server_pid" 2>/dev/null && kill -KILL "$server_pid" 2>/dev/null
  fi
  if [ -n "$strace_pid" ]; then wait "$strace_pid" 2>/dev/null; fi
  if [ "$deb_installed" -eq 1 ]; then
    out "cleanup: dpkg --purge $deb_package"
    dpkg --purge "$deb_package" >"$tmp/logs/dpkg-purge.log" 2>&1 || { out "cleanup: dpkg --purge FAILED:"; indent <"$tmp/logs/dpkg-purge.log"; status=1; }
  fi
  if [ -n "$failed_step" ] && [ -s "$tmp/logs/serve.err" ]; then
    out ""; out "server log (last 25 lines):"
    tail -n 25 "$tmp/logs/serve.err" | grep -v 'one-time password' | indent
  fi
  out ""
  out "================ air-gap test summary ================"
  local line
  for line in "${summary[@]}"; do out "$line"; done
  out "total: $(seconds_since "$run_started") s"
  if [ "$status" -eq 0 ] && [ -z "$failed_step" ]; then
    out "AIRGAP TEST PASSED"
  else
    [ "$status" -ne 0 ] || status=1
    out "AIRGAP TEST FAILED${failed_step:+ at: $failed_step}"
  fi
  if [ "$AIRGAP_KEEP" = 1 ]; then
    out "kept: $tmp"
  else
    rm -rf "$tmp"
  fi
  exit "$status"
}
trap cleanup EXIT
current_step=""
trap 'failed_step="${current_step:-start} (interrupted)"; exit 130' INT TERM

# step NAME FUNCTION ARGS...: runs FUNCTION in this shell, timed; stops the test when it fails.
step() {
  local name=$1; shift
  step_no=$((step_no + 1))
  current_step=$name
  local started=$EPOCHREALTIME rc=0
  out ""
  out "[$(printf '%02d' "$step_no")] $name"
  "$@" || rc=$?
  local took; took=$(seconds_since "$started")
  if [ "$rc" -eq 0 ]; then
    out "     -> ok (${took} s)"
    summary+=("$(printf '  [%02d] %-60s ok      %6s s' "$step_no" "$name" "$took")")
    local warning
    for warning in "${warnings[@]}"; do summary+=("       WARNING: $warning"); done
    warnings=()
  else
    out "     -> FAILED (exit $rc, ${took} s)"
    summary+=("$(printf '  [%02d] %-60s FAILED  %6s s' "$step_no" "$name" "$took")")
    failed_step=$name
    exit 1
  fi
}
skipped() {
  step_no=$((step_no + 1))
  out ""
  out "[$(printf '%02d' "$step_no")] $1"
  say "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
  say "!!! SKIPPED: $2"
  say "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
  summary+=("$(printf '  [%02d] %-60s SKIPPED: %s' "$step_no" "$1" "$2")")
}
warn() {
  say "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
  say "!!! WARNING: $*"
  say "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
  warnings+=("$*")
}

# A fresh, minimal environment: no proxy variables, no ~/.cache, HOME and TMPDIR in the test's
# folder, the working folder empty (so no relative default finds the checkout). VAR=VALUE
# arguments are exported (through the shell, so secrets never appear in a process list).
clean_env() {
  local var
  for var in $(compgen -e); do unset "$var" 2>/dev/null || true; done
  export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  export HOME="$tmp/home" TMPDIR="$tmp/tmp" LANG=C.UTF-8
  for var in "$@"; do export "$var"; done
  cd "$tmp/work" || exit 1
}

# traced NAME [VAR=VALUE...] -- COMMAND ARGS...: COMMAND in a clean environment under strace
# (log $tmp/strace/NAME.log, checked by the last step); its output goes to $tmp/logs/NAME.out
# and is shown indented. Not in a pipeline: it records the log's name in this shell.
trace_names=" "
traced_log=""
trace_register() {
  local name=$1 n=2
  traced_log=$name
  while [[ "$trace_names" == *" $traced_log "* ]]; do traced_log="$name-$n"; n=$((n + 1)); done
  trace_names+="$traced_log "
  case "$name" in selftest-*) ;; *) vellum_logs+=("$traced_log=$tmp/strace/$traced_log.log") ;; esac
}
traced() {
  local name=$1; shift
  local -a vars=()
  while [ "$1" != "--" ]; do vars+=("$1"); shift; done
  shift
  trace_register "$name"
  local rc=0
  ( clean_env "${vars[@]}"; exec strace "${strace_opts[@]}" -o "$tmp/strace/$traced_log.log" -- "$@" ) \
    >"$tmp/logs/$traced_log.out" 2>&1 </dev/null || rc=$?
  indent <"$tmp/logs/$traced_log.out"
  return $rc
}

client() { "$python" "$helpers/client.py" "$state" "$@"; }

secret() { # secret NAME: a random password in the client's state folder, never printed
  "$python" -c 'import secrets, sys; sys.stdout.write(secrets.token_urlsafe(18))' >"$state/password-$1"
  chmod 600 "$state/password-$1"
}

# ---------------------------------------------------------------------------------------------
# Steps.

check_namespace() {
  local here links addrs routes
  here=$(readlink /proc/self/ns/net)
  say "network namespace: $here (the machine's: ${AIRGAP_OUTER_NETNS:-?})"
  [ -n "${AIRGAP_OUTER_NETNS:-}" ] && [ "$here" != "$AIRGAP_OUTER_NETNS" ] || { say "not in a new network namespace"; return 1; }
  ip link set lo up || return 1
  links=$(ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')
  addrs=$(ip -o addr show | awk '{print $4}' | tr '\n' ' ')
  routes=$(ip route show table all | grep -v '^local \|^broadcast \|^multicast \|^ff00::/8\|^fe80::/64' || true)
  say "interfaces: $links"
  say "addresses:  $addrs"
  say "routes other than local/broadcast: ${routes:-(none)}"
  [ "$(echo $links)" = "lo" ] || { say "interfaces other than lo"; return 1; }
  ip route get 192.0.2.1 >/dev/null 2>&1 && { say "a route to 192.0.2.1 exists"; return 1; }
  say "ip route get 192.0.2.1: $(ip route get 192.0.2.1 2>&1)"
  nscd_strict=""
  for sock in /var/run/nscd/socket /run/nscd/socket; do
    if [ -S "$sock" ]; then
      say "nscd listens at $sock: host names could be resolved through it from outside the namespace; connects to it count as violations"
      nscd_strict=1
    fi
  done
  [ -n "$nscd_strict" ] || say "no nscd socket: a host name lookup can only go to port 53 (a violation)"
  local name=${AIRGAP_HOSTNAME:-vellum-airgap-test}
  if [ "$name" = keep ]; then
    say "host name: $(hostname) (the machine's own; AIRGAP_HOSTNAME=keep)"
  else
    hostname "$name" || return 1
    if grep -qE "[[:space:]]$name([[:space:]]|\$)" /etc/hosts; then
      say "/etc/hosts names $name: choose another AIRGAP_HOSTNAME"; return 1
    fi
    say "host name: $(hostname) (own UTS namespace; not in /etc/hosts, so a lookup of it would go to DNS)"
  fi
}

self_test() {
  "$python" "$helpers/strace_egress.py" --self-check | indent || return 1
  # Positive control: loopback only must pass.
  traced selftest-loopback -- "$python" -c '
import socket
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen()
client = socket.create_connection(server.getsockname(), timeout=2); client.sendall(b"x")
six = socket.socket(socket.AF_INET6); six.settimeout(1)
try: six.connect(("::1", server.getsockname()[1]))
except OSError: pass
print("loopback connects done: 127.0.0.1 and ::1")' || return 1
  if "$python" "$helpers/strace_egress.py" "selftest-loopback=$tmp/strace/selftest-loopback.log" >"$tmp/logs/selftest-good.txt"; then
    say "loopback-only trace: passes, as it must"
  else
    indent <"$tmp/logs/selftest-good.txt"; say "the loopback-only trace was flagged"; return 1
  fi
  # Negative control: one connect off the machine (TEST-NET-1, RFC 5737) must fail the check.
  traced selftest-egress -- "$python" -c '
import socket
try:
    socket.create_connection(("192.0.2.1", 9), timeout=2)
    print("connected?!")
except OSError as error:
    print("connect to 192.0.2.1:9 failed as expected in the namespace:", error)
try:
    socket.getaddrinfo(socket.gethostname(), 443)
    print("resolved", socket.gethostname(), "(from /etc/hosts)")
except OSError as error:
    print("looking up", socket.gethostname(), "failed as expected:", error)' || return 1
  local rc=0
  "$python" "$helpers/strace_egress.py" "selftest-egress=$tmp/strace/selftest-egress.log" >"$tmp/logs/selftest-bad.txt" || rc=$?
  indent <"$tmp/logs/selftest-bad.txt"
  if [ "$rc" -eq 1 ] && grep -q '^VIOLATION: AF_INET 192.0.2.1:9: ' "$tmp/logs/selftest-bad.txt"; then
    say "the connect to 192.0.2.1:9 was flagged (exit 1): the harness can fail"
  else
    say "the connect to 192.0.2.1:9 was NOT flagged (parser exit $rc)"; return 1
  fi
  if [ "${AIRGAP_HOSTNAME:-}" != keep ]; then
    if grep -q '^VIOLATION: .*DNS query (port 53)' "$tmp/logs/selftest-bad.txt"; then
      say "the lookup of the host name was flagged as a DNS query"
    else
      say "the lookup of the unresolvable host name was NOT flagged"; return 1
    fi
  fi
}

install_deb() {
  deb_package=$(dpkg-deb -f "$deb" Package) || return 1
  say "package $deb_package $(dpkg-deb -f "$deb" Version) from $deb"
  if dpkg-query -W -f='${Status}' "$deb_package" 2>/dev/null | grep -q 'install ok installed'; then
    say "$deb_package is already installed: remove it first (the test purges what it installs)"; return 1
  fi
  deb_installed=1
  traced dpkg-install DEBIAN_FRONTEND=noninteractive -- dpkg -i "$deb" || return 1
  vellum=/usr/bin/vellum
  [ -x "$vellum" ] || { say "the package installed no $vellum"; return 1; }
}

check_binary() {
  say "binary: $vellum ($(stat -c %s "$vellum") bytes, modified $(date -u -r "$vellum" +%Y-%m-%dT%H:%M:%SZ), sha256 $(sha256sum "$vellum" | cut -c1-16)…)"
  say "models: $models_dir"
  traced version -- "$vellum" --version || return 1
  traced help -- "$vellum" --help >/dev/null || return 1
  traced models VELLUM_MODELS_DIR="$models_dir" -- "$vellum" models || return 1
  local f
  for f in "$pdf_doc" "$txt_doc" "$scan_doc"; do [ -f "$f" ] || { say "missing test file $f"; return 1; }; done
}

start_server() {
  [ ! -e "$data" ] || { say "$data exists: not a first start"; return 1; }
  mkdir -m 700 "$data" || return 1
  secret admin
  local -a serve_args=(serve --data-dir "$data" --listen 127.0.0.1:0 --ocr)
  [ -z "$policies" ] || serve_args+=(--policies "$policies")
  say "vellum ${serve_args[*]}   (working folder $tmp/work, HOME $tmp/home, VELLUM_ADMIN_PASSWORD set)"
  trace_register serve
  # The shell writes its pid, then becomes vellum serve (strace's own pid is $strace_pid).
  ( clean_env VELLUM_MODELS_DIR="$models_dir" VELLUM_ADMIN_PASSWORD="$(cat "$state/password-admin")"
    exec strace "${strace_opts[@]}" -o "$tmp/strace/$traced_log.log" -- \
      /bin/sh -c 'echo $$ >"$0"; exec "$@"' "$tmp/serve.pid" "$vellum" "${serve_args[@]}" ) \
    >"$tmp/logs/serve.out" 2>"$tmp/logs/serve.err" </dev/null &
  strace_pid=$!
  local waited=0 address=""
  while [ $waited -lt 600 ]; do
    [ -z "$server_pid" ] && [ -s "$tmp/serve.pid" ] && server_pid=$(cat "$tmp/serve.pid")
    address=$(sed -n 's#^listening on https://##p' "$tmp/logs/serve.out" | head -n 1)
    [ -n "$address" ] && break
    kill -0 "$strace_pid" 2>/dev/null || { say "vellum serve exited before listening:"; grep -v 'one-time password' "$tmp/logs/serve.err" | indent; return 1; }
    sleep 0.5; waited=$((waited + 1))
  done
  [ -n "$address" ] || { say "no 'listening on' line after 300 s"; return 1; }
  say "stdout: listening on https://$address (pid $server_pid)"
  say "stderr:"
  serve_start_lines=$(wc -l <"$tmp/logs/serve.err")
  grep -v 'one-time password' "$tmp/logs/serve.err" | indent
  printf 'https://%s' "$address" >"$state/base_url"
  printf '%s' "$data/tls/cert.pem" >"$state/cacert"
  grep -q '^Made a self-signed certificate' "$tmp/logs/serve.err" || { say "no self-signed certificate made: not a first start?"; return 1; }
  audit_key=$(sed -n 's/.*checkpoint public key \([0-9a-f]\{64\}\).*/\1/p' "$tmp/logs/serve.err" | head -n 1)
  [ -n "$audit_key" ] || { say "no audit checkpoint public key in the server's log"; return 1; }
  client ready 180 | indent
}

check_egress_line() {
  local line
  line=$(cat "$tmp/logs/serve.out" "$tmp/logs/serve.err" | grep -m 1 '^egress:' || true)
  if [ -n "$line" ]; then
    say "server log: $line"
    return 0
  fi
  if [ "$REQUIRE_EGRESS_LINE" = 1 ]; then
    say "the server's log has no line starting with 'egress:' (REQUIRE_EGRESS_LINE=1)"; return 1
  fi
  warn "the server's log has no line starting with 'egress:' (a binary from before that line?); REQUIRE_EGRESS_LINE=1 makes this fail"
}

create_user() {
  client login admin | indent || return 1
  secret alice; secret alice-new
  # Under the default policies only role admin may do anything; alice is a second account.
  client add-user admin alice admin | indent || return 1
  client login alice | indent || return 1
  client change-password alice | indent || return 1
}

stop_server() {
  say "SIGTERM to vellum serve (pid $server_pid)"
  kill -TERM "$server_pid" || return 1
  local rc=0 waited=0
  while kill -0 "$server_pid" 2>/dev/null && [ $waited -lt 120 ]; do sleep 0.5; waited=$((waited + 1)); done
  kill -0 "$server_pid" 2>/dev/null && { say "still running 60 s after SIGTERM"; return 1; }
  wait "$strace_pid" || rc=$?
  strace_pid="" server_pid=""
  say "vellum serve exited with status $rc"
  if [ "$(wc -l <"$tmp/logs/serve.err")" -gt "$serve_start_lines" ]; then
    say "its log after the start (last 10 lines):"
    tail -n +"$((serve_start_lines + 1))" "$tmp/logs/serve.err" | grep -v 'one-time password' | tail -n 10 | indent
  fi
  [ "$rc" -eq 0 ]
}

audit_verify() {
  traced audit-verify VELLUM_MODELS_DIR="$models_dir" -- "$vellum" audit verify --data-dir "$data" --public-key "$audit_key"
}

backup() {
  traced backup VELLUM_MODELS_DIR="$models_dir" -- "$vellum" backup --data-dir "$data" "$tmp/backup" || return 1
  [ -d "$tmp/backup" ] && [ -n "$(ls -A "$tmp/backup")" ] || { say "the backup folder is empty"; return 1; }
  say "backup: $(du -sh "$tmp/backup" | cut -f1) in $(find "$tmp/backup" -type f | wc -l) files"
  # Restored into a new folder, the stores must agree (restore checks it and exits 1 if not).
  traced restore VELLUM_MODELS_DIR="$models_dir" -- "$vellum" restore --data-dir "$tmp/restored" "$tmp/backup" || return 1
  traced check VELLUM_MODELS_DIR="$models_dir" -- "$vellum" check --data-dir "$tmp/restored" || return 1
  grep -q "The stores agree" "$tmp/logs/$traced_log.out" || { say "the restored stores do not agree"; return 1; }
}

check_home() {
  local left
  left=$(find "$tmp/home" -mindepth 1 | head -n 20)
  if [ -n "$left" ]; then
    say "files Vellum wrote under its (fresh) HOME:"; say "$left" | indent
  else
    say "HOME ($tmp/home) is still empty: nothing was cached there"
  fi
}

check_traces() {
  local -a strict=()
  [ -z "${nscd_strict:-}" ] || strict=(--nscd-is-violation)
  say "traced runs: $(printf '%s ' "${vellum_logs[@]%%=*}")"
  "$python" "$helpers/strace_egress.py" "${strict[@]}" "${vellum_logs[@]}" >"$tmp/logs/egress.txt"
  local rc=$?
  indent <"$tmp/logs/egress.txt"
  # The proof covers the children only if strace followed them: the OCR upload must show
  # the extraction worker and Tesseract among the programs the traced server ran.
  local ran; ran=$(sed -n 's/^programs run in serve: //p' "$tmp/logs/egress.txt")
  case ", $ran," in
    *", tesseract"[,\ ]*) say "the server's trace followed its children: $ran" ;;
    *) say "tesseract is not among the programs traced under the server ($ran): the trace missed the OCR worker"; rc=1 ;;
  esac
  return $rc
}

# ---------------------------------------------------------------------------------------------
out "Vellum air-gap test: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -sr), strace $(strace -V | head -n 1 | awk '{print $4}')"
out "temporary folder: $tmp"
step "network namespace with only loopback" check_namespace
step "self-test: an outside connect and a DNS lookup are flagged" self_test
if [ "$self_test_only" -eq 1 ]; then exit 0; fi

if [ -n "$deb" ]; then
  models_dir=/usr/share/vellum/models
  policies=${AIRGAP_POLICIES:-}
  step "install the .deb (dpkg -i, traced)" install_deb
else
  vellum=${vellum_arg:-${CARGO_TARGET_DIR:-$HOME/.cache/vellum/target}/release/vellum}
  models_dir=${VELLUM_MODELS_DIR:-$repo_root/models}
  policies=${AIRGAP_POLICIES:-}
  [ -x "$vellum" ] || { out "no vellum binary at $vellum"; failed_step="find the binary"; exit 1; }
fi
step "binary, models and test files" check_binary
step "first start of vellum serve (traced)" start_server
step "egress line in the server's log" check_egress_line
step "users: admin adds alice, alice sets her password" create_user
step "upload a CUAD contract (PDF)" eval 'client upload alice "$pdf_doc" airgap pdf | indent'
step "upload a contract as plain text" eval 'client upload alice "$txt_doc" airgap txt | indent'
step "upload a scanned filing (image-only PDF, OCR)" eval 'client upload alice "$scan_doc" airgap scan | indent && client chunks alice scan "Morristown" | indent'
step "wait until indexed and ready" eval 'client wait-indexed admin 3 | indent'
step "search (hybrid, BM25, the OCR text)" eval 'client search alice "governing law of the joint venture" pdf | indent &&
  client search alice "Visualant Turpin color technology" txt bm25 | indent &&
  client search alice "Morristown election of remedies workers compensation" scan | indent'
step "ask with the default model (SSE)" eval 'client ask alice "Which law governs this agreement?" pdf 96 | indent'
step "summarize the contract (with prose)" eval 'client summarize alice pdf true | indent'
step "audit log verified online (GET /v1/audit/verify)" eval 'client audit-online admin | indent'
step "stop the server (SIGTERM)" stop_server
step "vellum audit verify with the printed public key" audit_verify
if grep -qE '^[[:space:]]+backup([[:space:]]|$)' "$tmp/logs/help.out"; then
  step "vellum backup DEST, restore, check" backup
else
  skipped "vellum backup DEST" "backup (not implemented yet)"
  say "(no 'backup' command in vellum --help; when there is one, this step runs vellum backup DEST)"
fi
step "nothing left in the fresh HOME" check_home
step "every traced address is loopback or local" check_traces
