"""Range calibrators for symmetric int8 (or b-bit) quantization: which |x| maps to the top code.

Each takes absolute values (a 1-D sample, or rows for the per-row variants) and returns the
threshold T; values are then quantized as clamp(round(x / s), -qmax-1, qmax) * s, s = T / qmax.

* minmax:     T = max |x|                       (no clipping; outliers stretch the grid)
* percentile: T = the p-th percentile of |x|    (clips the top 100 - p percent)
* mse:        T = argmin over T_k = max|x| * k / GRID, k = GRID/5 .. GRID, of
              mean (x - Q_T(x))^2               (clip that minimises quantization error)
* entropy:    TensorRT's KL calibration. A HIST_BINS-bin histogram of |x| over [0, max|x|];
              for each candidate i in [levels, HIST_BINS] bins (every ENTROPY_STEP-th), P = the first i bins with the
              tail mass added to bin i, Q = P's first i bins merged into `levels` = qmax + 1
              equal chunks and expanded back (mass spread over each chunk's non-empty bins);
              T = (i + 0.5) * bin width for the i minimising KL(P || Q).

Weights use per-output-channel rows (`per_row`: minmax, percentile, mse; the entropy method
needs a distribution, which a single row of a few hundred weights does not give, so it is
offered for activations only). Activations use one tensor-wide threshold from calibration data.
"""
from __future__ import annotations

import numpy as np

CALIBRATORS = ("minmax", "percentile", "mse", "entropy")
WEIGHT_CALIBRATORS = ("minmax", "percentile", "mse")
HIST_BINS = 2048
ENTROPY_STEP = 8                 # candidate thresholds every 8 bins (256 candidates)
GRID = 100


def _quant_err(x, t, qmax):
    import torch

    s = (t / qmax).clamp_min(1e-12)
    q = torch.clamp(torch.round(x / s), -qmax - 1, qmax) * s
    return ((x - q) ** 2).mean(-1)


def per_row(absw, method: str, bits: int = 8, percentile: float = 99.99):
    """Threshold per row of |W| [rows, cols] -> [rows, 1] (minmax, percentile or mse)."""
    import torch

    qmax = 2 ** (bits - 1) - 1
    mx = absw.amax(1, keepdim=True)
    if method == "minmax":
        return mx
    if method == "percentile":
        return torch.quantile(absw.float(), percentile / 100, dim=1, keepdim=True).clamp_min(1e-12)
    if method == "mse":
        best_t, best_e = mx.clone(), _quant_err(absw, mx, qmax)
        for k in range(GRID // 5, GRID):
            t = mx * (k / GRID)
            e = _quant_err(absw, t, qmax)
            better = e < best_e
            best_e = torch.where(better, e, best_e)
            best_t = torch.where(better.unsqueeze(1), t, best_t)
        return best_t
    raise ValueError(f"weight calibrator must be one of {', '.join(WEIGHT_CALIBRATORS)}; got {method!r}")


def threshold(absx: np.ndarray, method: str, bits: int = 8, percentile: float = 99.99,
              true_max: float | None = None) -> float:
    """One threshold for a sample of |x| (module doc). `true_max` is the exact max when the
    sample is a subsample (minmax uses it)."""
    absx = np.asarray(absx, dtype=np.float64).ravel()
    mx = float(true_max if true_max is not None else absx.max(initial=0.0))
    if mx <= 0:
        return 1e-8
    qmax = 2 ** (bits - 1) - 1
    if method == "minmax":
        return mx
    if method == "percentile":
        return max(float(np.percentile(absx, percentile)), 1e-8)
    if method == "mse":
        cands = mx * np.arange(GRID // 5, GRID + 1) / GRID
        errs = []
        for t in cands:
            s = t / qmax
            q = np.clip(np.round(absx / s), 0, qmax) * s
            errs.append(float(((absx - q) ** 2).mean()))
        return float(cands[int(np.argmin(errs))])
    if method == "entropy":
        return _entropy_threshold(absx, mx, qmax + 1)
    raise ValueError(f"calibrator must be one of {', '.join(CALIBRATORS)}; got {method!r}")


def _entropy_threshold(absx: np.ndarray, mx: float, levels: int) -> float:
    hist, edges = np.histogram(absx, bins=HIST_BINS, range=(0.0, mx))
    hist = hist.astype(np.float64)
    width = edges[1] - edges[0]
    best_i, best_kl = HIST_BINS, np.inf
    for i in range(levels, HIST_BINS + 1, ENTROPY_STEP):
        p = hist[:i].copy()
        p[i - 1] += hist[i:].sum()
        nonzero = (hist[:i] > 0).astype(np.float64)
        chunk = (np.arange(i) * levels) // i                 # bin -> one of `levels` chunks
        mass = np.bincount(chunk, weights=hist[:i], minlength=levels)
        count = np.bincount(chunk, weights=nonzero, minlength=levels)
        q = np.where(count[chunk] > 0, mass[chunk] / np.maximum(count[chunk], 1), 0.0) * nonzero
        ps, qs = p.sum(), q.sum()
        if ps == 0 or qs == 0:
            continue
        p, q = p / ps, q / qs
        mask = p > 0
        if (q[mask] == 0).any():
            continue
        kl = float((p[mask] * np.log(p[mask] / q[mask])).sum())
        if kl < best_kl:
            best_kl, best_i = kl, i
    return (best_i + 0.5) * width
