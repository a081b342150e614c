"""W8A8 post-training quantization with selectable range calibrators (simulated int8 compute).

Every Linear but the LM head becomes a `W8A8Linear`:

* weights: int8 per output channel, symmetric, threshold per row from a weight calibrator
  (qcompare.methods.kernels.calibrators: minmax, percentile, mse); s_w = T_row / 127;
* activations (the Linear's input), symmetric int8, either
  - dynamic: per token, s_x = max_j |x_tj| / 127 computed at run time, or
  - static: one scale per Linear, s_x = T / 127 with T from an activation calibrator (minmax,
    percentile, mse, entropy) over the calibration activations of that Linear;
* y = Q(x) W_hat^T + b, with Q(x) = clamp(round(x / s_x), -128, 127) * s_x, in floating point:
  the numbers an int8 GEMM with these scales gives, up to float rounding (kernel: simulated).

Layers are calibrated in order on the outputs of the already quantized layers (activations
included). The static activation statistics use every calibration value for the max and a
seeded subsample of at most ACT_SAMPLE values for the other calibrators.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qcompare.core.method import BuildContext, Built, Method, MethodConfig, Needs
from qcompare.methods import rtn
from qcompare.methods.kernels import calibrators
from qcompare.methods.kernels.linears import set_module
from qcompare.methods.kernels.sequential import (
    HessianAccumulator,
    layer_diagnostics,
    linears_of,
    run_hooked,
    run_sequential,
)
from qcompare.methods.kernels.simulated import finish_simulated, simulated_tensor_bits

ACT_SAMPLE = 1_000_000
QMAX = 127


def quantize_activations(x, scale):
    """Symmetric int8 fake quantization with `scale` (a number, or per-token [..., 1])."""
    import torch

    return torch.clamp(torch.round(x / scale), -QMAX - 1, QMAX) * scale


def per_token_scale(x):
    return (x.abs().amax(-1, keepdim=True) / QMAX).clamp_min(1e-8)


def _make_linear_class():
    import torch

    class W8A8Linear(torch.nn.Module):
        """A Linear with int8-on-a-grid weights and fake-quantized int8 inputs (module doc)."""

        def __init__(self, weight, bias, act: str, act_scale: float | None):
            super().__init__()
            self.weight = torch.nn.Parameter(weight, requires_grad=False)
            self.bias = None if bias is None else torch.nn.Parameter(bias, requires_grad=False)
            self.act = act
            self.register_buffer("act_scale", torch.tensor(float(act_scale or 1.0)))
            self.in_features, self.out_features = weight.shape[1], weight.shape[0]

        def forward(self, x):
            scale = per_token_scale(x) if self.act == "dynamic" else self.act_scale.to(x.dtype)
            return torch.nn.functional.linear(quantize_activations(x, scale), self.weight, self.bias)

        def extra_repr(self):
            return f"in={self.in_features}, out={self.out_features}, act={self.act}"

    return W8A8Linear


def weight_int8(W, calibrator: str, percentile: float):
    """W_hat on the per-row int8 grid whose threshold the weight calibrator chose."""
    import torch

    t = calibrators.per_row(W.abs().float(), calibrator, 8, percentile).clamp_min(1e-12)
    s = t / QMAX
    return (torch.clamp(torch.round(W / s), -QMAX - 1, QMAX) * s).to(W.dtype)


class ActStats:
    """Exact max |x| and a seeded subsample of |x| for one Linear input."""

    def __init__(self, seed: int):
        self.max = 0.0
        self.parts: list[np.ndarray] = []
        self.n = 0
        self.rng = np.random.default_rng(seed)

    def add(self, x2d) -> None:
        a = x2d.detach().abs().float().reshape(-1)
        self.max = max(self.max, float(a.max()))
        keep = min(a.numel(), ACT_SAMPLE // 8)
        idx = self.rng.choice(a.numel(), size=keep, replace=False) if keep < a.numel() else None
        sample = a[idx] if idx is not None else a
        self.parts.append(sample.cpu().numpy())
        self.n += a.numel()

    def sample(self) -> np.ndarray:
        s = np.concatenate(self.parts)
        if len(s) > ACT_SAMPLE:
            s = self.rng.choice(s, size=ACT_SAMPLE, replace=False)
        return s


@dataclass(frozen=True)
class W8A8Config(MethodConfig):
    activations: str = field(default="dynamic", metadata={
        "help": "int8 activation scales: per token at run time, or one static scale per Linear",
        "choices": ("dynamic", "static")})
    act_calibrator: str = field(default="minmax", metadata={
        "help": "range of static activation scales", "choices": calibrators.CALIBRATORS})
    weight_calibrator: str = field(default="minmax", metadata={
        "help": "range of each output channel's weight scale", "choices": calibrators.WEIGHT_CALIBRATORS})
    percentile: float = field(default=99.99, metadata={
        "help": "percentile for the percentile calibrators", "min": 50.0, "max": 100.0})


class W8A8(Method):
    name = "w8a8"
    family = "built-in (inspectable)"
    summary = "W8A8 PTQ: int8 weights per channel, int8 activations (dynamic or static, calibrated)"
    config_cls = W8A8Config
    needs = Needs(calibration=True)
    key_options = ("activations",)

    @classmethod
    def stored_bits(cls, options: dict, tensor, shape) -> float:
        """int8 codes with a 16-bit scale per output row; smoothing factors are folded."""
        return simulated_tensor_bits(tensor, lambda r, k: rtn.storage_bits((r, k), 8, True, "channel", 0))

    def smooth(self, layer, forward) -> dict:
        """Hook for SmoothQuant: rescale the layer before quantization; returns notes per Linear."""
        return {}

    def settings_text(self) -> str:
        c = self.config
        act = "per-token dynamic" if c.activations == "dynamic" else f"static ({c.act_calibrator})"
        return f"W8A8: weights int8 per channel ({c.weight_calibrator}), activations int8 {act}"

    def build(self, ctx: BuildContext) -> Built:

        c = self.config
        W8A8Linear = _make_linear_class()
        ctx.progress("loading weights", 0.0)
        model = ctx.load_model("float32")
        calib = ctx.calibration_ids()
        names = {id(m): n for n, m in model.named_modules()}
        layer_bits: dict[str, float] = {}
        layers: list[dict] = []

        def process(i, layer, forward):
            smooth_notes = self.smooth(layer, forward)
            lins = linears_of(layer)
            hess = {n: HessianAccumulator() for n in lins}
            stats = {n: ActStats(seed=i) for n in lins}

            def seen(n, x):
                hess[n].add(x)
                if c.activations == "static":
                    stats[n].add(x)

            run_hooked(lins, seen, forward)
            for n, lin in lins.items():
                W = lin.weight.data
                W_hat = weight_int8(W, c.weight_calibrator, c.percentile)
                act_scale, extra = None, {}
                if c.activations == "static":
                    t = calibrators.threshold(stats[n].sample(), c.act_calibrator, 8, c.percentile,
                                              true_max=stats[n].max if c.act_calibrator == "minmax" else None)
                    act_scale = t / QMAX
                    extra = {"act_threshold": t, "act_max": stats[n].max}
                full = names[id(lin)]
                bits = rtn.storage_bits(tuple(W.shape), 8, True, "channel", 0)
                layer_bits[f"{full}.weight"] = bits / W.numel()
                layers.append(layer_diagnostics(full, W, W_hat, hess[n].H, bits / W.numel(),
                                                **extra, **smooth_notes.get(n, {})))
                bias = None if lin.bias is None else lin.bias.data
                set_module(model, full, W8A8Linear(W_hat, bias, c.activations, act_scale))

        run_sequential(model, calib, process, ctx.progress)
        return finish_simulated(
            model, ctx, layer_bits, layers,
            f"{self.settings_text()}; int8 arithmetic simulated in {ctx.dtype}; "
            f"calibration {ctx.calibration_label}")
