"""Time estimates from the phase times earlier runs recorded."""
import pandas as pd

from qcompare.core.registry import parse_method_arg
from qcompare.core.specs import CorpusSpec
from qcompare.decide import estimate
from qcompare.jobs import submit as submitting
from qcompare.sources.models import model_from_arg


def _specs(model_dir, ev, *methods):
    return submitting.build_specs(model_from_arg(str(model_dir)), [parse_method_arg(m) for m in methods],
                                  CorpusSpec(), ev)


def test_each_method_is_estimated_from_its_own_rows_else_from_all(tiny_model_dir, state_dir, tiny_eval):
    rows = pd.DataFrame([
        {"method": "fp32", "device": "cpu", "quant_s": 2.0, "eval_s": 25.6, "tokens": 256, "speed_s": 4.0},
        {"method": "gptq", "device": "cpu", "quant_s": 100.0, "eval_s": 51.2, "tokens": 256, "speed_s": 6.0},
        {"method": "gptq", "device": "cuda", "quant_s": 1.0, "eval_s": 1.0, "tokens": 256, "speed_s": 1.0}])
    specs = _specs(tiny_model_dir, tiny_eval, "gptq", "rtn")
    e = estimate.plan(specs, rows, state_dir)
    # gptq: its own cpu row, 100 + 0.2 x 256 + 6; rtn: medians of both cpu rows,
    # 51 + 0.15 x 256 + 5; and one baseline pass (fp32's 0.1 s a token x 256)
    assert e.runs == 2 and e.cached == 0
    assert e.seconds == 100 + 51.2 + 6 + 51 + 0.15 * 256 + 5 + 25.6
    assert "same method for 1 of 2" in e.basis() and "1 baseline pass" in e.basis()
    assert estimate.describe(e).startswith("about 4.6 min for 2 run(s)")


def test_without_earlier_rows_there_is_no_guess(tiny_model_dir, state_dir, tiny_eval):
    e = estimate.plan(_specs(tiny_model_dir, tiny_eval, "rtn"), pd.DataFrame(), state_dir)
    assert e.seconds is None and "no time estimate yet" in estimate.describe(e)


def test_cached_runs_cost_nothing(tiny_model_dir, state_dir, tiny_eval):
    from qcompare.jobs import worker

    (spec,) = _specs(tiny_model_dir, tiny_eval, "fp32")
    worker.run(spec, state_dir)
    e = estimate.plan([spec], pd.DataFrame(), state_dir)
    assert e.seconds == 0.0 and e.cached == 1 and e.runs == 0
    assert estimate.describe(e) == "all 1 run(s) are already in the cache: submitting shows them at once."


def test_rows_of_the_planned_effort_come_first(tiny_model_dir, state_dir):
    from dataclasses import replace

    from qcompare.core import effort

    quick = replace(effort.eval_spec("quick"), tokens=256, window=64)
    (spec,) = _specs(tiny_model_dir, quick, "rtn")
    assert effort.effort_of(spec) == "custom"
    rows = pd.DataFrame([
        {"method": "rtn", "device": "cpu", "quant_s": 1.0, "eval_s": 2.56, "tokens": 256,
         "speed_s": 30.0, "effort": "thorough"},
        {"method": "rtn", "device": "cpu", "quant_s": 1.0, "eval_s": 2.56, "tokens": 256,
         "speed_s": 4.0, "effort": "custom"}])
    e = estimate.plan([spec], rows, state_dir)
    # the custom row alone (1 + 0.01 x 256 + 4), plus the baseline pass from all rows' medians
    assert e.seconds == 1 + 2.56 + 4 + 2.56
