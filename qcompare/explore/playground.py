"""The quantization playground's arithmetic: one weight tensor, read straight from safetensors
into NumPy, quantized and dequantized by the source guide's formulas, with the error it makes.
NumPy only (the page that uses it never imports torch).

For a block of values x sharing one scale (the whole tensor, one output row, or `group_size`
consecutive inputs of one row) and b bits:

* symmetric:  q_max = 2^(b-1) - 1, q_min = -q_max - 1,  scale = t / q_max,  zero_point = 0
* asymmetric: q_min = 0, q_max = 2^b - 1,  scale = (hi - lo) / (q_max - q_min),
              zero_point = q_min - round(lo / scale)
* q = clamp(round(x / scale) + zero_point, q_min, q_max),   x_hat = scale * (q - zero_point)

where the range comes from the calibrator: t = max|x| and [lo, hi] = [min x, max x] for
min-max, each widened to contain 0 so that 0 is exact (as `qcompare.methods.rtn` does, which
this reproduces to 1e-6, tested); a block whose range is 0 gets scale 1. The other
calibrators clip: the range is multiplied by a ratio r in (0, 1]:

* percentile p: r per block = (the p-th percentile of |x| in the block) / max|x|;
* kl (TensorRT's entropy calibration): the histogram (2048 bins) of |x| / max|x| over all
  blocks; for each candidate threshold bin i, P = the first i bins with the rest added to bin
  i, Q = P merged into 2^(b-1) levels and spread back over its non-empty bins; r = the
  threshold minimising KL(P || Q);
* mse: r minimising the mean squared error of x_hat over a grid of 64 ratios in [0.05, 1], on a
  seeded sample of 64 rows (whole rows, so every block is intact; for one tensor-wide block,
  65,536 of its values), then applied to every block.

Statistics: MSE, SQNR = 10 log10(sum x^2 / sum (x - x_hat)^2) in dB, the largest absolute
error, and the share of values clipped (outside the block's grid).
"""
from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CALIBRATORS = ("minmax", "percentile", "kl", "mse")
GRANULARITIES = ("tensor", "channel", "group")
KL_BINS = 2048
MSE_GRID = np.linspace(0.05, 1.0, 64)
MSE_SAMPLE_ROWS = 64
MSE_SAMPLE_VALUES = 2 ** 16


@dataclass(frozen=True)
class Setting:
    bits: int = 4
    symmetric: bool = True
    granularity: str = "group"
    group_size: int = 128
    calibrator: str = "minmax"
    percentile: float = 99.9

    def __post_init__(self):
        if not 2 <= self.bits <= 8:
            raise ValueError("bits must be 2 to 8")
        if self.granularity not in GRANULARITIES or self.calibrator not in CALIBRATORS:
            raise ValueError("unknown granularity or calibrator")
        if self.group_size < 1 or not 50 < self.percentile <= 100:
            raise ValueError("group size must be positive and the percentile in (50, 100]")

    @property
    def label(self) -> str:
        gran = f"g{self.group_size}" if self.granularity == "group" else f"per-{self.granularity}"
        cal = f"p{self.percentile:g}" if self.calibrator == "percentile" else self.calibrator
        return f"{self.bits}-bit {'sym' if self.symmetric else 'asym'} {gran} {cal}"


@dataclass
class Quantized:
    x_hat: np.ndarray            # same shape as x, float32
    scale: np.ndarray            # [rows, blocks per row] (one column for tensor/channel)
    zero: np.ndarray
    lo: np.ndarray               # the clipped range of each block, [rows, blocks]
    hi: np.ndarray
    ratio: float                 # the calibrator's clip ratio (1: none; percentile: median)
    mse: float
    sqnr_db: float
    max_abs_err: float
    clipped: float               # share of values outside their block's grid


def blocks(x: np.ndarray, granularity: str, group_size: int) -> np.ndarray:
    """x [out, in] as [out, blocks per row, block length] (a ragged last group zero-padded;
    zero never changes a range that contains 0); the tensor as one block of everything."""
    out_f, in_f = x.shape
    if granularity == "tensor":
        return x.reshape(1, 1, -1)
    if granularity == "channel":
        return x.reshape(out_f, 1, in_f)
    n = math.ceil(in_f / group_size)
    pad = n * group_size - in_f
    if pad:
        x = np.pad(x, ((0, 0), (0, pad)))
    return x.reshape(out_f, n, group_size)


def _grid(lo, hi, bits: int, symmetric: bool):
    """(scale, zero, q_min, q_max) of blocks with range [lo, hi] (containing 0)."""
    if symmetric:
        q_max = 2 ** (bits - 1) - 1
        scale = np.maximum(np.abs(lo), np.abs(hi)) / q_max
        scale = np.where(scale == 0, 1.0, scale).astype(np.float32)
        return scale, np.zeros_like(scale), -q_max - 1, q_max
    q_min, q_max = 0, 2 ** bits - 1
    scale = ((hi - lo) / (q_max - q_min)).astype(np.float32)
    scale = np.where(scale == 0, 1.0, scale).astype(np.float32)
    zero = (q_min - np.round(lo / scale)).astype(np.float32)
    return scale, zero, q_min, q_max


def _dequant(b: np.ndarray, scale, zero, q_min: int, q_max: int) -> tuple[np.ndarray, np.ndarray]:
    q = np.clip(np.round(b / scale[..., None]) + zero[..., None], q_min, q_max)
    return ((q - zero[..., None]) * scale[..., None]).astype(np.float32), q


def _ranges(b: np.ndarray, ratio) -> tuple[np.ndarray, np.ndarray]:
    lo = np.minimum(b.min(axis=-1), 0) * ratio
    hi = np.maximum(b.max(axis=-1), 0) * ratio
    return lo.astype(np.float32), hi.astype(np.float32)


def kl_ratio(normalised: np.ndarray, bits: int, bins: int = KL_BINS) -> float:
    """TensorRT's entropy threshold (module doc) on values |x| / max|x| in [0, 1]. Each
    candidate's merge into levels is done with cumulative sums, so a candidate costs a few
    vector operations rather than a Python loop over its bins."""
    hist, _ = np.histogram(normalised, bins=bins, range=(0.0, 1.0))
    hist = hist.astype(np.float64)
    levels = 2 ** (bits - 1)
    csum = np.concatenate([[0.0], np.cumsum(hist)])
    cnz = np.concatenate([[0], np.cumsum(hist > 0)])
    tail = hist[::-1].cumsum()[::-1]                      # tail[i] = sum of bins i..end
    best, best_i = math.inf, bins
    for i in range(levels, bins + 1):
        p = hist[:i].copy()
        if i < bins:
            p[-1] += tail[i]
        edges = np.floor(np.linspace(0, i, levels + 1)).astype(int)
        sums, nz = np.diff(csum[edges]), np.diff(cnz[edges])
        per_bin = np.repeat(np.where(nz > 0, sums / np.maximum(nz, 1), 0.0), np.diff(edges))
        q = np.where(hist[:i] > 0, per_bin, 0.0)
        mask = p > 0
        if not mask.any() or (q[mask] == 0).any():
            continue
        p, q = p / p.sum(), q / q.sum()
        kl = float(np.sum(p[mask] * np.log(p[mask] / q[mask])))
        if kl < best:
            best, best_i = kl, i
    return best_i / bins


def quantize(x: np.ndarray, s: Setting, seed: int = 0) -> Quantized:
    """x [out, in] (float32) quantized and dequantized under `s` (module doc)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    b = blocks(x, s.granularity, s.group_size)
    absmax = np.maximum(np.abs(b).max(axis=-1), 1e-30)
    ratio = np.float32(1.0)
    if s.calibrator == "percentile":
        ratio = np.minimum(np.percentile(np.abs(b), s.percentile, axis=-1) / absmax, 1.0).astype(np.float32)
    elif s.calibrator == "kl":
        ratio = np.float32(kl_ratio((np.abs(b) / absmax[..., None]).ravel(), s.bits))
    elif s.calibrator == "mse":
        rng = np.random.default_rng(seed)
        if b.shape[0] == 1:            # one block: a seeded sample of its values
            sample = rng.choice(b.ravel(), min(MSE_SAMPLE_VALUES, b.size), replace=False).reshape(1, 1, -1)
        else:
            sample = b[rng.permutation(b.shape[0])[:MSE_SAMPLE_ROWS]]
        errs = []
        for r in MSE_GRID:
            lo, hi = _ranges(sample, np.float32(r))
            scale, zero, q_min, q_max = _grid(lo, hi, s.bits, s.symmetric)
            errs.append(float(np.mean((_dequant(sample, scale, zero, q_min, q_max)[0] - sample) ** 2)))
        ratio = np.float32(MSE_GRID[int(np.argmin(errs))])
    lo, hi = _ranges(b, ratio)
    scale, zero, q_min, q_max = _grid(lo, hi, s.bits, s.symmetric)
    xb_hat, q = _dequant(b, scale, zero, q_min, q_max)
    clipped = float(np.mean((np.round(b / scale[..., None]) + zero[..., None] < q_min)
                            | (np.round(b / scale[..., None]) + zero[..., None] > q_max)))
    x_hat = unblock(xb_hat, x.shape, s.granularity)
    err = x_hat - x
    power, noise = float(np.sum(x.astype(np.float64) ** 2)), float(np.sum(err.astype(np.float64) ** 2))
    return Quantized(x_hat, scale, zero, lo, hi,
                     float(np.median(ratio)) if np.ndim(ratio) else float(ratio),
                     noise / x.size, 10 * math.log10(power / noise) if noise > 0 else math.inf,
                     float(np.abs(err).max()), clipped)


def unblock(b: np.ndarray, shape: tuple[int, int], granularity: str) -> np.ndarray:
    """The inverse of `blocks`."""
    out_f, in_f = shape
    if granularity == "tensor":
        return b.reshape(shape)
    return b.reshape(out_f, -1)[:, :in_f]


def grid_levels(scale: float, zero: float, bits: int, symmetric: bool) -> np.ndarray:
    """The values one block's codes dequantize to (for drawing the grid over a histogram)."""
    q_min, q_max = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if symmetric else (0, 2 ** bits - 1)
    return (np.arange(q_min, q_max + 1) - zero) * scale


# --- reading tensors straight from safetensors --------------------------------------------------

_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": None, "F64": np.float64}


def tensor_index(path: str | Path) -> dict[str, dict]:
    """name -> {'dtype', 'shape', 'data_offsets'} from a .safetensors header (no data read)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return header


def read_tensor(path: str | Path, name: str) -> np.ndarray:
    """One tensor of a .safetensors file as float32 NumPy, read by its byte offsets (bf16 is
    widened by shifting its bits into the high half of a float32)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        info = header[name]
        start, end = info["data_offsets"]
        f.seek(8 + n + start)
        raw = f.read(end - start)
    if info["dtype"] == "BF16":
        out = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
    elif info["dtype"] in _DTYPES:
        out = np.frombuffer(raw, dtype=_DTYPES[info["dtype"]]).astype(np.float32)
    else:
        raise ValueError(f"{name} is stored as {info['dtype']}, which the playground does not read")
    return out.reshape(info["shape"])


def weight_tensors(folder: str | Path) -> dict[str, tuple[str, list[int]]]:
    """Every 2-D weight of the decoder's Linears in a model folder: name -> (file, shape)."""
    out = {}
    for path in sorted(Path(folder).glob("*.safetensors")):
        for name, info in tensor_index(path).items():
            if len(info["shape"]) == 2 and ".layers." in name and name.endswith("proj.weight"):
                out[name] = (str(path), info["shape"])
    return out
