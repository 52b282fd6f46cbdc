#!/usr/bin/env bash
# The unauthenticated flood of the security review (issue 15, finding 1): starts `vellum serve`
# on a loopback port with an empty data folder, then sends COUNT requests whose HTTP methods are
# random 4 KB tokens, without credentials, and prints the server's RSS and the size of
# `/metrics` before and after. Loopback only; bounded in count.
#
# usage: deploy/method-flood.sh [COUNT]   (default 2000; VELLUM_BIN runs a prebuilt binary)
set -euo pipefail

count=${1:-2000}
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo_root/deploy/setup.sh"
cd "$repo_root"
if [[ -z "${VELLUM_BIN:-}" ]]; then
  cargo build --release --locked -p vellum
fi
vellum=${VELLUM_BIN:-$CARGO_TARGET_DIR/release/vellum}
work=$(mktemp -d)
server_pid=
cleanup() {
  if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

data="$work/data"
export VELLUM_ADMIN_PASSWORD="method flood admin password"
"$vellum" --data-dir "$data" --models-dir "$VELLUM_MODELS_DIR" serve --listen 127.0.0.1:0 \
  --workers 2 --no-generation --policies "$repo_root/policies/law-firm" >"$work/out" 2>"$work/err" &
server_pid=$!
for _ in $(seq 1 600); do
  grep -q '^listening on https://' "$work/out" 2>/dev/null && break
  sleep 0.2
done
address=$(sed -n 's|^listening on https://||p' "$work/out")
[[ -n "$address" ]] || { cat "$work/err"; echo "the server did not start" >&2; exit 1; }

python3 - "$address" "$data/tls/cert.pem" "$server_pid" "$count" <<'PY'
import json, random, socket, ssl, string, sys, urllib.request
address, cert, pid, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
host, port = address.rsplit(":", 1)
context = ssl.create_default_context(cafile=cert)

def rss_mb():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0

def call(method, path, body=None, token=None):
    request = urllib.request.Request(f"https://localhost:{port}{path}", method=method, data=body)
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, context=context, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()

status, body = call("POST", "/v1/login", json.dumps({"user": "admin", "password": "method flood admin password"}).encode())
token = json.loads(body)["token"]

def metrics_bytes():
    status, body = call("GET", "/metrics", token=token)
    return len(body) if status == 200 else -status

before_rss, before_metrics = rss_mb(), metrics_bytes()
rng = random.Random(15)
statuses = {}
for _ in range(count):
    method = "".join(rng.choice(string.ascii_uppercase) for _ in range(4096))
    raw = socket.create_connection((host, int(port)), timeout=30)
    with context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(f"{method} /v1/search HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while True:
            piece = tls.recv(65536)
            if not piece:
                break
            answer += piece
    code = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "none"
    statuses[code] = statuses.get(code, 0) + 1
after_rss, after_metrics = rss_mb(), metrics_bytes()
print(f"requests: {count} with random 4 KB methods, no credentials; statuses {statuses}")
print(f"server RSS: {before_rss:.0f} MB before, {after_rss:.0f} MB after")
print(f"/metrics: {before_metrics} bytes before, {after_metrics} bytes after")
PY
