"""Compare: pick a model and methods (options rendered from each method's config), set the
corpus and protocol, see an estimate, and submit. Cache hits show as done at once."""

import streamlit as st

from qcompare.core import effort as efforts
from qcompare.core import registry
from qcompare.core.errors import UserError, text_of
from qcompare.core.specs import DEVICES, DTYPES, PROTOCOLS, CalibSpec, EvalSpec
from qcompare.decide import estimate
from qcompare.i18n import catalogue as i18n
from qcompare.sources import models
from qcompare.sources.corpora import corpus_from_arg
from qcompare.ui import sharing
from qcompare.ui.data import param_count, planned_specs, resolve_model, results, state_dir, submit_specs
from qcompare.ui.lang import current, t
from qcompare.ui.navigation import ensure_navigation
from qcompare.ui.notices import show_submitted, user_error

ensure_navigation("pages/compare.py")
st.title(t("compare.title"))
lang = current()

# --- model ------------------------------------------------------------------------------------
st.subheader(t("compare.model_title"))
OTHER = t("compare.other")
choices = ["embedded"] + models.discover(state_dir()) + [OTHER]
picked = st.selectbox(t("compare.model"), choices, key="model",
                      format_func=lambda c: t("compare.embedded") if c == "embedded" else c)
ref = st.text_input(t("compare.ref"), placeholder="/path/to/model-folder, org/name or model.gguf",
                    key="model_ref") if picked == OTHER else picked
if sharing.is_shared():
    st.caption("🔒 " + t("compare.shared", address=sharing.bind_address(),
                         roots=", ".join(str(r) for r in sharing.roots())))
c1, c2 = st.columns(2)
trust = c1.checkbox(t("compare.trust"), help=t("compare.trust_help"))
pickle = c2.checkbox(t("compare.pickle"), help=t("compare.pickle_help"))
model_spec, model_ok = None, False
if ref:
    try:
        model_spec = resolve_model(sharing.confine_model(models.model_from_arg(ref, trust, pickle)))
        model_ok = True
    except UserError as e:
        user_error(e)
if model_spec is not None and model_spec.source == "embedded":
    st.caption("ℹ️ " + t("home.embedded_note"))

# --- protocol (advanced) ----------------------------------------------------------------------
effort = st.radio(t("compare.effort"), tuple(efforts.EFFORTS), index=tuple(efforts.EFFORTS).index("thorough"),
                  horizontal=True, key="effort",
                  format_func=lambda n: t("compare.effort_option", name=n, summary=t(f"effort.{n}")),
                  help=t("compare.effort_help"))
E = efforts.eval_spec(effort)
C = efforts.calib_spec(effort, corpus_from_arg("embedded"))
with st.expander(t("compare.protocol_title")):
    corpus_arg = st.text_input(t("compare.corpus"), "embedded", help=t("compare.corpus_help"))
    a, b, c = st.columns(3)
    protocol = a.selectbox(t("compare.protocol"), PROTOCOLS, help=t("compare.protocol_help"))
    tokens = b.number_input(t("compare.tokens"), 16, 1_000_000, E.tokens, step=512,
                            help=t("compare.tokens_help"), key=f"tokens.{effort}")
    window = c.number_input(t("compare.window"), 8, 32_768, EvalSpec().window, step=128,
                            help=t("compare.window_help"))
    a, b, c = st.columns(3)
    stride = a.number_input(t("compare.stride"), 0, 32_768, 0, help=t("compare.stride_help"))
    dtype = b.selectbox(t("compare.dtype"), DTYPES, help=t("compare.dtype_help"))
    threads = c.number_input(t("compare.threads"), 0, 256, 0, help=t("compare.threads_help"))
    a, b, c = st.columns(3)
    speed_prompt = a.number_input(t("compare.speed_prompt"), 2, 8192, E.speed_prompt,
                                  key=f"sp.{effort}")
    speed_new = b.number_input(t("compare.speed_new"), 2, 4096, E.speed_new_tokens, key=f"sn.{effort}")
    speed_repeats = c.number_input(t("compare.speed_repeats"), 0, 20, E.speed_repeats,
                                   key=f"sr.{effort}")
    speed_spread = a.number_input(t("compare.speed_spread"), 0.0, 0.99, E.speed_spread, step=0.05,
                                  help=t("compare.speed_spread_help"), key=f"ss.{effort}")

calibrating = [c.name for c in registry.all_methods() if c.may_calibrate()]
with st.expander(t("compare.calib_title", names=", ".join(calibrating))):
    st.caption(t("compare.calib_note"))
    calib_arg = st.text_input(t("compare.calib_corpus"), "", help=t("compare.corpus_help"))
    a, b, c = st.columns(3)
    calib_samples = a.number_input(t("compare.sequences"), 1, 4096, C.samples, key=f"cs.{effort}")
    calib_len = b.number_input(t("compare.seq_tokens"), 8, 32_768, C.seq_len, step=64,
                               key=f"cl.{effort}")
    calib_seed = c.number_input(t("compare.seed"), 0, 2**31 - 1, CalibSpec().seed)

calib = None
try:
    corpus = sharing.confine_corpus(corpus_from_arg(corpus_arg))
    calib = CalibSpec(corpus=sharing.confine_corpus(corpus_from_arg(calib_arg)) if calib_arg.strip() else corpus,
                      samples=int(calib_samples), seq_len=int(calib_len), seed=int(calib_seed))
except UserError as e:
    corpus = None
    user_error(e)

# --- methods ----------------------------------------------------------------------------------
st.subheader(t("compare.methods_title"))
device = st.selectbox(t("compare.device"), DEVICES, key="device", help=t("compare.device_help"))
no_device = registry.get(registry.BASELINE).unavailable_reason(device)
if no_device:
    st.warning(t("compare.no_device", device=device, reason=text_of(no_device, lang)))
ev, ev_ok = None, False
try:
    ev = EvalSpec(tokens=int(tokens), window=int(window), stride=int(stride), protocol=protocol,
                  device=device, dtype=dtype, speed_prompt=int(speed_prompt),
                  speed_new_tokens=int(speed_new), speed_repeats=int(speed_repeats),
                  speed_spread=float(speed_spread), threads=int(threads))
    ev_ok = True
except UserError as e:
    user_error(e)
st.caption(t("compare.combinations"))
chosen, option_errors, ticked = [], False, 0
by_family: dict[str, list] = {}
for cls in registry.all_methods():
    by_family.setdefault(cls.family, []).append(cls)
for family, classes in by_family.items():
    st.markdown(f"**{i18n.family(family, lang)}**")
    for cls in classes:
        reason = cls.unavailable_reason(device)
        on = st.checkbox(f"`{cls.name}` — {i18n.method_summary(cls, lang)}", key=f"m.{cls.name}",
                         disabled=reason is not None,
                         value=cls.name == registry.BASELINE and reason is None)
        if reason:
            if not no_device:                   # said once above when the device is the cause
                st.caption(f"🚫 {text_of(reason, lang)}")
            continue
        if not on:
            continue
        ticked += 1
        values: dict[str, list] = {}
        opts = cls.config_cls.option_table()
        cols = st.columns(max(1, min(len(opts), 3)))
        for i, o in enumerate(opts):
            col = cols[i % len(cols)]
            key = f"o.{cls.name}.{o['name']}"
            hint = t("compare.option_hint", help=i18n.option_help(o["help"], lang), name=o["name"])
            name = i18n.option_label(o["name"], o["label"], lang)
            if o["choices"]:
                values[o["name"]] = col.multiselect(name, o["choices"], default=[o["default"]],
                                                    help=hint, key=key)
            else:
                text = col.text_input(name, str(o["default"]), key=key, help=hint + t("compare.several"))
                values[o["name"]] = [v.strip() for v in registry.split_top_level(text) if v.strip()]
            if not values[o["name"]]:
                col.error(t("compare.pick_one", label=name.lower() if lang == "en" else name))
                option_errors = True
                continue
            for v in values[o["name"]]:         # each value checked alone, the error beside it
                try:
                    cls.config_cls.parse({o["name"]: v})
                except UserError as e:
                    col.error(e.text(lang))
                    option_errors = True
                    break
        if not option_errors:
            try:
                chosen += registry.method_variants(cls.name, values)
            except UserError as e:
                user_error(e)
                option_errors = True

# --- estimate and submit ----------------------------------------------------------------------
st.subheader(t("compare.run_title"))
if model_spec is not None and ev is not None:
    n = param_count(model_spec, str(state_dir()))
    if n:
        st.markdown(t("compare.estimate", m=n / 1e6, gib=n * 4 / 2**30))
    if chosen and corpus is not None and model_ok:
        try:
            plan = estimate.plan(planned_specs(model_spec, tuple(chosen), corpus, ev, calib),
                                 results()[0], state_dir())
            st.caption("⏱ " + estimate.describe(plan, lang))
        except UserError as e:
            user_error(e)
ready = model_ok and ev_ok and corpus is not None and not option_errors and bool(chosen)
if not ticked:
    st.info(t("compare.tick"))
if st.button(t("compare.submit", n=len(chosen)), type="primary", disabled=not ready):
    try:
        show_submitted(submit_specs(model_spec, chosen, corpus, ev, calib))
    except UserError as e:
        user_error(e)
