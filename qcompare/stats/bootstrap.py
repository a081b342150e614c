"""Paired confidence intervals for the difference between two methods, by a bootstrap over windows.

Two rows with the same `reference_key` scored the same tokens in the same order, so their
per-token values pair up. Tokens inside one window are not independent (a hard passage is hard
for every token of it), so the resampling unit is the window, not the token:

* Windows w = 1..W hold n_w scored tokens; for a per-token difference d_t (KL_a - KL_b, or
  NLL_a - NLL_b), each window contributes its sum S_w = sum of d_t over its tokens.
* One bootstrap draw picks W windows with replacement (counts c_w, multinomial), and its mean
  is sum_w c_w S_w / sum_w c_w n_w; B draws (default 2,000) from a seeded generator.
* The interval is the percentile interval of the draws at `level` (default 95 %): for KL, of
  the mean difference; for perplexity, of the ratio PPL_a / PPL_b = exp(mean NLL difference).
* The difference is "not distinguishable at this sample size" when the interval covers zero
  (a ratio of 1). Tokens that would separate them: with the standard error shrinking as
  1 / sqrt(tokens), the count at which the interval's half-width equals the observed difference,
  n x (half-width / |difference|)^2 (infinite for a zero difference).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DRAWS = 2000
LEVEL = 0.95
SEED = 0


@dataclass(frozen=True)
class Interval:
    estimate: float
    lo: float
    hi: float
    level: float
    windows: int
    tokens: int

    @property
    def covers(self) -> float:
        """The value meaning 'no difference' (0 for a difference)."""
        return 0.0

    @property
    def distinguishable(self) -> bool:
        return not (self.lo <= self.covers <= self.hi)

    def tokens_to_separate(self) -> float:
        """Tokens at which the interval would stop covering 'no difference' (module doc)."""
        half = (self.hi - self.lo) / 2
        gap = abs(self.estimate - self.covers)
        if gap == 0 or not math.isfinite(half):
            return math.inf
        return self.tokens * (half / gap) ** 2


@dataclass(frozen=True)
class RatioInterval(Interval):
    @property
    def covers(self) -> float:
        return 1.0

    def tokens_to_separate(self) -> float:
        half = (math.log(self.hi) - math.log(self.lo)) / 2
        gap = abs(math.log(self.estimate))
        return math.inf if gap == 0 else self.tokens * (half / gap) ** 2


def window_index(counts: list[int]) -> np.ndarray:
    """Per-token window number for windows holding `counts` scored tokens each."""
    return np.repeat(np.arange(len(counts)), counts)


def _draws(d: np.ndarray, windows: np.ndarray, draws: int, seed: int) -> tuple[float, np.ndarray]:
    d = np.asarray(d, np.float64)
    if len(d) != len(windows):
        raise ValueError(f"{len(d)} values but {len(windows)} window labels")
    n_w = np.bincount(windows).astype(np.float64)
    s_w = np.bincount(windows, weights=d)
    keep = n_w > 0
    n_w, s_w = n_w[keep], s_w[keep]
    rng = np.random.default_rng(seed)
    c = rng.multinomial(len(n_w), np.full(len(n_w), 1 / len(n_w)), size=draws).astype(np.float64)
    return float(d.mean()), (c @ s_w) / (c @ n_w)


def paired_difference(a, b, windows, level: float = LEVEL, draws: int = DRAWS,
                      seed: int = SEED) -> Interval:
    """Interval of mean(a - b) over paired per-token values, resampling windows."""
    est, boot = _draws(np.asarray(a) - np.asarray(b), np.asarray(windows), draws, seed)
    q = (1 - level) / 2
    lo, hi = np.quantile(boot, [q, 1 - q])
    return Interval(est, float(lo), float(hi), level, int(np.unique(windows).size), len(a))


def paired_ppl_ratio(nll_a, nll_b, windows, level: float = LEVEL, draws: int = DRAWS,
                     seed: int = SEED) -> RatioInterval:
    """Interval of PPL_a / PPL_b = exp(mean(nll_a - nll_b)), resampling windows."""
    est, boot = _draws(np.asarray(nll_a) - np.asarray(nll_b), np.asarray(windows), draws, seed)
    q = (1 - level) / 2
    lo, hi = np.quantile(boot, [q, 1 - q])
    return RatioInterval(math.exp(est), math.exp(lo), math.exp(hi), level,
                         int(np.unique(windows).size), len(nll_a))


def row_windows(row) -> np.ndarray | None:
    """The window label of each scored token of a result row, from its protocol columns
    (`qcompare.metrics.quality.plan_windows`); None when the row lacks them."""
    from qcompare.metrics.quality import plan_windows

    try:
        wins = plan_windows(int(row["tokens"]), int(row["window"]), str(row["protocol"]),
                            int(row.get("stride") or 0))
    except (KeyError, TypeError, ValueError):
        return None
    return window_index([w.n_scored for w in wins])
