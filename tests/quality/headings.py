#!/usr/bin/env python3
"""Section headings as a BM25 field (issue 21): each chunk gets the heading in force where it
begins (the last heading-like span found in the document's earlier chunks: "15.5 Governing
Law.", "ARTICLE VIII GOVERNING LAW", "18. GOVERNING LAWS"), prepended to its text; BM25 (bm25s,
English stop words and stemmer) ranks chunks, a document at its best chunk, with and without.

usage: headings.py BEIR_DIR CANDIDATES.jsonl INDEX_DIR; needs bm25s, PyStemmer."""
import re, sys
import bm25s, Stemmer
from common import Index, first_document, load_candidates, load_qrels, load_queries, ndcg10

NUMBERED = re.compile(r"(?:(?:ARTICLE|Article|SECTION|Section)\s+[0-9IVXL]+(?:\.\d+)*\.?|\b\d{1,2}(?:\.\d{1,2}){0,2}\.?)\s+"
                      r"((?:[A-Z][A-Za-z’'&/-]*\s*){1,6}?)(?=[.:]|\s+[A-Z][a-z]+\s+[a-z]|\s+\()")
CAPITALS = re.compile(r"\b((?:[A-Z]{3,}[A-Z/&’']*\s+){0,4}[A-Z]{3,})\b(?=\s+[A-Z][a-z])")
NOT_HEADINGS = {"The", "This", "Each", "No", "Source", "Any", "All", "In", "If", "Such"}


def headings_in(text):
    found = [(m.start(), m.group(1).strip()) for m in NUMBERED.finditer(text)]
    found += [(m.start(), m.group(1).strip()) for m in CAPITALS.finditer(text)]
    # Drop sentence openers and lone acronyms (party names such as "GOB", "SIGA").
    return sorted((p, h) for p, h in found if h not in NOT_HEADINGS and (" " in h or len(h) >= 6)
                  and not (h.isupper() and " " not in h))


beir, dump, index_dir = sys.argv[1:4]
qrels, queries = load_qrels(beir), load_queries(beir)
index = Index(index_dir, first_document(load_candidates(dump, qrels)))
names, plain, headed, current, previous, with_heading = [], [], [], "", None, 0
for name, text in index.chunks():
    if name != previous:
        current, previous = "", name
    names.append(name)
    plain.append(text)
    headed.append(f"{current} {text}" if current else text)
    with_heading += bool(current)
    found = headings_in(text)
    if found:
        current = found[-1][1]
print(f"{len(plain)} chunks, {with_heading} under a heading found before them")
stemmer = Stemmer.Stemmer("english")
tokenize = lambda texts: bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)
for label, corpus in (("chunk text", plain), ("heading + chunk text", headed)):
    retriever = bm25s.BM25()
    retriever.index(tokenize(corpus), show_progress=False)
    values = []
    for query_id, relevant in qrels.items():
        found, scores = retriever.retrieve(tokenize([queries[query_id]]), k=min(300, len(corpus)),
                                           show_progress=False)
        ranked = list(dict.fromkeys(names[i] for i, s in zip(found[0], scores[0]) if s > 0))
        values.append(ndcg10(ranked, relevant))
    print(f"BM25 over {label:22s} nDCG@10 {sum(values) / len(values):.4f}")
