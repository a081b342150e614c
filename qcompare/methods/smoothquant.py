"""SmoothQuant (Xiao et al., arXiv:2211.10438): migrate activation outliers into the weights,
then W8A8 (qcompare.methods.w8a8).

For each norm and the Linears it feeds (input_layernorm -> q, k, v; post_attention_layernorm ->
gate, up), with calibration activations X of that input and weights W_k:

    s_j = max_t |X_tj|^alpha / max_k max_i |W_k[i, j]|^(1 - alpha)     (clamped to >= 1e-5)
    X' = X / s (the norm's weight divided by s),  W_k' = W_k * s (columns)

so X' W'^T = X W^T exactly before quantization: smoothing alone changes no output. Then every
Linear is quantized as W8A8 (int8 weights per channel; activations per token or static). With
`alpha_search`, alpha is chosen per group from {0.3, 0.35, ..., 0.9} by the group's output error
after W8A8 fake quantization, on at most SEARCH_TOKENS calibration tokens.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from qcompare.methods import w8a8
from qcompare.methods.kernels.scaling import fold_scale, scale_groups
from qcompare.methods.kernels.sequential import run_hooked

SEARCH_TOKENS = 1024
ALPHAS = tuple(round(0.3 + 0.05 * i, 2) for i in range(13))


def smoothing_scales(act_max, weights, alpha: float):
    """s_j of the module doc for per-channel activation maxima `act_max` [in]."""
    import torch

    w_max = torch.stack([w.abs().amax(0) for w in weights]).amax(0)
    s = act_max.clamp_min(1e-5).pow(alpha) / w_max.clamp_min(1e-5).pow(1 - alpha)
    return s.clamp_min(1e-5)


def w8a8_group_error(X, weights, s, act: str, weight_calibrator: str, percentile: float) -> float:
    """Output error of the group after smoothing with s and W8A8 (dynamic, or static min-max)."""
    Xs = X / s
    scale = w8a8.per_token_scale(Xs) if act == "dynamic" else (Xs.abs().max() / w8a8.QMAX).clamp_min(1e-8)
    Xq = w8a8.quantize_activations(Xs, scale)
    err = 0.0
    for W in weights:
        Wq = w8a8.weight_int8(W * s, weight_calibrator, percentile)
        err += float(((X @ W.T - Xq @ Wq.T) ** 2).sum())
    return err / X.shape[0]


def smooth_layer(layer, inputs: dict, alpha: float | None, act: str = "dynamic",
                 weight_calibrator: str = "minmax", percentile: float = 99.99) -> dict:
    """Smooth the norm-fed groups of one layer given each group's calibration inputs
    ({producer name: (X sample, exact per-channel max |x|)}); alpha None searches it.
    Returns notes per Linear name."""
    notes = {}
    for pname, prod, lin_names in scale_groups(layer):
        if pname not in inputs or prod is None:
            continue
        X, act_max = inputs[pname]
        lins = [layer.get_submodule(n) for n in lin_names]
        weights = [lin.weight.data for lin in lins]
        chosen = alpha
        if chosen is None:
            errs = {a: w8a8_group_error(X, weights, smoothing_scales(act_max, weights, a),
                                        act, weight_calibrator, percentile) for a in ALPHAS}
            chosen = min(errs, key=errs.get)
        s = smoothing_scales(act_max, weights, chosen)
        fold_scale(prod, lins, s)
        for n in lin_names:
            notes[n] = {"smooth_alpha": chosen, "smooth_scale_max": float(s.max()),
                        "smooth_scale_min": float(s.min())}
    return notes


@dataclass(frozen=True)
class SmoothQuantConfig(w8a8.W8A8Config):
    alpha: float = field(default=0.5, metadata={
        "help": "migration strength: 0 keeps activations, 1 moves all range into weights", "min": 0.0,
        "max": 1.0})
    alpha_search: bool = field(default=False, metadata={
        "help": "choose alpha per layer group by W8A8 output error", "choices": (True, False)})


class SmoothQuant(w8a8.W8A8):
    name = "smoothquant"
    summary = "SmoothQuant: per-channel smoothing (alpha), then W8A8 int8 weights and activations"
    config_cls = SmoothQuantConfig
    key_options = ("alpha", "activations")

    def settings_text(self) -> str:
        c = self.config
        a = "alpha searched" if c.alpha_search else f"alpha {c.alpha:g}"
        return f"SmoothQuant {a}; " + super().settings_text()

    def smooth(self, layer, forward) -> dict:
        import torch

        groups = [g for g in scale_groups(layer)
                  if g[1] is not None and not isinstance(g[1], torch.nn.Linear)]     # the norms
        seen: dict[str, list] = {g[0]: [] for g in groups}
        maxes: dict[str, object] = {}

        def record(pname, x):
            x = x.float()
            m = x.abs().amax(0)
            maxes[pname] = m if pname not in maxes else torch.maximum(maxes[pname], m)
            seen[pname].append(x)

        firsts = {pname: layer.get_submodule(lin_names[0]) for pname, _p, lin_names in groups}
        run_hooked(firsts, record, forward)
        inputs = {}
        for pname in seen:
            X = torch.cat(seen[pname])
            # the exact per-channel maxima give s; the subsample only scores alpha candidates
            inputs[pname] = (X[:: max(1, math.ceil(X.shape[0] / SEARCH_TOKENS))], maxes[pname])
        c = self.config
        return smooth_layer(layer, inputs, None if c.alpha_search else c.alpha, c.activations,
                            c.weight_calibrator, c.percentile)
