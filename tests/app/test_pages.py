"""Every page under streamlit's AppTest, against a result store seeded by the real pipeline
(tiny model, inline worker). Pages are told not to start a runner, so submissions stay queued."""
import base64
import json
import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from qcompare.core.registry import parse_method_arg
from qcompare.core.specs import CorpusSpec, EvalSpec
from qcompare.jobs import noise_job, worker
from qcompare.jobs import submit as submitting
from qcompare.jobs.store import JobStore
from qcompare.sources.models import model_from_arg
from tests.app.pagetest import page_on

APP = str(Path(__file__).resolve().parents[2] / "app.py")
TINY = EvalSpec(tokens=256, window=64, speed_prompt=16, speed_new_tokens=4, speed_repeats=1)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory, tiny_model_dir):
    return _seed(tmp_path_factory.mktemp("seeded-state"), tiny_model_dir)


def _seed(state_dir, tiny_model_dir):
    model = model_from_arg(str(tiny_model_dir))
    methods = [parse_method_arg(m) for m in ("fp32", "rtn:bits=8", "rtn:bits=2,granularity=channel")]
    specs = submitting.build_specs(model, methods, CorpusSpec(), TINY)
    specs += submitting.build_specs(model, methods[:1], CorpusSpec(), replace(TINY, protocol="strided"))
    for s in specs:
        worker.run(s, state_dir)
    worker.run_noise_floor(noise_job.to_json(specs[0]), state_dir)     # the pages show it
    return state_dir


@pytest.fixture
def app(seeded, monkeypatch):
    """make(page=None): the app on the seeded state, switched to `page`."""
    return lambda page=None: page_on(seeded, page, monkeypatch, timeout=60)


def _length(values) -> int:
    """Length of a plotly array, plain or typed ({'dtype': 'f8', 'bdata': base64})."""
    if isinstance(values, dict):
        return len(base64.b64decode(values["bdata"])) // np.dtype(values["dtype"]).itemsize
    return len(values)


def _points(at, index=0) -> int:
    spec = json.loads(at.get("plotly_chart")[index].proto.spec)
    return sum(_length(t.get("x", [])) for t in spec["data"] if "markers" in t.get("mode", ""))


def test_home_shows_the_embedded_model_and_the_latest_tradeoff(app):
    at = app()
    text = " ".join(m.value for m in at.markdown)
    assert "SmolLM2-135M-Instruct" in text
    assert any("Q4_1" in c.value for c in at.caption)
    assert _points(at) == 1          # newest group: the strided fp32 row alone


def test_default_comparison_button_queues_jobs(app, seeded):
    at = app()
    before = len(JobStore.open(seeded).list(("queued",)))
    next(b for b in at.button if "default comparison" in b.label).click().run()
    assert not at.exception
    queued = JobStore.open(seeded).list(("queued",))
    from qcompare.core.presets import preset_methods
    methods = preset_methods("default", "cpu")
    expected = {m.name for m in methods}
    assert {"fp32", "rtn", "gptq", "awq"} <= expected
    assert len(queued) - before == len(methods) and {j.label.split(" ")[0] for j in queued} == expected
    from qcompare.core.effort import effort_of
    from qcompare.core.specs import RunSpec
    assert {effort_of(RunSpec.from_json(j.spec_json)) for j in queued} == {"quick"}
    assert queued[-1].label.startswith("fp32")            # listed newest first: queued first
    assert [i.value.lstrip("⏳ ") for i in at.info] == [f"{len(methods)} of {len(methods)} runs queued "
                                                       "(0 already running, 0 already measured)."]
    # pressed again mid-sweep: one line, nothing queued twice
    next(b for b in at.button if "default comparison" in b.label).click().run()
    assert [i.value.lstrip("⏳ ") for i in at.info] == [f"Already running: 0 of {len(methods)} done."]
    assert len(JobStore.open(seeded).list(("queued",))) - before == len(methods)


def test_compare_renders_method_forms_and_submits(app, seeded, tiny_model_dir):
    at = app("pages/compare.py")
    assert at.checkbox(key="m.fp32").value is True
    at.checkbox(key="m.rtn").check().run()
    assert at.multiselect(key="o.rtn.bits").value == [4]
    at.multiselect(key="o.rtn.bits").set_value([8, 2]).run()
    model = at.selectbox(key="model")
    model.set_value(model.options[-1]).run()                        # "Other: …"
    at.text_input(key="model_ref").input(str(tiny_model_dir)).run()
    submit = next(b for b in at.button if b.label.startswith("Submit"))
    assert submit.label == "Submit 3 run(s)"
    submit.click().run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    msgs = [s.value for s in at.success] + [i.value for i in at.info]
    assert any("fp32" in m and "queued" in m for m in msgs)   # default protocol: not cached


def test_compare_explains_invalid_input_next_to_the_field(app):
    at = app("pages/compare.py")
    model = at.selectbox(key="model")
    model.set_value(model.options[-1]).run()                        # "Other: …"
    at.text_input(key="model_ref").input("/no/such/folder").run()
    assert any("does not exist" in e.value for e in at.error)
    assert next(b for b in at.button if b.label.startswith("Submit")).disabled


@pytest.fixture
def shared_server(monkeypatch):
    """The app as if served with --server.address 0.0.0.0 (a meetup's network)."""
    from streamlit import config

    before = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    yield
    config.set_option("server.address", before)


def test_a_shared_dashboard_reads_typed_paths_only_from_allowed_folders(
        app, seeded, tiny_model_dir, tmp_path, monkeypatch, shared_server):
    """Served beyond loopback, a model folder or corpus outside the allowed roots (here a
    0600 secret beside the model) is refused with the roots and how to add one; the same
    folder listed in QCOMPARE_ALLOWED_ROOTS is accepted; the page says paths are confined."""
    secret = tmp_path / "secret.txt"
    secret.write_text("the server's secret " * 200)
    secret.chmod(0o600)
    at = app("pages/compare.py")
    assert any("typed model and corpus paths must lie in" in c.value for c in at.caption)
    model = at.selectbox(key="model")
    model.set_value(model.options[-1]).run()                        # "Other: …"
    at.text_input(key="model_ref").input(str(tiny_model_dir)).run()
    refused = [e.value for e in at.error]
    assert any("outside the folders this shared dashboard may read" in e and "0.0.0.0" in e
               and "QCOMPARE_ALLOWED_ROOTS" in e for e in refused), refused
    assert next(b for b in at.button if b.label.startswith("Submit")).disabled
    at.text_input(key="model_ref").input(str(seeded / "models" / ".." / ".." / "etc")).run()
    assert any("outside the folders" in e.value for e in at.error)    # no way out by ..
    corpus_box = next(b for b in at.text_input if b.label == "Corpus")
    corpus_box.input(str(secret)).run()
    assert any("secret.txt is outside the folders" in e.value for e in at.error)
    monkeypatch.setenv("QCOMPARE_ALLOWED_ROOTS", f"{tiny_model_dir.parent}:{tmp_path}")
    at = app("pages/compare.py")
    model = at.selectbox(key="model")
    model.set_value(model.options[-1]).run()
    at.text_input(key="model_ref").input(str(tiny_model_dir)).run()
    assert not [e.value for e in at.error if "outside the folders" in e.value]


def test_on_loopback_paths_are_not_confined(app, tiny_model_dir):
    at = app("pages/compare.py")
    assert not any("must lie in" in c.value for c in at.caption)
    model = at.selectbox(key="model")
    model.set_value(model.options[-1]).run()
    at.text_input(key="model_ref").input(str(tiny_model_dir)).run()
    assert not at.error, [e.value for e in at.error]


def test_unavailable_methods_are_disabled_with_their_reason(app, monkeypatch):
    import os
    if os.path.exists("/proc/driver/nvidia/version"):
        pytest.skip("this machine has an NVIDIA driver: nothing is unavailable on cuda")
    at = app("pages/compare.py")
    assert not [w for w in at.sidebar.selectbox if w.key == "device"]   # beside the form now
    at.selectbox(key="device").set_value("cuda").run()
    assert at.checkbox(key="m.rtn").disabled and at.checkbox(key="m.fp32").disabled
    said = [w.value for w in at.warning] + [c.value for c in at.caption] + [e.value for e in at.error]
    assert sum("needs CUDA" in t for t in said) == 1                     # once, at the device


def test_errors_and_reasons_reach_the_page_in_its_language(app, seeded):
    import os

    def in_japanese(page):
        at = app()
        at.session_state["lang"] = "ja"
        at.run()
        at.switch_page(page)
        return at.run()

    at = in_japanese("pages/compare.py")
    model = at.selectbox(key="model")
    model.set_value(model.options[-1]).run()
    at.text_input(key="model_ref").input("/no/such/folder").run()
    assert any("モデルのフォルダ /no/such/folder がありません" in e.value for e in at.error)
    assert not any("does not exist" in e.value for e in at.error)
    if not os.path.exists("/proc/driver/nvidia/version"):
        at.selectbox(key="device").set_value("cuda").run()
        said = [w.value for w in at.warning] + [c.value for c in at.caption]
        assert any("NVIDIA の GPU が見当たりません" in x for x in said), said
    from qcompare.core.errors import UserError
    from qcompare.jobs.status import exit_error

    store = JobStore.open(seeded)
    job_id, _ = store.submit("killed-key", "rtn on killed (cpu)", "{}")
    store.finish(job_id, "failed", error=exit_error(-9), tb="")
    other, _ = store.submit("plain-key", "rtn on plain (cpu)", "{}")
    store.finish(other, "failed", error=UserError("an English-only message"))
    jobs = in_japanese("pages/jobs.py")
    shown = [re.sub(r"\\(.)", r"\1", e.value) for e in jobs.error]      # as the markdown renders
    assert any("SIGKILL で強制終了されました" in x for x in shown), shown
    assert any(x == "an English-only message" for x in shown)     # no key: as stored
    assert "SIGKILL" in store.get(job_id).error and store.get(job_id).error.isascii()


def test_jobs_page_lists_jobs_and_shows_a_failure_readably(app, seeded):
    store = JobStore.open(seeded)
    job_id, _ = store.submit("broken-key", "rtn on broken (cpu)", "{}")
    store.finish(job_id, "failed", error="ValueError: something broke", tb="Traceback (most recent call last):\n  boom")
    at = app("pages/jobs.py")
    assert any("something broke" in e.value for e in at.error)
    assert any(b.label == "Retry" for b in at.button)
    assert any("Traceback" in c.value for c in at.code)


INJECTED = '<h1 style="color:red">INJECTED</h1><input placeholder="your HF token"> ![x](http://198.51.100.1/x.png)'


def test_user_typed_text_on_the_jobs_page_is_text_never_markup(app, seeded):
    """A model folder named like markup (in the job's label, its stage and its error) is shown
    as written: escaped for the HTML the Jobs page allows, and for markdown's links and images."""
    store = JobStore.open(seeded)
    job_id, _ = store.submit("injected-key", f"rtn on {INJECTED} (cpu)", "{}")
    store.progress(job_id, f"importance matrix on {INJECTED}", 0.2)
    store.finish(job_id, "failed", error=f"{INJECTED} does not exist")
    at = app("pages/jobs.py")
    bodies = [m.value for m in at.markdown] + [e.value for e in at.error]
    shown = [b for b in bodies if "INJECTED" in b]
    assert len(shown) >= 2, bodies                   # the card and the error
    for b in shown:
        assert "<h1" not in b and "<input" not in b and "](" not in b, b
        assert "&lt;h1" in b and "&lt;input" in b


def test_a_done_job_whose_row_was_deleted_says_so_and_can_run_again(app, seeded):
    from qcompare.jobs.status import result_missing
    from qcompare.store.results import ResultStore

    store = JobStore.open(seeded)
    key = next(iter(ResultStore(seeded).load().frame["key"]))
    job_id, _ = store.submit(key, "fp32 on deleted (cpu)", "{}")
    store.finish(job_id, "done", result_key=key)
    assert not result_missing(store.get(job_id), seeded)
    backup = ResultStore(seeded).path(key).read_bytes()
    ResultStore(seeded).path(key).unlink()
    try:
        assert result_missing(store.get(job_id), seeded)
        at = app("pages/jobs.py")
        assert any("row missing" in m.value for m in at.markdown)
        assert any(b.key == f"retry{job_id}" for b in at.button)
    finally:
        ResultStore(seeded).path(key).write_bytes(backup)


def test_results_filters_change_the_plotted_rows(app):
    at = app("pages/results.py")
    assert _points(at) == 1                                   # newest group: strided fp32
    at.sidebar.multiselect(key="f.protocol").set_value(["disjoint"]).run()
    assert _points(at) == 3
    at.sidebar.multiselect(key="f.family").set_value(["baseline"]).run()
    assert _points(at) == 1
    at.sidebar.multiselect(key="f.family").set_value(["baseline", "round-to-nearest"]).run()
    at.sidebar.multiselect(key="f.protocol").set_value(["disjoint", "strided"]).run()
    assert _points(at) == 4
    assert any("not comparable" in w.value for w in at.warning)
    from qcompare.charts.tradeoff import png_unavailable_reason
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Report as HTML" in labels
    assert len(labels) == (5 if png_unavailable_reason() is None else 4)


def _page_on(state, page: str, monkeypatch):
    """The app on its own state folder (not the seeded one), switched to `page`."""
    return page_on(state, page, monkeypatch, timeout=60)


def test_rows_of_another_token_count_are_filtered_out_by_default(tmp_path, monkeypatch, tiny_model_dir):
    state_dir = tmp_path / "state_dir"
    model = model_from_arg(str(tiny_model_dir))
    fp32 = [parse_method_arg("fp32")]
    for ev in (TINY, replace(TINY, tokens=128)):                  # the 128-token row is newest
        worker.run(submitting.build_specs(model, fp32, CorpusSpec(), ev)[0], state_dir)
    at = _page_on(state_dir, "pages/results.py", monkeypatch)
    assert at.sidebar.multiselect(key="f.tokens").value == [128]
    assert _points(at) == 1 and not at.warning
    at.sidebar.multiselect(key="f.tokens").set_value([128, 256]).run()
    assert _points(at) == 2
    assert any("differ in tokens" in w.value and "Narrow the filters" in w.value for w in at.warning)


def test_results_empty_state_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("QCOMPARE_HOME", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    at.switch_page("pages/results.py")
    at.run()
    assert any("No results yet" in i.value for i in at.info)


def test_calibration_settings_reach_the_queued_spec_of_calibrating_methods(app, seeded, tiny_model_dir):
    from qcompare.core.specs import RunSpec

    at = app("pages/compare.py")
    at.checkbox(key="m.fp32").uncheck().run()
    at.checkbox(key="m.gptq").check().run()
    model = at.selectbox(key="model")
    model.set_value(model.options[-1]).run()                        # "Other: …"
    at.text_input(key="model_ref").input(str(tiny_model_dir)).run()
    seq = next(n for n in at.number_input if n.label == "Sequences")
    seq.set_value(4).run()
    next(b for b in at.button if b.label.startswith("Submit")).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    jobs = [j for j in JobStore.open(seeded).list()
            if '"gptq"' in j.spec_json and str(tiny_model_dir) in j.spec_json]
    spec = RunSpec.from_json(jobs[0].spec_json)
    assert spec.calib is not None and spec.calib.samples == 4
    assert spec.calib.corpus.content_sha256 == spec.corpus.content_sha256


def test_options_read_as_words_booleans_are_pick_lists_and_a_bad_value_has_one_message(app):
    at = app("pages/compare.py")
    at.checkbox(key="m.rtn").check().run()
    assert at.multiselect(key="o.rtn.include_lm_head").label == "Include LM head"
    assert "include_lm_head" in at.multiselect(key="o.rtn.include_lm_head").help
    at.checkbox(key="m.gguf").check().run()
    assert at.multiselect(key="o.gguf.imatrix").options == ["False", "True"]
    at.text_input(key="o.rtn.group_size").input("abc").run()
    errors = [e.value for e in at.error]
    assert errors == ["option group_size needs an integer; got 'abc'."]
    assert not [i for i in at.info if "Tick at least one" in i.value]
    assert next(b for b in at.button if b.label.startswith("Submit")).disabled


def test_home_lists_the_runs_by_short_label_with_their_count_and_time(app):
    from qcompare.core.presets import preset_methods

    at = app()
    n = len(preset_methods("default", "cpu"))
    assert any(f"{n} runs" in m.value for m in at.markdown)
    runs = next(c.value for c in at.caption if c.value.startswith("Runs, in queue order:"))
    assert "gptq 4b g128" in runs and "Q4_K_M" in runs and "group_size=" not in runs
    listed = runs.split(": ", 1)[1].split(" · ")
    assert listed[0] == "fp32" and listed.index("rtn 8b g128") < listed.index("gptq 4b g128")
    assert any("**quick** effort" in m.value for m in at.markdown)
    assert any(c.value.startswith("⏱") and "run(s)" in c.value for c in at.caption)


def test_jobs_page_leads_with_the_sweep_and_puts_the_running_job_on_top(tmp_path, monkeypatch):
    monkeypatch.setenv("QCOMPARE_HOME", str(tmp_path))
    monkeypatch.setenv("QCOMPARE_START_RUNNER", "0")
    store = JobStore.open(tmp_path)
    done, _ = store.submit("k-done", "rtn on tiny (cpu)", "{}")
    store.mark_running(done, 1, None)
    store.finish(done, "done", result_key="k-done")
    from qcompare.store.results import ResultStore
    row = ResultStore(tmp_path).path("k-done")            # its row is stored (not read here)
    row.parent.mkdir(parents=True, exist_ok=True)
    row.write_bytes(b"")
    failed, _ = store.submit("k-failed", "awq on tiny (cpu)", "{}")
    store.finish(failed, "failed", error="ValueError: boom")
    running, _ = store.submit("k-running", "gptq on tiny (cpu)", "{}")
    store.mark_running(running, os.getpid(), None)
    store.progress(running, "perplexity window 2/4", 0.6)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("pages/jobs.py")
    at.run()
    assert not at.exception
    heads = [m.value for m in at.markdown]
    assert any(h.startswith("### 1 of 3 done, 1 failed") for h in heads), heads
    cards = [m.value for m in at.markdown if "**#" in m.value]
    assert f"**#{running}**" in cards[0]
    assert any("done in" in c for c in cards) and not any("`done` · done" in c for c in cards)
    next(b for b in at.button if b.label == "Retry").click().run()
    assert any("retried as" in m.value for m in at.markdown)
    assert len([b for b in at.button if b.label == "Retry"]) == 0


def test_the_sidebar_offers_a_reachable_ray_cluster_and_describes_it(app, monkeypatch, tmp_path):
    from qcompare.jobs import ray_runner

    monkeypatch.setattr(ray_runner, "known_address", lambda: "10.1.2.3:6379")
    monkeypatch.setattr(ray_runner, "cluster_summary", lambda address, timeout_s=30.0: {
        "nodes": 3, "cpus": 96, "gpus": 8, "free_gpus": 6, "free_memory_gb": 512.0})
    at = app()
    radio = at.sidebar.radio(key="runner")
    assert radio.options == ["this machine", "Ray (10.1.2.3:6379)"] and radio.value == "local"
    # the sidebar as it is drawn once "ray" is picked (AppTest redraws a navigation app's
    # sidebar on its first run only, so the choice is made before it); an empty state folder
    monkeypatch.setenv("QCOMPARE_HOME", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["runner"] = "ray"
    at.run()
    text = " ".join(c.value for c in at.sidebar.caption)
    assert "3 node(s), 96 CPUs, 8 GPUs (6 free), 512.0 GB free memory" in text
    assert at.session_state["ray_address"] == "10.1.2.3:6379"
    # and a submission from the Home page asks for the Ray runner at that address
    asked = []
    monkeypatch.setattr(submitting, "ensure_runner", lambda d, runner, address: asked.append((runner, address)))
    monkeypatch.setenv("QCOMPARE_START_RUNNER", "1")
    next(b for b in at.button if "default comparison" in b.label).click().run()
    assert asked == [("ray", "10.1.2.3:6379")]


def test_without_a_known_cluster_jobs_run_here_and_nothing_is_offered(app, monkeypatch):
    from qcompare.jobs import ray_runner

    monkeypatch.setattr(ray_runner, "known_address", lambda: None)
    at = app()
    assert not [r for r in at.sidebar.radio if r.key == "runner"]
    assert at.session_state["runner"] == "local"


def _frame(at, column: str):
    """The first dataframe shown with `column` (pages show several, tabs included)."""
    return next(d.value for d in at.dataframe if column in d.value)


def _choose(app):
    at = app("pages/choose.py")
    assert at.title[0].value == "Choose a method"
    return at


def test_choose_ranks_the_measured_rows_and_excludes_by_the_limit(app):
    at = _choose(app)
    assert at.radio(key="choose.device").value == "cpu"          # where the rows were measured
    ranked = _frame(at, "why")
    assert len(ranked) == 3 and ranked["rank"].tolist() == [1, 2, 3]
    assert ranked["method"].iloc[0] == "fp32" and ranked["KLD"].is_monotonic_increasing
    limit = float(ranked["KLD"].iloc[1:].mean())              # between the two rtn rows
    at.number_input(key="choose.max_kld").set_value(limit).run()
    assert not at.exception
    ranked, excluded = _frame(at, "why"), _frame(at, "limit")
    assert [m.split(" group")[0] for m in excluded["method"]] == ["rtn bits=2 granularity=channel"]
    assert set(excluded["limit"]) == {"max KLD"} and len(ranked) == 2
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert {t["name"] for t in spec["data"]} >= {"fits every limit", "excluded"}
    assert any(s.get("type") == "rect" for s in spec["layout"].get("shapes", []))
    assert any("rule of thumb" in i.value for i in at.info)


def test_choose_rule_button_queues_the_runs_on_the_measured_protocol(app, seeded):
    at = _choose(app)
    at.radio(key="choose.device").set_value("cuda").run()
    at.selectbox(key="choose.gpu").set_value("H100 SXM (79.6 GiB)").run()
    assert any("FP16" in i.value for i in at.info)
    before = {j.id for j in JobStore.open(seeded).list(("queued",))}
    next(b for b in at.button if b.label.startswith("Measure it on")).click().run()
    assert not at.exception
    from qcompare.core.specs import RunSpec

    new = [RunSpec.from_json(j.spec_json) for j in JobStore.open(seeded).list(("queued",))
           if j.id not in before]
    assert [s.method.name for s in new] == ["fp16"]
    assert new[0].eval.tokens == TINY.tokens and new[0].eval.protocol == "disjoint"


def test_choose_cpu_rule_on_a_folder_model_says_why_it_cannot_queue(app, monkeypatch, tmp_path):
    monkeypatch.setenv("QCOMPARE_CONVERTER_DIR", str(tmp_path / "no-converter"))
    at = _choose(app)
    next(b for b in at.button if "gguf:type=Q4_K_M" in b.label).click().run()
    assert not at.exception
    assert any("GGUF types start from a .gguf file" in e.value for e in at.error)


def test_memory_calculator_sizes_a_known_7b_model(app):
    at = _choose(app)
    at.radio(key="calc.kind").set_value("a known model").run()
    at.selectbox(key="calc.preset").set_value("Llama-2-7B").run()
    table = _frame(at, "bits / weight")
    fp16 = table[table["method"] == "fp16"].iloc[0]
    assert fp16["bits / weight"] == 16 and 12.5 < fp16["weights (GiB)"] < 12.6
    q4 = table[table["method"] == "gguf:type=Q4_K_M"].iloc[0]
    assert q4["16 GiB"] == "✅" and 4.8 < q4["bits / weight"] < 4.9


def test_published_tab_lists_every_published_row_with_its_caveats(app):
    from qcompare.sources import published

    at = _choose(app)
    table = _frame(at, "gb_means")
    assert len(table) == len(published.load()) and table["note"].notna().all()


def test_results_published_layer_is_off_by_default_and_never_on_the_frontier(app):
    at = app("pages/results.py")
    at.selectbox[0].set_value("decode_tok_s").run()
    names = {t["name"] for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]}
    assert not any(n.startswith("published") for n in names)
    at.toggle(key="results.published").set_value(True).run()
    assert not at.exception
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    pub = [t for t in spec["data"] if t["name"].startswith("published")]
    assert pub and all(t["marker"]["symbol"].endswith("-open") for t in pub)
    frontier = next(t for t in spec["data"] if t["name"] == "Pareto frontier") \
        if any(t["name"] == "Pareto frontier" for t in spec["data"]) else {"x": []}
    assert _length(frontier["x"]) <= 3                       # measured rows only
    assert any("Published layer:" in c.value for c in at.caption)


def test_results_shows_the_whole_kl_distribution(app):
    at = app("pages/results.py")
    at.sidebar.multiselect(key="f.protocol").set_value(["disjoint"]).run()
    table = _frame(at, "kld_p999")
    assert len(table) == 2 and (table["kld_p50"] <= table["kld_p999"]).all()
    titles = [json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "")
              for c in at.get("plotly_chart")]
    assert "Share of tokens with KL divergence above x" in titles
    assert "KL divergence by the baseline's confidence" in titles
    assert any(c.value.startswith("Noise floor of this baseline") for c in at.caption)
    assert "vs noise floor" in _frame(at, "verdict")


def test_rows_from_before_the_distribution_ask_to_be_rerun(tmp_path, monkeypatch):
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    state = tmp_path / "state"
    (state / "results").mkdir(parents=True)
    base = {"model": "m", "corpus": "c", "protocol": "disjoint", "tokens": 256, "window": 64,
            "stride": 64, "device": "cpu", "family": "f", "model_fingerprint": "m",
            "corpus_sha256": "c", "model_source": "local", "options_json": "{}",
            "reference_key": "r", "weights_mib": 1.0, "ppl": 10.0, "kld_se": 0.01,
            "effort": "quick", "finished_at": pd.Timestamp("2026-11-01", tz="UTC")}
    rows = [{**base, "key": "a", "method": "fp32", "method_label": "fp32", "kld_mean": 0.0},
            {**base, "key": "b", "method": "rtn", "method_label": "rtn", "kld_mean": 0.1}]
    pq.write_table(pa.Table.from_pylist(rows), state / "results" / "old.parquet")
    at = _page_on(state, "pages/results.py", monkeypatch)
    assert not at.exception, at.exception
    assert any("Re-run them (Compare) for the distribution" in c.value for c in at.caption)


def test_drift_explorer_colours_the_text_of_a_row(app):
    at = app("pages/drift.py")
    assert at.title[0].value == "Drift explorer" and not at.warning
    assert any(e.label.startswith("tokens ") for e in at.expander)
    at.radio(key="drift.mode").set_value("top").run()
    assert not at.exception
    assert any("top token differs" in c.value for c in at.caption)


def test_any_two_rows_get_their_paired_interval(app):
    at = app("pages/results.py")
    at.sidebar.multiselect(key="f.protocol").set_value(["disjoint"]).run()
    assert len(at.selectbox(key="pair.a").options) >= 2
    at.selectbox(key="pair.b").select_index(0).run()
    assert any("Pick two different rows" in c.value for c in at.caption)
    at.selectbox(key="pair.b").select_index(1).run()
    assert not at.exception
    assert any("95 % interval" in m.value and "PPL(B) / PPL(A)" in m.value for m in at.markdown)
