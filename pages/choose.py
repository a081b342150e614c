"""Choose: which quantization to deploy here. Constraints -> measured rows that fit, ranked and
explained (qcompare.recommend), the rules of thumb labelled as such, a memory calculator for
any model and GPU (qcompare.sizing), and the published figures as a labelled layer."""
import json

import pandas as pd
import streamlit as st

from qcompare import catalog, charts, published, recommend, registry, sizing
from qcompare.chartstyle import point_label
from qcompare.comparability import largest_group
from qcompare.errors import UserError
from qcompare.sizing import GIB, MIB
from qcompare.ui import presenter
from qcompare.ui.data import model_shape, queue_like, results, state_dir
from qcompare.ui.navigation import ensure_navigation
from qcompare.ui.notices import show_submitted, user_error
from qcompare.ui.recipe_offer import offer

ensure_navigation("pages/choose.py")
st.title("Choose a method")
st.markdown("Say where the model will run and what matters most; the page ranks the **measured** "
            "rows that fit every limit and says why, lists what was excluded and by which "
            "limit, and gives the source guide's **rules of thumb** separately, labelled as "
            "such. The memory calculator sizes any model on any GPU.")

df, _ = results()
SIZE_ONLY = "— a model size only (rules and calculator) —"
tab_rec, tab_calc, tab_pub = st.tabs(["Recommend", "Memory calculator", "Published"])


def _shape_picker(key: str, rows_model: str | None, rows: pd.DataFrame):
    """The calculator's model: the measured model's own shape, a preset, a config.json or a
    parameter count. Returns (shape or None, where it came from)."""
    kinds = (["the measured model"] if rows_model else []) + ["a known model", "a config.json",
                                                             "a parameter count"]
    kind = st.radio("Model shape from", kinds, horizontal=True, key=f"{key}.kind")
    if kind == "the measured model":
        newest = rows.sort_values("finished_at")["spec_json"].iloc[-1]
        return model_shape(newest), rows_model
    if kind == "a known model":
        name = st.selectbox("Known model", list(catalog.MODELS), index=3, key=f"{key}.preset",
                            help="shapes from each model's public config.json")
        return catalog.MODELS[name], name
    if kind == "a config.json":
        up = st.file_uploader("config.json", type=["json"], key=f"{key}.config")
        if up is None:
            st.caption("Upload a Hugging Face config.json (layers, hidden size, heads, "
                       "intermediate size, vocabulary).")
            return None, ""
        try:
            return sizing.ModelShape.from_config(json.loads(up.getvalue()), up.name), up.name
        except (ValueError, json.JSONDecodeError) as e:
            st.error(f"This config cannot be sized: {e}. Upload the model's own config.json.")
            return None, ""
    n = st.number_input("Parameters (billions)", min_value=0.01, value=7.0, step=0.5,
                        key=f"{key}.params")
    shape = sizing.shape_from_params(n * 1e9, catalog.MODELS)
    st.caption(f"Shape {shape.basis}.")
    return shape, shape.name


def _setting_inputs(key: str, measured_on: str = "cuda"):
    """Device (first: where the rows were measured), memory per device, GPUs, context, batch."""
    c = st.columns(4)
    device = c[0].radio("Runs on", ("cuda", "cpu"), horizontal=True, key=f"{key}.device",
                        index=0 if measured_on == "cuda" else 1,
                        format_func=lambda d: "GPU" if d == "cuda" else "CPU")
    if device == "cuda":
        gpu = c[1].selectbox("GPU", list(catalog.GPUS) + ["other"], index=2, key=f"{key}.gpu")
        memory = (c[1].number_input("GPU memory (GiB)", min_value=1.0, value=24.0, key=f"{key}.mem")
                  if gpu == "other" else catalog.GPUS[gpu])
        gpus = int(c[1].number_input("GPUs", min_value=1, max_value=16, value=1, key=f"{key}.gpus"))
    else:
        memory = c[1].number_input("RAM (GiB)", min_value=0.5, value=8.0, key=f"{key}.ram")
        gpus = 1
    context = int(c[2].number_input("Context (tokens)", min_value=1, value=4096, step=512,
                                    key=f"{key}.ctx"))
    batch = int(c[3].number_input("Batch", min_value=1, value=1, key=f"{key}.batch"))
    return device, float(memory), gpus, context, batch


# --- recommend --------------------------------------------------------------------------------
with tab_rec:
    models = sorted(df["model"].dropna().unique().tolist()) if not df.empty else []
    model = st.selectbox("Model", models + [SIZE_ONLY], key="choose.model",
                         help="a model with measured rows, or only a size for the rules")
    rows = df[df["model"] == model] if model in models else df.iloc[:0]
    group = largest_group(rows) if not rows.empty else rows
    if model in models:
        shape = model_shape(group.sort_values("finished_at")["spec_json"].iloc[-1])
        if (group["model_source"] == "embedded").any():
            st.caption("ℹ️ The embedded model's weights were Q4_1 (4-bit, blocks of 32) before "
                       "dequantization: 4-bit methods start from already-4-bit weights, so their "
                       "losses here can look smaller than on a 16-bit original.")
    else:
        shape, _ = _shape_picker("choose.size", None, rows)
    device, memory, gpus, context, batch = _setting_inputs(
        "choose", str(group["device"].iloc[0]) if not group.empty else "cuda")
    c = st.columns(4)
    priority = c[0].radio("Priority", recommend.PRIORITIES, key="choose.priority",
                          help="quality: lowest KL divergence; speed: highest decode tok/s; "
                               "size: smallest total memory")
    finetune = c[0].checkbox("Will be fine-tuned (QLoRA)", key="choose.finetune")
    max_ppl = c[1].number_input("Max perplexity increase (%)", min_value=0.0, value=None,
                                key="choose.max_ppl", placeholder="no limit")
    max_kld = c[1].number_input("Max KL divergence", min_value=0.0, value=None, format="%.4f",
                                key="choose.max_kld", placeholder="no limit")
    min_tok = c[2].number_input("Min decode tok/s", min_value=0.0, value=None,
                                key="choose.min_tok", placeholder="no limit")
    max_mem = c[2].number_input("Max total memory (GiB)", min_value=0.0, value=None,
                                key="choose.max_mem", placeholder="no limit")
    show_pub = c[3].toggle("Published layer", value=False, key="choose.published",
                           help="draw the published figures (hollow markers) on the chart")
    try:
        cons = recommend.Constraints(memory_gib=memory, device=device, gpus=gpus, context=context,
                                     batch=batch, finetune=finetune, priority=priority,
                                     max_kld=max_kld, max_ppl_increase_pct=max_ppl,
                                     min_decode_tok_s=min_tok, max_memory_gib=max_mem)
    except ValueError as e:
        st.error(f"{e}. Change the inputs above.")
        st.stop()
    rec = recommend.recommend(rows, shape, cons, state_dir())

    st.subheader("From measurements")
    if model not in models:
        st.info("No measured rows for a size alone: see the rules of thumb below, or run the "
                "methods on a model (Home, Compare) to rank real measurements.")
    elif not rec.measured:
        st.warning(f"No measured row of {model} fits every limit ({rec.basis}): relax a "
                   "limit, or see why each was excluded below.")
    else:
        st.caption(f"Ranked by {priority}, from {rec.basis}. Memory = measured weights + KV "
                   f"cache for {context} tokens x {batch} + activations + runtime overhead "
                   "(`qcompare.sizing`).")
        st.dataframe(pd.DataFrame([{
            "rank": ch.rank, "method": ch.method_label, "memory (GiB)": round(ch.memory_gib, 2),
            "PPL increase (%)": ch.ppl_increase_pct, "KLD": ch.kld,
            "decode tok/s": ch.decode_tok_s, "why": ch.reason} for ch in rec.measured]),
            hide_index=True, column_config={
                "PPL increase (%)": st.column_config.NumberColumn(format="%+.2f"),
                "KLD": st.column_config.NumberColumn(format="%.4f"),
                "decode tok/s": st.column_config.NumberColumn(format="%.1f")})
        best = rec.measured[0]
        st.success(f"**{best.method_label}** — {best.reason}.")
    if rec.excluded:
        with st.expander(f"Excluded ({len(rec.excluded)}) and by which limit",
                         expanded=not rec.measured):
            st.dataframe(pd.DataFrame([{"method": e.method_label, "limit": e.limit,
                                        "why": e.detail} for e in rec.excluded]), hide_index=True)
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
                        "reason": ch.reason if ch else f"excluded: {gone[r['key']].detail}"})
        increase = dict(zip(group["key"], charts.with_baseline_delta(group, "ppl")["delta_pct"]))
        pts = pd.DataFrame(pts)
        pts["ppl_increase_pct"] = pts["key"].map(increase)
        pub = published.load() if show_pub else None
        if pub is not None:
            pub = pub.assign(memory_gib=pub["nvml_used_peak_mib"] * MIB / GIB)
        x_limit = min(v for v in (memory * (gpus if device == "cuda" else 1), max_mem) if v)
        fig = charts.choice_chart(pts, "memory_gib", "ppl_increase_pct", "Memory needed (GiB)",
                                  "Perplexity increase (%)", x_limit, max_ppl, pub)
        presenter.chart(fig, key="choose.chart")
        if fig.layout.meta and fig.layout.meta.get("numbered"):
            st.caption("Numbered points: " + " · ".join(
                f"**{i}** {t}" for i, t in enumerate(fig.layout.meta["numbered"], 1)))
        if pub is not None:
            st.caption("Hollow markers: published figures for 7B models (GPU memory as the "
                       "sources report it), not measured here; never ranked.")

    if model in models:
        st.subheader("Mixed precision for a size")
        top = rec.measured[0] if rec.measured else None
        top_row = group[group["key"] == top.key] if top is not None else group.iloc[:0]
        offer(group, float(top_row["weights_mib"].iloc[0]) if not top_row.empty else None,
              "choose.recipe")

    st.subheader("From rules of thumb")
    st.caption("The source guide's rules, sized for this model by the calculator: **rule of "
               "thumb, not measured here**. The button queues the runs that would measure it.")
    for i, rule in enumerate(rec.rules):
        st.info(f"**{rule.text}**  \n{rule.why}.  \n*{rule.note}*")
        newest = group.sort_values("finished_at")["spec_json"].iloc[-1] if not group.empty else None
        if rule.methods and model in models and isinstance(newest, str):
            where = group["device"].iloc[0]
            if st.button(f"Measure it on {model} ({where}, this machine): queue "
                         f"{', '.join(rule.methods)}", key=f"choose.rule{i}",
                         help="the same text, protocol and effort as the rows above, so the new "
                              "rows rank beside them"):
                try:
                    show_submitted(queue_like(newest, rule.methods))
                except UserError as e:
                    user_error(e)
        elif rule.methods:
            st.caption("Pick a model with measured rows above to queue these runs on it.")

# --- memory calculator ------------------------------------------------------------------------
DEFAULT_VARIANTS = ["fp16", "bnb-int8", "bnb-nf4", "gptq:bits=4,group_size=128",
                    "awq:bits=4,group_size=128", "gguf:type=Q8_0", "gguf:type=Q4_K_M",
                    "hqq:bits=4,group_size=64", "rtn:bits=8,granularity=channel"]
with tab_calc:
    models = sorted(df["model"].dropna().unique().tolist()) if not df.empty else []
    which = st.selectbox("Measured rows of", ["none"] + models, key="calc.model",
                         help="where a row of this model exists, its measured weights replace "
                              "the calculated ones")
    rows = largest_group(df[df["model"] == which]) if which in models else df.iloc[:0]
    shape, name = _shape_picker("calc", which if which in models else None, rows)
    device, memory, gpus, context, batch = _setting_inputs("calc")
    kv = st.radio("KV cache dtype", list(sizing.KV_BYTES), horizontal=True, key="calc.kv")
    variants = st.multiselect("Methods", DEFAULT_VARIANTS + sorted(
        set(rows["method_label"]) if not rows.empty else set()), default=DEFAULT_VARIANTS,
        key="calc.methods", help="method arguments as on the CLI (name:key=value,...)")
    if shape is None:
        st.stop()
    setting = sizing.Setting(device=device, gpus=gpus, context=context, batch=batch, kv=kv)
    st.caption(f"**{name}**: {shape.param_count() / 1e9:.3g} B parameters, {shape.layers} layers, "
               f"hidden {shape.hidden}, {shape.heads} heads / {shape.kv_heads} KV heads, "
               f"vocabulary {shape.vocab}{', tied LM head' if shape.tied else ''} "
               f"(shape from {shape.basis}).")
    measured = {r["method_label"]: r for _, r in rows.iterrows()}
    out = []
    for arg in variants:
        row = measured.get(arg)
        try:
            spec = registry.parse_method_arg(arg) if row is None else \
                registry.make_method_spec(row["method"], json.loads(row["options_json"]))
            e = sizing.estimate(registry.get(spec.name), dict(spec.options), shape, setting, arg,
                                measured_weights_mib=row["weights_mib"] if row is not None else None)
        except (UserError, sizing.NoSizeRule, ValueError) as err:
            out.append({"method": arg, "weights": f"cannot size: {err}"})
            continue
        line = {"method": arg, "total (GiB)": e.per_gpu / GIB}
        for size in dict.fromkeys(catalog.COMMON_SIZES_GIB + (memory,)):
            line[f"{size:g} GiB"] = "✅" if sizing.fits(e, size) else "—"
        line.update({"bits / weight": round(e.bits_per_weight(shape), 2),
                     "weights (GiB)": e.weights / GIB, "weights from": e.weights_source,
                     "KV cache (GiB)": e.kv_cache / GIB,
                     "KV / token (KiB)": e.kv_cache / context / batch / 1024,
                     "activations (GiB)": e.activations / GIB,
                     "overhead (GiB)": e.overhead / GIB})
        out.append(line)
    st.dataframe(pd.DataFrame(out), hide_index=True, column_config={
        c: st.column_config.NumberColumn(format="%.2f") for c in
        ("weights (GiB)", "KV cache (GiB)", "activations (GiB)", "overhead (GiB)", "total (GiB)")})
    st.caption(("Total per GPU: weights and KV cache split evenly over the "
                f"{gpus} GPUs, activations and overhead on each. " if gpus > 1 else "")
               + "✅: fits a device of that size (the last column is yours). Overhead: " + (f"{sizing.OVERHEAD_MIB[device]:.0f} MiB per "
               f"{'GPU' if device == 'cuda' else 'process'}, **assumed** (CUDA context and "
               "workspaces, or Python with torch)") + ". Weights: each method's own accounting "
               "of codes, scales, zero points and unquantized tensors, checked byte for byte "
               "against real builds; 'measured' where a row of this model exists.")
    with st.expander("Checked against published 7B figures"):
        st.markdown(
            "- **FP16, Llama-2-7B**: the calculator gives 13.48 GB (12.55 GiB) of weights; the "
            "guide says 13.5 GB.\n"
            "- **bitsandbytes int8 on two A10s**: 6,682 MiB of weights (int8 codes, a float32 "
            "scale per row, 16-bit embeddings and LM head) + two CUDA contexts (assumed 400 MiB "
            "each) = 7,482 MiB; the talk read 3,271 + 4,055 = 7,326 MiB from nvidia-smi after "
            "loading (+2 %: its contexts took about 320 MiB each).\n"
            "- **GGUF Q4_K_M**: 4.08 GB (3.80 GiB) for the file, by llama.cpp's own type mix; the "
            "guide says 4.1 GB.\n\nTests: `tests/test_sizing.py`.")

# --- published --------------------------------------------------------------------------------
with tab_pub:
    pub = published.load()
    st.markdown("Figures **published** by the source material (the guide's Llama-2-7B table and "
                "GGUF table, the meetup talk's nvidia-smi readings) and the AWQ paper. They are "
                "not measured here: each row says where it comes from and what the source did "
                "not state. They never enter a measured ranking or Pareto frontier.")
    st.dataframe(pub[["source", "where", "model", "method", "note", "ppl_text", "hardware",
                      "bits", "weights_gb", "memory_gb", "gb_means", "decode_tok_s", "ppl"]],
                 hide_index=True, column_config={"note": st.column_config.TextColumn(
                     "what the source says / did not state", width="large")})
    st.subheader("Beside what was measured here")
    st.caption("The same model and method family measured by qcompare, where such rows exist "
               "(a 7B model needs a GPU machine); else 'not measured here'.")
    st.dataframe(published.beside_measured(pub, df), hide_index=True)
