"""The mixed-precision offer on Results and Choose: for a model with a stored sensitivity
sweep, the best predicted recipe within a size beside the measured rows, and one click to
measure it (`qcompare.recipes.budget`); without a sweep, the way to make one."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from qcompare.core.errors import UserError
from qcompare.recipes import budget
from qcompare.recipes import recipe as recipes
from qcompare.ui.data import stored_sweeps, submit_runs
from qcompare.ui.lang import current, t
from qcompare.ui.notices import show_submitted, user_error


def offer(rows: pd.DataFrame, default_mib: float | None, key: str) -> None:
    """`rows`: the measured rows on screen (one model); `default_mib`: the size to start from."""
    fingerprints = set(rows["model_fingerprint"].dropna()) if not rows.empty else set()
    mine = [s for s in stored_sweeps() if s.spec.model.fingerprint in fingerprints]
    if not mine:
        st.caption(t("offer.none"))
        st.page_link("pages/recipe.py", label=t("offer.link"), icon="🧩")
        return
    sweep = mine[0]
    least = recipes.smallest_mib(sweep.table, sweep.fixed_bits)
    full = recipes.uniform(sweep.table, sweep.fixed_bits, 16).size_mib
    start = min(max(default_mib or full, least), full)
    target = st.number_input(t("offer.within"), min_value=round(least, 2), max_value=round(full, 2),
                             value=round(start, 2), step=1.0, key=f"{key}.mib",
                             help=f"from {sweep.meta['label']}")
    r = recipes.recipe_for(sweep.table, sweep.fixed_bits, target_mib=target)
    if r is None:
        st.warning(t("offer.nothing", target=target, least=least))
        return
    run = budget.recipe_run(sweep, r)
    hit = rows[rows["key"] == run.key()] if not rows.empty else rows
    measured = (t("offer.measured", kld=hit["kld_mean"].iloc[0], mib=hit["weights_mib"].iloc[0])
                if not hit.empty else t("offer.not_measured"))
    st.markdown(t("offer.recipe", family=sweep.spec.family, recipe=r.describe(current()), measured=measured))
    c = st.columns(2)
    if hit.empty and c[0].button(t("offer.measure"), key=f"{key}.measure"):
        try:
            show_submitted(submit_runs([run]))
        except UserError as e:
            user_error(e)
    with c[1]:
        st.page_link("pages/recipe.py", label=t("offer.frontier"), icon="🧩")
