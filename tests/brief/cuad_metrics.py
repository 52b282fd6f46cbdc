#!/usr/bin/env python3
"""Scores contract briefs against CUAD's lawyer labels (Python 3 standard library only).

Usage:
  cuad_metrics.py BRIEFS.jsonl [--labels CSV] [--descriptions CSV] [--baseline CHUNKS.jsonl]
                  [--json OUT] [--errors OUT]

BRIEFS.jsonl: one {"file": ..., "items": [Item...]} per contract (cuad_briefs example's output).
Per category (the labels' column headers) it reports:
  presence  precision / recall / F1 of a "found" item against a non-empty label list;
  location  among labelled clauses the brief finds, the share whose quote matches one labelled
            clause by CUAD's criterion: Jaccard of normalize_answer token sets >= 0.5;
and for the structured fields (Agreement/Effective/Expiration Date, Governing Law) the exact
match rate of the item's text against the "-Answer" column, over contracts with a non-empty
answer (dates compared parsed; jurisdictions compared as case-insensitive sets of names).
--baseline CHUNKS.jsonl adds the trivial baseline: every category "found", quoting the top BM25
chunk of the document for the category's description.
"""
import argparse
import ast
import csv
import json
import math
import os
import re
import string
import sys
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("VELLUM_SHARED_DIR", "/work/shared")
CORPUS = os.path.join(SHARED, "corpora", "legal-cuad-contracts", "labels")
STRUCTURED = ["Agreement Date", "Effective Date", "Expiration Date", "Governing Law"]
JACCARD_THRESHOLD = 0.5


# ---------------------------------------------------------------- CUAD's token comparison
def normalize_answer(s):
    """CUAD's normalize_answer: lower case, no punctuation, no articles, single spaces."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def jaccard(a, b):
    ta, tb = set(normalize_answer(a).split()), set(normalize_answer(b).split())
    if not ta or not tb:
        return 0.0
    return len(ta & tb) / len(ta | tb)


def location_hit(quote, clauses):
    """A quote locates a labelled clause if it matches the clause or one of its pieces (CUAD
    joins the pieces of a discontiguous clause with "<omitted>")."""
    for clause in clauses:
        pieces = [clause] + [p for p in clause.split("<omitted>") if p.strip()]
        if any(jaccard(quote, p) >= JACCARD_THRESHOLD for p in pieces):
            return True
    return False


# ---------------------------------------------------------------- structured values
MONTHS = {m: i + 1 for i, m in enumerate(
    "january february march april may june july august september october november december".split())}


def parse_date(text):
    """(month, day, year) from 'M/D/YY', 'M/D/YYYY' or 'Month D, YYYY'; 'perpetual' for that
    word; None when no full date is found."""
    t = text.strip().lower()
    if "perpetual" in t:
        return "perpetual"
    m = re.search(r"\b(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})\b", t)
    if m:
        month, day, year = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if month > 12 and day <= 12:  # a day-first answer such as 31/01/2025
            month, day = day, month
    else:
        m = re.search(r"\b([a-z]+)\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})\b", t)
        if not m or m.group(1) not in MONTHS:
            return None
        month, day, year = MONTHS[m.group(1)], int(m.group(2)), int(m.group(3))
    if year < 100:
        year += 1900 if year >= 50 else 2000
    return (month, day, year)


JURISDICTION_PREFIXES = re.compile(
    r"^(the\s+)?(state|commonwealth|province|republic|kingdom|federal republic|people's republic)\s+of\s+")


def jurisdictions(text):
    """A set of lower-case jurisdiction names: 'England and Wales' -> {england, wales}."""
    parts = re.split(r";|,|\band\b|/", text.lower())
    names = set()
    for part in parts:
        part = JURISDICTION_PREFIXES.sub("", part.strip().strip("."))
        part = re.sub(r"^the\s+", "", part)
        if part:
            names.add(part)
    return names


def structured_match(field, brief_text, answer):
    if field == "Governing Law":
        return bool(brief_text) and jurisdictions(brief_text) == jurisdictions(answer)
    expected = parse_date(answer)
    return expected is not None and parse_date(brief_text or "") == expected


# ---------------------------------------------------------------- BM25 baseline
TOKEN = re.compile(r"[a-z0-9]+")


class Bm25:
    """BM25 over one document's chunks (each chunk a document of the index)."""

    def __init__(self, chunks, k1=1.2, b=0.75):
        self.chunks = chunks
        self.tfs = [Counter(TOKEN.findall(c["text"].lower())) for c in chunks]
        self.lens = [sum(tf.values()) for tf in self.tfs]
        self.avgdl = (sum(self.lens) / len(self.lens) if self.lens else 0.0) or 1.0
        self.df = Counter(t for tf in self.tfs for t in tf)
        self.k1, self.b = k1, b

    def top(self, query):
        n = len(self.chunks)
        best, best_score = None, -1.0
        q = TOKEN.findall(query.lower())
        for chunk, tf, dl in zip(self.chunks, self.tfs, self.lens):
            score = 0.0
            for t in q:
                if tf[t]:
                    idf = math.log(1 + (n - self.df[t] + 0.5) / (self.df[t] + 0.5))
                    score += idf * tf[t] * (self.k1 + 1) / (
                        tf[t] + self.k1 * (1 - self.b + self.b * dl / self.avgdl))
            if score > best_score:
                best, best_score = chunk, score
        return best


def load_descriptions(path):
    out = {}
    with open(path, encoding="utf-8-sig") as f:
        for row in csv.reader(f):
            if len(row) < 2 or not row[0].startswith("Category:"):
                continue
            name = row[0].split(":", 1)[1].strip().lower()
            out[name] = row[1].split(":", 1)[1].strip()
    return out


# ---------------------------------------------------------------- scoring
def stem(name):
    return os.path.splitext(os.path.basename(name))[0].lower()


def score(briefs, labels, categories):
    """Per-category counts for one system. briefs: stem -> {section: item}."""
    per = {c: Counter() for c in categories}
    structured = {f: Counter() for f in STRUCTURED}
    errors = []
    for row in labels:
        key = stem(row["Filename"])
        items = briefs.get(key)
        if items is None:
            continue
        for c in categories:
            clauses = [x for x in ast.literal_eval(row[c] or "[]") if str(x).strip()]
            item = items.get(c)
            found = item is not None and item.get("status") == "found"
            counts = per[c]
            if found and clauses:
                counts["tp"] += 1
                if location_hit(item.get("quote") or "", clauses):
                    counts["loc"] += 1
                else:
                    errors.append(dict(file=key, section=c, kind="location",
                                       quote=item.get("quote"), labels=clauses))
            elif found:
                counts["fp"] += 1
                errors.append(dict(file=key, section=c, kind="false_positive", quote=item.get("quote")))
            elif clauses:
                counts["fn"] += 1
                errors.append(dict(file=key, section=c, kind="miss", labels=clauses))
        for f in STRUCTURED:
            answer = answer_of(row, f)
            if not answer:
                continue
            item = items.get(f)
            text = item.get("text") if item and item.get("status") == "found" else ""
            structured[f]["n"] += 1
            if structured_match(f, text, answer):
                structured[f]["ok"] += 1
            else:
                errors.append(dict(file=key, section=f, kind="value", text=text, answer=answer))
    return per, structured, errors


def answer_of(row, field):
    for key in (field + "-Answer", field + "- Answer"):
        if key in row:
            value = (row[key] or "").strip()
            try:  # some answers are list literals
                parsed = ast.literal_eval(value)
                if isinstance(parsed, list):
                    value = "; ".join(str(v) for v in parsed if str(v).strip())
            except (ValueError, SyntaxError):
                pass
            return value.strip()
    return ""


def prf(c):
    p = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 0.0
    r = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    loc = c["loc"] / c["tp"] if c["tp"] else 0.0
    return p, r, f, loc


def summarize(per):
    total = Counter()
    for c in per.values():
        total.update(c)
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("briefs")
    ap.add_argument("--labels", default=os.path.join(CORPUS, "master_clauses.subset.csv"))
    ap.add_argument("--descriptions", default=os.path.join(CORPUS, "category_descriptions.csv"))
    ap.add_argument("--baseline", help="chunks JSONL: adds the BM25 top-chunk baseline")
    ap.add_argument("--json", help="write a JSON summary here")
    ap.add_argument("--errors", help="write the brief's misses, false positives and location misses here (JSONL)")
    args = ap.parse_args()

    with open(args.labels, encoding="utf-8-sig") as f:
        labels = list(csv.DictReader(f))
    categories = [c for c in labels[0] if c not in ("Filename", "Document Name") and "Answer" not in c]

    briefs = {}
    with open(args.briefs, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                doc = json.loads(line)
                briefs[stem(doc["file"])] = {it["section"]: it for it in doc["items"]}
    missing = [r["Filename"] for r in labels if stem(r["Filename"]) not in briefs]
    if missing:
        print(f"warning: {len(missing)} labelled contracts have no brief: {missing[:5]}", file=sys.stderr)
    labels = [r for r in labels if stem(r["Filename"]) in briefs]

    per, structured, errors = score(briefs, labels, categories)
    base_per = base_structured = None
    if args.baseline:
        descriptions = load_descriptions(args.descriptions)
        base = {}
        with open(args.baseline, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                doc = json.loads(line)
                items = {}
                index = Bm25(doc["chunks"])
                for c in categories:
                    top = index.top(descriptions.get(c.lower(), c))
                    if top is not None:
                        items[c] = dict(section=c, status="found", quote=top["text"], text="")
                base[stem(doc["file"])] = items
        base_per, base_structured, _ = score(base, labels, categories)

    head = "| Category | labelled | P | R | F1 | Loc |"
    rule = "|---|---:|---:|---:|---:|---:|"
    if base_per:
        head += " base P | base R | base F1 | base Loc |"
        rule += "---:|---:|---:|---:|"
    print(f"Contracts scored: {len(labels)}\n")
    print(head)
    print(rule)
    rows = [(c, per[c], base_per[c] if base_per else None) for c in categories]
    rows.append(("**Overall (micro)**", summarize(per), summarize(base_per) if base_per else None))
    summary = {"contracts": len(labels), "categories": {}, "structured": {}}
    for name, c, b in rows:
        p, r, f1, loc = prf(c)
        line = f"| {name} | {c['tp'] + c['fn']} | {p:.2f} | {r:.2f} | {f1:.2f} | {loc:.2f} |"
        entry = dict(labelled=c["tp"] + c["fn"], tp=c["tp"], fp=c["fp"], fn=c["fn"], precision=p,
                     recall=r, f1=f1, location=loc)
        if b is not None:
            bp, br, bf, bl = prf(b)
            line += f" {bp:.2f} | {br:.2f} | {bf:.2f} | {bl:.2f} |"
            entry["baseline"] = dict(precision=bp, recall=br, f1=bf, location=bl)
        print(line)
        summary["categories"][name.strip("*")] = entry
    # Macro averages show the rare categories' weight too.
    macro = [prf(per[c]) for c in categories]
    line = (f"| *Macro average* | | {avg(m[0] for m in macro):.2f} | {avg(m[1] for m in macro):.2f} | "
            f"{avg(m[2] for m in macro):.2f} | {avg(m[3] for m in macro):.2f} |")
    if base_per:
        base_macro = [prf(base_per[c]) for c in categories]
        line += "".join(f" {avg(m[i] for m in base_macro):.2f} |" for i in range(4))
    print(line)

    print("\n| Structured field | with answer | brief exact | baseline exact |")
    print("|---|---:|---:|---:|")
    for f in STRUCTURED:
        s = structured[f]
        rate = s["ok"] / s["n"] if s["n"] else 0.0
        base_rate = "-"
        if base_structured:
            bs = base_structured[f]
            base_rate = f"{bs['ok'] / bs['n'] if bs['n'] else 0.0:.2f}"
        print(f"| {f} | {s['n']} | {rate:.2f} ({s['ok']}) | {base_rate} |")
        summary["structured"][f] = dict(n=s["n"], exact=s["ok"], rate=rate)

    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1)
    if args.errors:
        with open(args.errors, "w", encoding="utf-8") as f:
            for e in errors:
                f.write(json.dumps(e, ensure_ascii=False) + "\n")


def avg(xs):
    xs = list(xs)
    return sum(xs) / len(xs) if xs else 0.0


if __name__ == "__main__":
    main()
