"""How long a set of runs will take here, from the phase times earlier runs recorded.

Every row stores `quant_s` (load + quantize), `eval_s` (the quality loop) and `speed_s` (the
speed repeats), measured on this machine. For a planned run of method M over T tokens:

    t = median quant_s of M + median (eval_s / tokens) of M x T + median speed_s of M

with M's own rows on the same device where there are any (those of the planned run's effort
first: a quick run's speed phase is a fraction of a thorough one's), else the medians of every
method's rows on that device. A run whose result is cached costs nothing; a baseline pass not yet cached
adds one evaluation of the baseline (its eval_s per token x T). Without any earlier row there is
no estimate (None): the page says so instead of guessing.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from qcompare.effort import effort_of
from qcompare.reference import ReferenceStore
from qcompare.registry import BASELINE
from qcompare.results import ResultStore


@dataclass(frozen=True)
class Estimate:
    seconds: float | None
    runs: int              # runs that will compute
    cached: int            # runs answered from the cache
    basis: str             # how the estimate was made, in words


def _medians(rows: pd.DataFrame) -> tuple[float, float, float]:
    per_token = (rows["eval_s"] / rows["tokens"]).median()
    return (float(rows["quant_s"].median()), float(per_token),
            float(rows["speed_s"].fillna(0).median()))


def plan(specs, rows: pd.DataFrame, state_dir: str | Path) -> Estimate:
    results, refs = ResultStore(state_dir), ReferenceStore(state_dir)
    todo = [s for s in specs if not results.has(s.key())]
    cached = len(specs) - len(todo)
    if not todo:
        return Estimate(0.0, 0, cached, "every run is already in the cache")
    device = todo[0].eval.device
    past = rows[(rows["device"] == device) & rows["eval_s"].notna()] if not rows.empty else rows
    if past.empty:
        return Estimate(None, len(todo), cached, f"no earlier run on {device} to learn from")
    overall = _medians(past)
    total, own = 0.0, 0
    for s in todo:
        mine = past[past["method"] == s.method.name]
        if "effort" in mine and (mine["effort"] == effort_of(s)).any():
            mine = mine[mine["effort"] == effort_of(s)]
        quant, per_token, speed = _medians(mine) if not mine.empty else overall
        own += not mine.empty
        total += quant + per_token * s.eval.tokens + (speed if s.eval.speed_repeats else 0.0)
    refs_missing = {s.reference_key() for s in todo if not refs.exists(s.reference_key())}
    base = past[past["method"] == BASELINE]
    per_token = _medians(base)[1] if not base.empty else overall[1]
    total += sum(per_token * next(s.eval.tokens for s in todo if s.reference_key() == k)
                 for k in refs_missing)
    basis = (f"from {len(past)} earlier run(s) on {device}: the recorded load + quantize, "
             f"evaluation per token and speed times of the same method for {own} of "
             f"{len(todo)} run(s), of all methods for the rest"
             + (f"; plus {len(refs_missing)} baseline pass(es)" if refs_missing else ""))
    return Estimate(total, len(todo), cached, basis)


def describe(e: Estimate) -> str:
    """'about 4.2 min for 11 runs (2 cached)' and the basis."""
    if e.runs == 0:
        return f"all {e.cached} run(s) are already in the cache: submitting shows them at once."
    cached = f" ({e.cached} cached)" if e.cached else ""
    if e.seconds is None:
        return f"{e.runs} run(s){cached}; no time estimate yet: {e.basis}."
    minutes = e.seconds / 60
    when = f"about {minutes:.1f} min" if minutes >= 1 else f"about {e.seconds:.0f} s"
    return f"{when} for {e.runs} run(s){cached}, {e.basis}."
