"""Generation side by side: the baseline and up to three quantized variants continue the same
prompt with the same decoding, streamed token by token from the generation worker
(`qcompare.explore.generation_worker`), then coloured by each variant's KL divergence from the
baseline and marked where its tokens first depart. The page never imports torch."""
import time

import pandas as pd
import streamlit as st

from qcompare.core import effort, registry
from qcompare.core.errors import UserError
from qcompare.core.specs import EvalSpec, ModelSpec, RunSpec
from qcompare.explore import generation
from qcompare.explore.decoding import Decoding
from qcompare.explore.generation_worker import ensure_worker, running
from qcompare.jobs.submit import build_specs
from qcompare.ui.data import results, start_runner, state_dir
from qcompare.ui.escape import literal
from qcompare.ui.lang import t
from qcompare.ui.navigation import ensure_navigation
from qcompare.ui.notices import user_error

ensure_navigation("pages/generate.py")
st.title(t("generate.title"))
st.markdown(t("generate.intro"))

df, _ = results()
models: dict[str, RunSpec] = {}
if not df.empty:
    for text in df.sort_values("finished_at", ascending=False)["spec_json"].dropna():
        try:
            spec = RunSpec.from_json(text)
        except (UserError, KeyError, TypeError, ValueError):
            continue
        models.setdefault(spec.model.label, spec)
if not models:
    models["embedded"] = RunSpec(model=ModelSpec(), method=registry.make_method_spec(registry.BASELINE, {}),
                                 eval=effort.eval_spec("quick", EvalSpec()))
c = st.columns([2, 3])
model_label = c[0].selectbox(t("generate.model"), list(models), key="gen.model")
newest = models[model_label]
rows = df[df["model"] == model_label] if not df.empty else df
measured = {}
for _, r in rows.sort_values("finished_at", ascending=False).iterrows():
    if r["method"] != registry.BASELINE and r["method_label"] not in measured:
        measured[r["method_label"]] = r["spec_json"]
# the presenter's choice stays as new rows arrive: options in a fixed (alphabetical) order, and
# the first default (the two newest) fixed once per session
if "gen.variants" not in st.session_state:
    st.session_state["gen.variants"] = list(measured)[:2]
st.session_state["gen.variants"] = [v for v in st.session_state["gen.variants"] if v in measured]
picked = c[1].multiselect(t("generate.variants"), sorted(measured), max_selections=3,
                          key="gen.variants")
typed = c[1].text_input(t("generate.typed"), "", key="gen.typed", help=t("generate.typed_help"))
OWN = "own"
prompt_choice = st.radio(t("generate.prompt"), list(generation.DEFAULT_PROMPTS) + [OWN], horizontal=True,
                         key="gen.prompt_choice",
                         format_func=lambda p: t("generate.own") if p == OWN else p)
prompt = (st.text_area(t("generate.own_prompt"), "", key="gen.prompt") if prompt_choice == OWN
          else prompt_choice)
c = st.columns(5)
max_new = int(c[0].number_input(t("generate.max_new"), 1, 512, 48, key="gen.max"))
mode = c[1].radio(t("generate.decoding"), ("greedy", "sampling"), horizontal=True, key="gen.mode",
                  format_func=lambda m: t(f"generate.{m}"))
temp = c[2].number_input(t("generate.temperature"), 0.05, 2.0, 0.8, step=0.05, key="gen.temp",
                         disabled=mode == "greedy")
seed = int(c[3].number_input(t("generate.seed"), 0, 2**31 - 1, 0, key="gen.seed", disabled=mode == "greedy"))
rep = c[4].number_input(t("generate.penalty"), 1.0, 2.0, 1.0, step=0.05, key="gen.rep")


def _columns() -> list[tuple[str, str]]:
    base = build_specs(newest.model, [registry.make_method_spec(registry.BASELINE, {})],
                       newest.corpus, newest.eval)[0]
    cols = [(t("generate.baseline", name=registry.BASELINE), base.to_json())]
    cols += [(label, measured[label]) for label in picked]
    if typed.strip():
        spec = build_specs(newest.model, [registry.parse_method_arg(typed.strip())], newest.corpus,
                           newest.eval, newest.calib or effort.calib_spec("quick", newest.corpus))[0]
        cols.append((spec.method.label, spec.to_json()))
    if len(cols) > generation.MAX_COLUMNS:
        raise UserError(t("generate.too_many", n=generation.MAX_COLUMNS - 1))
    return cols


b = st.columns([1, 1, 4])
if b[0].button(t("generate.go"), type="primary", key="gen.go"):
    try:
        d = Decoding(max_new_tokens=max_new, sample=mode == "sampling", temperature=temp, seed=seed,
                     repetition_penalty=rep)
        st.session_state["gen.request"] = generation.submit(state_dir(), prompt, d, _columns())
        if start_runner():
            ensure_worker(state_dir())
            st.session_state["gen.started"] = time.time()
    except UserError as e:
        user_error(e)
    except ValueError as e:
        user_error(UserError(str(e)))
rid = st.session_state.get("gen.request")
if rid and b[1].button(t("generate.cancel"), key="gen.cancel"):
    generation.cancel(state_dir(), rid)


def prompt_html(state) -> str:
    return ("<span style='color:#888'>" + generation.html_tokens([state.get("prompt", "")], None, None, 1.0)
            + "</span>")


@st.fragment(run_every=0.5)
def _stream() -> None:
    if not rid:
        st.caption(t("generate.pick"))
        return
    state = generation.read_state(state_dir(), rid)
    if state is None:
        alive = running(state_dir())
        # a worker that was just exiting when this was queued: start another, at most every 10 s
        if not alive and start_runner() and time.time() - st.session_state.get("gen.started", 0) > 10:
            st.session_state["gen.started"] = time.time()
            ensure_worker(state_dir())
        st.info(t("generate.waiting") if alive else t("generate.waiting_start"))
        return
    if state.get("status") == "failed":
        st.error(t("generate.failed", error=literal(state.get("error"))))
        with st.expander(t("generate.traceback")):
            st.code(state.get("traceback", ""))
        return
    cols = st.columns(len(state["columns"]))
    kls = [v for c in state["columns"][1:] if c.get("kl") for v in c["kl"]]
    scale = max(float(pd.Series(kls).quantile(0.95)) if kls else 0.0, 1e-6)
    for col, c in zip(cols, state["columns"]):
        with col:
            st.markdown(f"**{literal(c['label'])}**")
            m = st.columns(3)
            m[0].metric(t("generate.ttft"), f"{c['ttft_ms']:.0f} ms" if c["ttft_ms"] else "—")
            m[1].metric(t("generate.tok_s"), f"{c['tok_s']:.1f}" if c["tok_s"] else "—")
            m[2].metric(t("generate.weights"), (f"{c['weights_mib']:.0f} MiB" if c["weights_mib"] >= 10 else f"{c['weights_mib']:.2f} MiB")
                        if c["weights_mib"] else "—")
            if c["error"]:
                st.error(literal(c["error"]))
            elif c["kl"] is not None and c["pieces"]:
                st.html(f"<div style='line-height:1.8'>{prompt_html(state)}"
                        f"{generation.html_tokens(c['pieces'], c['kl'], c['first_divergence'], scale)}</div>")
                split = c["first_divergence"]
                st.caption(t("generate.identical") if split is None and c is not state["columns"][0]
                           else "" if c is state["columns"][0] else
                           t("generate.departs", i=split + 1, kl=sum(c["kl"]) / len(c["kl"])))
            else:
                st.markdown(c["text"] + (" ▌" if c["status"] == "generating" else ""))
                st.caption(t(f"generate.status_{c['status']}"))
            if c.get("peak_rss_mib"):
                st.caption(t("generate.peak", mib=c["peak_rss_mib"]))
    if state["status"] in generation.FINISHED:
        st.caption(t("generate.finished", status=t(f"generate.status_{state['status']}"), scale=scale))


_stream()
