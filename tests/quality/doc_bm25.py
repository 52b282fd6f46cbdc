#!/usr/bin/env python3
"""A document-level BM25 signal beside Vellum's chunk-level hybrid (issue 21): BM25 over each
document's whole text (bm25s, English stop words and stemmer), scaled by its best, added to the
fused score of the document's best chunk at weights 0.1-0.4.

usage: doc_bm25.py BEIR_DIR CANDIDATES.jsonl INDEX_DIR   (the last two from `vellum eval
       --candidates-out FILE --candidates-depth 300 --index-dir DIR`); needs bm25s, PyStemmer."""
import sys
from collections import defaultdict
import bm25s, Stemmer
from common import Index, first_document, hybrid, load_candidates, load_qrels, load_queries, ndcg10

beir, dump, index_dir = sys.argv[1:4]
qrels, queries = load_qrels(beir), load_queries(beir)
candidates = load_candidates(dump, qrels)
index = Index(index_dir, first_document(candidates))
texts = defaultdict(list)
for name, text in index.chunks():
    texts[name].append(text)
names = list(texts)
stemmer = Stemmer.Stemmer("english")
tokenize = lambda texts: bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)
retriever = bm25s.BM25()
retriever.index(tokenize([" ".join(texts[n]) for n in names]), show_progress=False)
weights = (0.1, 0.2, 0.3, 0.4)
results = defaultdict(list)
for c in candidates:
    relevant = qrels[c["query_id"]]
    found, scores = retriever.retrieve(tokenize([queries[c["query_id"]]]), k=min(300, len(names)),
                                       show_progress=False)
    document_bm25 = {names[i]: float(s) for i, s in zip(found[0], scores[0]) if s > 0}
    results["document BM25 alone"].append(ndcg10(sorted(document_bm25, key=lambda d: -document_bm25[d]), relevant))
    ranked, floor = hybrid(c)
    fused = {d: s for d, _, s in ranked}
    results["hybrid (default)"].append(ndcg10([d for d, _, _ in ranked], relevant))
    best = max(document_bm25.values(), default=1)
    for w in weights:
        candidates_docs = set(fused) | set(list(document_bm25)[:100])
        score = {d: (1 - w) * fused.get(d, floor) + w * document_bm25.get(d, 0) / best for d in candidates_docs}
        results[f"hybrid + {w} x document BM25"].append(ndcg10(sorted(score, key=lambda d: -score[d]), relevant))
for label, values in results.items():
    print(f"{label:32s} nDCG@10 {sum(values) / len(values):.4f}  ({len(values)} queries)")
