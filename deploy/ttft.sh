#!/usr/bin/env bash
# Time to first token of `POST /v1/ask` on the running server (docs/ ingested, SmolLM2-135M
# Q4_1, 5 sources), cold and with the system prompt's keys and values kept from the previous
# answer, next to llama.cpp's time for a prompt of the same length (llama-bench, 2 threads) in
# the same run. Ends with `ttft ratio R` (Vellum's first token with the prompt cached / llama.cpp's
# prompt time; below 1 is faster).
#
# usage: deploy/ttft.sh [RUNS]   (VELLUM_BIN: a built vellum; else it builds)
set -euo pipefail

runs=${1:-3}
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo_root/deploy/setup.sh"
cd "$repo_root"
if [[ -z "${VELLUM_BIN:-}" ]]; then
  cargo build --release --locked --workspace --bins
fi
vellum=${VELLUM_BIN:-$CARGO_TARGET_DIR/release/vellum}
source "$repo_root/deploy/peer/llama-bench-build.sh"
model=${VELLUM_MODELS_DIR:-$repo_root/models}/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf
work=$(mktemp -d)
server_pid=
cleanup() {
  if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown); $llama_cpp_flags"
"$vellum" --data-dir "$work/data" ingest docs --collection docs > /dev/null
export VELLUM_ADMIN_PASSWORD="time to first token admin"
"$vellum" --data-dir "$work/data" serve --listen 127.0.0.1:0 --policies policies/default \
  > "$work/serve.out" 2> "$work/serve.err" &
server_pid=$!
for _ in $(seq 1 1200); do
  grep -q '^listening on' "$work/serve.out" 2>/dev/null && break
  sleep 0.1
done
address=$(sed -n 's/^listening on https:\/\///p' "$work/serve.out")
[[ -n "$address" ]] || { cat "$work/serve.err"; echo "the server did not start" >&2; exit 1; }

result=$(ADDRESS=$address RUNS=$runs python3 - <<'EOF'
import http.client, json, os, ssl, statistics, time
address, runs = os.environ["ADDRESS"], int(os.environ["RUNS"])
host, port = address.rsplit(":", 1)
context = ssl._create_unverified_context()  # loopback, the server's own self-signed certificate
def post(path, body, token=None):
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=600)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    connection.request("POST", path, json.dumps(body), headers)
    return connection, connection.getresponse()
_, response = post("/v1/login", {"user": "admin", "password": os.environ["VELLUM_ADMIN_PASSWORD"]})
token = json.loads(response.read())["token"]
def ask(question):
    start = time.perf_counter()
    connection, response = post("/v1/ask", {"question": question, "max_tokens": 16}, token)
    assert response.status == 200, response.status
    first, event, prompt_tokens = None, None, None
    for raw in response:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == "token" and first is None:
            first = time.perf_counter() - start
        elif line.startswith("data: ") and event == "answer":
            prompt_tokens = json.loads(line[6:])["prompt_tokens"]
        elif line.startswith("data: ") and event == "error":
            raise SystemExit(line)
    connection.close()
    return first, prompt_tokens
question = "How does Vellum fuse BM25 and vector results?"
others = ["How are hostile files quarantined?", "What does a receipt record?",
          "How is the audit log made tamper-evident?"]
# The first answer after the start computes the system prompt; every later one keeps it.
cold, tokens = ask(question)
warm = []
for run in range(runs):
    ask(others[run % len(others)])  # another question in between: only the system prompt is common
    first, tokens = ask(question)
    warm.append(first)
print(json.dumps({"cold": cold, "warm": warm, "prompt_tokens": tokens}))
EOF
)
cold=$(python3 -c "import json,sys; print('%.2f' % json.loads(sys.argv[1])['cold'])" "$result")
warm=$(python3 -c "import json,sys,statistics; print('%.2f' % statistics.median(json.loads(sys.argv[1])['warm']))" "$result")
tokens=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['prompt_tokens'])" "$result")
echo "vellum: $tokens prompt tokens; first token ${cold} s on the first answer, ${warm} s (median of $runs) once the system prompt is cached"
echo "        all runs: $result"
peer=$("$bench" -m "$model" -t 2 -p "$tokens" -n 0 -r "$runs" -o json 2>/dev/null \
  | python3 -c "import json,sys; r=json.load(sys.stdin)[0]; print('%.2f' % (r['n_prompt'] / r['avg_ts']))")
echo "llama.cpp: prompt of $tokens tokens in ${peer} s (llama-bench pp$tokens, 2 threads, mean of $runs)"
python3 -c "import sys; print('ttft ratio %.2f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$warm" "$peer"
