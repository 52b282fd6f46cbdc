#!/usr/bin/env python3
"""deploy/llama-bench.sh's arithmetic.

  row TYPE LLAMA_BENCH.json DEPTH.json GEN_BENCH.txt GAP
      one line: type, Vellum pp and tg (median of the runs), llama.cpp pp512 and tg128 (from an
      empty cache), llama.cpp tg128 after as many cached tokens as gen_bench's prompt (DEPTH.json,
      `llama-bench -d N`: the positions Vellum's tokens are generated at), the logit gap
  report ROW...
      the markdown table, then `TYPE tg128 ratio R`, `TYPE tg128-same-depth ratio R` and
      `TYPE pp512 ratio R` lines (Vellum / llama.cpp)
"""
import json, re, statistics, sys


def row(kind, llama, depth, vellum, gap):
    peer = {("pp" if r["n_prompt"] else "tg"): r["avg_ts"] for r in json.load(open(llama))}
    peer_depth = [r["avg_ts"] for r in json.load(open(depth)) if r["n_gen"]][0]
    runs = re.findall(r"= ([0-9.]+) tok/s; generated .*= ([0-9.]+) tok/s", open(vellum).read())
    pp = statistics.median(float(p) for p, _ in runs)
    tg = statistics.median(float(t) for _, t in runs)
    print(f"{kind} {pp:.1f} {peer['pp']:.1f} {tg:.1f} {peer['tg']:.1f} {peer_depth:.1f} {gap}")


def report(*rows):
    parsed = [r.split() for r in rows]
    print("\n| type | Vellum pp (tok/s) | llama.cpp pp512 | pp ratio | Vellum tg | llama.cpp tg128 "
          "| tg ratio | llama.cpp tg128, same depth | tg ratio, same depth | worst logit gap |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for kind, pp, peer_pp, tg, peer_tg, peer_depth, gap in parsed:
        print(f"| {kind} | {pp} | {peer_pp} | {float(pp) / float(peer_pp):.2f} | {tg} | {peer_tg} "
              f"| {float(tg) / float(peer_tg):.2f} | {peer_depth} "
              f"| {float(tg) / float(peer_depth):.2f} | {gap} |")
    for kind, pp, peer_pp, tg, peer_tg, peer_depth, _ in parsed:
        print(f"{kind} tg128 ratio {float(tg) / float(peer_tg):.2f}")
        print(f"{kind} tg128-same-depth ratio {float(tg) / float(peer_depth):.2f}")
        print(f"{kind} pp512 ratio {float(pp) / float(peer_pp):.2f}")


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"row": row, "report": report}[command](*args)
