"""Streamlit-side helpers the pages share: where state lives, cached reads, spec building from
widgets, the default comparison. Never imports torch (work runs in worker processes)."""
from __future__ import annotations

import itertools
import os
from dataclasses import fields
from pathlib import Path

import pandas as pd
import streamlit as st

from qcompare import models, registry
from qcompare.errors import UserError
from qcompare.home import default_home
from qcompare.results import ResultStore
from qcompare.specs import CalibSpec, CorpusSpec, EvalSpec, MethodSpec, ModelSpec
from qcompare.submit import Submitted, build_specs, submit

COMPARABLE = ["model", "corpus", "protocol", "tokens", "window", "device"]


def home() -> Path:
    return default_home()


def start_runner() -> bool:
    """Pages start a runner on submit unless QCOMPARE_START_RUNNER=0 (page tests)."""
    return os.environ.get("QCOMPARE_START_RUNNER", "1") != "0"


def _results_signature(folder: Path) -> tuple:
    if not folder.is_dir():
        return ()
    return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in folder.glob("*.parquet")))


@st.cache_data(show_spinner=False, max_entries=4)
def _load(home_dir: str, signature: tuple):
    loaded = ResultStore(home_dir).load()
    return loaded.frame, loaded.errors


def results() -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """All result rows (re-read only when a Parquet file changed) and unreadable files."""
    h = home()
    return _load(str(h), _results_signature(h / "results"))


def latest_group(df: pd.DataFrame) -> pd.DataFrame:
    """Rows measured under the same model, corpus and protocol as the newest row: the set
    whose numbers can be compared with each other."""
    if df.empty:
        return df
    newest = df.sort_values("finished_at").iloc[-1]
    mask = pd.Series(True, index=df.index)
    for c in COMPARABLE:
        mask &= df[c] == newest[c]
    return df[mask]


@st.cache_data(show_spinner=False, ttl=5)
def embedded_state(home_dir: str) -> tuple[str, str]:
    return models.embedded_state(Path(home_dir))


@st.cache_data(show_spinner=False, ttl=60)
def resolve_model(spec: ModelSpec) -> ModelSpec:
    return models.resolve(spec)


@st.cache_data(show_spinner=False)
def param_count(spec: ModelSpec, home_dir: str) -> int | None:
    return models.param_count(spec, Path(home_dir))


def method_variants(name: str, chosen: dict[str, list]) -> list[MethodSpec]:
    """The cartesian product of the values chosen for each option, each validated."""
    keys = sorted(chosen)
    out = []
    for combo in itertools.product(*(chosen[k] for k in keys)):
        out.append(registry.make_method_spec(name, dict(zip(keys, combo))))
    return out


# One method per family at a common 4-bit or 8-bit setting: a comparison that finishes in
# minutes on a laptop CPU (the calibrating ones use the default 32 x 512 calibration set).
DEFAULT_COMPARISON = ("fp32", "bf16", "rtn:bits=8", "rtn:bits=4", "gptq:bits=4", "awq:bits=4",
                      "hqq:bits=4", "bnb-nf4", "smoothquant", "torchao-int8wo", "gguf:type=Q4_K_M")


def default_comparison_methods(device: str = "cpu") -> list[MethodSpec]:
    """The fp32 baseline and one representative per family (DEFAULT_COMPARISON), those
    available on `device`, each at its default options otherwise."""
    out = []
    for arg in DEFAULT_COMPARISON:
        spec = registry.parse_method_arg(arg)
        if registry.get(spec.name).unavailable_reason(device) is None:
            out.append(spec)
    return out


def submit_specs(model: ModelSpec, methods: list[MethodSpec], corpus: CorpusSpec,
                 ev: EvalSpec, calib: CalibSpec | None = None) -> list[Submitted]:
    specs = build_specs(model, methods, corpus, ev, calib)
    return submit(specs, home(), start_runner=start_runner(), record_hits=True)


def eval_fields() -> dict[str, tuple]:
    """EvalSpec field -> (default, help), for the advanced form."""
    d = EvalSpec()
    return {f.name: (getattr(d, f.name), f.metadata.get("help", "")) for f in fields(EvalSpec)}


def show_submitted(subs: list[Submitted]) -> None:
    for s in subs:
        if s.cached:
            st.success(f"✓ {s.spec.method.label}: already measured (cache hit), shown in Results.")
        elif s.new:
            st.info(f"⏳ {s.spec.method.label}: queued as job #{s.job_id}.")
        else:
            st.info(f"⏳ {s.spec.method.label}: identical job #{s.job_id} is already queued or running.")
    if any(not s.cached for s in subs):
        st.page_link("pages/jobs.py", label="Watch the jobs", icon="⏱️")


def user_error(e: UserError) -> None:
    st.error(str(e), icon="⚠️")


NAV_FLAG, DEEPLINK = "_qcompare_nav", "_qcompare_deeplink"


def ensure_navigation(page_file: str) -> None:
    """Route a page through app.py when Streamlit ran it directly.

    On a fresh server whose first request is a deep link (say /jobs), Streamlit runs the
    pages/ file on its own, without app.py's st.navigation (streamlit#9624): the sidebar would
    list raw file names and miss its status. The page then hands over to app.py, which comes
    back to it."""
    if not st.session_state.get(NAV_FLAG):
        st.session_state[DEEPLINK] = page_file
        st.switch_page("app.py")
