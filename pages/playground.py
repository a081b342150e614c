"""Quantization playground: one real weight tensor of the model, quantized by the source guide's
formulas in NumPy (`qcompare.explore.playground`), two settings side by side. Reads safetensors directly;
no torch, no job: every change is computed in the page."""
import time
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from qcompare.core import effort, registry
from qcompare.core.errors import UserError
from qcompare.core.specs import CorpusSpec, ModelSpec
from qcompare.explore import generation, playground_charts
from qcompare.explore import playground as pg
from qcompare.explore.generation_worker import ensure_worker
from qcompare.jobs.submit import build_specs
from qcompare.sources import models
from qcompare.ui import presenter
from qcompare.ui.data import start_runner, state_dir
from qcompare.ui.lang import current, t
from qcompare.ui.navigation import ensure_navigation
from qcompare.ui.notices import user_error

ensure_navigation("pages/playground.py")
st.title(t("playground.title"))
st.markdown(t("playground.intro"))


EMBEDDED = "embedded"


@st.cache_data(show_spinner=False)
def _folders(folder: str) -> dict[str, str]:
    """Model folders with safetensors: the embedded model once converted, and the others."""
    out = {}
    try:
        gguf = models.embedded_gguf()
        d = models.converted_dir(Path(folder), gguf, models._file_sha256(gguf))
        if (d / "config.json").is_file():
            out[EMBEDDED] = str(d)
    except (UserError, OSError):          # the package, or its file, is not installed here
        pass
    for f in models.discover(Path(folder)):
        if any(Path(f).glob("*.safetensors")):
            out.setdefault(Path(f).name, f)
    return out


@st.cache_data(show_spinner=False, max_entries=8)
def _tensor(path: str, name: str):
    return pg.read_tensor(path, name)


folders = _folders(str(state_dir()))
if not folders:
    st.info(t("playground.no_model"))
    st.stop()
c = st.columns([2, 1, 1])
label = c[0].selectbox(t("playground.model"), list(folders), key="pg.model",
                       format_func=lambda m: t("playground.embedded") if m == EMBEDDED else m)
weights = pg.weight_tensors(folders[label])
layers = sorted({int(n.split(".layers.")[1].split(".")[0]) for n in weights})
layer = c[1].selectbox(t("playground.layer"), layers, key="pg.layer")
names = [n for n in weights if f".layers.{layer}." in n]
short = {n.split(f".layers.{layer}.")[1].removesuffix(".weight"): n for n in names}
largest = max(short, key=lambda k: weights[short[k]][1][0] * weights[short[k]][1][1])
proj = c[2].selectbox(t("playground.projection"), list(short), index=list(short).index(largest),
                      key="pg.proj", help=t("playground.projection_help"))
name = short[proj]
path, shape = weights[name]
x = _tensor(path, name)
if label == EMBEDDED:
    st.caption(t("playground.q4_note"))
st.caption(t("playground.tensor", name=name, rows=shape[0], cols=shape[1], n=x.size, lo=x.min(),
             hi=x.max(), mean=abs(x).mean()))


def _setting(col, side: str, default_bits: int, default_cal: str) -> pg.Setting:
    with col:
        st.markdown(t("playground.setting", side=side))
        a, b = st.columns(2)
        bits = a.select_slider(t("playground.bits"), options=[2, 3, 4, 5, 6, 7, 8], value=default_bits,
                               key=f"pg.{side}.bits")
        sym = b.radio(t("playground.zero"), ("symmetric", "asymmetric"), horizontal=True,
                      key=f"pg.{side}.sym", format_func=lambda v: t(f"playground.{v}")) == "symmetric"
        gran = a.radio(t("playground.granularity"), pg.GRANULARITIES, index=2, horizontal=True,
                       key=f"pg.{side}.gran", help=t("playground.granularity_help"),
                       format_func=lambda g: t(f"playground.{g}_g"))
        group = b.select_slider(t("playground.group"), options=[16, 32, 64, 128, 256], value=128,
                                key=f"pg.{side}.group", disabled=gran != "group")
        cal = a.radio(t("playground.calibrator"), pg.CALIBRATORS, index=pg.CALIBRATORS.index(default_cal),
                      horizontal=True, key=f"pg.{side}.cal", help=t("playground.calibrator_help"))
        pct = b.number_input(t("playground.percentile"), min_value=90.0, max_value=100.0, value=99.9,
                             step=0.1, key=f"pg.{side}.pct", disabled=cal != "percentile")
    return pg.Setting(bits=bits, symmetric=sym, granularity=gran, group_size=group,
                      calibrator=cal, percentile=pct)


def _label(s: pg.Setting) -> str:
    gran = (f"g{s.group_size}" if s.granularity == "group" else
            t("playground.per_tensor") if s.granularity == "tensor" else t("playground.per_channel"))
    cal = f"p{s.percentile:g}" if s.calibrator == "percentile" else s.calibrator
    return t("playground.setting_label", bits=s.bits, gran=gran, cal=cal,
             zero=t("playground.sym_short") if s.symmetric else t("playground.asym_short"))


cols = st.columns(2)
settings = [_setting(cols[0], "A", 4, "minmax"), _setting(cols[1], "B", 4, "mse")]
for i, (col, s) in enumerate(zip(cols, settings)):
    t0 = time.perf_counter()
    q = pg.quantize(x, s)
    ms = (time.perf_counter() - t0) * 1000
    with col:
        m = st.columns(2) + st.columns(2)
        m[0].metric(t("playground.sqnr"), f"{q.sqnr_db:.2f} dB", help=t("playground.sqnr_help"))
        m[1].metric(t("playground.mse"), f"{q.mse:.3g}")
        m[2].metric(t("playground.max_err"), f"{q.max_abs_err:.3g}")
        m[3].metric(t("playground.clipped"), f"{q.clipped:.2%}", help=t("playground.clipped_help"))
        st.caption(t("playground.summary", label=_label(s), ratio=q.ratio, n=q.scale.size, ms=ms,
                     zeros="" if s.symmetric else t("playground.and_zeros")))
        presenter.chart(playground_charts.histogram(x, q, s, current(), _label(s)), width="stretch", key=f"pg.hist.{i}")
        if q.scale.size > 1:
            presenter.chart(playground_charts.scales(q, current()), width="stretch", key=f"pg.scales.{i}")
        with st.expander(t("playground.largest")):
            st.dataframe(pd.DataFrame(playground_charts.outliers(x, q, lang=current())), hide_index=True)


# --- activations: why SmoothQuant and LLM.int8 exist ----------------------------------------------
st.subheader(t("playground.act_title"))
st.markdown(t("playground.act_intro"))
text = st.text_area(t("playground.sentence"), t("playground.default_sentence"), key="pg.act.text")
module = name.removesuffix(".weight")


@st.cache_data(show_spinner=False)
def _baseline_json(model_label: str, folder: str) -> str:
    spec = ModelSpec() if model_label == EMBEDDED else models.model_from_arg(folder)
    return build_specs(spec, [registry.make_method_spec(registry.BASELINE, {})], CorpusSpec(),
                       effort.eval_spec("quick"))[0].to_json()


if st.button(t("playground.capture"), key="pg.act.go"):
    try:
        st.session_state["pg.act.request"] = generation.submit_activations(
            state_dir(), text, _baseline_json(label, folders[label]), module)
        if start_runner():
            ensure_worker(state_dir())
            st.session_state["pg.act.started"] = time.time()
    except UserError as e:
        user_error(e)
    except ValueError as e:
        st.error(str(e))


@st.fragment(run_every=1.0)
def _activations() -> None:
    rid = st.session_state.get("pg.act.request")
    if not rid:
        return
    state = generation.read_state(state_dir(), rid)
    if state is None or state.get("status") not in generation.FINISHED:
        # a worker that was just exiting when this was queued: start another, at most every 10 s
        if state is None and start_runner() and time.time() - st.session_state.get("pg.act.started", 0) > 10:
            st.session_state["pg.act.started"] = time.time()
            ensure_worker(state_dir())
        st.info(t("playground.reading"))
        return
    if state["status"] == "failed":
        st.error(t("playground.capture_failed", error=state.get("error")))
        return
    acts = generation.activations(state_dir(), rid)
    if acts is None:
        return
    peaks = np.abs(acts).max(axis=0)
    ratio = float(peaks.max() / max(np.median(peaks), 1e-30))
    wratio = float(np.abs(x).max() / max(np.median(np.abs(x).max(axis=1)), 1e-30))
    st.caption(t("playground.act_caption", module=state["module"], tokens=acts.shape[0],
                 channels=acts.shape[1], ratio=ratio, wratio=wratio))
    presenter.chart(playground_charts.channel_peaks(acts, current()), width="stretch", key="pg.act.peaks")
    rows = []
    for what, arr in (("activations", acts), ("weight", x)):
        for gran, words in (("tensor", "one_scale"), ("channel", "per_row")):
            q = pg.quantize(arr, pg.Setting(bits=8, granularity=gran))
            scale = t(f"playground.{words}") + (t("playground.per_token") if what == "activations"
                                                and gran == "channel" else "")
            rows.append({t("playground.col_tensor"): t(f"playground.{what}"),
                         t("playground.col_scale"): scale,
                         t("playground.col_sqnr"): round(q.sqnr_db, 2), t("playground.col_err"): q.max_abs_err})
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    st.caption(t("playground.act_note"))


_activations()
