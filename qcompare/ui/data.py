"""What the pages read and submit, with Streamlit's caches in front of the library."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import streamlit as st

from qcompare.core.specs import CalibSpec, CorpusSpec, EvalSpec, MethodSpec, ModelSpec
from qcompare.core.statedir import default_state_dir
from qcompare.jobs.submit import Submitted, build_specs, preset_specs, queue_order, submit
from qcompare.sources import models
from qcompare.store.results import ResultStore


def state_dir() -> Path:
    return default_state_dir()


def start_runner() -> bool:
    """Pages start a runner on submit unless QCOMPARE_START_RUNNER=0 (page tests)."""
    return os.environ.get("QCOMPARE_START_RUNNER", "1") != "0"


def _results_signature(folder: Path) -> tuple:
    return tuple((p.name, p.stat().st_mtime_ns) for p in ResultStore(folder).files())


@st.cache_data(show_spinner=False, max_entries=4)
def _load(folder: str, signature: tuple):
    loaded = ResultStore(folder).load()
    return loaded.frame, loaded.errors


def results() -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """All result rows (re-read only when a Parquet file changed) and unreadable files."""
    d = state_dir()
    return _load(str(d), _results_signature(d))


@st.cache_data(show_spinner=False, ttl=5)
def embedded_state(folder: str) -> tuple[str, str]:
    return models.embedded_state(Path(folder))


@st.cache_data(show_spinner=False, ttl=60)
def resolve_model(spec: ModelSpec) -> ModelSpec:
    return models.resolve(spec)


@st.cache_data(show_spinner=False)
def param_count(spec: ModelSpec, folder: str) -> int | None:
    return models.param_count(spec, Path(folder))


@st.cache_data(show_spinner=False, ttl=30)
def planned_specs(model: ModelSpec, methods: tuple[MethodSpec, ...], corpus: CorpusSpec,
                  ev: EvalSpec, calib: CalibSpec | None = None):
    """The RunSpecs a submission would queue (resolved, so their keys are the cache keys)."""
    return build_specs(model, list(methods), corpus, ev, calib)


def runner_choice() -> tuple[str, str | None]:
    """(runner, Ray address) picked in the sidebar; local unless a cluster was chosen."""
    return st.session_state.get("runner", "local"), st.session_state.get("ray_address")


@st.cache_data(show_spinner=False, ttl=30)
def ray_cluster(address: str, lang: str = "en") -> tuple[dict | None, str]:
    """(summary, error in `lang`) of the Ray cluster at `address`, asked at most every 30 s."""
    from qcompare.core.errors import UserError
    from qcompare.jobs.ray_runner import cluster_summary

    try:
        return cluster_summary(address), ""
    except UserError as e:
        return None, e.text(lang)


def _submit(specs) -> list[Submitted]:
    runner, address = runner_choice()
    return submit(specs, state_dir(), start_runner=start_runner(), record_hits=True,
                  runner=runner, address=address)


def submit_specs(model: ModelSpec, methods: list[MethodSpec], corpus: CorpusSpec,
                 ev: EvalSpec, calib: CalibSpec | None = None) -> list[Submitted]:
    return _submit(build_specs(model, methods, corpus, ev, calib))


@st.cache_data(show_spinner=False, ttl=30)
def preset_plan(preset: str, effort: str):
    """The RunSpecs the Home button would queue, in queue order (cheapest first)."""
    specs = preset_specs(preset, effort)
    return [specs[i] for i in queue_order(specs)]


def submit_preset(preset: str, effort: str) -> list[Submitted]:
    """What the Home button does (and bench/default_comparison.py times)."""
    return _submit(preset_specs(preset, effort))


@st.cache_data(show_spinner=False, max_entries=16)
def ranked(group: pd.DataFrame, folder: str) -> pd.DataFrame:
    """qcompare.stats.ranking.rank of a group, read from the per-token files once per group (Home
    redraws its chart every few seconds; the rows, and so the ranking, change only as jobs land)."""
    from qcompare.stats import ranking

    return ranking.rank(group, folder)


@st.cache_data(show_spinner=False, max_entries=16)
def model_shape(spec_json: str):
    """The calculator's shape of the model a row was measured on (read from its header)."""
    from qcompare.core.specs import RunSpec
    from qcompare.decide import shapes

    if not isinstance(spec_json, str):             # a row without its spec: no shape
        return None
    try:
        return shapes.shape_of(RunSpec.from_json(spec_json).model)
    except Exception:  # noqa: BLE001 - a spec of another protocol version: size by weights only
        return None


def queue_like(spec_json: str, method_args: list[str]) -> list[Submitted]:
    """Queue `method_args` on the model, corpus and protocol of an existing row, so their
    results land in the same comparable group (a calibrating method gets the row's
    calibration settings, or its effort's)."""
    from qcompare.core import effort, registry
    from qcompare.core.specs import RunSpec

    base = RunSpec.from_json(spec_json)
    name = effort.effort_of(base)
    calib = base.calib or effort.calib_spec(name if name in effort.EFFORTS else "quick", base.corpus)
    methods = [registry.parse_method_arg(m) for m in method_args]
    return _submit(build_specs(base.model, methods, base.corpus, base.eval, calib))


@st.cache_data(show_spinner=False, max_entries=8)
def token_kl(keys: tuple[str, ...], labels: tuple[str, ...], folder: str) -> dict:
    """label -> the row's per-token KL values (for the distribution chart), rows with them."""
    from qcompare.store.tokenscores import TokenScores

    store = TokenScores(folder)
    out = {}
    for key, label in zip(keys, labels):
        scores = store.read(key)
        if scores is not None and scores["kl"].size:
            out[label] = scores["kl"]
    return out


def submit_sweep(spec) -> Submitted:
    """Queue a sensitivity sweep (qcompare.recipes.sensitivity) unless its table is stored."""
    from qcompare.jobs.submit import submit_sensitivity

    runner, address = runner_choice()
    return submit_sensitivity(spec, state_dir(), start_runner=start_runner(), runner=runner,
                              address=address)


def submit_runs(specs) -> list[Submitted]:
    """Queue ready RunSpecs (a recipe's verification) like any submission."""
    return _submit(specs)


@st.cache_data(show_spinner=False, ttl=10)
def sweeps(folder: str, signature: tuple):
    """The stored sensitivity sweeps (`qcompare.recipes.budget.sweeps`), re-read when a file changes."""
    from qcompare.recipes import budget

    return budget.sweeps(folder)


def stored_sweeps():
    from qcompare.recipes.sensitivity import SensitivityStore

    store = SensitivityStore(state_dir())
    files = sorted(store.dir.glob("*.json")) if store.dir.exists() else []
    return sweeps(str(state_dir()), tuple((p.name, p.stat().st_mtime_ns) for p in files))
