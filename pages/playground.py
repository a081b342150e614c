"""Quantization playground: one real weight tensor of the model, quantized by the source guide's
formulas in NumPy (`qcompare.playground`), two settings side by side. Reads safetensors directly;
no torch, no job: every change is computed in the page."""
import time
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from qcompare import effort, generation, models, playground_charts, registry
from qcompare import playground as pg
from qcompare.errors import UserError
from qcompare.jobs.generation_worker import ensure_worker
from qcompare.specs import CorpusSpec, ModelSpec
from qcompare.submit import build_specs
from qcompare.ui import presenter
from qcompare.ui.data import start_runner, state_dir
from qcompare.ui.navigation import ensure_navigation

ensure_navigation("pages/playground.py")
st.title("Quantization playground")
st.markdown("What scale, zero point, group size and the range calibrator do to a **real weight "
            "tensor** of the model: pick a Linear, set two quantizers side by side, and read the "
            "grid over the values, what is clipped, the error and the scales. The formulas are "
            "the guide's: q = clamp(round(x / scale) + zero_point, q_min, q_max), x̂ = scale · "
            "(q − zero_point).")


@st.cache_data(show_spinner=False)
def _folders(folder: str) -> dict[str, str]:
    """Model folders with safetensors: the embedded model once converted, and the others."""
    out = {}
    try:
        gguf = models.embedded_gguf()
        d = models.converted_dir(Path(folder), gguf, models._file_sha256(gguf))
        if (d / "config.json").is_file():
            out["embedded (SmolLM2-135M, dequantized from Q4_1)"] = str(d)
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
    st.info("No model folder with safetensors yet: the embedded model is converted on its first "
            "run (run the default comparison on the Home page), or put a model in the state "
            "folder's models/.")
    st.stop()
c = st.columns([2, 1, 1])
label = c[0].selectbox("Model", list(folders), key="pg.model")
weights = pg.weight_tensors(folders[label])
layers = sorted({int(n.split(".layers.")[1].split(".")[0]) for n in weights})
layer = c[1].selectbox("Layer", layers, key="pg.layer")
names = [n for n in weights if f".layers.{layer}." in n]
short = {n.split(f".layers.{layer}.")[1].removesuffix(".weight"): n for n in names}
largest = max(short, key=lambda k: weights[short[k]][1][0] * weights[short[k]][1][1])
proj = c[2].selectbox("Projection", list(short), index=list(short).index(largest), key="pg.proj",
                      help="the largest Linear of the layer first")
name = short[proj]
path, shape = weights[name]
x = _tensor(path, name)
if "embedded" in label:
    st.caption("ℹ️ This model was stored as Q4_1 (4-bit, blocks of 32, asymmetric) before it was "
               "dequantized: at 4 bits, asymmetric, groups of 32 the grid can coincide with the "
               "original one, and the error then says little about a 16-bit model.")
st.caption(f"`{name}`: {shape[0]} × {shape[1]} = {x.size:,} values, min {x.min():.4g}, max "
           f"{x.max():.4g}, mean |x| {abs(x).mean():.4g}.")


def _setting(col, side: str, default_bits: int, default_cal: str) -> pg.Setting:
    with col:
        st.markdown(f"**Setting {side}**")
        a, b = st.columns(2)
        bits = a.select_slider("Bits", options=[2, 3, 4, 5, 6, 7, 8], value=default_bits, key=f"pg.{side}.bits")
        sym = b.radio("Zero point", ("symmetric", "asymmetric"), horizontal=True,
                      key=f"pg.{side}.sym") == "symmetric"
        gran = a.radio("Granularity", pg.GRANULARITIES, index=2, horizontal=True, key=f"pg.{side}.gran",
                       help="one scale for the whole tensor, per output row, or per group of inputs")
        group = b.select_slider("Group size", options=[16, 32, 64, 128, 256], value=128,
                                key=f"pg.{side}.group", disabled=gran != "group")
        cal = a.radio("Range (calibrator)", pg.CALIBRATORS, index=pg.CALIBRATORS.index(default_cal),
                      horizontal=True, key=f"pg.{side}.cal",
                      help="minmax: the whole range; percentile: clip at a percentile of |x|; "
                           "kl: TensorRT's entropy threshold (2048 bins); mse: the clip ratio "
                           "with the least squared error")
        pct = b.number_input("Percentile of |x|", min_value=90.0, max_value=100.0, value=99.9,
                             step=0.1, key=f"pg.{side}.pct", disabled=cal != "percentile")
    return pg.Setting(bits=bits, symmetric=sym, granularity=gran, group_size=group,
                      calibrator=cal, percentile=pct)


cols = st.columns(2)
settings = [_setting(cols[0], "A", 4, "minmax"), _setting(cols[1], "B", 4, "mse")]
for i, (col, s) in enumerate(zip(cols, settings)):
    t0 = time.perf_counter()
    q = pg.quantize(x, s)
    ms = (time.perf_counter() - t0) * 1000
    with col:
        m = st.columns(2) + st.columns(2)
        m[0].metric("SQNR", f"{q.sqnr_db:.2f} dB", help="10 log10(Σx² / Σ(x − x̂)²)")
        m[1].metric("MSE", f"{q.mse:.3g}")
        m[2].metric("Max |error|", f"{q.max_abs_err:.3g}")
        m[3].metric("Clipped", f"{q.clipped:.2%}", help="values outside their block's grid")
        st.caption(f"{s.label}: clip ratio {q.ratio:.3f}; {q.scale.size:,} scales"
                   + ("" if s.symmetric else " and zero points") + f"; computed in {ms:.0f} ms.")
        presenter.chart(playground_charts.histogram(x, q, s), width="stretch", key=f"pg.hist.{i}")
        if q.scale.size > 1:
            presenter.chart(playground_charts.scales(q), width="stretch", key=f"pg.scales.{i}")
        with st.expander("The 10 largest weights and what became of them"):
            st.dataframe(pd.DataFrame(playground_charts.outliers(x, q)), hide_index=True)


# --- activations: why SmoothQuant and LLM.int8 exist ----------------------------------------------
st.subheader("The activations this Linear sees")
st.markdown("Weights are tame; the inputs of a Linear often are not: a few channels carry values "
            "far above the rest, so one int8 scale for the whole tensor wastes its grid on them. "
            "LLM.int8 keeps those channels in 16 bits; SmoothQuant moves their scale into the "
            "weights. Capture what this Linear receives while the model reads a sentence (a "
            "worker runs the fp32 model; the page stays free of torch).")
SENTENCE = ("The quick brown fox jumps over the lazy dog. Quantization maps real numbers to a "
            "small set of integers, and the scale decides which ones survive.")
text = st.text_area("Sentence", SENTENCE, key="pg.act.text")
module = name.removesuffix(".weight")


@st.cache_data(show_spinner=False)
def _baseline_json(model_label: str, folder: str) -> str:
    spec = ModelSpec() if model_label.startswith("embedded") else models.model_from_arg(folder)
    return build_specs(spec, [registry.make_method_spec(registry.BASELINE, {})], CorpusSpec(),
                       effort.eval_spec("quick"))[0].to_json()


if st.button("Capture the activations", key="pg.act.go"):
    try:
        st.session_state["pg.act.request"] = generation.submit_activations(
            state_dir(), text, _baseline_json(label, folders[label]), module)
        if start_runner():
            ensure_worker(state_dir())
    except (UserError, ValueError) as e:
        st.error(str(e))


@st.fragment(run_every=1.0)
def _activations() -> None:
    rid = st.session_state.get("pg.act.request")
    if not rid:
        return
    state = generation.read_state(state_dir(), rid)
    if state is None or state.get("status") not in generation.FINISHED:
        st.info("⏳ The worker is reading the sentence (the first time, it loads the model).")
        return
    if state["status"] == "failed":
        st.error(f"The capture failed: {state.get('error')}")
        return
    acts = generation.activations(state_dir(), rid)
    if acts is None:
        return
    peaks = np.abs(acts).max(axis=0)
    ratio = float(peaks.max() / max(np.median(peaks), 1e-30))
    st.caption(f"`{state['module']}` input: {acts.shape[0]} tokens × {acts.shape[1]} channels; the "
               f"largest channel peaks at {ratio:.0f}× the median channel's peak (for the weight "
               f"above: {float(np.abs(x).max() / max(np.median(np.abs(x).max(axis=1)), 1e-30)):.1f}× "
               "the median row's).")
    presenter.chart(playground_charts.channel_peaks(acts), width="stretch", key="pg.act.peaks")
    rows = []
    for what, arr in (("activations", acts), ("weight", x)):
        for gran, words in (("tensor", "one scale for all"), ("channel", "one scale per row")):
            q = pg.quantize(arr, pg.Setting(bits=8, granularity=gran))
            rows.append({"tensor": what, "int8 scale": words + (" (per token)" if what == "activations"
                                                                 and gran == "channel" else ""),
                         "SQNR (dB)": round(q.sqnr_db, 2), "max |error|": q.max_abs_err})
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    st.caption("int8 symmetric min-max. Per-tensor int8 of the activations loses to per-token "
               "int8 by the outlier channels' margin; the weight barely cares.")


_activations()
