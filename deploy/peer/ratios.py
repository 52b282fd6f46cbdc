#!/usr/bin/env python3
"""deploy/llama-bench.sh's arithmetic.

  row TYPE LLAMA_BENCH.json GEN_BENCH.txt GAP   one line: type, Vellum pp and tg (median of the
                                                runs), llama.cpp pp512 and tg128, the logit gap
  report ROW...                                 the markdown table, then `TYPE tg128 ratio R` and
                                                `TYPE pp512 ratio R` lines (Vellum / llama.cpp)
"""
import json, re, statistics, sys


def row(kind, llama, vellum, gap):
    peer = {("pp" if r["n_prompt"] else "tg"): r["avg_ts"] for r in json.load(open(llama))}
    runs = re.findall(r"= ([0-9.]+) tok/s; generated .*= ([0-9.]+) tok/s", open(vellum).read())
    pp = statistics.median(float(p) for p, _ in runs)
    tg = statistics.median(float(t) for _, t in runs)
    print(f"{kind} {pp:.1f} {peer['pp']:.1f} {tg:.1f} {peer['tg']:.1f} {gap}")


def report(*rows):
    parsed = [r.split() for r in rows]
    print("\n| type | Vellum pp (tok/s) | llama.cpp pp512 | pp ratio | Vellum tg | llama.cpp tg128 "
          "| tg ratio | worst logit gap |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for kind, pp, peer_pp, tg, peer_tg, gap in parsed:
        print(f"| {kind} | {pp} | {peer_pp} | {float(pp) / float(peer_pp):.2f} | {tg} | {peer_tg} "
              f"| {float(tg) / float(peer_tg):.2f} | {gap} |")
    for kind, pp, peer_pp, tg, peer_tg, _ in parsed:
        print(f"{kind} tg128 ratio {float(tg) / float(peer_tg):.2f}")
        print(f"{kind} pp512 ratio {float(pp) / float(peer_pp):.2f}")


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"row": row, "report": report}[command](*args)
