"""AWQ (Lin et al., arXiv:2306.00978), built in: activation-aware scaling, then RTN in groups.

Linears that read the same input form a group, with the op that produces that input:
(input_layernorm -> q, k, v), (v_proj -> o_proj; with grouped-query attention their shapes differ, no
scale can be folded, and o_proj gets s = 1), (post_attention_layernorm -> gate, up), (up_proj -> down_proj). For a group
with calibration inputs X [n, in] and weights W_k:

1. Scale search. a = mean_t |X_tj| per input channel. For alpha in {0, 1/G, ..., (G-1)/G}:
   s = a^alpha, normalised s <- s / sqrt(max s * min s); loss(alpha) = sum_k ||X W_k^T -
   (X / s) Q(W_k * s)^T||^2 / n, with Q the RTN quantizer. The alpha with the lowest loss wins
   (alpha = 0 gives s = 1, plain RTN, so the search can only match or beat RTN on X).
2. Folding: W_k <- W_k * s (columns), and the producing op's output channels are divided by s
   (a norm's weight, or a Linear's rows and bias), so the full-precision function is unchanged.
3. Clipping search (optional, not for q/k, whose errors the softmax hides): per output row and
   group, the clip c = r * max|w| with r in {1, 0.95, ..., 0.55} that minimises the group's
   output error on `CLIP_TOKENS` tokens; weights are clamped to [-c, c].
4. RTN with `bits`, `group_size`, symmetric or with zero points; storage as RTN counts it.

Layers are processed in order, each calibrated on the outputs of the quantized layers before it
(qcompare.methods.kernels.sequential). Loss is measured on at most `search_tokens` tokens per group.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from qcompare.core.method import BuildContext, Built, Method, MethodConfig, Needs
from qcompare.methods import rtn
from qcompare.methods.kernels.scaling import fold_scale, scale_groups
from qcompare.methods.kernels.sequential import (
    decoder_layers,
    layer_diagnostics,
    run_hooked,
    run_sequential,
)
from qcompare.methods.kernels.simulated import finish_simulated, simulated_tensor_bits

CLIP_TOKENS = 512
CLIP_RATIOS = tuple(1 - i / 20 for i in range(10))


def group_loss(X, Ws, s, bits: int, group_size: int, sym: bool) -> float:
    """Mean squared output error of the group with scales s (step 1 of the module doc)."""
    err = 0.0
    for W in Ws:
        Wq = rtn.fake_quantize(W * s, bits, sym, "group", group_size) / s
        err += float(((X @ (W - Wq).T) ** 2).sum())
    return err / X.shape[0]


def search_scale(X, Ws, bits: int, group_size: int, sym: bool, alphas) -> tuple:
    """(best s, best alpha, {alpha: loss}) over `alphas` (step 1)."""
    import torch

    a = X.abs().mean(0).clamp_min(1e-8)
    losses, best = {}, (None, None, math.inf)
    for alpha in alphas:
        s = a.pow(alpha).clamp_min(1e-4)
        s = s / torch.sqrt(s.max() * s.min())
        loss = group_loss(X, Ws, s, bits, group_size, sym)
        losses[alpha] = loss
        if loss < best[2]:
            best = (s, alpha, loss)
    return best[0], best[1], losses


def search_clip(X, W, bits: int, group_size: int, sym: bool):
    """Per (row, group) clip value minimising the group's output error (step 3); [out, n_groups, 1]."""
    import torch

    out_f, in_f = W.shape
    ng = math.ceil(in_f / group_size)
    pad = ng * group_size - in_f
    Wg = torch.nn.functional.pad(W, (0, pad)).reshape(out_f, ng, group_size)
    Xg = torch.nn.functional.pad(X, (0, pad)).reshape(X.shape[0], ng, group_size)
    ref = torch.einsum("ogk,ngk->ogn", Wg, Xg)
    max_abs = Wg.abs().amax(2, keepdim=True)
    best_err = torch.full((out_f, ng, 1), math.inf, dtype=W.dtype, device=W.device)
    best = max_abs.clone()
    for r in CLIP_RATIOS:
        c = max_abs * r
        Wc = torch.maximum(torch.minimum(Wg, c), -c)
        Wq = rtn.fake_quantize(Wc.reshape(out_f, -1), bits, sym, "group", group_size).reshape(out_f, ng, group_size)
        err = ((torch.einsum("ogk,ngk->ogn", Wq, Xg) - ref) ** 2).mean(2, keepdim=True)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best = torch.where(better, c, best)
    return best


def apply_clip(W, clip, group_size: int):
    import torch

    out_f, in_f = W.shape
    ng = clip.shape[1]
    pad = ng * group_size - in_f
    Wg = torch.nn.functional.pad(W, (0, pad)).reshape(out_f, ng, group_size)
    return torch.maximum(torch.minimum(Wg, clip), -clip).reshape(out_f, -1)[:, :in_f]


@dataclass(frozen=True)
class AWQConfig(MethodConfig):
    bits: int = field(default=4, metadata={"help": "bits per weight code", "choices": (8, 4, 3, 2)})
    group_size: int = field(default=128, metadata={"help": "input columns per scale", "min": 1})
    symmetric: bool = field(default=False, metadata={
        "help": "symmetric codes, or zero points (AWQ's default)", "choices": (True, False)})
    n_grid: int = field(default=20, metadata={"help": "alpha values tried in [0, 1)", "min": 1})
    clip: bool = field(default=True, metadata={"help": "search a clipping range per group",
                                               "choices": (True, False)})
    search_tokens: int = field(default=1024, metadata={
        "help": "calibration tokens the scale search measures its loss on", "min": 64})


class AWQ(Method):
    name = "awq"
    family = "built-in (inspectable)"
    summary = "AWQ, built in: activation-aware per-channel scales folded into the previous op"
    config_cls = AWQConfig
    needs = Needs(calibration=True)
    key_options = ("bits", "group_size")

    @classmethod
    def stored_bits(cls, options: dict, tensor, shape) -> float:
        """RTN's grouped layout; the AWQ scales are folded into the previous op, not stored."""
        c = cls.config_cls.parse(options)
        return simulated_tensor_bits(tensor, lambda r, k: rtn.storage_bits(
            (r, k), c.bits, c.symmetric, "group", c.group_size))

    def build(self, ctx: BuildContext) -> Built:
        import torch

        c = self.config
        ctx.progress("loading weights", 0.0)
        model = ctx.load_model("float32")
        calib = ctx.calibration_ids()
        stride = max(1, math.ceil(calib.numel() / c.search_tokens))
        names = {id(m): n for n, m in model.named_modules()}
        for layer in decoder_layers(model):
            scale_groups(layer)                      # refuse unsupported layouts before work
        layer_bits: dict[str, float] = {}
        layers: list[dict] = []
        alphas = [i / c.n_grid for i in range(c.n_grid)]

        def process(_i, layer, forward):
            groups = scale_groups(layer)
            seen: dict[str, list] = {g[0]: [] for g in groups}
            firsts = {pname: layer.get_submodule(lin_names[0]) for pname, _p, lin_names in groups}
            run_hooked(firsts, lambda pname, x: seen[pname].append(x[::stride].float()), forward)
            # all scales first (on the inputs as captured), then clipping and rounding
            found = {}
            row_scale: dict[str, object] = {}
            for pname, prod, lin_names in groups:
                X = torch.cat(seen[pname])
                lins = [layer.get_submodule(n) for n in lin_names]
                originals = [lin.weight.data.clone() for lin in lins]
                s, alpha, losses = search_scale(X, [lin.weight.data for lin in lins],
                                                c.bits, c.group_size, c.symmetric,
                                                alphas if prod is not None else [0.0])
                if prod is not None:
                    fold_scale(prod, lins, s)
                if isinstance(prod, torch.nn.Linear):
                    row_scale[pname] = s
                found[pname] = (X, s, alpha, losses, lins, originals)
            for pname, _prod, lin_names in groups:
                X, s, alpha, losses, lins, originals = found[pname]
                Xs = X / s
                H = 2 * X.T @ X / X.shape[0]
                for lin, W0, lname in zip(lins, originals, lin_names):
                    W = lin.weight.data
                    clipped = not lname.endswith(("q_proj", "k_proj")) and c.clip
                    if clipped:
                        W = apply_clip(W, search_clip(Xs[:CLIP_TOKENS], W, c.bits, c.group_size,
                                                      c.symmetric), c.group_size)
                    Wq = rtn.fake_quantize(W, c.bits, c.symmetric, "group", c.group_size)
                    lin.weight.data.copy_(Wq)
                    full = names[id(lin)]
                    bits = rtn.storage_bits(tuple(W.shape), c.bits, c.symmetric, "group", c.group_size)
                    layer_bits[f"{full}.weight"] = bits / W.numel()
                    # the weights as seen from the original inputs and outputs
                    effective = Wq / s
                    if lname in row_scale:
                        effective = effective * row_scale[lname].unsqueeze(1)
                    layers.append(layer_diagnostics(
                        full, W0, effective, H, bits / W.numel(), alpha=alpha, clipped=clipped,
                        scale_loss=losses[alpha], rtn_loss=losses.get(0.0)))

        run_sequential(model, calib, process, ctx.progress)
        return finish_simulated(
            model, ctx, layer_bits, layers,
            f"int{c.bits} {'sym' if c.symmetric else 'asym'} g{c.group_size}, alpha grid "
            f"{c.n_grid}{', clip search' if c.clip else ''}; scales folded into norms / previous "
            f"Linears; calibration {ctx.calibration_label}; dequantized to {ctx.dtype} for compute")
