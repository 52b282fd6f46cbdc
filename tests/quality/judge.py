#!/usr/bin/env python3
"""The GGUF generator as a pointwise reranker (issue 21): for each query, Vellum's hybrid top 20
documents (their best chunks) are shown to SmolLM2-135M-Instruct, the default model, one at a
time ("Is the passage relevant to the query? Answer Yes or No."), and reordered by the logit of
"Yes" minus that of "No", alone and mixed half and half with the fused score. Runs the model with
llama.cpp (llama-cpp-python, 2 threads), whose prompt speed matches Vellum's own decoder here
(docs/benchmarks.md, "Generation"), and times the judging per query.

usage: judge.py BEIR_DIR CANDIDATES.jsonl INDEX_DIR MODEL.gguf N   (the first N queries by id)"""
import json, sys, time
import numpy as np
import llama_cpp
from llama_cpp import Llama
from common import Index, first_document, hybrid, load_candidates, load_qrels, load_queries, ndcg10

beir, dump, index_dir, model, n = sys.argv[1:6]
qrels, queries = load_qrels(beir), load_queries(beir)
candidates = load_candidates(dump, qrels)[: int(n)]
index = Index(index_dir, first_document(candidates))
llm = Llama(model_path=model, n_ctx=1024, n_threads=2, n_batch=512, verbose=False)
yes, no = llm.tokenize(b"Yes", add_bos=False)[0], llm.tokenize(b"No", add_bos=False)[0]
SYSTEM = "You judge search results. Answer Yes if the passage is relevant to the query, otherwise No."


def judge(query, passage):
    prompt = (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\nQuery: {query}\n\n"
              f"Passage: {passage}\n\nIs the passage relevant to the query? Answer Yes or No.<|im_end|>\n"
              "<|im_start|>assistant\n")
    tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)[-1000:]
    llm.reset()
    llm.eval(tokens)
    # The last position's logits straight from llama.cpp: 0.3.36's `Llama.scores` stays zero
    # without logits_all.
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(llm.n_vocab(),))
    return float(logits[yes] - logits[no]), len(tokens)


fused_ndcg, judged_ndcg, mixed_ndcg, seconds, prompt_tokens = [], [], [], [], 0
for c in candidates:
    query, relevant = queries[c["query_id"]], qrels[c["query_id"]]
    ranked, _ = hybrid(c)
    fused_ndcg.append(ndcg10([d for d, _, _ in ranked], relevant))
    start, judged = time.perf_counter(), []
    for document, chunk, score in ranked[:20]:
        verdict, count = judge(query, index.chunk_text(chunk))
        prompt_tokens += count
        judged.append((document, score, verdict))
    seconds.append(time.perf_counter() - start)
    rest = [d for d, _, _ in ranked[20:]]
    judged_ndcg.append(ndcg10([d for d, _, _ in sorted(judged, key=lambda x: -x[2])] + rest, relevant))
    low, high = min(v for _, _, v in judged), max(v for _, _, v in judged)
    top = judged[0][1]
    mix = lambda x: 0.5 * x[1] / top + 0.5 * ((x[2] - low) / (high - low) if high > low else 0)
    mixed_ndcg.append(ndcg10([d for d, _, _ in sorted(judged, key=lambda x: -mix(x))] + rest, relevant))
    print(f"{c['query_id']}: hybrid {fused_ndcg[-1]:.3f}, judged {judged_ndcg[-1]:.3f}, "
          f"mixed {mixed_ndcg[-1]:.3f}, {seconds[-1]:.1f} s", flush=True)
seconds.sort()
mean = lambda values: round(sum(values) / len(values), 4)
print(json.dumps({"queries": len(seconds), "hybrid": mean(fused_ndcg), "judged_top20": mean(judged_ndcg),
                  "mixed_0.5": mean(mixed_ndcg), "seconds_p50": round(seconds[len(seconds) // 2], 1),
                  "seconds_max": round(seconds[-1], 1),
                  "prompt_tokens_per_query": round(prompt_tokens / len(seconds))}))
