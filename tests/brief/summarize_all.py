#!/usr/bin/env python3
"""Summarizes every document of a chunks dump through a running `vellum serve` and writes the
briefs as JSON lines {"file", "items", "prose", "seconds"} (the input of cuad_metrics.py and
ccda_metrics.py), with the time per summary on stderr.

Usage: summarize_all.py --url URL --cacert CERT --token TOKEN --chunks DUMP.jsonl
           [--kind contract] [--prose] [--every N] > briefs.jsonl
Standard library only."""
import argparse, json, ssl, sys, time, urllib.request

p = argparse.ArgumentParser()
p.add_argument("--url", required=True)
p.add_argument("--cacert", required=True)
p.add_argument("--token", required=True)
p.add_argument("--chunks", required=True)
p.add_argument("--kind")
p.add_argument("--prose", action="store_true")
p.add_argument("--every", type=int, default=1)
args = p.parse_args()
ctx = ssl.create_default_context(cafile=args.cacert)
ctx.check_hostname = False
docs = [json.loads(line) for line in open(args.chunks)][:: args.every]
seconds = []
kept = dropped = 0
for doc in docs:
    body = {"document_id": doc["id"], "prose": args.prose}
    if args.kind:
        body["kind"] = args.kind
    request = urllib.request.Request(args.url + "/v1/summarize", data=json.dumps(body).encode(), method="POST",
                                     headers={"authorization": "Bearer " + args.token, "content-type": "application/json"})
    started = time.monotonic()
    with urllib.request.urlopen(request, context=ctx, timeout=900) as response:
        summary = json.load(response)
    took = time.monotonic() - started
    seconds.append(took)
    prose = summary.get("prose") or {}
    if prose.get("text"):
        kept += 1
    dropped += len(prose.get("dropped_sentences", []))
    print(json.dumps({"file": doc["file"], "kind": summary["kind"], "items": summary["items"],
                      "prose": prose, "seconds": took}))
    sys.stdout.flush()
seconds.sort()
n = len(seconds)
print(f"{n} summaries (prose={args.prose}): p50 {seconds[n // 2]:.2f} s, max {seconds[-1]:.2f} s, "
      f"mean {sum(seconds) / n:.2f} s; prose kept in {kept}, {dropped} sentences dropped", file=sys.stderr)
