"""Shared by the offline search-quality experiments of issue 21: BEIR qrels and queries, nDCG@10,
Vellum's hybrid fusion re-computed from a `vellum eval --candidates-out` dump, and the chunk
texts of a `vellum eval --index-dir` index (its catalog.sqlite)."""
import json, math, sqlite3
from collections import defaultdict


def load_qrels(beir):
    qrels = defaultdict(dict)
    for i, line in enumerate(open(f"{beir}/qrels/test.tsv")):
        fields = line.rstrip("\n").split("\t")
        if len(fields) < 3 or (i == 0 and fields[0] == "query-id"):
            continue
        if int(fields[2]) > 0:
            qrels[fields[0]][fields[1]] = int(fields[2])
    return qrels


def load_queries(beir):
    return {q["_id"]: q["text"] for q in map(json.loads, open(f"{beir}/queries.jsonl"))}


def load_candidates(path, qrels):
    dump = [json.loads(line) for line in open(path)]
    return sorted((c for c in dump if c["query_id"] in qrels), key=lambda c: c["query_id"])


def ndcg10(ranking, relevant):
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranking[:10]))
    ideal = sorted(relevant.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def hybrid(candidates, vector_weight=0.6, head=100):
    """Vellum's default fusion (services/rag/src/fusion.rs): scores divided by each list's best,
    a missing chunk at that engine's lowest scaled score, a document at its best chunk.
    Returns [(document, chunk, score)], best first, one entry per document, and the floor."""
    bm25 = {(x["chunk"], x["document"]): x["score"] for x in candidates["bm25"][:head]}
    vector = {(x["chunk"], x["document"]): x["score"] for x in candidates["vector"][:head]}
    best_b, best_v = max(bm25.values(), default=1), max(vector.values(), default=1)
    floor_b = min((s / best_b for s in bm25.values()), default=0)
    floor_v = min((s / best_v for s in vector.values()), default=0)
    fused = {}
    for key in dict.fromkeys(list(bm25) + list(vector)):
        fused[key] = (vector_weight * (vector[key] / best_v if key in vector else floor_v)
                      + (1 - vector_weight) * (bm25[key] / best_b if key in bm25 else floor_b))
    seen, ranked = set(), []
    for key in sorted(fused, key=lambda k: -fused[k]):
        if key[1] not in seen:
            seen.add(key[1])
            ranked.append((key[1], key[0], fused[key]))
    return ranked, vector_weight * floor_v + (1 - vector_weight) * floor_b


class Index:
    """The chunks of an evaluation index, named as the dump names documents (the BEIR id, or a
    file's name without its extension for `--documents` sets)."""

    def __init__(self, index_dir, sample_document):
        self.db = sqlite3.connect(f"file:{index_dir}/catalog.sqlite?mode=ro", uri=True)
        rows = self.db.execute("SELECT id, title, source_path FROM documents").fetchall()
        stems = {d: t.rsplit(".", 1)[0] for d, t, _ in rows}
        sources = {d: s for d, _, s in rows}
        self.name = stems if sample_document in stems.values() else sources

    def chunk_text(self, chunk_id):
        row = self.db.execute("SELECT text FROM chunks WHERE chunk_id = ?", (chunk_id,)).fetchone()
        return row[0] if row else ""

    def chunks(self):
        """(document name, chunk text) in document order."""
        for did, text in self.db.execute(
                "SELECT document_id, text FROM chunks ORDER BY document_id, ordinal"):
            yield self.name[did], text


def first_document(candidates):
    return next(c["bm25"][0]["document"] for c in candidates if c["bm25"])
