"""Recipe: where a model loses quality, unit by unit (a measured sensitivity sweep), and the
bits per unit that fit a size (an exact knapsack on the predicted KLD), verified by real runs.
The sweep and the runs go to worker processes; this page only reads tables and submits."""
import json

import pandas as pd
import streamlit as st

from qcompare import budget, effort, sensitivity, sensitivity_charts, shapes
from qcompare import recipe as recipes
from qcompare.errors import UserError
from qcompare.jobs.store import JobStore
from qcompare.methods.mixed import ROLES
from qcompare.specs import CorpusSpec, ModelSpec, RunSpec
from qcompare.submit import resolve_sensitivity
from qcompare.ui import presenter
from qcompare.ui.data import results, state_dir, stored_sweeps, submit_runs, submit_sweep
from qcompare.ui.navigation import ensure_navigation
from qcompare.ui.notices import show_submitted, user_error

ensure_navigation("pages/recipe.py")
st.title("Mixed-precision recipe for a size")
st.markdown(
    "**Where the loss happens**: each Linear (or each decoder layer) is quantized *alone* while "
    "the rest stays in the baseline, and the KL divergence from the baseline is measured on a "
    "scoring slice disjoint from the evaluated text and from calibration. **A recipe for a "
    "size**: the bits per unit that minimise the *predicted* KLD (the sum of the units' own "
    "KLDs: it assumes their effects add up) within a size, found exactly. **Verify**: a recipe "
    "is a `mixed` run like any other, measured on the evaluated text beside the uniform "
    "setting of the same size.")
df, _ = results()
all_sweeps = stored_sweeps()
if st.session_state.get("recipe.model", "embedded") == "embedded" or any(
        s.spec.model.source == "embedded" for s in all_sweeps):
    st.caption("ℹ️ The embedded SmolLM2-135M was stored as Q4_1 (4-bit, blocks of 32, "
               "asymmetric) before it was dequantized for us. The sweeps here use symmetric codes "
               "with groups of 128 by default: not that grid, so no setting is a lossless "
               "re-quantization of it.")
tab_measure, tab_sens, tab_recipe = st.tabs(["Measure sensitivity", "Where the loss happens",
                                             "Recipe for a size"])


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
    label = c[0].selectbox("Model", list(models_by_label), key="recipe.model")
    family = c[1].radio("Quantizer", sensitivity.FAMILIES, horizontal=True, key="recipe.family",
                        help="rtn: round-to-nearest; gptq: the built-in GPTQ, each Linear with "
                             "the Hessian of its own inputs in the baseline")
    unit = c[2].radio("Unit", sensitivity.UNITS, horizontal=True, key="recipe.unit",
                      help="linear: every projection of every layer (a heatmap of layers x "
                           "projections); block: each decoder layer as a whole (7x fewer passes)")
    c = st.columns(4)
    bits = tuple(c[0].multiselect("Widths (bits)", sensitivity.BITS, default=list(sensitivity.BITS),
                                  key="recipe.bits"))
    group = int(c[1].number_input("Group size (0 = per channel)", min_value=0, value=128, step=32,
                                  key="recipe.group"))
    sym = c[2].checkbox("Symmetric", value=True, key="recipe.sym")
    samples = int(c[3].number_input("Scoring sequences", min_value=1, value=4, key="recipe.samples",
                                    help="sequences of the calibration length scored per unit "
                                         "and width"))
    eff = st.radio("Effort (evaluated tokens, kept out of the slices; calibration size)",
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
    when = f"about {cost.seconds / 60:.1f} min on this machine" if cost.seconds else "time not yet known"
    st.markdown(f"**Cost before it starts:** {cost.passes:,} forward passes of "
                f"{cost.tokens_per_pass:,} tokens, {when} (estimated from {cost.basis}).")
    if stored:
        st.success("This sweep is stored: see the next tabs.")
    elif st.button("Start the sweep", type="primary", key="recipe.start"):
        try:
            sub = submit_sweep(spec)
            st.info(f"⏳ {spec.label}: queued as job #{sub.job_id}." if sub.new else
                    f"⏳ identical sweep #{sub.job_id} is already queued or running.")
            st.page_link("pages/jobs.py", label="Watch the jobs", icon="⏱️")
        except UserError as e:
            user_error(e)

    @st.fragment(run_every=3)
    def _progress() -> None:
        active = [j for j in JobStore.open(state_dir()).list(("queued", "running"))
                  if sensitivity.is_sensitivity_json(j.spec_json)]
        for j in active:
            st.progress(min(max(j.progress, 0.0), 1.0), text=f"#{j.id} {j.state}: {j.stage or 'waiting'}")
    _progress()

if not all_sweeps:
    for tab in (tab_sens, tab_recipe):
        tab.info("No sensitivity sweep is stored yet: start one in the first tab (a block sweep "
                 "of the embedded model takes a few minutes on a laptop CPU).")
    st.stop()

titles = {f"{s.meta['label']} · {s.meta['tokens']} tokens · {s.meta['key'][:8]}": s for s in all_sweeps}

with tab_sens:
    title = st.selectbox("Sweep", list(titles), key="recipe.sweep")
    sweep = titles[title]
    widths = sorted(int(b) for b in sweep.table["bits"].unique())
    b = st.radio("Width", widths, index=min(1, len(widths) - 1), horizontal=True, key="recipe.width",
                 format_func=lambda x: f"{x}-bit")
    st.caption(f"Scored on {sweep.meta['slice']} ({sweep.meta['tokens']:,} positions); "
               f"{sweep.meta['units']} units, {sweep.meta['seconds']:.0f} s in all.")
    left, right = st.columns([3, 2])
    presenter.chart(sensitivity_charts.heatmap(sweep.table, b), left, width="stretch")
    presenter.chart(sensitivity_charts.bars(sweep.table, b), right, width="stretch")
    st.subheader("Does the cheap estimator agree?")
    agree = sweep.meta.get("agreement", {})
    st.markdown("The reconstruction error tr(ΔW H ΔWᵀ) (what GPTQ minimises, from calibration "
                "inputs; no model pass needed) against the measured KLD, as Spearman rank "
                "correlations: " + "; ".join(f"{k if k == 'all' else k + '-bit'} "
                                            f"**{v:+.2f}**" for k, v in agree.items()
                                            if v == v) + ". It is shown beside the "
                "measurement, never instead of it.")
    presenter.chart(sensitivity_charts.estimator_scatter(sweep.table), width="stretch")
    st.subheader("Do the effects add up?")
    add = pd.DataFrame([{"width": f"{k}-bit", "every unit at once (measured)": v["measured"],
                         "sum of single units (predicted)": v["predicted"],
                         "predicted / measured": v["predicted"] / v["measured"] if v["measured"] else None}
                        for k, v in sweep.meta.get("uniform", {}).items()])
    st.dataframe(add, hide_index=True, width="stretch")
    st.caption("A recipe's prediction is such a sum. Below 1, the prediction is optimistic: "
               "the units' errors compound when all are quantized together.")

with tab_recipe:
    sweep = titles.get(st.session_state.get("recipe.sweep"), next(iter(titles.values())))
    st.caption(f"From: {sweep.meta['label']}")
    least = recipes.smallest_mib(sweep.table, sweep.fixed_bits)
    full = recipes.uniform(sweep.table, sweep.fixed_bits, 16).size_mib
    c = st.columns(3)
    by = c[0].radio("Size as", ("MiB", "bits per weight"), horizontal=True, key="recipe.by")
    if by == "MiB":
        u4 = recipes.uniform(sweep.table, sweep.fixed_bits, 4).size_mib if 4 in set(sweep.table["bits"]) else full
        target = c[1].number_input("Target (MiB, everything stored)", min_value=round(least, 2),
                                   max_value=round(full, 2), value=round(min(max(u4, least), full), 2),
                                   step=1.0, key="recipe.mib")
        kw = {"target_mib": target}
    else:
        target = c[1].number_input("Target (bits per weight of the quantized Linears)",
                                   min_value=2.0, max_value=16.0, value=4.0, step=0.25, key="recipe.bpw")
        kw = {"target_bpw": target}
    keep = c[2].checkbox("Allow 16 bits (a unit left unquantized)", value=True, key="recipe.keep")
    r = recipes.recipe_for(sweep.table, sweep.fixed_bits, allow_kept=keep, **kw)
    front = budget.frontier_frame(sweep, keep)
    uniform = pd.DataFrame([{"bits": w, "size_mib": recipes.uniform(sweep.table, sweep.fixed_bits, w).size_mib,
                             "predicted_kld": recipes.uniform(sweep.table, sweep.fixed_bits, w).predicted_kld}
                            for w in sorted(int(x) for x in sweep.table["bits"].unique())])
    runs = []
    if not df.empty:
        same = df[(df["model_fingerprint"] == sweep.spec.model.fingerprint) & df["kld_mean"].notna()]
        keys = {budget.uniform_run(sweep, int(w)).key(): f"{int(w)}-bit uniform" for w in uniform["bits"]}
        for _, row in same.iterrows():
            if row["key"] in keys:
                runs.append({"kind": "uniform", "label": keys[row["key"]], **row[["weights_mib", "kld_mean"]]})
            elif row["method"] == "mixed":
                opts = json.loads(row["options_json"])
                if all(opts.get(k) == v for k, v in sweep.spec.mixed_options().items()
                       if k not in ("bits_map", "default_bits")):
                    runs.append({"kind": "recipe", "label": row["method_label"],
                                 **row[["weights_mib", "kld_mean"]]})
    measured = pd.DataFrame(runs)
    if r is None:
        st.error(f"Nothing fits {target:g}: the smallest recipe of this sweep takes {least:.2f} MiB "
                 f"(every unit at {min(widths)} bits). Raise the target.")
    else:
        st.markdown(f"**Best recipe:** {r.describe()}.")
        run = budget.recipe_run(sweep, r)
        st.code("python -m qcompare run --method 'mixed:" + ",".join(
            f"{k}={v}" for k, v in run.method.options) + "'", language="bash")
    presenter.chart(sensitivity_charts.frontier(front, uniform, measured,
                                                r.size_mib if r is not None else None), width="stretch")
    st.caption("Line: the best predicted recipe for every size (exact multiple-choice knapsack). "
               "Hollow circles: the uniform settings as predicted; filled: measured runs on the "
               "evaluated text (uniform circles, recipe diamonds).")
    c = st.columns(2)
    if r is not None and c[0].button("Measure this recipe", key="recipe.measure"):
        below = [w for w in uniform["bits"] if recipes.uniform(sweep.table, sweep.fixed_bits, int(w)).size_bits <= r.size_bits]
        specs = [budget.recipe_run(sweep, r)] + ([budget.uniform_run(sweep, int(max(below)))] if below else [])
        try:
            show_submitted(submit_runs(specs))
        except UserError as e:
            user_error(e)
    if c[1].button("Verify at every uniform size", key="recipe.verify",
                   help="queues each uniform setting and the best recipe within its size"):
        try:
            show_submitted(submit_runs(budget.plan_verification(sweep, allow_kept=keep)))
        except UserError as e:
            user_error(e)
    st.subheader("Recipe against the uniform setting of the same size")
    table = budget.compare(sweep, df, state_dir(), keep)
    if not table.empty:
        show = table[["bits", "uniform_calc_mib", "recipe_calc_mib", "uniform_pred_kld",
                      "recipe_pred_kld", "uniform_kld", "recipe_kld", "diff", "diff_lo", "diff_hi",
                      "verdict"]].rename(columns={
            "bits": "uniform bits", "uniform_calc_mib": "uniform MiB", "recipe_calc_mib": "recipe MiB",
            "uniform_pred_kld": "uniform KLD predicted", "recipe_pred_kld": "recipe KLD predicted",
            "uniform_kld": "uniform KLD measured", "recipe_kld": "recipe KLD measured",
            "diff": "recipe − uniform", "diff_lo": "95% low", "diff_hi": "95% high"})
        st.dataframe(show, hide_index=True, width="stretch")
        st.caption("Measured KLDs are on the evaluated text; the interval is the paired bootstrap "
                   "over windows (the Results page's). A recipe is better only when the whole "
                   "interval is below 0.")
    if r is not None:
        layers = sweep.meta["layers"]
        with st.expander("Bits per unit of this recipe"):
            presenter.chart(sensitivity_charts.recipe_map(r.bits_map, layers), width="stretch")
            st.caption(f"Units: {', '.join(ROLES) if sweep.spec.unit == 'linear' else 'decoder layers'}.")
