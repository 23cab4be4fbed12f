#!/usr/bin/env python3
"""Writes the fuzz targets' model-file seeds (tiny GGUF, safetensors and tokenizer.json files)
into OUT/<target>/: generated at build time rather than committed.  Usage: make_seeds.py OUT"""
import json
import os
import struct
import sys

out = sys.argv[1]

T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR = 4, 5, 6, 7, 8, 9


def s(x):
    b = x.encode()
    return struct.pack('<Q', len(b)) + b


def kv(key, t, v):
    b = s(key) + struct.pack('<I', t)
    if t == T_ARR:
        et, items = v
        b += struct.pack('<IQ', et, len(items))
        for i in items:
            b += s(i) if et == T_STR else struct.pack({T_F32: '<f', T_I32: '<i'}[et], i)
        return b
    return b + (s(v) if t == T_STR else struct.pack({T_U32: '<I', T_I32: '<i', T_F32: '<f',
                                                      T_BOOL: '<B'}[t], v))


def gguf(kvs, tensors, align=32):
    head = b'GGUF' + struct.pack('<IQQ', 3, len(tensors), len(kvs)) + b''.join(kv(*k) for k in kvs)
    infos, data = b'', b''
    for name, dims, ttype, payload in tensors:
        data += b'\0' * (-len(data) % align)
        infos += s(name) + struct.pack('<I', len(dims)) + b''.join(struct.pack('<Q', d) for d in dims)
        infos += struct.pack('<IQ', ttype, len(data))
        data += payload
    h = head + infos
    return h + b'\0' * (-len(h) % align) + data


def f32(n):
    return struct.pack(f'<{n}f', *[((i * 37) % 17 - 8) / 16 for i in range(n)])


def write(target, name, data):
    os.makedirs(os.path.join(out, target), exist_ok=True)
    with open(os.path.join(out, target, name), 'wb') as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# A one-layer Llama with a 12-token SentencePiece vocabulary and a chat template.
tokens = ["<unk>", "<s>", "</s>", "<0x0A>", "▁", "a", "b", "▁a", "▁b", "ab", "▁ab", "<|im_start|>"]
hidden, heads, kvh, ff = 8, 2, 1, 16
kvs = [("general.architecture", T_STR, "llama"), ("general.name", T_STR, "seed"),
       ("llama.block_count", T_U32, 1), ("llama.context_length", T_U32, 64),
       ("llama.embedding_length", T_U32, hidden), ("llama.feed_forward_length", T_U32, ff),
       ("llama.attention.head_count", T_U32, heads), ("llama.attention.head_count_kv", T_U32, kvh),
       ("llama.rope.freq_base", T_F32, 10000.0),
       ("llama.attention.layer_norm_rms_epsilon", T_F32, 1e-5),
       ("llama.rope.scaling.type", T_STR, "linear"), ("llama.rope.scaling.factor", T_F32, 2.0),
       ("tokenizer.ggml.model", T_STR, "llama"), ("tokenizer.ggml.tokens", T_ARR, (T_STR, tokens)),
       ("tokenizer.ggml.scores", T_ARR, (T_F32, [0, 0, 0, 0, -1, -2, -2, -1.5, -1.5, -1, -0.5, 0])),
       ("tokenizer.ggml.token_type", T_ARR, (T_I32, [2, 3, 3, 6, 1, 1, 1, 1, 1, 1, 1, 3])),
       ("tokenizer.ggml.bos_token_id", T_U32, 1), ("tokenizer.ggml.eos_token_id", T_U32, 2),
       ("tokenizer.ggml.add_bos_token", T_BOOL, 1),
       ("tokenizer.chat_template", T_STR,
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}\n{% endfor %}")]
q8 = (struct.pack('<e', 0.01) + bytes(range(32))) * (ff * 32 // 32)
tensors = [("token_embd.weight", [hidden, len(tokens)], 0, f32(hidden * len(tokens))),
           ("output_norm.weight", [hidden], 0, f32(hidden)),
           ("blk.0.attn_norm.weight", [hidden], 0, f32(hidden)),
           ("blk.0.attn_q.weight", [hidden, hidden], 0, f32(64)),
           ("blk.0.attn_k.weight", [hidden, hidden // heads * kvh], 0, f32(32)),
           ("blk.0.attn_v.weight", [hidden, 4], 0, f32(32)),
           ("blk.0.attn_output.weight", [hidden, hidden], 1, struct.pack('<64e', *[0.5] * 64)),
           ("blk.0.ffn_norm.weight", [hidden], 0, f32(hidden)),
           ("blk.0.ffn_gate.weight", [32, ff], 8, q8),
           ("blk.0.ffn_up.weight", [hidden, ff], 30, b'\x80\x3f' * (hidden * ff)),
           ("blk.0.ffn_down.weight", [ff, hidden], 0, f32(ff * hidden))]
write("gguf_fuzz", "llama_small.gguf", gguf(kvs, tensors))
write("gguf_fuzz", "empty_v3.gguf", gguf([("general.alignment", T_U32, 64)], [], 64))


def safetensors(entries, meta=None):
    header, data = ({"__metadata__": meta} if meta else {}), b''
    for name, dtype, shape, payload in entries:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    h = json.dumps(header).encode()
    h += b' ' * (-len(h) % 8)
    return struct.pack('<Q', len(h)) + h + data


write("safetensors_fuzz", "mixed.safetensors", safetensors(
    [("a.weight", "F32", [2, 3], f32(6)), ("b.bias", "BF16", [4], b'\x80\x3f' * 4),
     ("c", "F16", [1, 2, 2], struct.pack('<4e', 1, 2, 3, 4)), ("d", "I8", [3], b'\x01\x02\x03'),
     ("e", "F8_E4M3", [2], b'\x38\x40'), ("s", "I32", [], b'\x07\0\0\0')], {"format": "pt"}))
write("safetensors_fuzz", "empty.safetensors", safetensors([]))

# Byte-level BPE (GPT-2 style): the 256 byte symbols, a few merges, a special and an added token.
bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
    list(range(ord("®"), ord("ÿ") + 1))
cs, n = bs[:], 0
for b in range(256):
    if b not in bs:
        bs.append(b)
        cs.append(256 + n)
        n += 1
vocab = {chr(c): i for i, c in enumerate(cs)}
merges = ["Ġ t", "h e", "Ġt he", "l l", "e ll", "h ell", "hell o"]
for m in merges:
    vocab.setdefault(m.replace(" ", ""), len(vocab))


def added(i, content, special, lstrip=False, normalized=False):
    return {"id": i, "content": content, "single_word": False, "lstrip": lstrip, "rstrip": False,
            "normalized": normalized, "special": special}


split = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
         "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
write("tokenizer_json_fuzz", "byte_level_bpe.json", json.dumps({
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [added(len(vocab), "<|endoftext|>", True),
                     added(len(vocab) + 1, "<extra>", False, lstrip=True, normalized=True)],
    "normalizer": None,
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": split}, "behavior": "Isolated", "invert": False},
        byte_level]},
    "post_processor": dict(byte_level, add_prefix_space=True, use_regex=True),
    "decoder": dict(byte_level, add_prefix_space=True, use_regex=True),
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
              "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
              "ignore_merges": False, "vocab": vocab, "merges": merges}}, ensure_ascii=False))

# SentencePiece-style BPE (Llama 2 / Gemma as tokenizer.json): byte fallback, "▁" for spaces.
v = {"<unk>": 0, "<s>": 1, "</s>": 2}
for b in range(256):
    v[f"<0x{b:02X}>"] = len(v)
for p in ["▁", "h", "e", "l", "o", "▁h", "ll", "▁he", "▁hell", "▁hello", "w", "r", "d"]:
    v.setdefault(p, len(v))
write("tokenizer_json_fuzz", "spm_bpe.json", json.dumps({
    "version": "1.0", "added_tokens": [added(0, "<unk>", True), added(1, "<s>", True),
                                       added(2, "</s>", True)],
    "normalizer": {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "▁"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
    "pre_tokenizer": None,
    "post_processor": {"type": "TemplateProcessing",
                       "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                  {"Sequence": {"id": "A", "type_id": 0}}],
                       "pair": [],
                       "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
    "decoder": {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"},
        {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
              "continuing_subword_prefix": None, "end_of_word_suffix": None, "fuse_unk": True,
              "byte_fallback": True, "ignore_merges": False, "vocab": v,
              "merges": [["▁", "h"], ["l", "l"], ["▁h", "e"], ["▁he", "ll"], ["▁hell", "o"]]}},
    ensure_ascii=False))
