"""Layer-by-layer calibration through a decoder, shared by GPTQ, AWQ, SmoothQuant, SpQR and PTQ.

Protocol (`run_sequential`): the calibration sequences go through the embedding once and the
inputs of the first decoder layer are captured (hidden states and the keyword arguments the
model passes, such as rotary position embeddings). Then for each decoder layer in order:

1. `process(index, layer, forward)` quantizes the layer; it may call `forward()` any number of
   times to run the layer over all calibration inputs (with hooks it registered itself);
2. the layer, now quantized, runs once more and its outputs become the next layer's inputs.

So each layer is calibrated on the activations produced by the already quantized layers before
it, as in the GPTQ paper. Statistics helpers here state their math:

* `HessianAccumulator`: H = (2 / N) * sum_t x_t x_t^T over the N calibration tokens x_t of a
  Linear's input (the Hessian of the layer-wise squared error ||W x - W_hat x||^2).
* `relative_output_error(W, W_hat, H)`: sqrt(tr(dW H dW^T) / tr(W H W^T)) with dW = W_hat - W,
  the relative RMS change of the Linear's output over the calibration tokens.
* `outlier_channels(H)`: input channels whose RMS activation sqrt(H_jj / 2) exceeds
  OUTLIER_FACTOR times the median channel's.
"""
from __future__ import annotations

from collections.abc import Callable

OUTLIER_FACTOR = 6.0

# What each per-Linear diagnostic a method may record means (the Results page's help).
DIAGNOSTIC_HELP = {
    "output_rel_err": "relative RMS change of the Linear's output on the calibration tokens, "
                      "sqrt(tr(dW H dW^T) / tr(W H W^T))",
    "weight_rel_err": "||W_hat - W|| / ||W||",
    "act_outlier_channels": f"input channels whose RMS activation exceeds {OUTLIER_FACTOR:g}x "
                            "the median channel's",
    "weight_outliers": f"weights more than {OUTLIER_FACTOR:g} standard deviations from the mean",
    "bits_per_weight": "storage bits per weight, scales and zero points included",
}


class _Captured(Exception):
    pass


def decoder_layers(model):
    """The list of decoder layers of a transformers causal LM (Llama-style `model.model.layers`)."""
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise TypeError(f"{type(model).__name__} has no model.layers: layer-wise calibration "
                        "supports decoder-only models laid out like Llama, Mistral or Qwen.")
    return layers


def capture_inputs(model, calib_ids, batch_size: int) -> list[tuple]:
    """(hidden_states, kwargs) entering the first decoder layer, one pair per batch."""
    import torch

    layers = decoder_layers(model)
    captured: list[tuple] = []

    def hook(_module, args, kwargs):
        hidden = args[0] if args else kwargs.pop("hidden_states")
        kw = {k: v for k, v in kwargs.items() if k not in ("past_key_values", "past_key_value",
                                                           "hidden_states")}
        kw["use_cache"] = False
        captured.append((hidden.detach(), kw))
        raise _Captured

    handle = layers[0].register_forward_pre_hook(hook, with_kwargs=True)
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            for b in range(0, len(calib_ids), batch_size):
                try:
                    model(input_ids=calib_ids[b:b + batch_size].to(device), use_cache=False)
                except _Captured:
                    pass
    finally:
        handle.remove()
    return captured


def _layer_out(out):
    return out[0] if isinstance(out, (tuple, list)) else out


def run_sequential(model, calib_ids, process: Callable, progress: Callable[[str, float], None],
                   batch_size: int = 8) -> None:
    """Calibrate and quantize each decoder layer in order (module doc)."""
    import torch

    inputs = capture_inputs(model, calib_ids, batch_size)
    layers = decoder_layers(model)

    for i, layer in enumerate(layers):
        def forward(layer=layer, inputs=inputs):
            with torch.no_grad():
                return [_layer_out(layer(h, **kw)) for h, kw in inputs]

        process(i, layer, forward)
        inputs = [(o, kw) for o, (_, kw) in zip(forward(), inputs)]
        progress(f"layer {i + 1}/{len(layers)}", (i + 1) / len(layers))


def linears_of(layer) -> dict:
    """name -> nn.Linear inside one decoder layer, in module order."""
    import torch

    return {n: m for n, m in layer.named_modules() if isinstance(m, torch.nn.Linear)}


def hook_inputs(modules: dict, fn: Callable[[str, object], None]) -> list:
    """Call fn(name, x2d) with each module's input flattened to [tokens, features]."""
    handles = []
    for name, mod in modules.items():
        def hook(_m, args, name=name):
            x = args[0]
            fn(name, x.detach().reshape(-1, x.shape[-1]))
        handles.append(mod.register_forward_pre_hook(hook))
    return handles


def run_hooked(modules: dict, fn: Callable[[str, object], None], forward: Callable[[], None]) -> None:
    """Run forward() with fn(name, x2d) called on each module's flattened input; the hooks are
    removed afterwards, also on error."""
    handles = hook_inputs(modules, fn)
    try:
        forward()
    finally:
        for h in handles:
            h.remove()


class HessianAccumulator:
    """H = (2/N) sum x x^T over all tokens seen (fp32, on the input's device)."""

    def __init__(self):
        self.sum = None
        self.n = 0

    def add(self, x2d) -> None:
        x = x2d.float()
        xtx = x.T @ x
        self.sum = xtx if self.sum is None else self.sum + xtx
        self.n += x.shape[0]

    @property
    def H(self):
        return self.sum * (2.0 / max(self.n, 1))


def collect_hessians(layer, forward, names=None) -> dict:
    """One forward of the layer over the calibration inputs; H for each (or the named) Linear."""
    mods = linears_of(layer)
    if names is not None:
        mods = {n: mods[n] for n in names}
    acc = {n: HessianAccumulator() for n in mods}
    run_hooked(mods, lambda n, x: acc[n].add(x), forward)
    return {n: a.H for n, a in acc.items()}


def relative_output_error(W, W_hat, H) -> float:
    dW = (W_hat - W).double()
    Wf = W.double()
    H = H.double()
    num = float(((dW @ H) * dW).sum())
    den = float(((Wf @ H) * Wf).sum())
    return (max(num, 0.0) / den) ** 0.5 if den > 0 else 0.0


def outlier_channels(H) -> int:
    import torch

    rms = torch.sqrt(torch.clamp(torch.diagonal(H) / 2, min=0))
    med = rms.median()
    return int((rms > OUTLIER_FACTOR * med).sum()) if med > 0 else 0


def weight_outliers(W) -> int:
    """Weights further than OUTLIER_FACTOR standard deviations from the tensor's mean."""
    w = W.float()
    return int(((w - w.mean()).abs() > OUTLIER_FACTOR * w.std()).sum())


def layer_diagnostics(name: str, W, W_hat, H, bits_per_weight: float, **extra) -> dict:
    """The per-Linear record saved with each run (see Built.layers)."""
    rel_w = float((W_hat - W).float().norm() / W.float().norm().clamp_min(1e-30))
    return {"layer": name, "shape": list(W.shape), "weight_rel_err": rel_w,
            "output_rel_err": relative_output_error(W, W_hat, H),
            "act_outlier_channels": outlier_channels(H), "weight_outliers": weight_outliers(W),
            "bits_per_weight": bits_per_weight, **extra}
