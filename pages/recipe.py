"""Recipe: where a model loses quality, unit by unit (a measured sensitivity sweep), and the
bits per unit that fit a size (an exact knapsack on the predicted KLD), verified by real runs.
The sweep and the runs go to worker processes; this page only reads tables and submits."""
import json

import pandas as pd
import streamlit as st

from qcompare.core import effort, registry
from qcompare.core.errors import UserError
from qcompare.core.specs import CorpusSpec, ModelSpec, RunSpec
from qcompare.decide import shapes
from qcompare.i18n import stages
from qcompare.jobs.store import JobStore
from qcompare.jobs.submit import resolve_sensitivity
from qcompare.methods.mixed import ROLES
from qcompare.recipes import budget, sensitivity
from qcompare.recipes import charts as sensitivity_charts
from qcompare.recipes import recipe as recipes
from qcompare.ui import presenter
from qcompare.ui.data import results, state_dir, stored_sweeps, submit_runs, submit_sweep
from qcompare.ui.lang import current, t
from qcompare.ui.navigation import ensure_navigation
from qcompare.ui.notices import show_submitted, user_error

ensure_navigation("pages/recipe.py")
st.title(t("rpage.title"))
lang = current()
st.markdown(t("rpage.intro"))
df, _ = results()
all_sweeps = stored_sweeps()
if st.session_state.get("recipe.model", "embedded") == "embedded" or any(
        s.spec.model.source == "embedded" for s in all_sweeps):
    st.caption(t("rpage.q4_note"))
tab_measure, tab_sens, tab_recipe = st.tabs([t("rpage.tab_measure"), t("rpage.tab_sens"),
                                             t("rpage.tab_recipe")])


def _models() -> dict[str, ModelSpec]:
    """The embedded model and every model with measured rows, by label."""
    out = {"embedded": ModelSpec()}
    if not df.empty:
        for text in df.sort_values("finished_at", ascending=False)["spec_json"].dropna():
            try:
                m = RunSpec.from_json(text).model
            except (UserError, KeyError, TypeError, ValueError):
                continue
            out.setdefault(m.label, m)
    return out


with tab_measure:
    models_by_label = _models()
    c = st.columns(3)
    label = c[0].selectbox(t("rpage.model"), list(models_by_label), key="recipe.model")
    family = c[1].radio(t("rpage.quantizer"), registry.unit_quantizers(), horizontal=True, key="recipe.family",
                        help=t("rpage.quantizer_help"))
    unit = c[2].radio(t("rpage.unit"), sensitivity.UNITS, horizontal=True, key="recipe.unit",
                      help=t("rpage.unit_help"))
    c = st.columns(4)
    bits = tuple(c[0].multiselect(t("rpage.widths"), sensitivity.BITS, default=list(sensitivity.BITS),
                                  key="recipe.bits"))
    group = int(c[1].number_input(t("rpage.group"), min_value=0, value=128, step=32,
                                  key="recipe.group"))
    sym = c[2].checkbox(t("rpage.symmetric"), value=True, key="recipe.sym")
    samples = int(c[3].number_input(t("rpage.samples"), min_value=1, value=4, key="recipe.samples",
                                    help=t("rpage.samples_help")))
    eff = st.radio(t("rpage.effort"),
                   tuple(effort.EFFORTS), horizontal=True, key="recipe.effort")
    try:
        ev = effort.eval_spec(eff)
        spec = resolve_sensitivity(sensitivity.SensitivitySpec(
            model=models_by_label[label], family=family, bits=bits, unit=unit, symmetric=sym,
            group_size=group, score_samples=samples, eval=ev,
            calib=effort.calib_spec(eff, CorpusSpec())))
        shape = shapes.shape_of(spec.model)
        cost = budget.cost_for(spec, state_dir(), shape.layers if shape else None, df)
    except UserError as e:
        user_error(e)
        st.stop()
    stored = any(s.meta["key"] == spec.key() for s in all_sweeps)
    when = t("rpage.when_known", v=cost.seconds / 60) if cost.seconds else t("rpage.when_unknown")
    basis = t(cost.basis_key, **dict(cost.basis_values)) if cost.basis_key else cost.basis
    st.markdown(t("rpage.cost", passes=cost.passes, tokens=cost.tokens_per_pass, when=when, basis=basis))
    if stored:
        st.success(t("rpage.stored"))
    elif st.button(t("rpage.start"), type="primary", key="recipe.start"):
        try:
            sub = submit_sweep(spec)
            st.info(t("rpage.queued", label=spec.label, id=sub.job_id) if sub.new else
                    t("rpage.joined", id=sub.job_id))
            st.page_link("pages/jobs.py", label=t("notices.watch"), icon="⏱️")
        except UserError as e:
            user_error(e)

    @st.fragment(run_every=3)
    def _progress() -> None:
        active = [j for j in JobStore.open(state_dir()).list(("queued", "running"))
                  if sensitivity.is_sensitivity_json(j.spec_json)]
        for j in active:
            st.progress(min(max(j.progress, 0.0), 1.0),
                        text=f"#{j.id} {t(f'jobs.s_{j.state}')}: {stages.text(j.stage, lang, registry.stage_patterns()) or t('jobs.s_queued')}")
    _progress()

if not all_sweeps:
    for tab in (tab_sens, tab_recipe):
        tab.info(t("rpage.no_sweep"))
    st.stop()

titles = {f"{s.meta['label']} · {s.meta['tokens']} tokens · {s.meta['key'][:8]}": s for s in all_sweeps}

with tab_sens:
    title = st.selectbox(t("rpage.sweep"), list(titles), key="recipe.sweep")
    sweep = titles[title]
    widths = sorted(int(b) for b in sweep.table["bits"].unique())
    b = st.radio(t("rpage.width"), widths, index=min(1, len(widths) - 1), horizontal=True,
                 key="recipe.width", format_func=lambda x: t("rpage.bit", b=x))
    st.caption(t("rpage.scored", slice=sweep.meta["slice"], tokens=sweep.meta["tokens"],
                 units=sweep.meta["units"], s=sweep.meta["seconds"]))
    left, right = st.columns([3, 2])
    presenter.chart(sensitivity_charts.heatmap(sweep.table, b, lang), left, width="stretch")
    presenter.chart(sensitivity_charts.bars(sweep.table, b, lang=lang), right, width="stretch")
    st.subheader(t("rpage.estimator_title"))
    agree = sweep.meta.get("agreement", {})
    st.markdown(t("rpage.estimator", values="; ".join(
        f"{t('rpage.all') if k == 'all' else t('rpage.bit', b=k)} **{v:+.2f}**"
        for k, v in agree.items() if v == v)))
    presenter.chart(sensitivity_charts.estimator_scatter(sweep.table, lang), width="stretch")
    st.subheader(t("rpage.additive_title"))
    add = pd.DataFrame([{t("rpage.col_width"): t("rpage.bit", b=k), t("rpage.col_measured"): v["measured"],
                         t("rpage.col_predicted"): v["predicted"],
                         t("rpage.col_ratio"): v["predicted"] / v["measured"] if v["measured"] else None}
                        for k, v in sweep.meta.get("uniform", {}).items()])
    st.dataframe(add, hide_index=True, width="stretch")
    st.caption(t("rpage.additive_note"))

with tab_recipe:
    sweep = titles.get(st.session_state.get("recipe.sweep"), next(iter(titles.values())))
    st.caption(t("rpage.from", label=sweep.meta["label"]))
    least = recipes.smallest_mib(sweep.table, sweep.fixed_bits)
    full = recipes.uniform(sweep.table, sweep.fixed_bits, 16).size_mib
    c = st.columns(3)
    by = c[0].radio(t("rpage.size_as"), ("MiB", "bits per weight"), horizontal=True, key="recipe.by",
                    format_func=lambda v: t("rpage.by_mib") if v == "MiB" else t("rpage.by_bpw"))
    if by == "MiB":
        u4 = recipes.uniform(sweep.table, sweep.fixed_bits, 4).size_mib if 4 in set(sweep.table["bits"]) else full
        target = c[1].number_input(t("rpage.target_mib"), min_value=round(least, 2),
                                   max_value=round(full, 2), value=round(min(max(u4, least), full), 2),
                                   step=1.0, key="recipe.mib")
        kw = {"target_mib": target}
    else:
        target = c[1].number_input(t("rpage.target_bpw"),
                                   min_value=2.0, max_value=16.0, value=4.0, step=0.25, key="recipe.bpw")
        kw = {"target_bpw": target}
    keep = c[2].checkbox(t("rpage.keep"), value=True, key="recipe.keep")
    r = recipes.recipe_for(sweep.table, sweep.fixed_bits, allow_kept=keep, **kw)
    front = budget.frontier_frame(sweep, keep)
    uniform = pd.DataFrame([{"bits": w, "size_mib": recipes.uniform(sweep.table, sweep.fixed_bits, w).size_mib,
                             "predicted_kld": recipes.uniform(sweep.table, sweep.fixed_bits, w).predicted_kld}
                            for w in sorted(int(x) for x in sweep.table["bits"].unique())])
    runs = []
    if not df.empty:
        same = df[(df["model_fingerprint"] == sweep.spec.model.fingerprint) & df["kld_mean"].notna()]
        keys = {budget.uniform_run(sweep, int(w)).key(): t("rpage.uniform_label", b=int(w)) for w in uniform["bits"]}
        for _, row in same.iterrows():
            if row["key"] in keys:
                runs.append({"kind": "uniform", "label": keys[row["key"]], **row[["weights_mib", "kld_mean"]]})
            elif row["method"] == registry.RECIPE:
                opts = json.loads(row["options_json"])
                if all(opts.get(k) == v for k, v in sweep.spec.mixed_options().items()
                       if k not in ("bits_map", "default_bits")):
                    runs.append({"kind": "recipe", "label": row["method_label"],
                                 **row[["weights_mib", "kld_mean"]]})
    measured = pd.DataFrame(runs)
    if r is None:
        st.error(t("rpage.nothing", target=target, least=least, bits=min(widths)))
    else:
        st.markdown(t("rpage.best", recipe=r.describe(lang)))
        run = budget.recipe_run(sweep, r)
        st.code("python -m qcompare run --method 'mixed:" + ",".join(
            f"{k}={v}" for k, v in run.method.options) + "'", language="bash")
    presenter.chart(sensitivity_charts.frontier(front, uniform, measured,
                                                r.size_mib if r is not None else None, lang), width="stretch")
    st.caption(t("rpage.frontier_note"))
    c = st.columns(2)
    if r is not None and c[0].button(t("rpage.measure"), key="recipe.measure"):
        below = [w for w in uniform["bits"] if recipes.uniform(sweep.table, sweep.fixed_bits, int(w)).size_bits <= r.size_bits]
        specs = [budget.recipe_run(sweep, r)] + ([budget.uniform_run(sweep, int(max(below)))] if below else [])
        try:
            show_submitted(submit_runs(specs))
        except UserError as e:
            user_error(e)
    if c[1].button(t("rpage.verify"), key="recipe.verify", help=t("rpage.verify_help")):
        try:
            show_submitted(submit_runs(budget.plan_verification(sweep, allow_kept=keep)))
        except UserError as e:
            user_error(e)
    st.subheader(t("rpage.against"))
    table = budget.compare(sweep, df, state_dir(), keep)
    if not table.empty:
        show = table[["bits", "uniform_calc_mib", "recipe_calc_mib", "uniform_pred_kld",
                      "recipe_pred_kld", "uniform_kld", "recipe_kld", "diff", "diff_lo", "diff_hi",
                      "verdict"]].copy()
        verdicts = {"recipe better": "v_better", "uniform better": "v_worse", budget.SAME: "v_same",
                    "not distinguishable at this sample size": "v_tie", "not measured yet": "v_pending",
                    "measured, but the per-token scores are missing": "v_missing"}
        show["verdict"] = show["verdict"].map(lambda v: t(f"rpage.{verdicts[v]}") if v in verdicts else v)
        show = show.rename(columns={
            "bits": t("rpage.c_bits"), "uniform_calc_mib": t("rpage.c_umib"), "recipe_calc_mib": t("rpage.c_rmib"),
            "uniform_pred_kld": t("rpage.c_upred"), "recipe_pred_kld": t("rpage.c_rpred"),
            "uniform_kld": t("rpage.c_umeas"), "recipe_kld": t("rpage.c_rmeas"),
            "diff": t("rpage.c_diff"), "diff_lo": t("rpage.c_lo"), "diff_hi": t("rpage.c_hi"),
            "verdict": t("rpage.c_verdict")})
        st.dataframe(show, hide_index=True, width="stretch")
        st.caption(t("rpage.against_note"))
    if r is not None:
        layers = sweep.meta["layers"]
        with st.expander(t("rpage.map")):
            presenter.chart(sensitivity_charts.recipe_map(r.bits_map, layers, lang), width="stretch")
            st.caption(t("rpage.units", units=", ".join(ROLES) if sweep.spec.unit == "linear"
                         else t("rpage.decoder_layers")))
