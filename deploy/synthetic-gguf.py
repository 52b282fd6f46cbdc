#!/usr/bin/env python3
"""Writes a synthetic llama GGUF of several GB for load-time and memory measurements: the
tokenizer, chat template and every other key of a real GGUF (the shipped SmolLM2), with larger
dimensions and random Q4_1 weights (Q8_0 for the token embedding, F32 norms), tensor by tensor
so that the script itself never holds the model in memory. The weights are noise, so the
answers are too; what it measures is loading.

usage: synthetic-gguf.py TEMPLATE.gguf OUT.gguf [HIDDEN LAYERS FFN]   (default 3072 40 8192:
       about 4.2 B parameters, 2.7 GB; needs the `gguf` and `numpy` packages from PyPI)"""
import sys

import gguf
import numpy as np

template, out = sys.argv[1], sys.argv[2]
hidden, layers, ffn = (int(v) for v in (sys.argv[3:6] if len(sys.argv) >= 6 else (3072, 40, 8192)))
heads, kv_heads = hidden // 128, max(1, hidden // 384)
reader = gguf.GGUFReader(template)
arch = reader.fields["general.architecture"].contents()
vocab = int(reader.fields[f"{arch}.vocab_size"].contents())
overrides = {
    f"{arch}.embedding_length": hidden,
    f"{arch}.block_count": layers,
    f"{arch}.feed_forward_length": ffn,
    f"{arch}.attention.head_count": heads,
    f"{arch}.attention.head_count_kv": kv_heads,
    f"{arch}.rope.dimension_count": 128,
    "general.name": f"synthetic {hidden}x{layers}",
}

writer = gguf.GGUFWriter(out, arch)
for key, field in reader.fields.items():
    if key.startswith("GGUF.") or key == "general.architecture":
        continue
    value_type = field.types[0]
    if key in overrides:
        value = overrides[key]
    else:
        value = field.contents()
    if value_type == gguf.GGUFValueType.ARRAY:
        writer.add_key_value(key, value, value_type, sub_type=field.types[-1])
    else:
        writer.add_key_value(key, value, value_type)

rng = np.random.default_rng(20)
Q4_1, Q8_0, F32 = (gguf.GGMLQuantizationType.Q4_1, gguf.GGMLQuantizationType.Q8_0,
                   gguf.GGMLQuantizationType.F32)


def quantized(rows, cols, kind):
    """Random blocks of `kind` for a [rows, cols] weight, with small, finite scales."""
    blocks = rows * cols // 32
    if kind == Q4_1:
        data = np.empty((blocks, 20), dtype=np.uint8)
        data[:, 0:2] = np.frombuffer(np.float16(0.002).tobytes(), dtype=np.uint8)
        data[:, 2:4] = np.frombuffer(np.float16(-0.015).tobytes(), dtype=np.uint8)
        data[:, 4:] = rng.integers(0, 256, size=(blocks, 16), dtype=np.uint8)
    else:
        data = np.empty((blocks, 34), dtype=np.uint8)
        data[:, 0:2] = np.frombuffer(np.float16(0.0005).tobytes(), dtype=np.uint8)
        data[:, 2:] = rng.integers(0, 256, size=(blocks, 32), dtype=np.uint8)
    return data.reshape(rows, -1)


# Header first (the writer needs every tensor's shape before any data), then the data.
tensors = [("token_embd.weight", vocab, hidden, Q8_0), ("output_norm.weight", 1, hidden, F32)]
head_dim = hidden // heads
for layer in range(layers):
    prefix = f"blk.{layer}."
    tensors += [
        (prefix + "attn_norm.weight", 1, hidden, F32),
        (prefix + "ffn_norm.weight", 1, hidden, F32),
        (prefix + "attn_q.weight", hidden, hidden, Q4_1),
        (prefix + "attn_k.weight", kv_heads * head_dim, hidden, Q4_1),
        (prefix + "attn_v.weight", kv_heads * head_dim, hidden, Q4_1),
        (prefix + "attn_output.weight", hidden, hidden, Q4_1),
        (prefix + "ffn_gate.weight", ffn, hidden, Q4_1),
        (prefix + "ffn_up.weight", ffn, hidden, Q4_1),
        (prefix + "ffn_down.weight", hidden, ffn, Q4_1),
    ]
for name, rows, cols, kind in tensors:
    if kind == F32:
        writer.add_tensor_info(name, (rows, cols) if rows > 1 else (cols,), np.dtype(np.float32),
                               cols * rows * 4)
    else:
        block_bytes = 20 if kind == Q4_1 else 34
        writer.add_tensor_info(name, (rows, cols * block_bytes // 32), np.dtype(np.uint8),
                               rows * cols // 32 * block_bytes, raw_dtype=kind)
writer.write_header_to_file()
writer.write_kv_data_to_file()
writer.write_ti_data_to_file()
for name, rows, cols, kind in tensors:
    if kind == F32:
        writer.write_tensor_data(np.ones((cols,), dtype=np.float32))
    else:
        writer.write_tensor_data(quantized(rows, cols, kind))
writer.close()
total = sum(rows * cols for _, rows, cols, _ in tensors)
print(f"{out}: {total / 1e9:.2f} B parameters, hidden {hidden}, {layers} layers, ffn {ffn}")
