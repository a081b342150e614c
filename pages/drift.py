"""Drift explorer: the evaluated text with each token coloured by one method's KL divergence
from the baseline (or marked where its top token changed), the worst passages first."""
import numpy as np
import streamlit as st

from qcompare.core.registry import BASELINE
from qcompare.explore import drift
from qcompare.store.tokenscores import TokenScores
from qcompare.ui.data import results, state_dir
from qcompare.ui.lang import t
from qcompare.ui.navigation import ensure_navigation

ensure_navigation("pages/drift.py")
st.title(t("drift.title"))
st.markdown(t("drift.intro"))
df, _ = results()
rows = df[(df["method"] != BASELINE) & df["kld_mean"].notna()] if not df.empty else df
if rows.empty:
    st.info(t("drift.none"))
    st.stop()
label = {r["key"]: t("drift.row_label", method=r["method_label"], model=r["model"], tokens=r["tokens"],
                    effort=r["effort"])
         for _, r in rows.sort_values("finished_at", ascending=False).iterrows()}
key = st.selectbox(t("drift.row"), list(label), format_func=label.get, key="drift.row")
row = rows[rows["key"] == key].iloc[0]
scores = TokenScores(state_dir()).read(key)
pieces = drift.read_pieces(state_dir(), row["reference_key"])
if scores is None or pieces is None or len(pieces.scored) != len(scores["kl"]):
    st.warning(t("drift.no_text"))
    st.stop()
kl = scores["kl"]
modes = ["kl"] + (["top"] if "same_top" in scores else [])
mode = st.radio(t("drift.colour_by"), modes, horizontal=True, key="drift.mode",
                format_func=lambda m: t("drift.by_kl") if m == "kl" else t("drift.by_top"))
scale = float(np.percentile(kl, 99)) or float(kl.max()) or 1.0
values = drift.values_by_position(pieces, kl)
changed = None
if mode == "top":
    changed = np.zeros(len(pieces.pieces), bool)
    changed[pieces.scored] = ~scores["same_top"]
    per_token = (~scores["same_top"]).astype(float)
    st.caption(t("drift.amber", share=per_token.mean(), n=len(kl)))
else:
    per_token = kl
    st.caption(t("drift.red", scale=scale))

st.subheader(t("drift.worst"))
for start, mean in drift.worst_passages(per_token):
    first, last = pieces.scored[start], pieces.scored[min(start + drift.PASSAGE, len(kl)) - 1] + 1
    what = t("drift.mean_kl", v=mean) if changed is None else t("drift.changed", v=mean)
    with st.expander(t("drift.passage", first=first, last=last, what=what),
                     expanded=start == drift.worst_passages(per_token)[0][0]):
        st.html(drift.html_span(pieces, values, first, last, scale, changed))

st.subheader(t("drift.whole"))
block = 800
n = len(pieces.pieces)
begin = st.slider(t("drift.from_token"), 0, max(0, n - 1), 0, step=block, key="drift.begin") if n > block else 0
st.caption(t("drift.range", a=begin, b=min(begin + block, n), n=n))
st.html(drift.html_span(pieces, values, begin, begin + block, scale, changed))
