"""Does a mixed-precision recipe beat the uniform setting of its family at the same size?

    python bench/mixed_recipe.py          # writes its section of BENCHMARKS.md

On the embedded model at the quick effort: a sensitivity sweep per family (RTN per Linear at
2/3/4/8 bits; the built-in GPTQ per decoder layer at 2/3/4/8 bits), then for each uniform
width 3, 4 and 8 the uniform run and the best predicted recipe within its stored size (16 bits
allowed), both measured by the worker on the evaluated text (real rows in the state folder),
and the paired bootstrap interval of their KL difference (`qcompare.recipes.budget`).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import write_section
from qcompare.core import effort
from qcompare.core.specs import CorpusSpec, ModelSpec
from qcompare.core.statedir import default_state_dir
from qcompare.jobs import sensitivity_job, worker
from qcompare.jobs.submit import resolve_sensitivity
from qcompare.recipes import budget
from qcompare.recipes.sensitivity import SensitivitySpec, SensitivityStore
from qcompare.store.results import ResultStore

SWEEPS = (("rtn", "linear"), ("gptq", "block"))
WIDTHS = (3, 4, 8)


def _sweep(state_dir, family: str, unit: str) -> budget.Sweep:
    spec = resolve_sensitivity(SensitivitySpec(
        model=ModelSpec(), family=family, unit=unit, bits=(2, 3, 4, 8),
        eval=effort.eval_spec("quick"), calib=effort.calib_spec("quick", CorpusSpec())))
    if not SensitivityStore(state_dir).exists(spec.key()):
        t0 = time.perf_counter()
        sensitivity_job.run(spec, state_dir, lambda s, f: print(f"  {s}", flush=True) if "0/" in s else None)
        print(f"{spec.label}: {time.perf_counter() - t0:.0f} s", flush=True)
    return budget.find(state_dir, key=spec.key())


def main() -> None:
    state_dir = default_state_dir()
    lines = ["| family, sweep | uniform | uniform MiB | recipe MiB | recipe (units per width) | "
             "predicted KLD uniform → recipe | measured KLD uniform → recipe | recipe − uniform "
             "[95 % CI] | verdict |", "|---|---|---|---|---|---|---|---|---|"]
    facts = []
    for family, unit in SWEEPS:
        sweep = _sweep(state_dir, family, unit)
        m = sweep.meta
        add = "; ".join(f"{b}-bit ×{u['predicted'] / u['measured']:.2f}" for b, u in m["uniform"].items()
                        if u["measured"])
        agree = ", ".join(f"{k}{'' if k == 'all' else '-bit'} {v:+.2f}" for k, v in m["agreement"].items())
        facts.append(f"- {m['label']}: {m['units']} units × 4 widths on {m['tokens']} positions "
                     f"({m['slice']}), {m['seconds'] / 60:.1f} min, median pass "
                     f"{m['seconds_per_pass']:.2f} s. Sum of single-unit KLDs over the measured KLD "
                     f"of every unit at once: {add}. Spearman of the reconstruction-error estimator "
                     f"with the measured KLD: {agree}.")
        for spec in budget.plan_verification(sweep, list(WIDTHS)):
            if ResultStore(state_dir).get(spec.key()) is None:
                t0 = time.perf_counter()
                worker.run(spec, state_dir)
                print(f"  measured {spec.method.label[:70]} in {time.perf_counter() - t0:.0f} s", flush=True)
        rows = ResultStore(state_dir).load().frame
        table = budget.compare(sweep, rows, state_dir)
        for t in table[table["bits"].isin(WIDTHS)].itertuples():
            mix = t.recipe.split(": ", 1)[1].split("; predicted")[0]
            lines.append(
                f"| {family}, per {unit} | {t.bits}-bit | {t.uniform_mib:.2f} | {t.recipe_mib:.2f} | "
                f"{mix} | {t.uniform_pred_kld:.4f} → {t.recipe_pred_kld:.4f} | {t.uniform_kld:.4f} → "
                f"{t.recipe_kld:.4f} | {t.diff:+.4f} [{t.diff_lo:+.4f}, {t.diff_hi:+.4f}] | {t.verdict} |")
            print(lines[-1], flush=True)
    body = ("`bench/mixed_recipe.py`. The embedded model (SmolLM2-135M, itself dequantized from "
            "Q4_1), quick effort (2,048 evaluated tokens). Each recipe is the best predicted one "
            "(exact knapsack on the sum of single-unit KLDs from the sweep) whose stored size is "
            "at most the uniform setting's; both are measured by the worker on the evaluated "
            "text. The interval is the paired bootstrap over windows (2,000 draws). Sizes are the "
            "rows' measured `weights_mib`. A sweep's time is the wall time of the run that stored "
            "it, on a machine that may have been doing other work meanwhile.\n\n" + "\n".join(lines) + "\n\n" + "\n".join(facts) + "\n")
    write_section("Mixed-precision recipes against uniform settings", body)


if __name__ == "__main__":
    main()
