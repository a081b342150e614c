"""FP8 (e4m3) weight-only quantization, simulated through torch.float8_e4m3fn.

For the weights w sharing one scale (a whole tensor, or one output row):
s = max|w| / 448 (448 = the largest finite e4m3 value; s = 1 for an all-zero block), and
w_hat = s * fp8(w / s), where fp8 rounds to the nearest e4m3 value (4 exponent bits, 3 mantissa
bits, round-half-to-even) exactly as the cast to torch.float8_e4m3fn does. Weights are held
dequantized in the compute dtype (`kernel: simulated`); storage counts 8 bits per weight and a
16-bit scale per block. The LM head and embeddings stay unquantized (16 bits).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from qcompare.core.method import BuildContext, Built, Method, MethodConfig
from qcompare.methods.kernels.linears import quantizable_linears
from qcompare.methods.kernels.simulated import SCALE_BITS, finish_simulated, simulated_tensor_bits

E4M3_MAX = 448.0


@dataclass(frozen=True)
class FP8Config(MethodConfig):
    scaling: str = field(default="channel", metadata={
        "help": "weights sharing one scale: one output channel, or the whole tensor",
        "choices": ("channel", "tensor")})


def fake_quantize_e4m3(w, per_channel: bool):
    """w_hat = s * fp8(w / s) with s = max|w| / 448 per row or per tensor (module doc)."""
    import torch

    x = w.float()
    amax = x.abs().amax(dim=1, keepdim=True) if per_channel else x.abs().amax()
    scale = torch.where(amax == 0, torch.ones_like(amax), amax / E4M3_MAX)
    return ((x / scale).to(torch.float8_e4m3fn).float() * scale).to(w.dtype)


class FP8(Method):
    name = "fp8"
    family = "float8 (simulated)"
    summary = "FP8 e4m3 weight-only, a scale per channel or tensor (simulated via float8_e4m3fn)"
    config_cls = FP8Config
    key_options = ("scaling",)

    @classmethod
    def stored_bits(cls, options: dict, tensor, shape) -> float:
        per_channel = cls.config_cls.parse(options).scaling == "channel"
        return simulated_tensor_bits(tensor, lambda r, k: 8 * r * k + SCALE_BITS * (r if per_channel else 1))

    def build(self, ctx: BuildContext) -> Built:
        import torch

        per_channel = self.config.scaling == "channel"
        ctx.progress("loading weights", 0.0)
        model = ctx.load_model("float32")
        targets = list(quantizable_linears(model, include_lm_head=False))
        layer_bits, layers = {}, []
        with torch.no_grad():
            for i, (name, lin) in enumerate(targets):
                w = lin.weight.data
                w_hat = fake_quantize_e4m3(w, per_channel)
                n_scales = w.shape[0] if per_channel else 1
                bits = (8 * w.numel() + SCALE_BITS * n_scales) / w.numel()
                layers.append({"layer": name, "shape": list(w.shape), "bits_per_weight": bits,
                               "weight_rel_err": float((w_hat - w).norm() / w.norm().clamp_min(1e-30))})
                lin.weight.data.copy_(w_hat)
                layer_bits[f"{name}.weight"] = bits
                ctx.progress(f"quantizing {name}", (i + 1) / len(targets))
        return finish_simulated(model, ctx, layer_bits, layers,
                                f"FP8 e4m3 weights, one scale per {self.config.scaling}; "
                                f"dequantized to {ctx.dtype} for compute; unquantized tensors "
                                "counted at 16 bits")
