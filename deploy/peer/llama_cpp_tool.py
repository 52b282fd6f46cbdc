#!/usr/bin/env python3
"""llama.cpp (through llama-cpp-python) as the peer for deploy/llama-bench.sh.

  quantize IN.gguf OUT.gguf TYPE     llama.cpp's own quantizer, re-quantizing (as llama-quantize
                                     --allow-requantize does); TYPE is Q4_K_M or Q8_0
  greedy MODEL.gguf PROMPTS.json OUT.json
                                     llama.cpp's greedy continuation (at most 64 tokens, 2
                                     threads, one token per batch: batched prompts gave wrong
                                     logits for Q4_1 on one machine of this kind) of each prompt
                                     in PROMPTS.json's `items`, written in the same format
"""
import json, sys
import llama_cpp

FTYPES = {"Q4_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M, "Q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0}


def quantize(source, target, kind):
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[kind]
    params.allow_requantize = True
    params.nthread = 2
    status = llama_cpp.llama_model_quantize(source.encode(), target.encode(), params)
    if status != 0:
        raise SystemExit(f"llama_model_quantize failed ({status})")


def greedy(model, prompts, out):
    llm = llama_cpp.Llama(model_path=model, n_ctx=2048, n_threads=2, n_batch=1, verbose=False)
    items = []
    for item in json.load(open(prompts))["items"]:
        tokens = llm.tokenize(item["prompt"].encode(), add_bos=True, special=True)
        pieces = []
        for token in llm.generate(tokens, temp=0.0, top_k=1, repeat_penalty=1.0):
            if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                break
            pieces.append(llm.detokenize([token]))
            if len(pieces) >= 64:
                break
        items.append({"prompt": item["prompt"],
                      "greedy_continuation": b"".join(pieces).decode("utf-8", "replace")})
    json.dump({"model": model, "how": "llama-cpp-python %s, greedy, n_batch 1, 2 threads, at most 64 tokens"
               % llama_cpp.__version__, "items": items}, open(out, "w"), indent=1)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"quantize": quantize, "greedy": greedy}[command](*args)
