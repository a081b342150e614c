"""Paired gaps between neighbours of a KL-divergence ranking, by hand."""
import math

import numpy as np
import pandas as pd
import pytest

from qcompare.stats import ranking
from qcompare.store.tokenscores import TokenScores


def test_paired_gap_by_hand():
    a = np.array([0.1, 0.2, 0.3, 0.4])
    b = np.array([0.2, 0.2, 0.5, 0.5])            # d = 0.1, 0, 0.2, 0.1
    gap, se = ranking.paired_gap(a, b)
    assert gap == pytest.approx(0.1)
    assert se == pytest.approx(np.std([0.1, 0, 0.2, 0.1], ddof=1) / 2)
    assert ranking.verdict(0.1, 0.04) == "distinct"
    assert ranking.verdict(0.1, 0.06) == "indistinguishable"
    assert ranking.verdict(0.1, math.nan) == "unknown"


def test_pairing_tells_apart_what_the_separate_errors_cannot(state_dir):
    rng = np.random.default_rng(0)
    hard = rng.exponential(1.0, 2000)                # tokens hard for every method
    wiggle = np.tile([1e-4, -1e-4], 1000)           # c differs from b by noise that sums to 0
    kl = {"a": hard * 0.100, "b": hard * 0.104, "c": hard * 0.104 + wiggle,
          "base": np.zeros(2000)}
    store = TokenScores(state_dir)
    rows = []
    for name, v in kl.items():
        store.write(name, np.ones(2000), v)
        rows.append({"key": name, "method_label": name, "reference_key": "r",
                     "kld_mean": v.mean(), "kld_se": v.std(ddof=1) / math.sqrt(v.size)})
    rows.append({"key": "old", "method_label": "old", "reference_key": "r",
                 "kld_mean": 0.5, "kld_se": 0.01})        # no stored scores
    ranked = ranking.rank(pd.DataFrame(rows), state_dir)
    assert list(ranked["method_label"]) == ["a", "b", "c", "old"]    # the baseline's 0 is left out
    a, b = ranked.iloc[0], ranked.iloc[1]
    # a and b: 4 % apart, each KLD's own se overlaps the gap, the paired se does not
    assert b["kld_mean"] - a["kld_mean"] < 2 * (a["kld_se"] + b["kld_se"])
    assert a["verdict"] == "distinct" and a["gap_se"] < a["kld_se"] / 10
    assert b["verdict"] == "indistinguishable"       # b and c differ by noise only
    assert ranked.iloc[2]["verdict"] == "unknown" and ranked.iloc[3]["verdict"] == ""
    text = ranking.summary(ranked)
    assert "1 of 2 neighbouring pairs" in text and "b ≈ c" in text
