#!/usr/bin/env python3
"""Asks CUAD's category questions about each shared contract, one document at a time, through a
running `vellum serve`, and reports the share of answers that quote the lawyers' labelled clause.

For every contract of labels/master_clauses.subset.csv and every category labelled in it, the
question is the category's description (labels/category_descriptions.csv, e.g. "Is there a
restriction on the ability of a party to compete with the counterparty ...?") and the request
is `POST /v1/ask {"question", "document_id"}`: only that contract is searched. An answer
"quotes the labelled clause" when one of its sentences (a lead quote, or a kept model sentence)
matches one of the labelled clause texts by CUAD's criterion: Jaccard similarity of the token
sets >= 0.5 (tokens as CUAD's normalize_answer: lower case, punctuation and articles removed).

Usage:
  cuad_ask.py --url https://127.0.0.1:8443 --cacert DATA/tls/cert.pem --token vs_... \
      --chunks cuad-chunks.jsonl [--generate] [--every N] [--max-tokens 96] [--json OUT]
  (--chunks: dump_chunks.py output, maps file names to document ids; --every N asks only
  every Nth labelled pair, for the slower runs with the model.)
Standard library only.
"""
import argparse, ast, csv, json, os, re, ssl, string, sys, time, urllib.request

CUAD = os.path.join(os.environ.get("VELLUM_SHARED_DIR", "/work/shared"), "corpora/legal-cuad-contracts")


def normalize_tokens(text):
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return set(text.split())


def jaccard(a, b):
    ta, tb = normalize_tokens(a), normalize_tokens(b)
    if not ta or not tb:
        return 0.0
    return len(ta & tb) / len(ta | tb)


def descriptions():
    out = {}
    with open(os.path.join(CUAD, "labels/category_descriptions.csv"), encoding="utf-8-sig") as f:
        for row in csv.reader(f):
            if not row or not row[0].startswith("Category:"):
                continue
            name = row[0].split(":", 1)[1].strip()
            out[name.lower()] = row[1].split(":", 1)[1].strip()
    return out


def ask(args, ctx, question, document_id):
    body = json.dumps({"question": question, "document_id": document_id, "generate": args.generate,
                       "max_tokens": args.max_tokens}).encode()
    request = urllib.request.Request(args.url + "/v1/ask", data=body, method="POST", headers={
        "authorization": "Bearer " + args.token, "content-type": "application/json"})
    with urllib.request.urlopen(request, context=ctx, timeout=600) as response:
        event = None
        for raw in response:
            line = raw.decode("utf-8").rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "answer":
                return json.loads(line[6:])
            elif line.startswith("data: ") and event == "error":
                raise RuntimeError(line)
    raise RuntimeError("no answer event")


def sentences_of(answer):
    out = [q["text"] for q in answer.get("quotes", [])]
    quoted = set(out)
    for line in answer["text"].split("\n"):
        for s in re.split(r"(?<=[.!?])\s+", line):
            s = re.sub(r"\[\d+(,\s*\d+)*\]", "", s).strip(" \u201c\u201d")
            if s and s not in quoted:
                out.append(s)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--cacert", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--chunks", required=True)
    p.add_argument("--generate", action="store_true")
    p.add_argument("--every", type=int, default=1)
    p.add_argument("--max-tokens", type=int, default=96)
    p.add_argument("--json")
    args = p.parse_args()
    ctx = ssl.create_default_context(cafile=args.cacert)
    ctx.check_hostname = False
    ids = {}
    with open(args.chunks) as f:
        for line in f:
            doc = json.loads(line)
            ids[doc["file"]] = doc["id"]
    questions = descriptions()
    rows = list(csv.DictReader(open(os.path.join(CUAD, "labels/master_clauses.subset.csv"), encoding="utf-8")))
    categories = [c for c in rows[0] if not c.endswith("Answer") and c not in ("Filename", "Document Name")]
    pairs = []
    for row in rows:
        for category in categories:
            clauses = ast.literal_eval(row[category] or "[]")
            if clauses:
                pairs.append((row["Filename"], category, clauses))
    pairs = pairs[:: args.every]
    per = {}
    lead_hits = answer_hits = 0
    with_prose = dropped = 0
    seconds = []
    for i, (file, category, clauses) in enumerate(pairs):
        question = questions[category.lower()]
        started = time.monotonic()
        answer = ask(args, ctx, question, ids[file])
        seconds.append(time.monotonic() - started)
        lead = any(jaccard(q["text"], c) >= 0.5 for q in answer.get("quotes", []) for c in clauses)
        whole = any(jaccard(s, c) >= 0.5 for s in sentences_of(answer) for c in clauses)
        lead_hits += lead
        with_prose += any(line and not line.startswith("\u201c") for line in answer["text"].split("\n"))
        dropped += len(answer.get("unsupported_sentences", []))
        answer_hits += whole
        stats = per.setdefault(category, [0, 0])
        stats[0] += 1
        stats[1] += whole
        if (i + 1) % 50 == 0:
            print(f"{i + 1}/{len(pairs)} asked, {answer_hits} quote the clause", file=sys.stderr)
    seconds.sort()
    n = len(pairs)
    print(f"| category | asked | answer quotes the labelled clause |\n|---|---:|---:|")
    for category in categories:
        if category in per:
            asked, hits = per[category]
            print(f"| {category} | {asked} | {hits / asked:.2f} |")
    print(f"| **all** | {n} | **{answer_hits / n:.3f}** (lead quote alone {lead_hits / n:.3f}) |")
    print(f"\nper ask: p50 {seconds[n // 2]:.2f} s, p95 {seconds[int(n * 0.95)]:.2f} s, generate={args.generate}; "
          f"answers with kept model prose: {with_prose} of {n}; model sentences dropped: {dropped}")
    if args.json:
        json.dump({"asked": n, "answer_share": answer_hits / n, "lead_share": lead_hits / n,
                   "p50_s": seconds[n // 2], "with_prose": with_prose, "dropped_sentences": dropped, "p95_s": seconds[int(n * 0.95)], "generate": args.generate,
                   "per_category": {c: v[1] / v[0] for c, v in per.items()}}, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
