"""Simulated storage: a model whose weights were rounded onto a grid but are held dequantized,
with its bytes counted as the packed format would store them."""
from __future__ import annotations

from qcompare.core.method import BuildContext, Built
from qcompare.runtime.storage import stored_bytes
from qcompare.runtime.torch_model import TorchRuntime

SCALE_BITS = 16          # one scale (or zero point) of a packed format
KEPT_BITS = 16           # a tensor left unquantized, as a deployed 16-bit model holds it


def simulated_tensor_bits(tensor, linear_bits, quantized=("linear",)) -> float:
    """Stored bits of one tensor (`qcompare.core.shape.Tensor`) under a simulated-storage method:
    `linear_bits(rows, cols)` for the kinds it quantizes, KEPT_BITS per value for the rest."""
    if tensor.kind in quantized:
        return float(linear_bits(tensor.rows, tensor.cols))
    return float(KEPT_BITS * tensor.numel)


def finish_simulated(model, ctx: BuildContext, layer_bits: dict[str, float], layers: list[dict],
                     notes: str) -> Built:
    """The Built of a simulated-storage method: the model cast to the compute dtype, its bytes
    counted at `layer_bits[param name]` bits per value (KEPT_BITS for tensors left unquantized)."""
    import torch

    model.to(getattr(torch, ctx.dtype))
    weights = stored_bytes(model, lambda n, t: layer_bits.get(n, KEPT_BITS))
    return Built(runtime=TorchRuntime(model, ctx.device), weights_bytes=weights, kernel="simulated",
                 storage="simulated", compute_dtype=ctx.dtype, layers=layers, notes=notes)
