"""Round-to-nearest with MSE-optimal clipping: RTN whose scale per block is the one, among
`grid` clipping ratios, that gives the smallest squared error of the block's weights.

For each block w (as in `qcompare.methods.rtn`) and each ratio r in the grid
r_k = 1 - (1 - min_ratio) k / (grid - 1), k = 0 .. grid - 1 (r = 1 alone when grid = 1):

* symmetric:  s_r = r max|w| / qmax,  w_hat_r = s_r clamp(round(w / s_r), -qmax - 1, qmax)
* asymmetric: lo_r = r min(min w, 0), hi_r = r max(max w, 0), s_r = (hi_r - lo_r) / (2^b - 1),
              z_r = round(-lo_r / s_r),  w_hat_r = s_r (clamp(round(w / s_r) + z_r, 0, 2^b - 1) - z_r)

and the block keeps the r minimising sum (w - w_hat_r)^2 (the first such r on ties, so the
grid's r = 1 makes this exactly RTN wherever clipping does not help). Clipping trades a larger
error on the few largest weights for a finer grid on all the others; the search is the one
llama.cpp's quantizers and AWQ's clip search make. Stored exactly as RTN: the same codes, one
16-bit scale (and zero point) per block, so `stored_bits` is RTN's.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from qcompare.methods.rtn import RTN, RTNConfig, _blocks, quant_dequant


@dataclass(frozen=True)
class RTNMSEConfig(RTNConfig):
    grid: int = field(default=20, metadata={
        "help": "clipping ratios tried per block, evenly spaced from 1 down to min_ratio",
        "min": 1})
    min_ratio: float = field(default=0.5, metadata={
        "help": "the smallest clipping ratio tried (a fraction of the block's largest weight)",
        "min": 0.05, "max": 1.0})


def mse_fake_quantize(w, bits: int, symmetric: bool, granularity: str, group_size: int,
                      grid: int, min_ratio: float):
    """w_hat with each block's clipping ratio chosen by least squared error (module doc)."""
    import torch

    blocks, unblock = _blocks(w.float(), granularity, group_size)
    qmax = 2 ** (bits - 1) - 1 if symmetric else 2 ** bits - 1
    absmax = blocks.abs().amax(dim=1, keepdim=True)
    lo = blocks.amin(dim=1, keepdim=True).clamp(max=0)
    hi = blocks.amax(dim=1, keepdim=True).clamp(min=0)
    best = best_err = None
    steps = [1.0] if grid == 1 else [1 - (1 - min_ratio) * k / (grid - 1) for k in range(grid)]
    for r in steps:
        if symmetric:
            scale, zero = r * absmax / qmax, torch.zeros_like(absmax)
        else:
            scale = r * (hi - lo) / qmax
            zero = None
        scale = torch.where(scale == 0, torch.ones_like(scale), scale)
        if zero is None:
            zero = torch.round(-r * lo / scale)
        w_hat = quant_dequant(blocks, scale, zero, bits, symmetric)
        err = ((blocks - w_hat) ** 2).sum(dim=1, keepdim=True)
        if best is None:
            best, best_err = w_hat, err
        else:
            better = err < best_err
            best = torch.where(better, w_hat, best)
            best_err = torch.where(better, err, best_err)
    return unblock(best).to(w.dtype)


class RTNMSE(RTN):
    name = "rtn-mse"
    summary = "round-to-nearest with each block's scale clipped to the least squared error"
    config_cls = RTNMSEConfig
    unit_quantizer = False          # mixed precision and sweeps use RTN's plain scales

    def quantize_weight(self, w):
        c = self.config
        return mse_fake_quantize(w, c.bits, c.symmetric, c.granularity, c.group_size,
                                 c.grid, c.min_ratio)

    def settings_text(self) -> str:
        c = self.config
        return (f"{super().settings_text()}; scales by MSE-optimal clipping "
                f"({c.grid} ratios from 1 to {c.min_ratio:g})")
