#!/usr/bin/env python3
"""deploy/llama-bench.sh's arithmetic.

  row TYPE LLAMA_BENCH.json DEPTH.json GEN_BENCH.txt SHORT.txt GAP
      one line: type, Vellum pp and tg after its ~480-token prompt (GEN_BENCH.txt, medians of
      the runs), Vellum tg after a one-sentence prompt (SHORT.txt, `SHORT_PROMPT=1`: a nearly
      empty cache), llama.cpp pp512 and tg128 (from an empty cache), llama.cpp tg128 after as
      many cached tokens as gen_bench's long prompt (DEPTH.json, `llama-bench -d N`), the gap
  report ROW...
      the markdown table, then `TYPE tg128 ratio R`, `TYPE tg128-same-depth ratio R` and
      `TYPE pp512 ratio R` lines (Vellum / llama.cpp)
"""
import json, re, statistics, sys


def runs(path):
    return re.findall(r"prompt ([0-9]+) tokens .*= ([0-9.]+) tok/s; generated .*= ([0-9.]+) tok/s",
                      open(path).read())


def row(kind, llama, depth, vellum, short, gap):
    peer = {("pp" if r["n_prompt"] else "tg"): r["avg_ts"] for r in json.load(open(llama))}
    peer_depth = [r["avg_ts"] for r in json.load(open(depth)) if r["n_gen"]][0]
    long_runs, short_runs = runs(vellum), runs(short)
    pp = statistics.median(float(p) for _, p, _ in long_runs)
    tg_deep = statistics.median(float(t) for _, _, t in long_runs)
    tg = statistics.median(float(t) for _, _, t in short_runs)
    depth_tokens, short_tokens = long_runs[0][0], short_runs[0][0]
    print(f"{kind} {pp:.1f} {peer['pp']:.1f} {tg:.1f} {short_tokens} {peer['tg']:.1f} "
          f"{tg_deep:.1f} {depth_tokens} {peer_depth:.1f} {gap}")


def report(*rows):
    parsed = [r.split() for r in rows]
    print("\n| type | Vellum pp (tok/s) | llama.cpp pp512 | pp ratio "
          "| Vellum tg (cached) | llama.cpp tg128 (empty) | **tg ratio** "
          "| Vellum tg (cached) | llama.cpp tg128, same depth | tg ratio, same depth "
          "| worst logit gap |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for kind, pp, peer_pp, tg, short, peer_tg, tg_deep, depth, peer_depth, gap in parsed:
        print(f"| {kind} | {pp} | {peer_pp} | {float(pp) / float(peer_pp):.2f} "
              f"| {tg} ({short}) | {peer_tg} | **{float(tg) / float(peer_tg):.2f}** "
              f"| {tg_deep} ({depth}) | {peer_depth} | {float(tg_deep) / float(peer_depth):.2f} "
              f"| {gap} |")
    for kind, pp, peer_pp, tg, _, peer_tg, tg_deep, _, peer_depth, _ in parsed:
        print(f"{kind} tg128 ratio {float(tg) / float(peer_tg):.2f}")
        print(f"{kind} tg128-same-depth ratio {float(tg_deep) / float(peer_depth):.2f}")
        print(f"{kind} pp512 ratio {float(pp) / float(peer_pp):.2f}")


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"row": row, "report": report}[command](*args)
