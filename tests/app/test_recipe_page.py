"""The Recipe page under AppTest: an empty state that says what to do and shows the sweep's
cost, and a state seeded by the real pipeline (a sensitivity sweep and the runs verifying one
recipe, on the tiny model)."""
import json

import pytest

from qcompare.core.specs import CalibSpec, EvalSpec
from qcompare.jobs import worker
from qcompare.jobs.runner import run_inline
from qcompare.jobs.store import JobStore
from qcompare.jobs.submit import submit_sensitivity
from qcompare.recipes import budget, sensitivity
from qcompare.sources.models import model_from_arg
from qcompare.store.results import ResultStore
from tests.app.pagetest import page_on

TINY = EvalSpec(tokens=256, window=64, speed_prompt=16, speed_new_tokens=4, speed_repeats=1)


def _spec(folder):
    return sensitivity.SensitivitySpec(model=model_from_arg(str(folder)), bits=(2, 4, 8), unit="block",
                                       group_size=32, eval=TINY, calib=CalibSpec(samples=4, seq_len=64),
                                       score_samples=2)


@pytest.fixture(scope="module")
def swept(tmp_path_factory, tiny_model_dir):
    state = tmp_path_factory.mktemp("recipe-state")
    sub = submit_sensitivity(_spec(tiny_model_dir), state, start_runner=False)
    run_inline(JobStore.open(state), state, sub.job_id)
    sweep = budget.find(state)
    for spec in budget.plan_verification(sweep, bits=[4]):
        worker.run(spec, state)
    return state


def _open(state, monkeypatch):
    return page_on(state, "pages/recipe.py", monkeypatch)


def test_an_empty_state_shows_the_cost_and_queues_a_sweep(tmp_path, monkeypatch):
    at = _open(tmp_path, monkeypatch)
    assert any("No sensitivity sweep is stored yet" in i.value for i in at.info)
    cost = next(m.value for m in at.markdown if "Cost before it starts" in m.value)
    assert "845 forward passes" in cost                     # 30 layers x 7 x 4 widths + 5
    at.radio(key="recipe.unit").set_value("block").run()
    assert any("125 forward passes" in m.value for m in at.markdown)
    at.button(key="recipe.start").click().run()
    jobs = JobStore.open(tmp_path).list(("queued",))
    assert len(jobs) == 1 and sensitivity.is_sensitivity_json(jobs[0].spec_json)
    assert json.loads(jobs[0].spec_json)["unit"] == "block"


def test_a_stored_sweep_is_drawn_and_its_recipe_verified(swept, monkeypatch):
    at = _open(swept, monkeypatch)
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert any("each unit alone at 4 bits" in t for t in titles)          # the heatmap
    assert any("Most sensitive units" in t for t in titles)
    assert any("predicted recipes" in t for t in titles)
    best = next(m.value for m in at.markdown if m.value.startswith("**Best recipe:**"))
    assert "MiB" in best and "predicted KLD" in best
    frame = at.dataframe[-1].value
    row = frame[frame["uniform bits"] == 4].iloc[0]
    # both sides were measured by the real pipeline, so the verdict comes from their interval
    assert row["uniform KLD measured"] > 0 and row["recipe KLD measured"] > 0
    assert row["verdict"] in ("recipe better", "uniform better", budget.SAME,
                              "not distinguishable at this sample size")
    assert row["95% low"] <= row["recipe − uniform"] <= row["95% high"]
    n = len(ResultStore(swept).load().frame)
    at.button(key="recipe.measure").click().run()
    assert not at.exception
    queued = JobStore.open(swept).list(("queued",))
    assert any(json.loads(j.spec_json)["method"]["name"] == "mixed" for j in queued) or \
        any("already measured" in s.value for s in at.success)
    assert len(ResultStore(swept).load().frame) == n           # nothing computed in the page


def test_a_target_too_small_says_what_to_do(swept, monkeypatch):
    at = _open(swept, monkeypatch)
    at.radio(key="recipe.by").set_value("bits per weight").run()
    at.number_input(key="recipe.bpw").set_value(2.0).run()
    assert any("Nothing fits" in e.value and "Raise the target" in e.value for e in at.error)


def test_results_and_choose_offer_the_recipe_of_a_swept_model(swept, monkeypatch):
    for page in ("pages/results.py", "pages/choose.py"):
        at = page_on(swept, page, monkeypatch)
        offer = [m.value for m in at.markdown if m.value.startswith("**Mixed rtn recipe:**")]
        assert offer and "predicted KLD" in offer[0], page
        assert any(n.proto.label.startswith("Weights within") for n in at.number_input), page


def test_a_model_without_a_sweep_is_pointed_to_the_recipe_page(tmp_path, monkeypatch, tiny_model_dir):
    from qcompare.core.specs import MethodSpec, RunSpec
    from qcompare.jobs.submit import build_specs

    spec = build_specs(model_from_arg(str(tiny_model_dir)), [MethodSpec.of("fp32")],
                       sensitivity.CorpusSpec(), TINY)[0]
    assert isinstance(spec, RunSpec)
    worker.run(spec, tmp_path)
    at = page_on(tmp_path, "pages/results.py", monkeypatch)
    assert any("No sensitivity sweep of this model yet" in c.value for c in at.caption)


def test_compare_takes_a_typed_bits_map(tmp_path, monkeypatch, tiny_model_dir):
    at = page_on(tmp_path, "pages/compare.py", monkeypatch)
    at.checkbox(key="m.fp32").uncheck().run()
    at.checkbox(key="m.mixed").check().run()
    at.text_input(key="o.mixed.bits_map").input('{"0": 8, "1.down_proj": 2}').run()
    model = at.selectbox(key="model")
    model.set_value(model.options[-1]).run()
    at.text_input(key="model_ref").input(str(tiny_model_dir)).run()
    submit = next(b for b in at.button if b.label.startswith("Submit"))
    assert submit.label == "Submit 1 run(s)", [e.value for e in at.error]
    submit.click().run()
    assert not at.exception and not at.error
    (job,) = JobStore.open(tmp_path).list(("queued",))
    opts = json.loads(job.spec_json)["method"]["options"]
    assert json.loads(opts["bits_map"]) == {"0": 8, "1.down_proj": 2}
