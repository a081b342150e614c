"""Home: what qcompare is, the embedded model's state, the one-click default comparison, and
the latest trade-off chart."""
import streamlit as st

from qcompare import charts, effort, estimate, ranking
from qcompare.comparability import latest_group
from qcompare.errors import UserError
from qcompare.methods.presets import preset_families
from qcompare.models import EMBEDDED_NOTE
from qcompare.registry import BASELINE, get
from qcompare.ui import presenter
from qcompare.ui.data import embedded_state, preset_plan, results, state_dir, submit_preset
from qcompare.ui.data import ranked as data_ranked
from qcompare.ui.navigation import ensure_navigation
from qcompare.ui.notices import show_submitted, user_error

ensure_navigation("pages/home.py")
st.title("qcompare")
st.markdown(
    "Compare LLM quantization methods side by side: each method is applied to the same model, "
    "then measured for **quality** (perplexity, KL divergence and top-1 agreement against the "
    "unquantized model), **speed** (prefill, decode, time to first token) and **memory**. "
    "Every result is cached, and the charts show which method gives the best trade-off.  \n"
    "量子化手法を、品質・速度・メモリの観点で並べて比較できます。")

state, message = embedded_state(str(state_dir()))
icon = {"ready": "✅", "converting": "⏳", "not converted": "💤", "missing": "❌"}[state]
st.subheader("Embedded default model")
st.markdown(f"{icon} **SmolLM2-135M-Instruct** — {state}: {message}.")
st.caption(EMBEDDED_NOTE + ". A 4-bit method that lands on that same grid would look lossless "
           "for that reason alone.")

st.subheader("Run the default comparison")
EFFORT = "quick"
families = [f for f in preset_families("default", "cpu") if f != get(BASELINE).family]
try:
    specs = preset_plan("default", EFFORT)
    ev = specs[0].eval
    st.markdown(f"**{len(specs)} runs**: the {BASELINE} baseline and one method of each of "
                f"{len(families)} families ({', '.join(families)}) on the embedded model and "
                f"corpus, at the **{EFFORT}** effort ({effort.get(EFFORT).summary}; windows of "
                f"{ev.window}). Cheap runs go first, so points appear within a minute. The "
                "thorough effort and every other method and option are on the Compare page.")
    st.caption("Runs, in queue order: " + " · ".join(
        get(s.method.name).chart_label(s.method.options_dict) for s in specs))
    st.caption("⏱ " + estimate.describe(estimate.plan(specs, results()[0], state_dir())))
except UserError as e:
    user_error(e)
if st.button("▶ Run the default comparison", type="primary"):
    try:
        show_submitted(submit_preset("default", EFFORT))
    except UserError as e:
        user_error(e)


@st.fragment(run_every=5)
def latest_tradeoff() -> None:
    """Redrawn every few seconds, so points appear as jobs land."""
    st.subheader("Latest trade-off")
    df, _ = results()
    group = latest_group(df)
    if group.empty:
        st.info("No results yet — run the default comparison above, or set up runs on the "
                "Compare page.")
        return
    first = group.iloc[0]
    efforts = ", ".join(sorted(set(group["effort"].fillna(effort.CUSTOM))))
    st.caption(f"{first['model']} · {first['corpus']} · protocol {first['protocol']}, "
               f"{first['tokens']} tokens, window {first['window']} · {first['device']} · "
               f"effort {efforts}")
    fig = charts.tradeoff(group, "weights_mib", "ppl")
    presenter.chart(fig, key="home_tradeoff")
    if (fig.layout.meta or {}).get("collapsed"):
        st.caption("Runs whose perplexity collapsed are drawn in the strip at the top with their "
                   "value; the axis is fitted to the others (Results can show them on the scale).")
    ranked = data_ranked(group, str(state_dir()))
    if len(ranked) > 1:
        st.caption(f"How precise: perplexity ± its standard error is in each point's hover; "
                   f"ranked by KL divergence, {ranking.summary(ranked)}.")
    st.page_link("pages/results.py", label="Explore all results", icon="📈")


latest_tradeoff()
