"""Compare: pick a model and methods (options rendered from each method's config), set the
corpus and protocol, see an estimate, and submit. Cache hits show as done at once."""

import streamlit as st

from qcompare import effort as efforts
from qcompare import estimate, models, registry
from qcompare.corpora import corpus_from_arg
from qcompare.errors import UserError
from qcompare.specs import DEVICES, DTYPES, PROTOCOLS, CalibSpec, EvalSpec
from qcompare.ui.data import param_count, planned_specs, resolve_model, results, state_dir, submit_specs
from qcompare.ui.navigation import ensure_navigation
from qcompare.ui.notices import show_submitted, user_error

ensure_navigation("pages/compare.py")
st.title("Compare methods")

# --- model ------------------------------------------------------------------------------------
st.subheader("1. Model")
OTHER = "Other: a folder, a hub id or a .gguf file…"
choices = ["embedded"] + models.discover(state_dir()) + [OTHER]
picked = st.selectbox("Model", choices, key="model", format_func=lambda c: "Embedded SmolLM2-135M-Instruct (default)"
                      if c == "embedded" else c)
ref = st.text_input("Path or hub id", placeholder="/path/to/model-folder, org/name or model.gguf",
                    key="model_ref") if picked == OTHER else picked
c1, c2 = st.columns(2)
trust = c1.checkbox("Trust remote code", help="Run the model's own Python code (never by default).")
pickle = c2.checkbox("Allow pickle checkpoints", help=".bin/.pt files can run code when loaded.")
model_spec, model_ok = None, False
if ref:
    try:
        model_spec = resolve_model(models.model_from_arg(ref, trust, pickle))
        model_ok = True
    except UserError as e:
        user_error(e)
if model_spec is not None and model_spec.source == "embedded":
    st.caption("ℹ️ " + models.EMBEDDED_NOTE + ".")

# --- protocol (advanced) ----------------------------------------------------------------------
help_of = {k: h for k, (_, h) in EvalSpec.field_help().items()}
effort = st.radio("Effort", tuple(efforts.EFFORTS), index=tuple(efforts.EFFORTS).index("thorough"),
                  horizontal=True, key="effort",
                  format_func=lambda n: f"{n}: {efforts.get(n).summary}",
                  help="How much measuring each run does. Every row names its effort; changing "
                       "a value below makes it 'custom'.")
E = efforts.eval_spec(effort)
C = efforts.calib_spec(effort, corpus_from_arg("embedded"))
with st.expander("Corpus and protocol (advanced)"):
    corpus_arg = st.text_input("Corpus", "embedded",
                               help="embedded (CPython docs) | a path to a UTF-8 text file | hf:NAME:CONFIG:SPLIT")
    a, b, c = st.columns(3)
    protocol = a.selectbox("Protocol", PROTOCOLS, help=help_of["protocol"])
    tokens = b.number_input("Tokens", 16, 1_000_000, E.tokens, step=512, help=help_of["tokens"],
                            key=f"tokens.{effort}")
    window = c.number_input("Window", 8, 32_768, EvalSpec().window, step=128, help=help_of["window"])
    a, b, c = st.columns(3)
    stride = a.number_input("Stride (strided only; 0 = window/2)", 0, 32_768, 0, help=help_of["stride"])
    dtype = b.selectbox("Compute dtype", DTYPES, help=help_of["dtype"])
    threads = c.number_input("CPU threads (0 = all)", 0, 256, 0, help=help_of["threads"])
    a, b, c = st.columns(3)
    speed_prompt = a.number_input("Speed: prompt tokens", 2, 8192, E.speed_prompt,
                                  key=f"sp.{effort}")
    speed_new = b.number_input("Speed: new tokens", 2, 4096, E.speed_new_tokens, key=f"sn.{effort}")
    speed_repeats = c.number_input("Speed: most repeats (0 skips)", 0, 20, E.speed_repeats,
                                   key=f"sr.{effort}")
    speed_spread = a.number_input("Speed: stop at spread", 0.0, 0.99, E.speed_spread, step=0.05,
                                  help=help_of["speed_spread"], key=f"ss.{effort}")

calibrating = [c.name for c in registry.all_methods() if c.may_calibrate()]
with st.expander(f"Calibration ({', '.join(calibrating)})"):
    st.caption("Methods that calibrate learn from calibration text. By default it is drawn from the "
               "evaluation corpus after the evaluated tokens, and any sequence that repeats "
               "evaluated text is dropped: calibration never sees what is scored.")
    calib_arg = st.text_input("Calibration corpus (empty: the evaluation corpus)", "",
                              help="embedded | a path to a UTF-8 text file | hf:NAME:CONFIG:SPLIT")
    a, b, c = st.columns(3)
    calib_samples = a.number_input("Sequences", 1, 4096, C.samples, key=f"cs.{effort}")
    calib_len = b.number_input("Tokens per sequence", 8, 32_768, C.seq_len, step=64,
                               key=f"cl.{effort}")
    calib_seed = c.number_input("Seed", 0, 2**31 - 1, CalibSpec().seed)

calib = None
try:
    corpus = corpus_from_arg(corpus_arg)
    calib = CalibSpec(corpus=corpus_from_arg(calib_arg) if calib_arg.strip() else corpus,
                      samples=int(calib_samples), seq_len=int(calib_len), seed=int(calib_seed))
except UserError as e:
    corpus = None
    user_error(e)

# --- methods ----------------------------------------------------------------------------------
st.subheader("2. Methods")
device = st.selectbox("Device", DEVICES, key="device", help="where the runs execute; cuda needs an "
                      "NVIDIA GPU on this machine")
no_device = registry.get(registry.BASELINE).unavailable_reason(device)
if no_device:
    st.warning(f"🚫 {device}: {no_device} Every method is unavailable there; pick cpu.")
ev, ev_ok = None, False
try:
    ev = EvalSpec(tokens=int(tokens), window=int(window), stride=int(stride), protocol=protocol,
                  device=device, dtype=dtype, speed_prompt=int(speed_prompt),
                  speed_new_tokens=int(speed_new), speed_repeats=int(speed_repeats),
                  speed_spread=float(speed_spread), threads=int(threads))
    ev_ok = True
except UserError as e:
    user_error(e)
st.caption("Options with several values run once per combination.")
chosen, option_errors, ticked = [], False, 0
by_family: dict[str, list] = {}
for cls in registry.all_methods():
    by_family.setdefault(cls.family, []).append(cls)
for family, classes in by_family.items():
    st.markdown(f"**{family}**")
    for cls in classes:
        reason = cls.unavailable_reason(device)
        on = st.checkbox(f"`{cls.name}` — {cls.summary}", key=f"m.{cls.name}", disabled=reason is not None,
                         value=cls.name == registry.BASELINE and reason is None)
        if reason:
            if not no_device:                   # said once above when the device is the cause
                st.caption(f"🚫 {reason}")
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
            hint = f"{o['help']} (option `{o['name']}`)"
            if o["choices"]:
                values[o["name"]] = col.multiselect(o["label"], o["choices"], default=[o["default"]],
                                                    help=hint, key=key)
            else:
                text = col.text_input(o["label"], str(o["default"]), key=key,
                                      help=hint + "; comma-separated for several values")
                values[o["name"]] = [v.strip() for v in registry.split_top_level(text) if v.strip()]
            if not values[o["name"]]:
                col.error(f"pick at least one value for {o['label'].lower()}")
                option_errors = True
                continue
            for v in values[o["name"]]:         # each value checked alone, the error beside it
                try:
                    cls.config_cls.parse({o["name"]: v})
                except UserError as e:
                    col.error(str(e))
                    option_errors = True
                    break
        if not option_errors:
            try:
                chosen += registry.method_variants(cls.name, values)
            except UserError as e:
                user_error(e)
                option_errors = True

# --- estimate and submit ----------------------------------------------------------------------
st.subheader("3. Run")
if model_spec is not None and ev is not None:
    n = param_count(model_spec, str(state_dir()))
    if n:
        st.markdown(f"**Estimate:** {n / 1e6:.0f}M weights → about **{n * 4 / 2**30:.2f} GiB** in fp32 "
                    f"per loaded model (the baseline and each method load one in turn).")
    if chosen and corpus is not None and model_ok:
        try:
            plan = estimate.plan(planned_specs(model_spec, tuple(chosen), corpus, ev, calib),
                                 results()[0], state_dir())
            st.caption("⏱ " + estimate.describe(plan))
        except UserError as e:
            user_error(e)
ready = model_ok and ev_ok and corpus is not None and not option_errors and bool(chosen)
if not ticked:
    st.info("Tick at least one method above.")
if st.button(f"Submit {len(chosen)} run(s)", type="primary", disabled=not ready):
    try:
        show_submitted(submit_specs(model_spec, chosen, corpus, ev, calib))
    except UserError as e:
        user_error(e)
