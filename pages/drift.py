"""Drift explorer: the evaluated text with each token coloured by one method's KL divergence
from the baseline (or marked where its top token changed), the worst passages first."""
import numpy as np
import streamlit as st

from qcompare import drift
from qcompare.registry import BASELINE
from qcompare.tokenscores import TokenScores
from qcompare.ui.data import results, state_dir
from qcompare.ui.navigation import ensure_navigation

ensure_navigation("pages/drift.py")
st.title("Drift explorer")
st.markdown("Where, in real text, a method departs from the baseline: every evaluated token "
            "coloured by the method's KL divergence from the baseline at that token (or marked "
            "where its most likely next token differs), the worst passages first. Works for "
            "every runtime: the per-token scores are the ones the row's numbers came from.")
df, _ = results()
rows = df[(df["method"] != BASELINE) & df["kld_mean"].notna()] if not df.empty else df
if rows.empty:
    st.info("No measured rows with a KL divergence yet: run a comparison on the Home page.")
    st.stop()
label = {r["key"]: f"{r['method_label']} — {r['model']}, {r['tokens']} tokens ({r['effort']})"
         for _, r in rows.sort_values("finished_at", ascending=False).iterrows()}
key = st.selectbox("Row", list(label), format_func=label.get, key="drift.row")
row = rows[rows["key"] == key].iloc[0]
scores = TokenScores(state_dir()).read(key)
pieces = drift.read_pieces(state_dir(), row["reference_key"])
if scores is None or pieces is None or len(pieces.scored) != len(scores["kl"]):
    st.warning("This row has no stored per-token text to explore (it was measured before the "
               "drift explorer existed, or its baseline folder was removed): re-run it.")
    st.stop()
kl = scores["kl"]
modes = ["KL divergence"] + (["top token changed"] if "same_top" in scores else [])
mode = st.radio("Colour by", modes, horizontal=True, key="drift.mode")
scale = float(np.percentile(kl, 99)) or float(kl.max()) or 1.0
values = drift.values_by_position(pieces, kl)
changed = None
if mode == "top token changed":
    changed = np.zeros(len(pieces.pieces), bool)
    changed[pieces.scored] = ~scores["same_top"]
    per_token = (~scores["same_top"]).astype(float)
    st.caption(f"Amber: the method's top token differs from the baseline's "
               f"({per_token.mean():.1%} of {len(kl):,} scored tokens).")
else:
    per_token = kl
    st.caption(f"Red opacity: KL divergence, full at {scale:.3g} nats (this row's 99th "
               f"percentile); grey: tokens not scored (each window's first). Hover a token "
               "for its value.")

st.subheader("Worst passages")
for start, mean in drift.worst_passages(per_token):
    first, last = pieces.scored[start], pieces.scored[min(start + drift.PASSAGE, len(kl)) - 1] + 1
    what = f"mean KL {mean:.4f}" if changed is None else f"{mean:.0%} of top tokens changed"
    with st.expander(f"tokens {first:,}–{last:,}: {what}", expanded=start == drift.worst_passages(per_token)[0][0]):
        st.html(drift.html_span(pieces, values, first, last, scale, changed))

st.subheader("The whole text")
block = 800
n = len(pieces.pieces)
begin = st.slider("From token", 0, max(0, n - 1), 0, step=block, key="drift.begin") if n > block else 0
st.caption(f"Tokens {begin:,}–{min(begin + block, n):,} of {n:,}.")
st.html(drift.html_span(pieces, values, begin, begin + block, scale, changed))
