"""Mixed-precision recipes: the bits of each unit that minimise the predicted KL divergence
under a size limit, from a measured sensitivity table (`qcompare.recipes.sensitivity`). Pure NumPy.

The predictor assumes the units' effects add up:

    predicted_kld(recipe) = sum over units u of kld[u, bits(u)]

(kld measured with u alone quantized; 16 bits, u left unquantized, adds 0). It is a first-order
assumption: errors of different layers interact, usually adding a little more than their sum
at low bits. The sweep measures every unit at one width at once to show how far it holds
(`uniform` in its facts), and every recipe is meant to be measured for real (the `mixed`
method) before anyone trusts its number.

The choice is a multiple-choice knapsack: for units u with choices k of cost c[u, k] (stored
bits, scales included) and value v[u, k] (predicted kld), minimise sum v subject to
fixed + sum c <= budget. It is solved exactly by dynamic programming over the budget in cells
of `resolution` bits, each cost rounded up to whole cells, so a recipe never exceeds its budget
and is optimal up to that rounding; what the rounding leaves unused is then spent greedily
(the change of width that lowers the prediction most and still fits, repeated). Every uniform
recipe that fits is a candidate too (rounding can leave out one that fits exactly), so a
recipe is never predicted worse than the uniform width of its size. (A Lagrangian sweep, minimising v + lambda c per unit,
only finds the recipes on the convex hull of the frontier; the DP finds the points between.)
One DP over the largest budget gives the best recipe for every smaller budget too: that is the
predicted frontier, size against predicted kld.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

MIB_BITS = 8 * 2 ** 20
KEPT = 16
CELLS = 20_000                   # budget resolution of the DP: the range in this many cells


@dataclass(frozen=True)
class Recipe:
    bits_map: dict[str, int]     # unit -> bits, every unit named
    predicted_kld: float
    size_bits: float             # everything stored: the units' choices + the fixed tensors
    unit_params: int             # weights in the units
    unit_bits: float             # stored bits of the units
    counts: dict[int, int] = field(default_factory=dict)    # bits -> units at that width

    @property
    def size_mib(self) -> float:
        return self.size_bits / MIB_BITS

    @property
    def bits_per_weight(self) -> float:
        """Stored bits per weight of the units (scales and zero points included)."""
        return self.unit_bits / max(self.unit_params, 1)

    def compact_map(self, default_bits: int | None = None) -> dict[str, int]:
        """The map with the most common width left out (it becomes `default_bits`)."""
        default = self.default_bits if default_bits is None else default_bits
        return {u: b for u, b in self.bits_map.items() if b != default}

    @property
    def default_bits(self) -> int:
        return max(self.counts, key=lambda b: (self.counts[b], -b)) if self.counts else 4

    def describe(self, lang: str = "en") -> str:
        from qcompare.i18n import catalogue as i18n

        mix = ", ".join(i18n.t("recipe.mix", lang, n=n, b=b) for b, n in sorted(self.counts.items()))
        return i18n.t("recipe.describe", lang, mib=self.size_mib, bpw=self.bits_per_weight, mix=mix,
                      kld=self.predicted_kld)


@dataclass
class Choices:
    units: list[str]
    bits: list[int]              # the widths, in column order
    cost: np.ndarray             # [U, K] stored bits (inf where a width was not measured)
    value: np.ndarray            # [U, K] predicted kld
    params: np.ndarray           # [U]


def choices(table: pd.DataFrame, allow_kept: bool = True) -> Choices:
    """The knapsack's cost and value tables from a sensitivity table; with `allow_kept`, 16 bits
    (unit unquantized, kld 0 exactly) is a choice too."""
    units = list(dict.fromkeys(table.sort_values(["layer", "unit"], kind="stable")["unit"]))
    bits = sorted(int(b) for b in table["bits"].unique())
    if allow_kept and KEPT not in bits:
        bits.append(KEPT)
    index = {u: i for i, u in enumerate(units)}
    cost = np.full((len(units), len(bits)), np.inf)
    value = np.full((len(units), len(bits)), np.inf)
    params = np.zeros(len(units), dtype=np.int64)
    for r in table.itertuples(index=False):
        i, k = index[r.unit], bits.index(int(r.bits))
        cost[i, k], value[i, k], params[i] = r.stored_bits, max(float(r.kld), 0.0), r.params
    if allow_kept:
        k = bits.index(KEPT)
        cost[:, k], value[:, k] = KEPT * params, 0.0
    return Choices(units, bits, cost, value, params)


class Solver:
    """The DP over budgets up to `max_bits` (module doc); `best(budget)` backtracks one."""

    def __init__(self, ch: Choices, fixed_bits: float, max_bits: float | None = None,
                 cells: int = CELLS):
        self.ch, self.fixed = ch, float(fixed_bits)
        finite = np.where(np.isfinite(ch.cost), ch.cost, np.nan)
        self.base = float(np.nansum(np.nanmin(finite, axis=1)))          # every unit at its cheapest
        top = float(np.nansum(np.nanmax(finite, axis=1)))
        span = (top if max_bits is None else min(top, max_bits - self.fixed)) - self.base
        self.resolution = max(1.0, math.ceil(max(span, 1.0) / cells))
        self.capacity = max(int(span // self.resolution), 0)
        extra = finite - np.nanmin(finite, axis=1, keepdims=True)
        w = np.ceil(np.nan_to_num(extra, nan=np.inf) / self.resolution)
        self.weight = np.where(np.isfinite(w), w, self.capacity + 1).astype(np.int64)
        n = self.capacity + 1
        best = np.zeros(n)
        self.pick = np.zeros((len(ch.units), n), dtype=np.int8)
        for u in range(len(ch.units)):
            cand = np.full((len(ch.bits), n), np.inf)
            for k in range(len(ch.bits)):
                wk = self.weight[u, k]
                if wk <= self.capacity and np.isfinite(ch.value[u, k]):
                    cand[k, wk:] = best[:n - wk] + ch.value[u, k]
            self.pick[u] = np.argmin(cand, axis=0)
            best = cand[self.pick[u], np.arange(n)]
        self.best_value = best

    def best(self, budget_bits: float) -> Recipe | None:
        """The recipe of least predicted kld within `budget_bits` in all; None if even every
        unit at its cheapest width does not fit."""
        room = budget_bits - self.fixed - self.base
        if room < 0:
            return None
        c = min(int(room // self.resolution), self.capacity)
        chosen = [0] * len(self.ch.units)
        for u in range(len(self.ch.units) - 1, -1, -1):
            k = int(self.pick[u, c])
            chosen[u] = k
            c -= int(self.weight[u, k])
        # the rounding of costs up to cells can leave out a recipe that fits exactly (every
        # unit at one width, at that width's own size): such uniform recipes are candidates too
        candidates = [chosen]
        for k in range(len(self.ch.bits)):
            if np.isfinite(self.ch.cost[:, k]).all() and self.fixed + self.ch.cost[:, k].sum() <= budget_bits:
                candidates.append([k] * len(self.ch.units))
        out = [make_recipe(self.ch, self.fixed, self._top_up(list(c), budget_bits)) for c in candidates]
        return min(out, key=lambda r: r.predicted_kld)

    def _top_up(self, chosen: list[int], budget_bits: float) -> list[int]:
        """Spend what the rounding of costs up to whole cells left unused: repeatedly take the
        change of one unit's width that lowers the predicted kld most and still fits."""
        ch, rows = self.ch, np.arange(len(self.ch.units))
        while True:
            left = budget_bits - self.fixed - float(ch.cost[rows, chosen].sum())
            dcost = ch.cost - ch.cost[rows, chosen][:, None]
            gain = ch.value[rows, chosen][:, None] - ch.value
            ok = (dcost <= left) & (gain > 0) & np.isfinite(ch.cost)
            if not ok.any():
                return chosen
            u, k = np.unravel_index(np.argmax(np.where(ok, gain, -np.inf)), gain.shape)
            chosen[int(u)] = int(k)

    def frontier(self, points: int = 60) -> list[Recipe]:
        """Best recipes at `points` budgets spread over the whole range, distinct ones only."""
        out, seen = [], set()
        for c in np.unique(np.linspace(0, self.capacity, points).round().astype(int)):
            r = self.best(self.fixed + self.base + c * self.resolution)
            sig = tuple(sorted(r.bits_map.items()))
            if sig not in seen:
                seen.add(sig)
                out.append(r)
        return out


def make_recipe(ch: Choices, fixed_bits: float, chosen: list[int]) -> Recipe:
    """The recipe taking choice `chosen[u]` for each unit u."""
    rows = np.arange(len(ch.units))
    unit_bits = float(ch.cost[rows, chosen].sum())
    counts: dict[int, int] = {}
    for k in chosen:
        counts[ch.bits[k]] = counts.get(ch.bits[k], 0) + 1
    return Recipe({u: ch.bits[k] for u, k in zip(ch.units, chosen)},
                  float(ch.value[rows, chosen].sum()), float(fixed_bits) + unit_bits,
                  int(ch.params.sum()), unit_bits, counts)


def uniform(table: pd.DataFrame, fixed_bits: float, bits: int) -> Recipe:
    """Every unit at `bits`: the prediction for the family's own uniform setting."""
    ch = choices(table, allow_kept=True)
    return make_recipe(ch, fixed_bits, [ch.bits.index(bits)] * len(ch.units))


def budget_bits(fixed_bits: float, table: pd.DataFrame, target_mib: float | None = None,
                target_bpw: float | None = None) -> float:
    """A size limit in bits, from MiB of everything stored or from bits per weight of the
    units (scales included)."""
    if (target_mib is None) == (target_bpw is None):
        raise ValueError("give exactly one of target_mib and target_bpw")
    if target_mib is not None:
        return target_mib * MIB_BITS
    params = table.drop_duplicates("unit")["params"].sum()
    return fixed_bits + target_bpw * params


def recipe_for(table: pd.DataFrame, fixed_bits: float, target_mib: float | None = None,
               target_bpw: float | None = None, allow_kept: bool = True) -> Recipe | None:
    budget = budget_bits(fixed_bits, table, target_mib, target_bpw)
    return Solver(choices(table, allow_kept), fixed_bits, budget).best(budget)


def smallest_mib(table: pd.DataFrame, fixed_bits: float) -> float:
    """The least a recipe can take: every unit at its cheapest width."""
    ch = choices(table, allow_kept=False)
    return (fixed_bits + float(np.nanmin(np.where(np.isfinite(ch.cost), ch.cost, np.nan),
                                         axis=1).sum())) / MIB_BITS
