import itertools

import numpy as np
import pandas as pd
import pytest

from qcompare.recipes import recipe

# three units: a fragile one ("0"), a robust one ("1") and a big robust one ("2")
HAND = pd.DataFrame([
    # unit, layer, bits, kld, stored_bits, params
    ("0", 0, 2, 0.90, 250, 100), ("0", 0, 4, 0.10, 450, 100), ("0", 0, 8, 0.001, 850, 100),
    ("1", 1, 2, 0.05, 250, 100), ("1", 1, 4, 0.01, 450, 100), ("1", 1, 8, 0.0001, 850, 100),
    ("2", 2, 2, 0.20, 500, 200), ("2", 2, 4, 0.02, 900, 200), ("2", 2, 8, 0.0002, 1700, 200),
], columns=["unit", "layer", "bits", "kld", "stored_bits", "params"])
FIXED = 1000


def brute(table, fixed, budget, widths):
    best = None
    by = {(r.unit, r.bits): r for r in table.itertuples()}
    units = sorted(table["unit"].unique())
    for combo in itertools.product(widths, repeat=len(units)):
        cost = sum(16 * by[(u, 2)].params if b == 16 else by[(u, b)].stored_bits
                   for u, b in zip(units, combo))
        kld = sum(0.0 if b == 16 else by[(u, b)].kld for u, b in zip(units, combo))
        if fixed + cost <= budget and (best is None or kld < best[0] - 1e-15):
            best = (kld, dict(zip(units, combo)))
    return best


def test_the_known_optimum_of_a_hand_made_table():
    # 2400 bits in all leaves 1400 for the units: the two small units at 4 bits and the big one
    # at 2 (450 + 450 + 500 = 1400, KLD 0.31) beat the fragile one alone at 4 (1200, 0.35);
    # the fragile one at 8 (850 + 250 + 500 = 1600) does not fit
    r = recipe.recipe_for(HAND, FIXED, target_mib=2400 / recipe.MIB_BITS, allow_kept=False)
    assert r.bits_map == {"0": 4, "1": 4, "2": 2}
    assert r.predicted_kld == pytest.approx(0.10 + 0.01 + 0.20)
    assert r.size_bits == FIXED + 1400
    # with 2000 bits for the units: 8 bits on the fragile unit beats 4 bits on the big one
    r = recipe.recipe_for(HAND, FIXED, target_mib=3000 / recipe.MIB_BITS, allow_kept=False)
    assert r.bits_map == {"0": 8, "1": 2, "2": 4}     # 850 + 250 + 900 = 2000


@pytest.mark.parametrize("allow_kept", [False, True])
def test_every_budget_matches_brute_force(allow_kept):
    widths = (2, 4, 8, 16) if allow_kept else (2, 4, 8)
    solver = recipe.Solver(recipe.choices(HAND, allow_kept), FIXED)
    assert solver.resolution == 1                     # costs are exact at this size
    for budget in range(FIXED + 1000, FIXED + 8000, 50):
        want = brute(HAND, FIXED, budget, widths)
        got = solver.best(budget)
        assert got is not None and got.size_bits <= budget
        assert got.predicted_kld == pytest.approx(want[0], abs=1e-12), budget


def test_too_small_a_budget_has_no_recipe_and_the_frontier_is_monotone():
    solver = recipe.Solver(recipe.choices(HAND), FIXED)
    assert solver.best(FIXED + 999) is None
    front = solver.frontier()
    sizes = [r.size_bits for r in front]
    klds = [r.predicted_kld for r in front]
    assert sizes == sorted(sizes) and klds == sorted(klds, reverse=True)
    assert front[0].bits_map == {"0": 2, "1": 2, "2": 2} and front[-1].predicted_kld == 0.0


def test_coarse_cells_never_exceed_the_budget():
    rng = np.random.default_rng(0)
    rows = []
    for u in range(40):
        p = int(rng.integers(1000, 5000))
        for b in (2, 3, 4, 8):
            rows.append((str(u), u, b, float(rng.gamma(1.0) / b ** 2), b * p + 16 * p // 32, p))
    table = pd.DataFrame(rows, columns=HAND.columns)
    coarse = recipe.Solver(recipe.choices(table), 0, cells=300)
    default = recipe.Solver(recipe.choices(table), 0)
    assert coarse.resolution > default.resolution > 1
    for bpw in (2.6, 3.3, 4.5, 6.0):
        budget = recipe.budget_bits(0, table, target_bpw=bpw)
        fine = recipe.Solver(recipe.choices(table), 0, budget, cells=400_000).best(budget)
        for r in (coarse.best(budget), default.best(budget)):
            assert r.size_bits <= budget and r.bits_per_weight <= bpw
            assert r.predicted_kld >= fine.predicted_kld - 1e-12
        # the default resolution loses (next to) nothing to the rounding of costs
        assert default.best(budget).predicted_kld <= fine.predicted_kld * 1.01


def test_uniform_and_the_map_for_mixed():
    u4 = recipe.uniform(HAND, FIXED, 4)
    assert u4.bits_map == {"0": 4, "1": 4, "2": 4} and u4.size_bits == FIXED + 1800
    assert u4.predicted_kld == pytest.approx(0.13)
    r = recipe.recipe_for(HAND, FIXED, target_mib=2400 / recipe.MIB_BITS, allow_kept=False)
    assert r.default_bits == 4 and r.compact_map() == {"2": 2}


def test_at_a_uniform_widths_own_size_the_recipe_is_never_predicted_worse():
    # every unit at 8 bits fits its own size exactly; rounded up to cells, the same costs do
    # not, and any unit moved down to 4 bits costs far more than 16 bits anywhere saves
    rows = []
    for u in range(50):
        p = 1009 + 7 * u
        for b, kld in ((2, 10.0), (4, 1.0), (8, 0.001)):
            rows.append((str(u), u, b, kld, b * p + 16 * (p // 32 + 1), p))
    table = pd.DataFrame(rows, columns=HAND.columns)
    for cells in (300, recipe.CELLS):
        solver = recipe.Solver(recipe.choices(table), 1000, cells=cells)
        for b in (2, 4, 8):
            u = recipe.uniform(table, 1000, b)
            r = solver.best(u.size_bits)
            assert r.size_bits <= u.size_bits and r.predicted_kld <= u.predicted_kld + 1e-15, (cells, b)
