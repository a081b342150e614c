"""Paired window bootstrap: a hand-made pair with a known difference, the interval's coverage in
a seeded simulation, and the ranking it feeds."""
import math

import numpy as np
import pandas as pd
import pytest

from qcompare.stats import bootstrap, ranking
from qcompare.store.tokenscores import TokenScores


def test_a_known_difference_is_inside_its_interval_and_zero_is_outside():
    rng = np.random.default_rng(1)
    windows = bootstrap.window_index([50] * 40)
    a = rng.exponential(0.1, windows.size)
    b = a + 0.02 + rng.normal(0, 0.005, windows.size)              # b is worse by exactly 0.02
    ci = bootstrap.paired_difference(b, a, windows)
    assert ci.lo < 0.02 < ci.hi and ci.distinguishable and ci.estimate == pytest.approx(0.02, abs=2e-3)
    assert ci.windows == 40 and ci.tokens == 2000
    same = bootstrap.paired_difference(a + rng.normal(0, 0.005, a.size), a, windows)
    assert not same.distinguishable and same.tokens_to_separate() > same.tokens


def test_the_ppl_ratio_interval_is_exp_of_the_nll_difference():
    windows = bootstrap.window_index([10] * 30)
    nll_b = np.full(300, 2.0)
    nll_a = nll_b + np.log(1.05)                                     # PPL 5 % higher everywhere
    r = bootstrap.paired_ppl_ratio(nll_a, nll_b, windows)
    assert r.estimate == pytest.approx(1.05) and r.lo == pytest.approx(1.05) and r.distinguishable


def test_tokens_to_separate_follow_the_square_root_law():
    ci = bootstrap.Interval(estimate=0.01, lo=-0.01, hi=0.03, level=0.95, windows=10, tokens=1000)
    assert ci.tokens_to_separate() == pytest.approx(1000 * (0.02 / 0.01) ** 2)


def test_coverage_is_the_stated_rate_over_400_seeded_draws():
    """Windows with a shared difficulty (correlated tokens): the 95 % interval covers the true
    mean difference in 95 % +- 3 % of 400 independent samples."""
    true = 0.01
    covered = 0
    windows = bootstrap.window_index([20] * 100)
    for seed in range(400):
        rng = np.random.default_rng(1000 + seed)
        per_window = rng.normal(true, 0.02, 100)                     # each passage's own gap
        d = np.repeat(per_window, 20) + rng.normal(0, 0.01, windows.size)
        ci = bootstrap.paired_difference(d, np.zeros_like(d), windows, draws=1000, seed=seed)
        covered += ci.lo <= true <= ci.hi
    assert 0.92 <= covered / 400 <= 0.98, covered


def test_the_ranking_uses_the_window_interval_where_rows_carry_their_protocol(state_dir):
    rng = np.random.default_rng(0)
    n, w = 2000, 101                                  # 20 disjoint windows of 101: 100 scored each
    hard = np.repeat(rng.exponential(1.0, 20), 100)   # whole passages are hard
    kl = {"a": hard * 0.100, "b": hard * 0.120, "c": hard * 0.120 + rng.normal(0, 1e-4, n)}
    store = TokenScores(state_dir)
    rows = []
    for name, v in kl.items():
        store.write(name, 2.0 + v, v)
        rows.append({"key": name, "method_label": name, "reference_key": "r", "tokens": 20 * w,
                     "window": w, "protocol": "disjoint", "stride": 0,
                     "kld_mean": v.mean(), "kld_se": v.std(ddof=1) / math.sqrt(n)})
    ranked = ranking.rank(pd.DataFrame(rows), state_dir)
    a, b = ranked.iloc[0], ranked.iloc[1]
    assert a["verdict"] == "distinct" and a["ci_lo"] > 0 and a["ppl_ratio"] > 1
    assert b["verdict"] == "indistinguishable" and b["ci_lo"] <= 0 <= b["ci_hi"]
    assert b["tokens_to_separate"] > n
    assert "bootstrap interval excludes 0" in ranking.summary(ranked)
