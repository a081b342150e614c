"""Which differences in a ranking are real: paired KL-divergence gaps with their standard error.

Rows that share a `reference_key` were scored on the same tokens against the same baseline,
so their per-token KL divergences (qcompare.store.tokenscores) pair up. For two methods A and B
with per-token KL a_t and b_t over the same n tokens, the paired difference d_t = b_t - a_t
has mean gap = KLD(B) - KLD(A) and standard error

    se = sd(d) / sqrt(n)        (sample sd, n - 1 in the denominator)

much smaller than either KLD's own standard error when the two methods err on the same
tokens (they mostly do: the hard tokens are hard for every method). `rank` orders a group by
KLD and, for each method and the one ranked just below it, says whether the gap is larger
than Z standard errors (Z = 2, about 95 % two-sided for a normal mean): "distinct" or
"indistinguishable". Tokens are treated as independent, as `kld_se` does; neighbouring tokens
are correlated, which makes this se somewhat optimistic — hence 2 standard errors, not 1.

Where a row carries its protocol (tokens, window, protocol, stride), the verdict comes instead
from a paired bootstrap over windows (`qcompare.stats.bootstrap`), which does not assume independent
tokens: the 95 % interval of the KL gap (`ci_lo`, `ci_hi`) and of the perplexity ratio of the
next row to this one (`ppl_ratio`, `ppl_lo`, `ppl_hi`); "indistinguishable" when the KL
interval covers 0, with the tokens that would separate the pair (`tokens_to_separate`).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from qcompare.i18n import catalogue as i18n
from qcompare.store.tokenscores import TokenScores

Z = 2.0


def paired_gap(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(mean of b - a, its standard error) over paired tokens."""
    if len(a) != len(b):
        raise ValueError(f"paired arrays differ in length: {len(a)} and {len(b)}")
    d = np.asarray(b, np.float64) - np.asarray(a, np.float64)
    se = float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else float("nan")
    return float(d.mean()), se


def verdict(gap: float, se: float, z: float = Z) -> str:
    if math.isnan(se):
        return "unknown"
    return "distinct" if abs(gap) > z * se else "indistinguishable"


def rank(group: pd.DataFrame, state_dir, metric: str = "kld_mean") -> pd.DataFrame:
    """The group's non-reference rows ordered by KLD, with the paired gap to the next row.

    Columns: rank, method_label, next_label (the row below), key, kld_mean, kld_se, gap_to_next, gap_se, z, verdict. Rows
    without stored per-token scores (written before they existed), or measured on other
    tokens than their neighbour, get verdict "unknown" and no gap."""
    from qcompare.stats import bootstrap

    rows = group[group["kld_mean"].notna() & (group["kld_mean"] > 0)]
    rows = rows.sort_values(metric, kind="stable").reset_index(drop=True)
    store = TokenScores(state_dir)
    scores = [store.read(k) for k in rows["key"]]
    out = []
    nan = float("nan")
    for i, r in rows.iterrows():
        gap = se = nan
        ci = ratio = None
        if i + 1 < len(rows):
            a, b = scores[i], scores[i + 1]
            same = rows.loc[i + 1, "reference_key"] == r["reference_key"]
            if a is not None and b is not None and same and len(a["kl"]) == len(b["kl"]):
                gap, se = paired_gap(a["kl"], b["kl"])
                windows = bootstrap.row_windows(r)
                if windows is not None and len(windows) == len(a["kl"]):
                    ci = bootstrap.paired_difference(b["kl"], a["kl"], windows)
                    ratio = bootstrap.paired_ppl_ratio(b["nll"], a["nll"], windows)
        nxt = rows.loc[i + 1, "method_label"] if i + 1 < len(rows) else ""
        if i + 1 >= len(rows):
            word = ""
        elif ci is not None:
            word = "distinct" if ci.distinguishable else "indistinguishable"
        else:
            word = verdict(gap, se)
        out.append({"rank": i + 1, "method_label": r["method_label"], "next_label": nxt,
                    "key": r["key"],
                    "kld_mean": r["kld_mean"], "kld_se": r["kld_se"], "gap_to_next": gap,
                    "gap_se": se, "z": gap / se if se and not math.isnan(se) else nan,
                    "ci_lo": ci.lo if ci else nan, "ci_hi": ci.hi if ci else nan,
                    "tokens_to_separate": ci.tokens_to_separate() if ci and not
                    ci.distinguishable else nan,
                    "ppl_ratio": ratio.estimate if ratio else nan,
                    "ppl_lo": ratio.lo if ratio else nan, "ppl_hi": ratio.hi if ratio else nan,
                    "verdict": word})
    return pd.DataFrame(out)


def summary(ranked: pd.DataFrame, lang: str = "en") -> str:
    """One sentence on how many neighbouring pairs are told apart."""
    pairs = ranked[ranked["verdict"] != ""]
    if pairs.empty:
        return i18n.t("ranking.few", lang)
    known = pairs[pairs["verdict"] != "unknown"]
    if known.empty:
        return i18n.t("ranking.no_scores", lang)
    tied = known[known["verdict"] == "indistinguishable"]
    how = (i18n.t("ranking.bootstrap", lang) if known["ci_lo"].notna().all()
           else i18n.t("ranking.se", lang, z=Z))
    text = i18n.t("ranking.pairs", lang, differ=len(known) - len(tied), known=len(known), how=how)
    if not tied.empty:
        names = "; ".join(f"{r.method_label} ≈ {r.next_label}" for r in tied.itertuples())
        text += i18n.t("ranking.tied", lang, names=names)
    return text
