"""HQQ (Half-Quadratic Quantization, Badri & Shaji 2023) through the `hqq` library: calibration-free.

For each group of weights, HQQ keeps the scale s and solves for the zero point z (and the
codes) that minimise a sparsity-promoting error || W - s (Q - z) ||_p, p < 1, by half-quadratic
splitting (alternating a shrinkage step and a closed-form z update), so outliers cost less than
with min-max rounding. No calibration data is used.

Every Linear but the LM head becomes `hqq.core.quantize.HQQLinear` with
BaseQuantizeConfig(nbits, group_size, axis); its packed codes (W_q, uint8 or int32 for 3 bits)
are real, and its PyTorch backend dequantizes W_q to the compute dtype on every forward
(kernel: dequantized). Storage counted: W_q's bytes as packed, plus one scale and one zero
point per group at 16 bits (HQQ holds them in the compute dtype: fp32 here, fp16/bf16 in a
deployed model); unquantized tensors at 16 bits.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from qcompare.core.method import BuildContext, Built, Method, MethodConfig, Needs
from qcompare.methods.kernels.linears import quantizable_linears, set_module
from qcompare.methods.kernels.simulated import KEPT_BITS
from qcompare.runtime.storage import stored_bytes
from qcompare.runtime.torch_model import TorchRuntime

# bits -> (groups packed together, container bits per packed value): hqq's bit packing
PACKING = {8: (1, 8), 4: (2, 8), 2: (4, 8), 1: (8, 8), 3: (10, 32)}


@dataclass(frozen=True)
class HQQConfig(MethodConfig):
    bits: int = field(default=4, metadata={"help": "bits per weight code", "choices": (8, 4, 3, 2, 1)})
    group_size: int = field(default=64, metadata={
        "help": "weights per scale and zero point (a power of two: HQQ needs it to divide every "
                "weight tensor)", "choices": (8, 16, 32, 64, 128, 256, 512, 1024)})
    axis: int = field(default=1, metadata={
        "help": "1: groups along the input dimension; 0: along the output dimension (HQQ's "
                "choice for the lowest bit widths)", "choices": (0, 1)})


class HQQ(Method):
    name = "hqq"
    cpu_cost = 2                           # dequantizes at every matmul on a CPU
    family = "HQQ"
    summary = "HQQ: calibration-free half-quadratic quantization, packed codes (hqq library)"
    config_cls = HQQConfig
    needs = Needs(packages=("hqq",))
    key_options = ("bits", "group_size")

    @classmethod
    def stored_bits(cls, options: dict, tensor, shape) -> float:
        """HQQ packs each group's codes into containers (8 / 4 / 2 / 1 bits: 1 / 2 / 4 / 8
        codes a byte, over rows of `group_size`; 3 bits: 10 codes an int32); each group's
        scale and zero point, and every tensor left unquantized, at 16 bits."""
        if tensor.kind != "linear":
            return float(KEPT_BITS * tensor.numel)
        c = cls.config_cls.parse(options)
        groups = -(-tensor.numel // c.group_size)
        per, container = PACKING[c.bits]
        return float(-(-groups // per) * c.group_size * container + 2 * KEPT_BITS * groups)

    def build(self, ctx: BuildContext) -> Built:
        import hqq
        import torch
        from hqq.core.quantize import BaseQuantizeConfig, HQQLinear

        c = self.config
        ctx.progress("loading weights", 0.0)
        model = ctx.load_model("float32")
        compute = getattr(torch, ctx.dtype)
        cfg = BaseQuantizeConfig(nbits=c.bits, group_size=c.group_size, axis=c.axis)
        targets = list(quantizable_linears(model, include_lm_head=False))
        layers, packed = [], set()
        for i, (name, lin) in enumerate(targets):
            W = lin.weight.detach().clone()
            q = HQQLinear(lin, cfg, compute_dtype=compute, device=ctx.device, del_orig=True)
            W_hat = q.dequantize().float().reshape(W.shape).to(W.device)
            stats = sum(q.meta[k].numel() for k in ("scale", "zero") if torch.is_tensor(q.meta.get(k)))
            code_bits = q.W_q.numel() * q.W_q.element_size() * 8
            packed.add(f"{name}.W_q")
            layers.append({"layer": name, "shape": list(W.shape),
                           "weight_rel_err": float((W_hat - W).norm() / W.norm().clamp_min(1e-30)),
                           "bits_per_weight": (code_bits + stats * 16) / W.numel()})
            set_module(model, name, q)
            ctx.progress(f"quantizing {name}", (i + 1) / len(targets))
        for n, p in model.named_parameters():
            if n not in packed:
                p.data = p.data.to(compute)
        # packed codes as stored; per-group scale and zero (and every tensor left unquantized)
        # at 16 bits, as a deployed 16-bit model holds them
        weights = stored_bytes(model, lambda n, t: None if n in packed else KEPT_BITS)
        runtime = TorchRuntime(model, ctx.device, f"hqq {getattr(hqq, '__version__', '')} HQQLinear, "
                                           f"{HQQLinear.backend.name.lower()} backend on {ctx.device}")
        return Built(runtime=runtime, weights_bytes=weights, kernel="dequantized", storage="real",
                     compute_dtype=ctx.dtype, library="hqq", layers=layers,
                     notes=(f"HQQ int{c.bits} g{c.group_size} axis {c.axis}; packed codes, "
                            f"dequantized to {ctx.dtype} per forward; scale and zero counted at 16 bits"))
