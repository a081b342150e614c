"""Choose: which quantization to deploy here. Constraints -> measured rows that fit, ranked and
explained (qcompare.decide.recommend), the rules of thumb labelled as such, a memory calculator for
any model and GPU (qcompare.decide.sizing), and the published figures as a labelled layer."""
import json

import pandas as pd
import streamlit as st

from qcompare.charts import tradeoff as charts
from qcompare.charts.style import point_label
from qcompare.core import presets, registry
from qcompare.core.errors import UserError, text_of
from qcompare.decide import catalog, recommend, sizing
from qcompare.decide.sizing import GIB, MIB
from qcompare.sources import published
from qcompare.stats.comparability import largest_group
from qcompare.ui import presenter
from qcompare.ui.data import model_shape, queue_like, results, state_dir
from qcompare.ui.lang import current, t
from qcompare.ui.navigation import ensure_navigation
from qcompare.ui.notices import show_submitted, user_error
from qcompare.ui.recipe_offer import offer

ensure_navigation("pages/choose.py")
lang = current()
st.title(t("choose.title"))
st.markdown(t("choose.intro"))

df, _ = results()
SIZE_ONLY = "—"                             # the model picker's entry for a size alone
tab_rec, tab_calc, tab_pub = st.tabs([t("choose.tab_rec"), t("choose.tab_calc"), t("choose.tab_pub")])
KINDS = ("measured", "known", "config", "params")


def _shape_picker(key: str, rows_model: str | None, rows: pd.DataFrame):
    """The calculator's model: the measured model's own shape, a preset, a config.json or a
    parameter count. Returns (shape or None, where it came from)."""
    kinds = [k for k in KINDS if rows_model or k != "measured"]
    kind = st.radio(t("choose.shape_from"), kinds, horizontal=True, key=f"{key}.kind",
                    format_func=lambda k: t(f"choose.kind_{k}"))
    if kind == "measured":
        newest = rows.sort_values("finished_at")["spec_json"].iloc[-1]
        return model_shape(newest), rows_model
    if kind == "known":
        name = st.selectbox(t("choose.known"), list(catalog.MODELS), index=3, key=f"{key}.preset",
                            help=t("choose.known_help"))
        return catalog.MODELS[name], name
    if kind == "config":
        up = st.file_uploader("config.json", type=["json"], key=f"{key}.config")
        if up is None:
            st.caption(t("choose.upload_hint"))
            return None, ""
        try:
            return sizing.ModelShape.from_config(json.loads(up.getvalue()), up.name), up.name
        except (ValueError, json.JSONDecodeError) as e:
            st.error(t("choose.bad_config", error=text_of(e.args[0] if e.args else e, lang)))
            return None, ""
    n = st.number_input(t("choose.params"), min_value=0.01, value=7.0, step=0.5,
                        key=f"{key}.params")
    shape = sizing.shape_from_params(n * 1e9, catalog.MODELS)
    st.caption(t("choose.shape_guess", basis=sizing.basis_text(shape, lang)))
    return shape, shape.name


def _setting_inputs(key: str, measured_on: str = "cuda"):
    """Device (first: where the rows were measured), memory per device, GPUs, context, batch."""
    c = st.columns(4)
    device = c[0].radio(t("choose.runs_on"), ("cuda", "cpu"), horizontal=True, key=f"{key}.device",
                        index=0 if measured_on == "cuda" else 1,
                        format_func=lambda d: "GPU" if d == "cuda" else "CPU")
    if device == "cuda":
        gpu = c[1].selectbox("GPU", list(catalog.GPUS) + ["other"], index=2, key=f"{key}.gpu",
                             format_func=lambda g: t("choose.other_gpu") if g == "other" else g)
        memory = (c[1].number_input(t("choose.gpu_mem"), min_value=1.0, value=24.0, key=f"{key}.mem")
                  if gpu == "other" else catalog.GPUS[gpu])
        gpus = int(c[1].number_input(t("choose.gpus"), min_value=1, max_value=16, value=1,
                                     key=f"{key}.gpus"))
    else:
        memory = c[1].number_input(t("choose.ram"), min_value=0.5, value=8.0, key=f"{key}.ram")
        gpus = 1
    context = int(c[2].number_input(t("choose.context"), min_value=1, value=4096, step=512,
                                    key=f"{key}.ctx"))
    batch = int(c[3].number_input(t("choose.batch"), min_value=1, value=1, key=f"{key}.batch"))
    return device, float(memory), gpus, context, batch


# --- recommend --------------------------------------------------------------------------------
with tab_rec:
    models = sorted(df["model"].dropna().unique().tolist()) if not df.empty else []
    model = st.selectbox(t("choose.model"), models + [SIZE_ONLY], key="choose.model",
                         help=t("choose.model_help"),
                         format_func=lambda m: t("choose.size_only") if m == SIZE_ONLY else m)
    rows = df[df["model"] == model] if model in models else df.iloc[:0]
    group = largest_group(rows) if not rows.empty else rows
    if model in models:
        shape = model_shape(group.sort_values("finished_at")["spec_json"].iloc[-1])
        if (group["model_source"] == "embedded").any():
            st.caption(t("choose.q4_note"))
    else:
        shape, _ = _shape_picker("choose.size", None, rows)
    device, memory, gpus, context, batch = _setting_inputs(
        "choose", str(group["device"].iloc[0]) if not group.empty else "cuda")
    c = st.columns(4)
    priority = c[0].radio(t("choose.priority"), recommend.PRIORITIES, key="choose.priority",
                          help=t("choose.priority_help"),
                          format_func=lambda p: t(f"choose.priority_{p}"))
    finetune = c[0].checkbox(t("choose.finetune"), key="choose.finetune")
    no_limit = t("choose.no_limit")
    max_ppl = c[1].number_input(t("choose.max_ppl"), min_value=0.0, value=None,
                                key="choose.max_ppl", placeholder=no_limit)
    max_kld = c[1].number_input(t("choose.max_kld"), min_value=0.0, value=None, format="%.4f",
                                key="choose.max_kld", placeholder=no_limit)
    min_tok = c[2].number_input(t("choose.min_tok"), min_value=0.0, value=None,
                                key="choose.min_tok", placeholder=no_limit)
    max_mem = c[2].number_input(t("choose.max_mem"), min_value=0.0, value=None,
                                key="choose.max_mem", placeholder=no_limit)
    show_pub = c[3].toggle(t("choose.published"), value=False, key="choose.published",
                           help=t("choose.published_help"))
    try:
        cons = recommend.Constraints(memory_gib=memory, device=device, gpus=gpus, context=context,
                                     batch=batch, finetune=finetune, priority=priority,
                                     max_kld=max_kld, max_ppl_increase_pct=max_ppl,
                                     min_decode_tok_s=min_tok, max_memory_gib=max_mem)
    except ValueError as e:
        st.error(t("choose.bad_inputs", error=e))
        st.stop()
    rec = recommend.recommend(rows, shape, cons, state_dir(), lang)

    st.subheader(t("choose.from_measured"))
    if model not in models:
        st.info(t("choose.size_alone"))
    elif not rec.measured:
        st.warning(t("choose.none_fit", model=model, basis=rec.basis))
    else:
        st.caption(t("choose.ranked_by", priority=t(f"choose.priority_{priority}"), basis=rec.basis,
                     context=context, batch=batch))
        cols = {k: t(f"choose.col_{k}") for k in ("rank", "method", "memory", "ppl", "decode", "why")}
        st.dataframe(pd.DataFrame([{
            cols["rank"]: ch.rank, cols["method"]: ch.method_label,
            cols["memory"]: round(ch.memory_gib, 2), cols["ppl"]: ch.ppl_increase_pct,
            "KLD": ch.kld, cols["decode"]: ch.decode_tok_s, cols["why"]: ch.reason}
            for ch in rec.measured]),
            hide_index=True, column_config={
                cols["ppl"]: st.column_config.NumberColumn(format="%+.2f"),
                "KLD": st.column_config.NumberColumn(format="%.4f"),
                cols["decode"]: st.column_config.NumberColumn(format="%.1f")})
        best = rec.measured[0]
        st.success(f"**{best.method_label}** — {best.reason}")
    if rec.excluded:
        with st.expander(t("choose.excluded", n=len(rec.excluded)), expanded=not rec.measured):
            st.dataframe(pd.DataFrame([{t("choose.col_method"): e.method_label,
                                        t("choose.col_limit"): recommend.limit_name(e.limit, lang),
                                        t("choose.col_why"): e.detail} for e in rec.excluded]),
                         hide_index=True)
    if not group.empty:
        kept = {ch.key: ch for ch in rec.measured}
        gone = {e.key: e for e in rec.excluded}
        pts = []
        for _, r in group.iterrows():
            try:
                est = recommend.memory_of(r, shape, cons)
            except UserError:                   # a method this version does not know: no point
                continue
            ch = kept.get(r["key"])
            pts.append({"key": r["key"], "method_label": r["method_label"], "label": point_label(r),
                        "family": r["family"],
                        "memory_gib": est.total / GIB, "feasible": ch is not None,
                        "reason": ch.reason if ch else t("choose.point_excluded",
                                                         why=gone[r["key"]].detail)})
        increase = dict(zip(group["key"], charts.with_baseline_delta(group, "ppl")["delta_pct"]))
        pts = pd.DataFrame(pts)
        pts["ppl_increase_pct"] = pts["key"].map(increase)
        pub = published.load() if show_pub else None
        if pub is not None:
            pub = pub.assign(memory_gib=pub["nvml_used_peak_mib"] * MIB / GIB)
        x_limit = min(v for v in (memory * (gpus if device == "cuda" else 1), max_mem) if v)
        fig = charts.choice_chart(pts, "memory_gib", "ppl_increase_pct", t("choose.x_memory"),
                                  t("choose.y_ppl"), x_limit, max_ppl, pub, lang)
        presenter.chart(fig, key="choose.chart")
        if fig.layout.meta and fig.layout.meta.get("numbered"):
            st.caption(t("choose.numbered") + " · ".join(
                f"**{i}** {name}" for i, name in enumerate(fig.layout.meta["numbered"], 1)))
        if pub is not None:
            st.caption(t("choose.hollow"))

    if model in models:
        st.subheader(t("choose.mixed"))
        top = rec.measured[0] if rec.measured else None
        top_row = group[group["key"] == top.key] if top is not None else group.iloc[:0]
        offer(group, float(top_row["weights_mib"].iloc[0]) if not top_row.empty else None,
              "choose.recipe")

    st.subheader(t("choose.from_rules"))
    st.caption(t("choose.rules_caption"))
    for i, rule in enumerate(rec.rules):
        st.info(f"**{rule.text}**  \n{rule.why}{t('choose.period')}  \n*{rule.note}*")
        newest = group.sort_values("finished_at")["spec_json"].iloc[-1] if not group.empty else None
        if rule.methods and model in models and isinstance(newest, str):
            where = group["device"].iloc[0]
            if st.button(t("choose.measure_rule", model=model, device=where,
                           methods=", ".join(rule.methods)), key=f"choose.rule{i}",
                         help=t("choose.measure_rule_help")):
                try:
                    show_submitted(queue_like(newest, rule.methods))
                except UserError as e:
                    user_error(e)
        elif rule.methods:
            st.caption(t("choose.pick_model"))

# --- memory calculator ------------------------------------------------------------------------
DEFAULT_VARIANTS = list(presets.CALCULATOR)
with tab_calc:
    models = sorted(df["model"].dropna().unique().tolist()) if not df.empty else []
    which = st.selectbox(t("choose.calc_rows"), ["none"] + models, key="calc.model",
                         help=t("choose.calc_rows_help"),
                         format_func=lambda m: t("choose.calc_none") if m == "none" else m)
    rows = largest_group(df[df["model"] == which]) if which in models else df.iloc[:0]
    shape, name = _shape_picker("calc", which if which in models else None, rows)
    device, memory, gpus, context, batch = _setting_inputs("calc")
    kv = st.radio(t("choose.kv"), list(sizing.KV_BYTES), horizontal=True, key="calc.kv")
    variants = st.multiselect(t("choose.methods"), DEFAULT_VARIANTS + sorted(
        set(rows["method_label"]) if not rows.empty else set()), default=DEFAULT_VARIANTS,
        key="calc.methods", help=t("choose.methods_help"))
    if shape is None:
        st.stop()
    setting = sizing.Setting(device=device, gpus=gpus, context=context, batch=batch, kv=kv)
    st.caption(t("choose.shape", name=name, params=f"{shape.param_count() / 1e9:.3g}",
                 layers=shape.layers, hidden=shape.hidden, heads=shape.heads,
                 kv_heads=shape.kv_heads, vocab=shape.vocab,
                 tied=t("choose.tied") if shape.tied else "", basis=sizing.basis_text(shape, lang)))
    measured = {r["method_label"]: r for _, r in rows.iterrows()}
    col = {k: t(f"choose.c_{k}") for k in ("method", "total", "bpw", "weights", "from", "kv",
                                           "kv_token", "act", "overhead", "note")}
    out = []
    for arg in variants:
        row = measured.get(arg)
        try:
            spec = registry.parse_method_arg(arg) if row is None else \
                registry.make_method_spec(row["method"], json.loads(row["options_json"]))
            e = sizing.estimate(registry.get(spec.name), dict(spec.options), shape, setting, arg,
                                measured_weights_mib=row["weights_mib"] if row is not None else None)
        except UserError as err:
            out.append({col["method"]: arg, col["note"]: t("choose.cannot_size", error=err.text(lang))})
            continue
        except (sizing.NoSizeRule, ValueError) as err:
            out.append({col["method"]: arg, col["note"]: t("choose.cannot_size",
                                                           error=text_of(err.args[0] if err.args else err, lang))})
            continue
        line = {col["method"]: arg, col["total"]: e.per_gpu / GIB}
        for size in dict.fromkeys(catalog.COMMON_SIZES_GIB + (memory,)):
            line[f"{size:g} GiB"] = "✅" if sizing.fits(e, size) else "—"
        line.update({col["bpw"]: round(e.bits_per_weight(shape), 2),
                     col["weights"]: e.weights / GIB,
                     col["from"]: t(f"choose.src_{e.weights_source}"),
                     col["kv"]: e.kv_cache / GIB,
                     col["kv_token"]: e.kv_cache / context / batch / 1024,
                     col["act"]: e.activations / GIB,
                     col["overhead"]: e.overhead / GIB})
        out.append(line)
    st.dataframe(pd.DataFrame(out), hide_index=True, column_config={
        col[c]: st.column_config.NumberColumn(format="%.2f") for c in
        ("weights", "kv", "act", "overhead", "total")})
    unit = "GPU" if device == "cuda" else t("choose.process")
    st.caption((t("choose.per_gpu", gpus=gpus) if gpus > 1 else "")
               + t("choose.calc_caption", mib=f"{sizing.OVERHEAD_MIB[device]:.0f}", unit=unit))
    with st.expander(t("choose.checked")):
        st.markdown(t("choose.checked_text"))

# --- published --------------------------------------------------------------------------------
PUB_COLUMNS = ("source", "where", "model", "method", "note", "ppl_text", "hardware", "bits",
               "weights_gb", "memory_gb", "gb_means", "decode_tok_s", "ppl")
with tab_pub:
    pub = published.load()
    st.markdown(t("choose.pub_intro"))
    st.caption(t("choose.pub_quoted"))
    st.dataframe(pub[list(PUB_COLUMNS)].astype(object).where(pub[list(PUB_COLUMNS)].notna(), "—"),
                 hide_index=True, column_config={
        c: st.column_config.Column(t(f"choose.p_{c}"), width="large" if c == "note" else None)
        for c in PUB_COLUMNS})
    st.subheader(t("choose.pub_beside"))
    st.caption(t("choose.pub_beside_caption"))
    beside = published.beside_measured(pub, df, lang)
    st.dataframe(beside.astype(object).where(beside.notna(), "—"), hide_index=True)
