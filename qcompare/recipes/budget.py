"""A memory budget, answered: from a stored sensitivity sweep to recipes, the runs that verify
them, and predicted against measured. Torch-free (pages and the CLI use it).

Verification protocol (`plan_verification`, `compare`): for each uniform width b of the sweep,
the uniform setting of the family (`rtn` or `gptq` with the sweep's settings) is measured, and
so is the best recipe whose size is at most that setting's stored size (`mixed`); both are
ordinary runs on the sweep's model, corpus and protocol, so their KL divergences are measured
on the evaluated text, not the scoring slice the prediction came from. A recipe "beats" the
uniform setting when the paired bootstrap interval of mean KL(recipe) - mean KL(uniform)
(`qcompare.stats.bootstrap`, resampling windows) lies below 0; when it covers 0 the two are not
distinguishable at this sample size.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from qcompare.core import registry
from qcompare.core.errors import UserError
from qcompare.recipes import recipe as recipes
from qcompare.recipes.sensitivity import Cost, SensitivitySpec, SensitivityStore, estimate_cost

SAME = "the recipe is the uniform setting (nothing predicted better fits)"


@dataclass
class Sweep:
    """A stored sensitivity table with its spec and facts."""
    spec: SensitivitySpec
    table: pd.DataFrame
    meta: dict

    @property
    def fixed_bits(self) -> float:
        return float(self.meta["fixed_bits"])

    def solver(self, allow_kept: bool = True) -> recipes.Solver:
        return recipes.Solver(recipes.choices(self.table, allow_kept), self.fixed_bits)

    def uniform(self, bits: int) -> recipes.Recipe:
        return recipes.uniform(self.table, self.fixed_bits, bits)


def sweeps(state_dir, model_label: str | None = None, family: str | None = None) -> list[Sweep]:
    """Stored sweeps, newest first, of a model (its label, or part of it) and family."""
    store = SensitivityStore(state_dir)
    out = []
    for meta in store.sweeps():
        if model_label and model_label.lower() not in str(meta.get("model", "")).lower():
            continue
        if family and meta.get("family") != family:
            continue
        got = store.read(meta["key"])
        if got is None:
            continue
        try:
            spec = SensitivitySpec.from_json(meta["spec_json"])
        except (UserError, KeyError, TypeError, ValueError):
            continue                  # written by another protocol version: not offered
        out.append(Sweep(spec, got[0], got[1]))
    return out


def find(state_dir, model_label: str | None = None, family: str | None = None,
         key: str | None = None) -> Sweep:
    """The newest matching sweep, or a UserError saying how to make one."""
    found = [s for s in sweeps(state_dir, model_label, family) if key is None or s.meta["key"].startswith(key)]
    if not found:
        what = " ".join(w for w in (family or "", model_label or "", key or "") if w)
        raise UserError(key="errors.no_sweep_of" if what else "errors.no_sweep", what=what)
    return found[0]


def cost_for(spec: SensitivitySpec, state_dir, layers: int | None,
             results: pd.DataFrame | None = None) -> Cost:
    """The sweep's passes and time, estimated from the last sweep on this model and device,
    else from a stored fp32 row's evaluation (seconds per evaluated token)."""
    if layers is None:
        raise UserError(key="errors.sweep_unsized")
    for meta in SensitivityStore(state_dir).sweeps():       # the facts only: no table is read
        if (meta.get("model_fingerprint") == spec.model.fingerprint and meta.get("device") == spec.eval.device
                and meta.get("seconds_per_token")):
            return estimate_cost(spec, layers, meta["seconds_per_token"],
                                 f"the last sweep on this model ({meta['seconds']:.0f} s)",
                                 "rpage.basis_sweep", (("s", meta["seconds"]),))
    if results is not None and not results.empty:
        rows = results[(results["model_fingerprint"] == spec.model.fingerprint)
                       & (results["method"] == registry.BASELINE) & (results["device"] == spec.eval.device)]
        rows = rows[rows["eval_s"].notna() & (rows["n_scored"] > 0)]
        if not rows.empty:
            r = rows.sort_values("finished_at").iloc[-1]
            return estimate_cost(spec, layers, float(r["eval_s"]) / float(r["n_scored"]),
                                 f"the fp32 row's evaluation ({r['n_scored']:.0f} tokens in "
                                 f"{r['eval_s']:.1f} s)", "rpage.basis_row",
                                 (("n", float(r["n_scored"])), ("s", float(r["eval_s"]))))
    return estimate_cost(spec, layers, None, "nothing measured on this model yet", "rpage.basis_none")


def matched(sweep: Sweep, allow_kept: bool = True) -> list[tuple[int, recipes.Recipe, recipes.Recipe]]:
    """(bits, the uniform setting's prediction, the best recipe within its size) per width."""
    solver = sweep.solver(allow_kept)
    out = []
    for b in sorted(int(x) for x in sweep.table["bits"].unique()):
        u = sweep.uniform(b)
        r = solver.best(u.size_bits)
        if r is not None:
            out.append((b, u, r))
    return out


def recipe_run(sweep: Sweep, r: recipes.Recipe):
    """The RunSpec measuring recipe `r` (a `mixed` run with the sweep's settings)."""
    return sweep.spec.run_spec(r.compact_map(), r.default_bits)


def uniform_run(sweep: Sweep, bits: int):
    from dataclasses import replace

    spec = sweep.spec
    return replace(spec.run_spec(), method=spec.uniform_method(bits))


def plan_verification(sweep: Sweep, bits: list[int] | None = None, allow_kept: bool = True) -> list:
    """RunSpecs: for each chosen width, the uniform setting and the recipe at its size."""
    out = []
    for b, _u, r in matched(sweep, allow_kept):
        if bits is None or b in bits:
            out += [uniform_run(sweep, b), recipe_run(sweep, r)]
    return out


def compare(sweep: Sweep, results: pd.DataFrame, state_dir, allow_kept: bool = True) -> pd.DataFrame:
    """Per width: the uniform setting and its matched recipe, predicted (on the scoring slice)
    and measured (on the evaluated text, when the rows exist), and the paired interval of the
    recipe's KL minus the uniform's."""
    by_key = results.set_index("key") if not results.empty else pd.DataFrame()
    rows = []
    for b, u, r in matched(sweep, allow_kept):
        ku, kr = uniform_run(sweep, b).key(), recipe_run(sweep, r).key()
        row = {"bits": b, "uniform_pred_kld": u.predicted_kld, "recipe_pred_kld": r.predicted_kld,
               "uniform_calc_mib": u.size_mib, "recipe_calc_mib": r.size_mib,
               "recipe_bpw": r.bits_per_weight, "recipe": r.describe(),
               "recipe_map": json.dumps(r.compact_map()), "recipe_default_bits": r.default_bits,
               "uniform_key": ku, "recipe_key": kr}
        for side, k in (("uniform", ku), ("recipe", kr)):
            hit = by_key.loc[k] if k in by_key.index else None
            row[f"{side}_kld"] = float(hit["kld_mean"]) if hit is not None else np.nan
            row[f"{side}_mib"] = float(hit["weights_mib"]) if hit is not None else np.nan
            row[f"{side}_ppl"] = float(hit["ppl"]) if hit is not None else np.nan
        row.update(diff=np.nan, diff_lo=np.nan, diff_hi=np.nan, verdict="not measured yet")
        same = r.counts == {b: len(r.bits_map)}
        if same:
            row["verdict"] = SAME
        if ku in by_key.index and kr in by_key.index:
            ci = kl_interval(state_dir, by_key.loc[kr], kr, ku)
            if ci is not None:
                row.update(diff=ci.estimate, diff_lo=ci.lo, diff_hi=ci.hi,
                           verdict=SAME if same else verdict(ci))
            else:
                row["verdict"] = "measured, but the per-token scores are missing"
        rows.append(row)
    return pd.DataFrame(rows)


def kl_interval(state_dir, row, key_a: str, key_b: str):
    """The paired bootstrap interval of mean KL(a) - mean KL(b) of two rows measured on the
    same tokens (`row` gives the protocol), or None without their per-token scores."""
    from qcompare.stats import bootstrap
    from qcompare.store.tokenscores import TokenScores

    scores = TokenScores(state_dir)
    a, b = scores.read(key_a), scores.read(key_b)
    windows = bootstrap.row_windows(row)
    if a is None or b is None or windows is None or len(a["kl"]) != len(b["kl"]):
        return None
    return bootstrap.paired_difference(a["kl"], b["kl"], windows)


def verdict(ci) -> str:
    return ("recipe better" if ci.hi < 0 else "uniform better" if ci.lo > 0
            else "not distinguishable at this sample size")


def frontier_frame(sweep: Sweep, allow_kept: bool = True, points: int = 60) -> pd.DataFrame:
    """The predicted frontier: size (MiB) against predicted KL, one row per distinct recipe."""
    front = sweep.solver(allow_kept).frontier(points)
    return pd.DataFrame({"size_mib": [r.size_mib for r in front],
                         "predicted_kld": [r.predicted_kld for r in front],
                         "bits_per_weight": [r.bits_per_weight for r in front],
                         "recipe": [r.describe() for r in front]})
