"""SpQR-style quantization (Dettmers et al., arXiv:2306.03078): small groups at 3-4 bits with
quantized scales, GPTQ error feedback, and a sparse set of outlier weights kept in 16 bits.

Per Linear (W [out, in], calibration Hessian H; qcompare.methods.gptq):

1. Outliers: the `outlier_percent` % of weights with the largest score are kept exactly:
   - magnitude:   score_ij = |w_ij|
   - sensitivity: score_ij = (w_ij - q(w_ij))^2 / [H^-1]_jj, the OBS estimate of the output
     error that rounding this one weight costs (q: RTN with the method's groups).
2. GPTQ over the rest, the group statistics computed without the outliers, each group's scale
   quantized to `stat_bits` bits (asymmetric min-max over blocks of 16 consecutive scales,
   whose own minimum and step are kept in 16 bits); outliers keep their updated value.

Storage counted: `bits` per weight for every position (dense codes), per group a zero point
(asymmetric) and a `stat_bits` scale (16 bits when stat_bits is 0), 32 bits per 16 groups for
the second-level statistics, and per outlier a 16-bit value and a 16-bit column index, with a
32-bit row offset per output row (compressed sparse rows).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from qcompare.methods import gptq, rtn
from qcompare.methods.kernels.hessian import damp_hessian, prepare_hessian
from qcompare.methods.kernels.simulated import SCALE_BITS


def outlier_mask(W, H, fraction: float, rule: str, bits: int, group_size: int, sym: bool, damp: float):
    """Boolean [out, in] mask of the top `fraction` of weights by the rule's score (module doc)."""
    import torch

    k = round(fraction * W.numel())
    if k == 0:
        return torch.zeros_like(W, dtype=torch.bool)
    if rule == "magnitude":
        score = W.abs()
    else:
        gran = "group" if group_size else "channel"
        err = (W - rtn.fake_quantize(W, bits, sym, gran, group_size)) ** 2
        Hd, _, _ = damp_hessian(prepare_hessian(W, H, False)[1], damp)
        hinv_diag = torch.diagonal(torch.cholesky_inverse(torch.linalg.cholesky(Hd)))
        score = err / hinv_diag.unsqueeze(0)
    flat = score.reshape(-1)
    idx = torch.topk(flat, k).indices
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[idx] = True
    return mask.reshape(W.shape)


def storage_bits(shape, bits: int, sym: bool, group_size: int, stat_bits: int, n_outliers: int) -> float:
    out_f, in_f = shape
    n_groups = out_f * math.ceil(in_f / group_size)
    per_group = (stat_bits + 32 / gptq.STAT_BLOCK if stat_bits else SCALE_BITS) + (0 if sym else bits)
    return out_f * in_f * bits + n_groups * per_group + n_outliers * 32 + out_f * 32


@dataclass(frozen=True)
class SpQRConfig(gptq.GPTQConfig):
    bits: int = field(default=3, metadata={"help": "bits per weight code", "choices": (4, 3, 2)})
    group_size: int = field(default=16, metadata={"help": "input columns per scale", "min": 1})
    symmetric: bool = field(default=False, metadata={
        "help": "symmetric codes, or zero points", "choices": (True, False)})
    outlier_percent: float = field(default=1.0, metadata={
        "help": "percent of weights kept in 16 bits", "min": 0.0, "max": 100.0})
    outlier_rule: str = field(default="sensitivity", metadata={
        "help": "which weights are outliers: by OBS sensitivity or by magnitude",
        "choices": ("sensitivity", "magnitude")})
    stat_bits: int = field(default=3, metadata={
        "help": "bits of each group's scale (0 keeps 16-bit scales)", "choices": (0, 2, 3, 4, 8)})


class SpQR(gptq.GPTQ):
    name = "spqr"
    summary = "SpQR-style: small groups, quantized scales, GPTQ, 16-bit outliers stored sparsely"
    config_cls = SpQRConfig
    key_options = ("bits", "group_size", "outlier_percent")
    unit_quantizer = False          # its outliers and quantized statistics are not a unit setting

    @classmethod
    def linear_bits(cls, c, rows: int, cols: int) -> float:
        """Codes, quantized statistics and round(outlier_percent % of the weights) outliers,
        the count `outlier_mask` keeps."""
        n_out = round(c.outlier_percent / 100 * rows * cols)
        return storage_bits((rows, cols), c.bits, c.symmetric, c.group_size, c.stat_bits, n_out)

    def quantize_layer(self, name: str, W, H):
        c = self.config
        keep = outlier_mask(W.float(), H, c.outlier_percent / 100, c.outlier_rule, c.bits,
                            c.group_size, c.symmetric, c.damp)
        Q, info = gptq.gptq_quantize(W, H, bits=c.bits, group_size=c.group_size, sym=c.symmetric,
                                     act_order=c.act_order, damp=c.damp, block=c.block_size,
                                     keep=keep, stat_bits=c.stat_bits)
        n_out = int(keep.sum())
        bits = storage_bits(tuple(W.shape), c.bits, c.symmetric, c.group_size, c.stat_bits, n_out)
        if c.act_order and c.group_size:
            bits += W.shape[1] * 32
        return Q, bits, {"outliers_kept": n_out, "damp_used": info.damp}

    def settings_text(self) -> str:
        c = self.config
        return (f"SpQR-style int{c.bits} g{c.group_size}, {c.outlier_percent:g}% outliers by "
                f"{c.outlier_rule}, {c.stat_bits or 16}-bit scales")
