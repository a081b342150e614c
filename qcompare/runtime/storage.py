"""Stored weight bytes: one accounting function for every method, one rule per storage layout.

`stored_bytes(model, bits_of)` walks the model's modules once and adds up:

1. Each distinct parameter tensor once (tied weights share storage and count once):
   numel x bits / 8, with bits = `bits_of(name, tensor)` when given and not None (simulated
   storage: the bits a packed format would use), else the tensor's own element size.
2. A tensor subclass (torchao's quantized tensors): the sum of its inner tensors
   (`__tensor_flatten__`), recursively: codes, scales and zero points as held.
3. Quantization state attached to a parameter (bitsandbytes): a 4-bit weight's `quant_state`
   absmax, plus with double quantization its nested absmax, code book and offset; an int8
   weight's row scales `SCB`.
4. Modules whose weights are packed outside the parameters (torch.ao's dynamic quantized
   Linear, `_packed_params`): the int8 codes, per-channel scales and zero points (or one
   float64 scale and int64 zero point per tensor), and the bias.
5. Quantization metadata held in a module's `meta` dict (HQQ's per-group scale and zero
   point), named `<module>.meta.<key>` for `bits_of`.

Buffers computed at load time (rotary frequency tables) are not weights and are not counted.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

BitsOf = Callable[[str, Any], "float | None"]


def plain_bytes(t) -> int:
    """numel x element size of an ordinary tensor (0 for None)."""
    return 0 if t is None else t.numel() * t.element_size()


def subclass_bytes(t) -> int:
    """Rule 2: a tensor subclass counts its inner tensors, recursively."""
    flatten = getattr(type(t), "__tensor_flatten__", None)
    if flatten is None:
        return plain_bytes(t)
    names, _ = t.__tensor_flatten__()
    return sum(subclass_bytes(getattr(t, n)) for n in names)


def attached_state_bytes(t) -> int:
    """Rule 3: bitsandbytes' quantization state that lives beside a parameter."""
    total = 0
    state = getattr(t, "quant_state", None)
    if state is not None:
        total += plain_bytes(getattr(state, "absmax", None))
        nested = getattr(state, "state2", None)
        if nested is not None:
            total += plain_bytes(getattr(nested, "absmax", None))
            total += plain_bytes(getattr(nested, "code", None))
            total += plain_bytes(getattr(state, "offset", None))
    return total + plain_bytes(getattr(t, "SCB", None))


def packed_module_bytes(module) -> int:
    """Rule 4: a torch.ao dynamic quantized Linear (codes, quantization parameters, bias)."""
    import torch

    w = module.weight()
    total = w.numel() * w.element_size()
    if w.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        total += plain_bytes(w.q_per_channel_scales()) + plain_bytes(w.q_per_channel_zero_points())
    else:
        total += 8 + 8                                   # one float64 scale, one int64 zero point
    return total + plain_bytes(module.bias())


def _identity(t) -> int:
    return id(t) if getattr(type(t), "__tensor_flatten__", None) else t.data_ptr()


def stored_bytes(model, bits_of: BitsOf | None = None) -> int:
    """Bytes of the model's weights as stored, by the module docstring's rules."""
    import torch

    seen: set[int] = set()
    total_bits = 0.0

    def add(name: str, t, default_bytes: int) -> None:
        nonlocal total_bits
        bits = bits_of(name, t) if bits_of else None
        total_bits += default_bytes * 8 if bits is None else bits * t.numel()

    for mod_name, module in model.named_modules():
        prefix = f"{mod_name}." if mod_name else ""
        if hasattr(module, "_packed_params") and callable(getattr(module, "weight", None)):
            total_bits += packed_module_bytes(module) * 8
            continue
        for p_name, p in module.named_parameters(recurse=False):
            t = p.data if type(p) is torch.nn.Parameter else p
            key = _identity(t)
            if key in seen:
                continue
            seen.add(key)
            add(prefix + p_name, t, subclass_bytes(t) + attached_state_bytes(p))
        meta = getattr(module, "meta", None)
        if isinstance(meta, dict):
            for k, v in sorted(meta.items()):
                if torch.is_tensor(v):
                    add(f"{prefix}meta.{k}", v, plain_bytes(v))
    return int(round(total_bits / 8))
