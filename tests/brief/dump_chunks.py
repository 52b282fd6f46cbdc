#!/usr/bin/env python3
"""Dumps the ready documents of a Vellum data folder as JSON lines:
{"id","source_path","file","title","format","sha256","chunks":[{"chunk_id","ordinal","page","text"}]}
Usage: dump_chunks.py DATA_DIR OUT.jsonl"""
import json, os, sqlite3, sys
db = sqlite3.connect(f"file:{os.path.join(sys.argv[1], 'catalog.sqlite')}?mode=ro", uri=True)
with open(sys.argv[2], "w") as out:
    for doc_id, source, title, fmt, sha in db.execute(
            "SELECT id, source_path, title, format, sha256 FROM documents WHERE state='ready' ORDER BY source_path"):
        chunks = [dict(chunk_id=c, ordinal=o, page=p, text=t) for c, o, p, t in db.execute(
            "SELECT chunk_id, ordinal, page, text FROM chunks WHERE document_id=? ORDER BY ordinal", (doc_id,))]
        out.write(json.dumps(dict(id=doc_id, source_path=source, file=os.path.basename(source), title=title,
                                  format=fmt, sha256=sha, chunks=chunks)) + "\n")
