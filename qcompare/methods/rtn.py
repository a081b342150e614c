"""Round-to-nearest (RTN) weight quantization of Linear layers, stored as simulated packed ints.

For a block of weights w sharing one scale s (a whole tensor, one output row, or `group_size`
consecutive input columns of one row):

* symmetric:  qmax = 2^(b-1) - 1,  s = max|w| / qmax,
              q = clamp(round(w / s), -qmax - 1, qmax),          w_hat = s * q
* asymmetric: lo = min(min w, 0), hi = max(max w, 0),  s = (hi - lo) / (2^b - 1),
              z = round(-lo / s),  q = clamp(round(w / s) + z, 0, 2^b - 1),  w_hat = s * (q - z)

(s = 1 where a block is all zeros.) A ragged last group is as if padded with zeros, which
changes no scale because 0 is always inside the block's range.

Storage, as a packed format would hold it: b bits per code, a 16-bit scale per block, and for
asymmetric a b-bit zero point per block. Tensors left unquantized (embeddings, norms, and the
LM head unless included) are counted at 16 bits per value.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from qcompare.core.method import BuildContext, Built, Method, MethodConfig
from qcompare.methods.kernels.linears import quantizable_linears, untie_lm_head
from qcompare.methods.kernels.simulated import SCALE_BITS, finish_simulated, simulated_tensor_bits


@dataclass(frozen=True)
class RTNConfig(MethodConfig):
    bits: int = field(default=4, metadata={"help": "bits per weight code", "choices": (8, 4, 3, 2)})
    symmetric: bool = field(default=True, metadata={
        "help": "symmetric around zero (no zero point) or asymmetric with a zero point",
        "choices": (True, False)})
    granularity: str = field(default="group", metadata={
        "help": "weights sharing one scale: the whole tensor, one output channel, or a group",
        "choices": ("tensor", "channel", "group")})
    group_size: int = field(default=128, metadata={
        "help": "input columns per scale when granularity is group", "min": 1})
    include_lm_head: bool = field(default=False, metadata={
        "help": "quantize the LM head too (untied from the embedding first)", "choices": (True, False)})


def _blocks(w, granularity: str, group_size: int):
    """View of w as [n_blocks, block_len] (zero-padded) and a function undoing it."""
    import torch

    out_f, in_f = w.shape
    if granularity == "tensor":
        return w.reshape(1, -1), lambda b: b.reshape(out_f, in_f)
    if granularity == "channel":
        return w, lambda b: b
    n_groups = math.ceil(in_f / group_size)
    pad = n_groups * group_size - in_f
    padded = torch.nn.functional.pad(w, (0, pad)) if pad else w
    return (padded.reshape(out_f * n_groups, group_size),
            lambda b: b.reshape(out_f, n_groups * group_size)[:, :in_f])


def quantize_blocks(blocks, bits: int, symmetric: bool):
    """Integer codes, scales and zero points of each row of `blocks` (formulas in the module doc)."""
    import torch

    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        scale = blocks.abs().amax(dim=1, keepdim=True) / qmax
        scale = torch.where(scale == 0, torch.ones_like(scale), scale)
        q = torch.clamp(torch.round(blocks / scale), -qmax - 1, qmax)
        return q, scale, torch.zeros_like(scale)
    qmax = 2 ** bits - 1
    lo = blocks.amin(dim=1, keepdim=True).clamp(max=0)
    hi = blocks.amax(dim=1, keepdim=True).clamp(min=0)
    scale = (hi - lo) / qmax
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    zero = torch.round(-lo / scale)
    q = torch.clamp(torch.round(blocks / scale) + zero, 0, qmax)
    return q, scale, zero


def quant_dequant(w, scale, zero, bits: int, symmetric: bool):
    """w_hat = s * (q - z) for values w given their block's scale s and zero point z."""
    import torch

    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        return torch.clamp(torch.round(w / scale), -qmax - 1, qmax) * scale
    q = torch.clamp(torch.round(w / scale) + zero, 0, 2 ** bits - 1)
    return (q - zero) * scale


def fake_quantize(w, bits: int, symmetric: bool, granularity: str, group_size: int):
    """w_hat: w quantized then dequantized, same shape and dtype as w (computed in fp32)."""
    blocks, unblock = _blocks(w.float(), granularity, group_size)
    q, scale, zero = quantize_blocks(blocks, bits, symmetric)
    return unblock((q - zero) * scale).to(w.dtype)


def storage_bits(shape: tuple[int, int], bits: int, symmetric: bool, granularity: str,
                 group_size: int) -> int:
    """Bits a packed format takes for one [out, in] weight: codes + scales (+ zero points)."""
    out_f, in_f = shape
    if granularity == "tensor":
        n_scales = 1
    elif granularity == "channel":
        n_scales = out_f
    else:
        n_scales = out_f * math.ceil(in_f / group_size)
    return out_f * in_f * bits + n_scales * (SCALE_BITS + (0 if symmetric else bits))


class RTN(Method):
    name = "rtn"
    family = "round-to-nearest"
    summary = "round-to-nearest integer weights, per tensor / channel / group, sym or asym"
    config_cls = RTNConfig
    key_options = ("bits", "granularity", "group_size")
    unit_quantizer = True

    @classmethod
    def unit_options(cls, bits: int, symmetric: bool, group_size: int, damp: float) -> dict:
        return {"bits": bits, "symmetric": symmetric,
                "granularity": "group" if group_size else "channel",
                "group_size": group_size or 128}

    @classmethod
    def quantize_unit(cls, W, H, bits: int, symmetric: bool, group_size: int, damp: float):
        o = cls.unit_options(bits, symmetric, group_size, damp)
        return fake_quantize(W, bits, symmetric, o["granularity"], o["group_size"])

    @classmethod
    def unit_storage_bits(cls, rows: int, cols: int, bits: int, symmetric: bool,
                          group_size: int) -> int:
        o = cls.unit_options(bits, symmetric, group_size, 0.0)
        return storage_bits((rows, cols), bits, symmetric, o["granularity"], o["group_size"])

    @classmethod
    def sizing_tensors(cls, options: dict, shape) -> list:
        from qcompare.core.shape import untied

        return untied(shape.tensors()) if options.get("include_lm_head") else shape.tensors()

    @classmethod
    def stored_bits(cls, options: dict, tensor, shape) -> float:
        c = cls.config_cls.parse(options)
        kinds = ("linear", "lm_head") if c.include_lm_head else ("linear",)
        return simulated_tensor_bits(tensor, lambda r, k: storage_bits(
            (r, k), c.bits, c.symmetric, c.granularity, c.group_size), kinds)

    def quantize_weight(self, w):
        """w_hat of one Linear's weight under this config (variants change how scales are
        chosen, not what is stored)."""
        c = self.config
        return fake_quantize(w, c.bits, c.symmetric, c.granularity, c.group_size)

    def settings_text(self) -> str:
        c = self.config
        return (f"int{c.bits} {'sym' if c.symmetric else 'asym'} {c.granularity}"
                + (f" g{c.group_size}" if c.granularity == "group" else ""))

    def build(self, ctx: BuildContext) -> Built:
        import torch

        c = self.config
        ctx.progress("loading weights", 0.0)
        model = ctx.load_model("float32")
        if c.include_lm_head:
            untie_lm_head(model)
        targets = list(quantizable_linears(model, c.include_lm_head))
        layer_bits: dict[str, float] = {}
        layers = []
        with torch.no_grad():
            for i, (name, lin) in enumerate(targets):
                w = lin.weight.data
                w_hat = self.quantize_weight(w)
                rel = float((w_hat - w).norm() / w.norm().clamp_min(1e-30))
                lin.weight.data.copy_(w_hat)
                bits = storage_bits(tuple(w.shape), c.bits, c.symmetric, c.granularity, c.group_size)
                layer_bits[f"{name}.weight"] = bits / w.numel()
                layers.append({"layer": name, "shape": list(w.shape), "weight_rel_err": rel,
                               "bits_per_weight": bits / w.numel()})
                ctx.progress(f"quantizing {name}", (i + 1) / len(targets))
        return finish_simulated(
            model, ctx, layer_bits, layers,
            f"{self.settings_text()}; dequantized to {ctx.dtype} for compute; "
            "unquantized tensors counted at 16 bits")
