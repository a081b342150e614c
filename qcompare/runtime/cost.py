"""What one token costs a runtime, in bytes read and FLOPs: the cost models of the two kinds of
runtime, for the roofline columns (`qcompare.metrics.roofline` states the formulas:
B = weight_bytes + kv_bytes_per_position x (P + (N - 1) / 2) bytes per decoded token, and
F = 2 x body_params + 4 x layers x heads x head_dim x (P - 1) / 2 + 2 x head_params / P FLOPs
per prefill token)."""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class CostModel:
    """What one token costs a runtime, in the module doc's terms."""

    weight_bytes: int              # bytes of weights read per decoded token
    kv_bytes_per_position: int     # K and V bytes per cached position
    body_params: int               # weights of the decoder's matrices (output head excluded)
    head_params: int               # weights of the output head
    layers: int
    heads: int
    head_dim: int

    def decode_bytes(self, prompt: int, new_tokens: int) -> float:
        return self.weight_bytes + self.kv_bytes_per_position * (prompt + (new_tokens - 1) / 2)

    def prefill_flops(self, prompt: int) -> float:
        return (2 * self.body_params + 4 * self.layers * self.heads * self.head_dim
                * (prompt - 1) / 2 + 2 * self.head_params / prompt)



def torch_cost_model(model) -> CostModel:
    """A transformers model as it is held (quantized layouts through runtime.storage's rules)."""
    import torch

    from qcompare.runtime import storage

    cfg = model.config
    head = model.get_output_embeddings()
    head_weight = getattr(head, "weight", None)
    seen: set[int] = set()
    weight_bytes = body = 0
    for _name, module in model.named_modules():
        if hasattr(module, "_packed_params") and callable(getattr(module, "weight", None)):
            weight_bytes += storage.packed_module_bytes(module)
            body += module.in_features * module.out_features
            continue
        if hasattr(module, "in_features") and hasattr(module, "out_features") \
                and module is not head:
            body += module.in_features * module.out_features
        for p in module.parameters(recurse=False):
            t = p.data if type(p) is torch.nn.Parameter else p
            key = id(t) if getattr(type(t), "__tensor_flatten__", None) else t.data_ptr()
            if key in seen:
                continue
            seen.add(key)
            nbytes = storage.subclass_bytes(t) + storage.attached_state_bytes(p)
            tied = head_weight is not None and p is head_weight
            if isinstance(module, torch.nn.Embedding) and not tied:
                nbytes //= max(p.shape[0], 1)                   # one row per token
            weight_bytes += nbytes
        meta = getattr(module, "meta", None)
        if isinstance(meta, dict):
            weight_bytes += sum(storage.plain_bytes(v) for v in meta.values() if torch.is_tensor(v))
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    kv_elem = torch.finfo(model.dtype).bits // 8 if model.dtype.is_floating_point else 4
    head_params = head.in_features * head.out_features
    return CostModel(weight_bytes=weight_bytes,
                     kv_bytes_per_position=2 * cfg.num_hidden_layers * kv_heads * head_dim * kv_elem,
                     body_params=body, head_params=head_params, layers=cfg.num_hidden_layers,
                     heads=heads, head_dim=head_dim)


def gguf_cost_model(path: str | os.PathLike, kv_elem_bytes: int = 2) -> CostModel:
    """A GGUF file as llama.cpp runs it: tensor bytes as stored; the token embedding counts
    one row unless there is no `output.weight` (the head then reads it whole); llama.cpp's
    default KV cache is f16 (2 bytes)."""
    from qcompare.sources import gguf_header

    r = gguf_header.reader(path)
    arch = r.fields["general.architecture"].contents()

    def field(name, default=None):
        f = r.fields.get(f"{arch}.{name}")
        return f.contents() if f is not None else default

    tensors = {t.name: t for t in r.tensors}
    tied = "output.weight" not in tensors
    weight_bytes = body = 0
    for name, t in tensors.items():
        n = int(t.n_bytes)
        if name == "token_embd.weight" and not tied:
            n //= int(t.shape[-1])
        weight_bytes += n
        if name.startswith("blk.") and len(t.shape) == 2:
            body += int(t.shape[0]) * int(t.shape[1])
    emb = tensors["token_embd.weight"]
    head = tensors.get("output.weight", emb)
    layers, heads = int(field("block_count")), int(field("attention.head_count"))
    kv_heads = int(field("attention.head_count_kv", heads))
    head_dim = int(field("attention.key_length", 0) or int(field("embedding_length")) // heads)
    return CostModel(weight_bytes=weight_bytes,
                     kv_bytes_per_position=2 * layers * kv_heads * head_dim * kv_elem_bytes,
                     body_params=body, head_params=int(head.shape[0]) * int(head.shape[1]),
                     layers=layers, heads=heads, head_dim=head_dim)
