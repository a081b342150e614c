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

from qcompare.core.effort import effort_of
from qcompare.core.registry import BASELINE
from qcompare.i18n import catalogue as i18n
from qcompare.store.reference import ReferenceStore
from qcompare.store.results import ResultStore


@dataclass(frozen=True)
class Estimate:
    seconds: float | None
    runs: int              # runs that will compute
    cached: int            # runs answered from the cache
    basis_key: str         # how the estimate was made: a message of qcompare.i18n.catalogue ("estimate.*")
    basis_values: tuple = ()

    def basis(self, lang: str = "en") -> str:
        return i18n.t(self.basis_key, lang, **dict(self.basis_values))


def _medians(rows: pd.DataFrame) -> tuple[float, float, float]:
    per_token = (rows["eval_s"] / rows["tokens"]).median()
    return (float(rows["quant_s"].median()), float(per_token),
            float(rows["speed_s"].fillna(0).median()))


def plan(specs, rows: pd.DataFrame, state_dir: str | Path) -> Estimate:
    results, refs = ResultStore(state_dir), ReferenceStore(state_dir)
    todo = [s for s in specs if not results.has(s.key())]
    cached = len(specs) - len(todo)
    if not todo:
        return Estimate(0.0, 0, cached, "estimate.basis_cached")
    device = todo[0].eval.device
    past = rows[(rows["device"] == device) & rows["eval_s"].notna()] if not rows.empty else rows
    if past.empty:
        return Estimate(None, len(todo), cached, "estimate.basis_none", (("device", device),))
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
    values = (("past", len(past)), ("device", device), ("own", own), ("runs", len(todo)),
              ("refs", len(refs_missing)))
    return Estimate(total, len(todo), cached,
                    "estimate.basis_refs" if refs_missing else "estimate.basis_runs", values)


def describe(e: Estimate, lang: str = "en") -> str:
    """'about 4.2 min for 9 runs (and 2 already in the cache)' and the basis."""
    if e.runs == 0:
        return i18n.t("estimate.all_cached", lang, cached=e.cached)
    cached = i18n.t("estimate.cached", lang, n=e.cached) if e.cached else ""
    if e.seconds is None:
        return i18n.t("estimate.no_estimate", lang, runs=e.runs, cached=cached, basis=e.basis(lang))
    minutes = e.seconds / 60
    when = (i18n.t("estimate.minutes", lang, v=minutes) if minutes >= 1
            else i18n.t("estimate.seconds", lang, v=e.seconds))
    return i18n.t("estimate.plan", lang, when=when, runs=e.runs, cached=cached, basis=e.basis(lang))
